# Limits that keep a run safe next to an application: lock and statement
# timeouts with smaller retries, run time, rate, the global switch, progress.

# The application holds a table lock for a while: batches time out on
# lock_timeout, are retried with half the rows, and succeed once the lock is
# gone. The application itself sees no error.
test_lock_timeout_retries_smaller() {
  fresh_db locktimeout
  q >/dev/null <<'SQL'
CREATE TABLE jobs (id int PRIMARY KEY, done_at timestamptz NOT NULL);
INSERT INTO jobs SELECT g, now() - interval '1 year' FROM generate_series(1, 500) g;
SELECT retention.create_policy('jobs', 'jobs', 'done_at', interval '1 day', batch_size => 200,
                               lock_timeout => interval '300 milliseconds');
SQL
  open_session app
  say app "BEGIN;"
  say app "LOCK TABLE jobs IN SHARE MODE;"
  wait_for "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'jobs' AND l.mode = 'ShareLock' AND l.granted"
  q -c "CALL retention.run()" >"$(mktemp)" 2>&1 &
  local runner=$!
  wait_for "SELECT retries >= 1 FROM retention.runs" 20
  say app "COMMIT;"
  close_session app
  wait "$runner"
  expect_eq "$(val "SELECT status || ' ' || rows_purged FROM retention.runs")" "succeeded 500" "run"
  (( $(val "SELECT retries FROM retention.runs") >= 1 )) || fail "no retry recorded"
  expect_eq "$(val "SELECT count(*) FROM jobs")" 0 "purged"
  if session_output app | grep -q ERROR; then fail "the application saw an error"; fi
}

# A lock that outlasts every retry: the policy is left for the next run with
# the error logged, and the run goes on with the other policies.
test_lock_held_too_long_fails_policy_not_run() {
  fresh_db lockfail
  q >/dev/null <<'SQL'
CREATE TABLE a_jobs (id int PRIMARY KEY, done_at timestamptz NOT NULL);
CREATE TABLE b_jobs (id int PRIMARY KEY, done_at timestamptz NOT NULL);
INSERT INTO a_jobs SELECT g, now() - interval '1 year' FROM generate_series(1, 100) g;
INSERT INTO b_jobs SELECT g, now() - interval '1 year' FROM generate_series(1, 100) g;
SELECT retention.create_policy('a_jobs', 'a_jobs', 'done_at', interval '1 day', batch_size => 40,
                               lock_timeout => interval '100 milliseconds');
SELECT retention.create_policy('b_jobs', 'b_jobs', 'done_at', interval '1 day');
SQL
  open_session app
  say app "BEGIN;"
  say app "LOCK TABLE a_jobs IN SHARE MODE;"
  wait_for "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'a_jobs' AND l.granted"
  q -c "CALL retention.run()" 2>/dev/null
  say app "ROLLBACK;"
  close_session app
  expect_eq "$(val "SELECT string_agg(policy || ':' || status || ':' || coalesce(error_code, '') || ':' || retries, ' ' ORDER BY policy) FROM retention.runs")" \
    "a_jobs:failed:55P03:2 b_jobs:succeeded::0" "statuses"
  expect_eq "$(val "SELECT count(*) FROM a_jobs")" 100 "a_jobs untouched"
  expect_eq "$(val "SELECT count(*) FROM b_jobs")" 0 "b_jobs purged"
}

# A batch slower than statement_timeout (a slow trigger) is cancelled and
# retried smaller; it is not mistaken for a user's cancel.
test_statement_timeout_per_batch() {
  fresh_db stmttimeout
  q >/dev/null <<'SQL'
CREATE TABLE slow (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO slow SELECT g, now() - interval '1 year' FROM generate_series(1, 40) g;
CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.1); RETURN OLD; END $$;
CREATE TRIGGER slow_down BEFORE DELETE ON slow FOR EACH ROW EXECUTE FUNCTION slow_down();
SELECT retention.create_policy('slow', 'slow', 'at', interval '1 day', batch_size => 40,
                               statement_timeout => interval '500 milliseconds');
SQL
  q -c "CALL retention.run()" 2>/dev/null
  expect_eq "$(val "SELECT status || ':' || error_code || ':' || retries || ':' || error FROM retention.runs")" \
    "failed:57014:2:canceling statement due to statement timeout [table public.slow]" "run"
  expect_eq "$(val "SELECT count(*) FROM slow")" 40 "nothing half-deleted"
  # With a longer timeout the same policy goes through.
  q -c "SELECT retention.alter_policy('slow', statement_timeout => interval '30 seconds')" >/dev/null
  q -c "CALL retention.run()" 2>/dev/null
  expect_eq "$(val "SELECT count(*) FROM slow")" 0 "purged with a longer timeout"
}

# max_run_time stops a policy between batches; the next run continues.
# max_rows_per_second slows it down. Both are read before every batch.
test_run_time_and_rate_limits() {
  fresh_db limits
  q >/dev/null <<'SQL'
CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO events SELECT g, now() - interval '1 year' FROM generate_series(1, 100) g;
SELECT retention.create_policy('events', 'events', 'at', interval '1 day', batch_size => 10,
                               max_rows_per_second => 40, max_run_time => interval '1 second');
SQL
  q -c "CALL retention.run()" 2>/dev/null
  local purged; purged="$(val "SELECT rows_purged FROM retention.runs")"
  (( purged > 0 && purged < 100 )) || fail "max_run_time did not stop the run early ($purged rows)"
  expect_eq "$(val "SELECT status || ': ' || note FROM retention.runs")" \
    "succeeded: stopped at max_run_time; the remaining due rows are left for the next run" "note"
  # 40 rows per second: the first run cannot have purged much more than 40
  # rows per second of its duration.
  expect_eq "$(val "SELECT rows_purged <= 40 * extract(epoch FROM duration) + 10 FROM retention.runs")" t "rate"
  q -c "SELECT retention.alter_policy('events', no_max_run_time => true, no_rate_limit => true)" >/dev/null
  q -c "CALL retention.run()" 2>/dev/null
  expect_eq "$(val "SELECT count(*) FROM events")" 0 "next run finished"
}

# retention.enabled = off: runs do nothing; progress NOTICEs report counts.
test_global_switch_and_progress() {
  fresh_db switch
  q >/dev/null <<'SQL'
CREATE TABLE logs (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO logs SELECT g, now() - interval '1 year' FROM generate_series(1, 30) g;
SELECT retention.create_policy('logs', 'logs', 'at', interval '1 day', batch_size => 10);
SQL
  local out; out="$(q -c "SET retention.enabled = off" -c "CALL retention.run()" 2>&1)"
  grep -q "retention.enabled is off; nothing done" <<<"$out" || fail "no notice: $out"
  expect_eq "$(val "SELECT count(*) FROM logs")" 30 "nothing done while off"
  out="$(q -c "SET retention.progress_interval = 0" -c "CALL retention.run()" 2>&1)"
  expect_eq "$(grep -c 'retention policy "logs": .* purged' <<<"$out")" 3 "one progress notice per batch"
  grep -q '"logs": 30 purged, 0 anonymised, 0 marked in 3 batches' <<<"$out" || fail "final counts: $out"
  expect_eq "$(val "SELECT count(*) FROM logs")" 0 "purged when on"
}

# The caller's own statement_timeout (an operator's or a pg_cron job's
# safety limit) ends the run: it is not mistaken for a batch's timeout and
# retried, and the run log is closed.
test_callers_statement_timeout_ends_the_run() {
  fresh_db callertimeout
  q >/dev/null <<'SQL'
CREATE TABLE slow (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO slow SELECT g, now() - interval '1 year' FROM generate_series(1, 40) g;
CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.pg_sleep(0.1); RETURN OLD; END $$;
CREATE TRIGGER s BEFORE DELETE ON slow FOR EACH ROW EXECUTE FUNCTION slow_delete();
SELECT retention.create_policy('slow_30d', 'slow', 'at', interval '30 days', batch_size => 20);
SQL
  local out; out="$(q -c "SET statement_timeout = '1s'" -c "CALL retention.run()" 2>&1 || true)"
  [[ "$out" == *"retention.run() was cancelled"* ]] || fail "the run was not cancelled: $out"
  expect_eq "$(val "SELECT status || ' ' || retries || ' ' || error_code FROM retention.runs")" "failed 0 57014" "run log closed, no retry"
  expect_eq "$(val "SELECT count(*) FROM slow")" 40 "the cancelled batch was rolled back, nothing more ran"
  # Without the caller's limit the same policy runs to the end.
  q -c "CALL retention.run()" >/dev/null
  expect_eq "$(val "SELECT count(*) FROM slow")" 0 "purged by the next run"
}
