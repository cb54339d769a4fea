# The postgres_exporter queries of monitoring/postgres_exporter.yml: each
# runs as an auditor, returns exactly the columns its metrics declare, and
# every metric that is not a label is a number.

test_exporter_queries_run_and_match_their_metrics() {
  fresh_db exporter
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE x_events (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO x_events SELECT g, now() - g * interval '1 day' FROM generate_series(1, 500) g;
SELECT retention.create_policy('x_events', 'x_events', 'at', interval '100 days');
CREATE TABLE x_people (id int PRIMARY KEY);
SELECT retention.register_subject('person', 'x_people', 'id');
SELECT retention.request_erasure('person', '7', received_at => now() - interval '2 months');
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'x_exporter') THEN CREATE ROLE x_exporter LOGIN; END IF;
END $$;
GRANT retention_auditor TO x_exporter;
SQL
  q -c "CALL retention.run('x_events')" >/dev/null 2>&1
  local py; py="$(python_with yaml)" || return 1
  # One line per query: name, then its SQL on the next lines, split by a
  # NUL-free marker; the metric names and usages after it.
  "$py" - "$here/monitoring/postgres_exporter.yml" >"$IT_TMP/exporter.txt" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for name, entry in doc.items():
    metrics = [(k, v["usage"]) for m in entry["metrics"] for k, v in m.items()]
    print("@@QUERY " + name)
    print(entry["query"].strip())
    print("@@METRICS " + " ".join(f"{k}:{u}" for k, u in metrics))
PY
  local queries=0 name="" sql="" line
  while IFS= read -r line; do
    case "$line" in
      "@@QUERY "*) name="${line#@@QUERY }"; sql="" ;;
      "@@METRICS "*)
        queries=$((queries + 1))
        local metrics="${line#@@METRICS }" cols out
        # The column names, in order, as the auditor sees them.
        out="$(psql -X -q -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$IT_PORT" -U x_exporter -d "$DB" -F '|' -c "$sql" 2>&1)" \
          || { fail "$name: $out"; return 1; }
        cols="$(head -1 <<<"$out" | tr '|' ' ')"
        expect_eq "$cols" "$(sed 's/:[A-Z]*//g' <<<"$metrics")" "$name: columns"
        # Every row has a number in every non-label column.
        local rows; rows="$(tail -n +2 <<<"$out" | grep -v '^(' || true)"
        [[ -n "$rows" ]] || fail "$name: no rows"
        local i=0 m
        for m in $metrics; do
          i=$((i + 1))
          [[ "${m#*:}" == LABEL ]] && continue
          cut -d'|' -f"$i" <<<"$rows" | grep -Evq '^-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$' \
            && fail "$name: ${m%%:*} is not a number: $(cut -d'|' -f"$i" <<<"$rows" | head -3)"
        done
        ;;
      *) sql+="$line"$'\n' ;;
    esac
  done <"$IT_TMP/exporter.txt"
  expect_eq "$queries" 2 "queries in the file"
  # The values say what happened: 401 rows purged (100 days old or more), one request overdue.
  expect_eq "$(psql -X -q -A -t -h 127.0.0.1 -p "$IT_PORT" -U x_exporter -d "$DB" -c "SELECT rows_purged_total || ' ' || due_left || ' ' || falling_behind FROM retention.status")" "401 0 false" "status values"
  expect_eq "$(psql -X -q -A -t -h 127.0.0.1 -p "$IT_PORT" -U x_exporter -d "$DB" -c "SELECT count(*) FILTER (WHERE overdue) FROM retention.requests")" 1 "overdue"
  q -c "DROP OWNED BY x_exporter" -c "DROP ROLE x_exporter" >/dev/null
}
