# Policy-as-code, the export: the demo shop's whole configuration is valid
# against the JSON Schema in config/, and the schema does reject documents
# that break it.

test_export_of_the_demo_matches_the_json_schema() {
  fresh_db config
  q -q -f "$here/demo/shop.sql" >/dev/null 2>&1
  # Without the pg_cron schedule (pg_cron lives in another database here).
  grep -v 'cron\.' "$here/demo/policies.sql" | q -q >/dev/null
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT retention.place_hold('tax audit 2026', target => 'shop.orders', filter => 'id < 100', until => now() + interval '1 year');
SQL
  val "SELECT retention.export_config()" >"$IT_TMP/config.json"
  local py; py="$(python_with jsonschema)" || return 1
  # Enough to be worth validating: policies, kinds, holds.
  expect_eq "$(val "SELECT (SELECT count(*) FROM jsonb_object_keys(d -> 'policies')) > 2
                       AND (SELECT count(*) FROM jsonb_object_keys(d -> 'subject_kinds')) > 0
                       AND jsonb_array_length(d -> 'holds') > 0
                      FROM (SELECT retention.export_config() AS d) s")" t "a rich document"
  "$py" - "$here/config/pg_retention-config-1.schema.json" "$IT_TMP/config.json" <<'PY' || fail "the export does not match the schema"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
# Broken documents are rejected: the validator is not a formality.
import copy
for label, broken in [
    ("no version", {k: v for k, v in doc.items() if k != "version"}),
    ("period not ISO 8601", (lambda d: (d["policies"][next(iter(d["policies"]))]["limits"].__setitem__("lock_timeout", "2 seconds"), d)[1])(copy.deepcopy(doc))),
    ("unknown key", dict(doc, extra=1)),
    ("subject id instead of blind index", (lambda d: (d["holds"].append({"reason": "x", "kind": "customer", "subject_blind_index": "4711", "table": None, "filter": None, "until": None}), d)[1])(copy.deepcopy(doc))),
]:
    try:
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError:
        continue
    sys.exit(f"the schema accepted a document with {label}")
PY
}

# Policy-as-code, both ways: the demo shop's configuration, exported and
# applied to another database with the same tables, exports the same
# document there; a changed document's plan counts the rows it makes due.
test_apply_config_round_trip_between_databases() {
  local -x PGOPTIONS="-c client_min_messages=warning"
  fresh_db config_from
  q -q -f "$here/demo/shop.sql" >/dev/null 2>&1
  grep -v 'cron\.' "$here/demo/policies.sql" | q -q >/dev/null
  val "SELECT retention.place_hold('tax audit 2026', target => 'shop.orders', filter => 'id < 100', until => '2027-06-30')" >/dev/null
  val "SELECT retention.export_config()" >"$IT_TMP/from.json"
  fresh_db config_to
  q -q -f "$here/demo/shop.sql" >/dev/null 2>&1
  local doc; doc="$(cat "$IT_TMP/from.json")"
  # The dry run plans a creation of each policy and kind and changes nothing.
  local planned; planned="$(val "SELECT count(*) FILTER (WHERE change = 'create' AND object = 'policy') || ' ' ||
                                        count(*) FILTER (WHERE change = 'create' AND object = 'subject kind') || ' ' ||
                                        count(*) FILTER (WHERE change = 'place' AND object = 'hold')
                                   FROM retention.apply_config(\$doc\$$doc\$doc\$::jsonb)")"
  expect_eq "$planned" "$(val "SELECT (SELECT count(*) FROM jsonb_object_keys(d -> 'policies')) || ' ' ||
                                      (SELECT count(*) FROM jsonb_object_keys(d -> 'subject_kinds')) || ' 1'
                                 FROM (SELECT \$doc\$$doc\$doc\$::jsonb AS d) s")" "one creation per policy and kind, one hold"
  expect_eq "$(val "SELECT count(*) FROM retention.policies")" 0 "the dry run changed nothing"
  val "SELECT count(*) FROM retention.apply_config(\$doc\$$doc\$doc\$::jsonb, dry_run => false)" >/dev/null
  expect_eq "$(val "SELECT retention.export_config() = \$doc\$$doc\$doc\$::jsonb")" t "the same document in the new database"
  expect_eq "$(val "SELECT count(*) FROM retention.apply_config(\$doc\$$doc\$doc\$::jsonb)")" 0 "nothing left to do"
  # The due counts of a plan are the counts a preview gives after the change.
  local shorter
  shorter="$(val "SELECT jsonb_set(d, ARRAY['policies', p, 'stages', 'purge', 'after'], '\"P1D\"')
                    FROM (SELECT \$doc\$$doc\$doc\$::jsonb AS d) s,
                         LATERAL (SELECT k AS p FROM jsonb_object_keys(d -> 'policies') k
                                   WHERE d -> 'policies' -> k -> 'stages' ? 'purge'
                                     AND NOT d -> 'policies' -> k -> 'stages' ? 'anonymise'
                                     AND NOT d -> 'policies' -> k -> 'stages' ? 'mark'
                                     AND d -> 'policies' -> k -> 'statutory_minimum' = 'null'
                                   ORDER BY 1 LIMIT 1) x")"
  [[ -n "$shorter" ]] || { fail "the demo has no plain purge policy to shorten"; return 1; }
  val "SELECT due_rows || ' ' || due_rows_before FROM retention.apply_config(\$doc\$$shorter\$doc\$::jsonb)
        WHERE change = 'due now' AND name LIKE '% purge'" >"$IT_TMP/plan.txt"
  local changed; changed="$(val "SELECT name FROM retention.apply_config(\$doc\$$shorter\$doc\$::jsonb) WHERE change = 'change'")"
  expect_eq "$(wc -l <"$IT_TMP/plan.txt")" 1 "one purge stage changed ($changed)"
  local before after
  before="$(val "SELECT due_rows FROM retention.preview('$changed') WHERE action = 'purge'")"
  val "SELECT count(*) FROM retention.apply_config(\$doc\$$shorter\$doc\$::jsonb, dry_run => false)" >/dev/null
  after="$(val "SELECT due_rows FROM retention.preview('$changed') WHERE action = 'purge'")"
  expect_eq "$(cat "$IT_TMP/plan.txt")" "$after $before" "the plan's due counts"
  awk -v a="$after" -v b="$before" 'BEGIN { exit !(a > b) }' || fail "a period of one day made no more rows due ($before → $after)"
}
