# pg_cron runs the schedule: a real tick on a cluster with pg_cron preloaded
# (pg_cron 1.4 has minute resolution, so this waits up to about a minute).
test_pg_cron_runs_the_schedule() {
  need_pg_cron
  DB=postgres   # cron.database_name of the test cluster (pgrx.toml)
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
DROP EXTENSION IF EXISTS pg_retention CASCADE;
DROP TABLE IF EXISTS cron_sessions;
CREATE EXTENSION pg_retention;
CREATE TABLE cron_sessions (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO cron_sessions SELECT g, now() - interval '1 year' FROM generate_series(1, 25) g;
INSERT INTO cron_sessions VALUES (100, now());
SELECT retention.create_policy('cron_sessions', 'cron_sessions', 'at', interval '30 days', batch_size => 10);
SQL
  local job; job="$(val "SELECT retention.schedule('* * * * *')")"
  expect_eq "$(val "SELECT command || ' @ ' || database || ' as ' || username FROM cron.job WHERE jobid = $job")" \
    "CALL retention.run() @ postgres as postgres" "job"
  wait_for "SELECT count(*) > 0 FROM retention.runs WHERE status = 'succeeded'" 90
  wait_for "SELECT EXISTS (SELECT 1 FROM cron.job_run_details WHERE jobid = $job AND status = 'succeeded')" 30
  expect_eq "$(val "SELECT string_agg(id::text, ',') FROM cron_sessions")" 100 "due rows gone"
  expect_eq "$(val "SELECT rows_purged || ' ' || batches FROM retention.runs WHERE status = 'succeeded' ORDER BY id LIMIT 1")" "25 3" "run log"
  # A per-policy job, then both removed.
  local job2; job2="$(val "SELECT retention.schedule('0 4 * * *', policy => 'cron_sessions')")"
  expect_eq "$(val "SELECT command FROM cron.job WHERE jobid = $job2")" "CALL retention.run('cron_sessions')" "policy job"
  expect_eq "$(val "SELECT retention.unschedule()")" t "unschedule"
  expect_eq "$(val "SELECT retention.unschedule('cron_sessions')")" t "unschedule policy"
  expect_eq "$(val "SELECT retention.unschedule()")" f "nothing left"
  expect_eq "$(val "SELECT count(*) FROM cron.job WHERE jobname LIKE 'pg_retention%'")" 0 "jobs"
  q -c "SET client_min_messages = warning" -c "DROP EXTENSION pg_retention CASCADE" -c "DROP TABLE cron_sessions" >/dev/null
}

# Outside pg_cron's database the functions say where to schedule instead.
test_schedule_elsewhere_explains() {
  need_pg_cron
  fresh_db cronelsewhere
  local out; out="$(q -c "SELECT retention.schedule()" 2>&1 || true)"
  grep -q 'pg_cron keeps its jobs in database "postgres", not in "it_cronelsewhere"' <<<"$out" || fail "$out"
  grep -q "HINT:  Schedule from database \"postgres\": SELECT cron.schedule_in_database('pg_retention', '0 3 \* \* \*', 'CALL retention.run()', 'it_cronelsewhere');" <<<"$out" || fail "$out"
}

# With pg_cron installed, auditors read retention.status (they have no
# USAGE on schema cron), a non-superuser admin schedules, and reading the
# status leaves the session's search_path and snapshots alone.
test_status_for_auditors_and_admins_with_pg_cron() {
  need_pg_cron
  DB=postgres   # cron.database_name of the test cluster (pgrx.toml)
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
DROP EXTENSION IF EXISTS pg_retention CASCADE;
DROP TABLE IF EXISTS cron_status;
CREATE EXTENSION pg_retention;
CREATE TABLE cron_status (id int PRIMARY KEY, at timestamptz NOT NULL);
SELECT retention.create_policy('cron_status', 'cron_status', 'at', interval '30 days');
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_admin') THEN
        EXECUTE 'DROP OWNED BY it_admin'; EXECUTE 'DROP ROLE it_admin';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_auditor') THEN
        EXECUTE 'DROP OWNED BY it_auditor'; EXECUTE 'DROP ROLE it_auditor';
    END IF;
END $$;
CREATE ROLE it_auditor NOLOGIN IN ROLE retention_auditor;
CREATE ROLE it_admin NOLOGIN IN ROLE retention_admin;
GRANT USAGE ON SCHEMA cron TO it_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA cron TO it_admin;
SQL
  local out
  out="$(q -c "SET ROLE it_auditor" -c "BEGIN" -c "SELECT policy || ' ' || state FROM retention.status" \
          -c "SELECT current_setting('search_path')" -c "COMMIT" 2>&1)"
  [[ "$out" == *"cron_status active"* ]] || fail "status for an auditor: $out"
  [[ "$out" == *'"$user", public'* ]] || fail "search_path changed: $out"
  [[ "$out" != *"leak"* && "$out" != *"WARNING"* ]] || fail "warnings: $out"
  # A retention admin that is not a superuser may schedule.
  out="$(q -c "SET ROLE it_admin" -c "SELECT retention.schedule('0 4 * * *', policy => 'cron_status') > 0" 2>&1)"
  [[ "$out" == "t" ]] || fail "schedule as a non-superuser admin: $out"
  # pg_cron removes a job only for the role that owns it.
  expect_eq "$(q -c "SET ROLE it_admin" -c "SELECT retention.unschedule('cron_status')")" t "unscheduled by its owner"
  q -c "SET client_min_messages = warning" -c "DROP EXTENSION pg_retention CASCADE" \
    -c "DROP TABLE cron_status" -c "DROP OWNED BY it_auditor, it_admin" -c "DROP ROLE it_auditor, it_admin" >/dev/null
}
