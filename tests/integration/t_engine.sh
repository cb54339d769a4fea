# The purge engine seen from real sessions: committed batches, locked rows,
# overlapping runs.

# 10,000 due rows of 100,000, batch size 1,000: ten committed batches, and a
# second session sees the work progress while the run is going on.
test_batches_commit_and_progress_is_visible() {
  fresh_db batches
  q >/dev/null <<'SQL'
CREATE TABLE events (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, payload text);
INSERT INTO events
SELECT g, CASE WHEN g % 10 = 0 THEN now() - interval '400 days' ELSE now() - interval '10 days' END, 'p' || g
  FROM generate_series(1, 100000) g;
CREATE INDEX ON events (happened_at);
SELECT retention.create_policy('events_1y', 'events', 'happened_at', interval '1 year',
                               batch_size => 1000, batch_pause => interval '200 milliseconds');
SQL
  expect_eq "$(val "SELECT due_rows FROM retention.preview('events_1y')")" 10000 "preview"
  q -c "CALL retention.run()" &
  local runner=$!
  # Watch from this (second) session: purged rows grow batch by batch and are
  # already gone from the table, i.e. committed.
  local seen_partial=0 observations=0
  while kill -0 "$runner" 2>/dev/null; do
    local obs; obs="$(val "SELECT r.status || ',' || r.rows_purged || ',' || r.batches || ',' || (SELECT count(*) FROM events)
                            FROM retention.runs r ORDER BY id DESC LIMIT 1")"
    if [[ -n "$obs" ]]; then
      IFS=, read -r status purged batches remaining <<<"$obs"
      observations=$((observations + 1))
      if [[ "$status" == running ]] && (( purged > 0 && purged < 10000 )); then
        seen_partial=1
        # What the log says is committed is also gone for other sessions.
        (( remaining <= 100000 - purged )) || fail "table still has $remaining rows after $purged purged"
        (( batches * 1000 == purged )) || fail "batches $batches vs purged $purged"
      fi
    fi
    sleep 0.05
  done
  wait "$runner"
  (( seen_partial == 1 )) || fail "no intermediate state seen in $observations observations"
  expect_eq "$(val "SELECT status || ' ' || rows_purged || ' ' || batches FROM retention.runs")" "succeeded 10000 10" "run log"
  expect_eq "$(val "SELECT count(*) FROM events")" 90000 "rows left"
  expect_eq "$(val "SELECT count(*) FROM events WHERE id % 10 = 0")" 0 "due rows left"
}

# A row locked by the application is skipped without waiting and without
# disturbing the application; the next run purges it.
test_locked_row_is_skipped_then_purged() {
  fresh_db locked
  q >/dev/null <<'SQL'
CREATE TABLE carts (id int PRIMARY KEY, updated_at timestamptz NOT NULL, items text);
INSERT INTO carts SELECT g, now() - interval '90 days', 'x' FROM generate_series(1, 50) g;
SELECT retention.create_policy('carts_30d', 'carts', 'updated_at', interval '30 days', batch_size => 10);
SQL
  open_session app
  say app "BEGIN;"
  say app "SELECT 'locked ' || id FROM carts WHERE id = 7 FOR UPDATE;"
  wait_for "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'carts' AND l.mode = 'RowShareLock'"
  # The run must not wait for the lock: a short lock_timeout would fail it.
  q -c "SET lock_timeout = '2s'" -c "CALL retention.run()"
  expect_eq "$(val "SELECT string_agg(id::text, ',') FROM carts")" 7 "only the locked row is left"
  expect_eq "$(val "SELECT status || ' ' || rows_purged FROM retention.runs")" "succeeded 49" "first run"
  # The application goes on undisturbed and commits.
  say app "UPDATE carts SET items = 'y' WHERE id = 7;"
  say app "COMMIT;"
  close_session app
  if session_output app | grep -q ERROR; then fail "application saw an error: $(session_output app)"; fi
  session_output app | grep -q "locked 7" || fail "application did not get its row"
  q -c "CALL retention.run()"
  expect_eq "$(val "SELECT count(*) FROM carts")" 0 "next run purges it"
  expect_eq "$(val "SELECT string_agg(rows_purged::text, ',' ORDER BY id) FROM retention.runs")" "49,1" "run log"
}

# The same on a table large enough, with enough due rows, to be walked in
# ranges of pages: the ranges holding locked rows are done in the locking
# form, which skips exactly those rows.
test_walked_table_skips_locked_rows() {
  fresh_db walked
  q >/dev/null <<'SQL'
CREATE TABLE sessions (id int PRIMARY KEY, seen_at timestamptz NOT NULL, data text);
INSERT INTO sessions SELECT g, CASE WHEN g % 10 = 0 THEN now() - interval '90 days' ELSE now() END, repeat('s', 400)
  FROM generate_series(1, 40000) g;
CREATE INDEX ON sessions (seen_at);
ANALYZE sessions;
SELECT retention.create_policy('sessions_30d', 'sessions', 'seen_at', interval '30 days', batch_size => 1000);
SQL
  open_session app
  say app "BEGIN;"
  say app "SELECT 'locked ' || count(*) FROM (SELECT id FROM sessions WHERE id IN (10, 20000, 39990) FOR UPDATE) s;"
  wait_for "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'sessions' AND l.mode = 'RowShareLock'"
  q -c "SET lock_timeout = '2s'" -c "CALL retention.run()"
  expect_eq "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM sessions WHERE id % 10 = 0")" "10,20000,39990" "only the locked due rows are left"
  expect_eq "$(val "SELECT count(*) FROM sessions")" 36003 "rows left"
  expect_eq "$(val "SELECT status || ' ' || rows_purged FROM retention.runs")" "succeeded 3997" "first run"
  val "SELECT note FROM retention.runs" | grep -q 'purge stage walked' || fail "not walked: $(val "SELECT note FROM retention.runs")"
  say app "UPDATE sessions SET data = 'y' WHERE id IN (10, 20000, 39990);"
  say app "COMMIT;"
  close_session app
  if session_output app | grep -q ERROR; then fail "application saw an error: $(session_output app)"; fi
  session_output app | grep -q "locked 3" || fail "application did not get its rows"
  q -c "CALL retention.run()"
  expect_eq "$(val "SELECT count(*) FROM sessions WHERE id % 10 = 0")" 0 "next run purges them"
}

# A row whose clock moves forward after the run fixed its cutoff survives:
# every batch evaluates the due condition afresh (the race inside one
# statement, between selecting and deleting, is not provoked here).
test_row_whose_clock_moves_during_the_run_survives() {
  fresh_db recheck
  q >/dev/null <<'SQL'
CREATE TABLE accounts (id int PRIMARY KEY, last_login timestamptz NOT NULL);
INSERT INTO accounts SELECT g, now() - interval '3 years' FROM generate_series(1, 3) g;
SELECT retention.create_policy('inactive', 'accounts', 'last_login', interval '2 years',
                               batch_size => 1, batch_pause => interval '1 second');
SQL
  q -c "CALL retention.run()" &
  local runner=$!
  wait_for "SELECT rows_purged = 1 FROM retention.runs"
  # The user of account 3 logs in while the run pauses between batches.
  q -c "UPDATE accounts SET last_login = now() WHERE id = 3"
  wait "$runner"
  expect_eq "$(val "SELECT string_agg(id::text, ',') FROM accounts")" 3 "active account kept"
}

# Two runs of the same policy at once: the second skips it.
test_overlapping_runs_skip() {
  fresh_db overlap
  q >/dev/null <<'SQL'
CREATE TABLE logs (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO logs SELECT g, now() - interval '1 year' FROM generate_series(1, 20) g;
SELECT retention.create_policy('logs', 'logs', 'at', interval '1 day', batch_size => 2,
                               batch_pause => interval '300 milliseconds');
SQL
  q -c "CALL retention.run()" &
  local runner=$!
  wait_for "SELECT count(*) = 1 FROM retention.runs WHERE status = 'running'"
  q -c "CALL retention.run()" 2>/dev/null
  wait "$runner"
  expect_eq "$(val "SELECT string_agg(status || ':' || coalesce(error, ''), ' ' ORDER BY id) FROM retention.runs")" \
    "succeeded: skipped:already running in another session" "statuses"
  expect_eq "$(val "SELECT count(*) FROM logs")" 0 "all purged by the first run"
}

# A backend terminated mid-run: committed batches stay, the run shows as
# interrupted, and the next run finishes the work.
test_terminated_run_keeps_batches() {
  fresh_db terminated
  q >/dev/null <<'SQL'
CREATE TABLE visits (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO visits SELECT g, now() - interval '1 year' FROM generate_series(1, 100) g;
SELECT retention.create_policy('visits', 'visits', 'at', interval '1 day', batch_size => 10,
                               batch_pause => interval '300 milliseconds');
SQL
  q -c "CALL retention.run()" 2>/dev/null &
  local runner=$!
  wait_for "SELECT rows_purged >= 20 FROM retention.runs"
  val "SELECT pg_terminate_backend(backend_pid) FROM retention.runs WHERE status = 'running'" >/dev/null
  wait "$runner" || true
  local purged; purged="$(val "SELECT rows_purged FROM retention.runs")"
  expect_eq "$(val "SELECT status FROM retention.runs")" interrupted "status"
  expect_eq "$(val "SELECT count(*) FROM visits")" "$((100 - purged))" "committed batches kept"
  (( purged % 10 == 0 )) || fail "a half batch was kept: $purged"
  q -c "CALL retention.run()"
  expect_eq "$(val "SELECT count(*) FROM visits")" 0 "next run finished"
  expect_eq "$(val "SELECT string_agg(status, ',' ORDER BY id) FROM retention.run_log")" "interrupted,succeeded" "stored statuses"
}
