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
