# Keeping up next to production: batches sized by time, what runs leave
# behind in retention.status, dead row versions, vacuum_after through
# pg_cron, and what erasure certificates say about VACUUM.

# The time budget sizes batches: with the same rows, a 10-second target
# grows batches to the cap quickly, a 1-millisecond target keeps them small,
# and without a target every batch has batch_size rows.
test_batches_are_sized_by_the_time_budget() {
  fresh_db sizing
  q >/dev/null <<'SQL'
CREATE TABLE s_fixed (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO s_fixed SELECT g, now() - interval '2 years' FROM generate_series(1, 20000) g;
CREATE TABLE s_slow (LIKE s_fixed INCLUDING ALL);
INSERT INTO s_slow SELECT * FROM s_fixed WHERE id <= 2000;
CREATE TABLE s_fast (LIKE s_fixed INCLUDING ALL);
INSERT INTO s_fast SELECT * FROM s_fixed;
SELECT retention.create_policy('s_fixed', 's_fixed', 'at', interval '1 year', batch_size => 1000, batch_target => NULL);
SELECT retention.create_policy('s_slow', 's_slow', 'at', interval '1 year', batch_target => interval '1 millisecond');
SELECT retention.create_policy('s_fast', 's_fast', 'at', interval '1 year', batch_size => 16000, batch_target => interval '10 seconds');
SQL
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT string_agg(policy || ' ' || rows_purged, ', ' ORDER BY policy) FROM retention.runs")" \
    "s_fast 20000, s_fixed 20000, s_slow 2000" "every due row purged"
  expect_eq "$(val "SELECT batches FROM retention.runs WHERE policy = 's_fixed'")" 20 "fixed batches"
  # 1000, then 4000, then up to the cap of 16000: the rest.
  expect_eq "$(val "SELECT batches FROM retention.runs WHERE policy = 's_fast'")" 3 "batches with a 10 s target"
  local slow; slow="$(val "SELECT batches FROM retention.runs WHERE policy = 's_slow'")"
  (( slow > 2 )) || fail "a 1 ms target should make batches smaller than 1000 rows, got $slow batches for 2000 rows"
  # The settings are checked and can be switched off.
  local out; out="$(q -c "SELECT retention.alter_policy('s_fast', batch_target => interval '1 minute')" 2>&1 || true)"
  grep -q "batch_target must lie between 1 millisecond and 10 seconds" <<<"$out" || fail "$out"
  out="$(q -c "SELECT retention.alter_policy('s_fast', batch_target => interval '1 second', no_batch_target => true)" 2>&1 || true)"
  grep -q "batch_target and no_batch_target cannot be given together" <<<"$out" || fail "$out"
  val "SELECT retention.alter_policy('s_fast', no_batch_target => true)" >/dev/null
  expect_eq "$(val "SELECT batch_target IS NULL FROM retention.policies WHERE name = 's_fast'")" t "target removed"
}

# retention.status tells whether a policy keeps up: what the last run left
# (rows locked by the application), the oldest of it, rates between runs,
# falling_behind when what is left grows run after run, and overdue erasure
# requests for the table. Held rows are not "left".
test_status_shows_the_backlog_and_falling_behind() {
  fresh_db backlog
  q >/dev/null <<'SQL'
CREATE TABLE b_events (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO b_events SELECT g, timestamptz '2020-01-01' + g * interval '1 day' FROM generate_series(1, 300) g;
INSERT INTO b_events SELECT g, now() FROM generate_series(1001, 1010) g;
SELECT retention.create_policy('b_events', 'b_events', 'at', interval '1 year');
-- Row 5 is held: it stays, and is not counted as left behind.
SELECT retention.place_hold('litigation', target => 'b_events', filter => 'id = 5');
SQL
  open_session app
  local n expected_left
  # Each run finds more rows locked: 1, then 2, then 3 (rows 10, 11, 12).
  for n in 1 2 3; do
    val "INSERT INTO b_events SELECT g, timestamptz '2020-01-01' + g * interval '1 day' FROM generate_series(10, 300) g ON CONFLICT DO NOTHING" >/dev/null
    say app "BEGIN;"
    say app "SELECT 'locked ' || count(*) FROM (SELECT id FROM b_events WHERE id BETWEEN 10 AND $((9 + n)) FOR UPDATE) s;"
    wait_for "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' AND pid <> pg_backend_pid() AND mode = 'ExclusiveLock' AND granted)" 10
    sleep 0.2
    q -c "CALL retention.run('b_events')" >/dev/null 2>&1
    say app "ROLLBACK;"
    expect_eq "$(val "SELECT due_left FROM retention.runs ORDER BY id DESC LIMIT 1")" "$n" "rows left by run $n"
  done
  close_session app
  expect_eq "$(val "SELECT due_left || ' ' || (oldest_due = timestamptz '2020-01-11') || ' ' || (lag > interval '1 year') || ' ' || falling_behind FROM retention.status")" \
    "3 true true true" "status after three runs"
  expect_eq "$(val "SELECT removed_per_day > 0 AND became_due_per_day > 0 FROM retention.status")" t "rates"
  expect_eq "$(val "SELECT count(*) FROM b_events WHERE id = 5")" 1 "held row kept"
  # A run that removes everything left: caught up.
  q -c "CALL retention.run('b_events')" >/dev/null 2>&1
  expect_eq "$(val "SELECT due_left || ' ' || coalesce(oldest_due::text, '-') || ' ' || coalesce(lag::text, '-') || ' ' || falling_behind FROM retention.status")" \
    "0 - - false" "caught up"
  # An erasure request past its deadline for a kind that maps the table.
  q >/dev/null <<'SQL'
CREATE TABLE b_people (id int PRIMARY KEY);
ALTER TABLE b_events ADD COLUMN person int REFERENCES b_people;
SELECT retention.register_subject('person', 'b_people', 'id');
SELECT retention.request_erasure('person', '42', received_at => now() - interval '2 months');
SQL
  expect_eq "$(val "SELECT overdue_requests FROM retention.status")" 1 "overdue requests"
}

# A run that changed a large share of a table says how many dead row
# versions it left and whether autovacuum will remove them.
test_dead_row_versions_are_reported() {
  fresh_db deadrows
  q >/dev/null <<'SQL'
CREATE TABLE d_log (id int PRIMARY KEY, at timestamptz NOT NULL) WITH (autovacuum_enabled = false);
INSERT INTO d_log SELECT g, CASE WHEN g <= 3000 THEN now() - interval '2 years' ELSE now() END FROM generate_series(1, 5000) g;
ANALYZE d_log;
SELECT retention.create_policy('d_log', 'd_log', 'at', interval '1 year');
SQL
  local out; out="$(q -c "CALL retention.run()" 2>&1)"
  grep -q 'retention policy "d_log" left 3000 dead row versions (as many as 60% of the table.s 5000 rows last counted): autovacuum is off for the table' <<<"$out" || fail "notice: $out"
  grep -q "left 3000 dead row versions" <<<"$(val "SELECT note FROM retention.runs")" || fail "run log note"
}

# vacuum_after: the run schedules a one-off VACUUM through pg_cron, as the
# role running it; the job's command vacuums the table; the next run sees
# the VACUUM, records when, and removes the job. A role that may not
# VACUUM the table gets a note instead of a job.
test_vacuum_after_through_pg_cron() {
  need_pg_cron
  DB=postgres   # cron.database_name of the test cluster (pgrx.toml)
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
DROP EXTENSION IF EXISTS pg_retention CASCADE;
DROP TABLE IF EXISTS vac_log;
CREATE EXTENSION pg_retention;
CREATE TABLE vac_log (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO vac_log SELECT g, now() - interval '2 years' FROM generate_series(1, 100) g;
INSERT INTO vac_log VALUES (1000, now());
SELECT retention.create_policy('vac_log', 'vac_log', 'at', interval '1 year', vacuum_after => true);
SQL
  q -c "CALL retention.run()" >/dev/null 2>&1
  local job; job="$(val "SELECT vacuum_job FROM retention.runs ORDER BY id DESC LIMIT 1")"
  [[ -n "$job" ]] || fail "no job recorded: $(val "SELECT note FROM retention.runs ORDER BY id DESC LIMIT 1")"
  expect_eq "$(val "SELECT jobname || ' / ' || command || ' / ' || username FROM cron.job WHERE jobid = $job")" \
    "pg_retention:vacuum:vac_log / VACUUM (ANALYZE) public.vac_log / postgres" "job"
  # Its schedule is one minute, one day, one month.
  grep -Eq '^[0-9]+ [0-9]+ [0-9]+ [0-9]+ \*$' <<<"$(val "SELECT schedule FROM cron.job WHERE jobid = $job")" || fail "schedule"
  # Run the job's command as pg_cron would (a statement of its own).
  local command; command="$(val "SELECT command FROM cron.job WHERE jobid = $job")"
  q -c "$command" >/dev/null
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT vacuumed_at = greatest(pg_stat_get_last_vacuum_time('vac_log'::regclass), pg_stat_get_last_autovacuum_time('vac_log'::regclass)) FROM retention.runs WHERE vacuum_job = $job")" t "vacuumed_at recorded"
  expect_eq "$(val "SELECT count(*) FROM cron.job WHERE jobid = $job")" 0 "one-off job removed"
  # An admin that does not own the table: no job, a note.
  q >/dev/null <<'SQL'
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vac_admin') THEN CREATE ROLE vac_admin LOGIN; END IF;
END $$;
GRANT retention_admin TO vac_admin;
GRANT USAGE ON SCHEMA cron TO vac_admin;
INSERT INTO vac_log SELECT g, now() - interval '2 years' FROM generate_series(1, 10) g;
SQL
  psql -X -q -h 127.0.0.1 -p "$IT_PORT" -U vac_admin -d postgres -c "CALL retention.run()" >/dev/null 2>&1
  grep -q "vacuum_after: vac_admin may not VACUUM the table; nothing scheduled" <<<"$(val "SELECT note FROM retention.runs ORDER BY id DESC LIMIT 1")" \
    || fail "note: $(val "SELECT note FROM retention.runs ORDER BY id DESC LIMIT 1")"
  # Without pg_cron in the database, vacuum_after is refused when set.
  q -c "SET client_min_messages = warning" -c "DROP EXTENSION pg_retention CASCADE" -c "DROP TABLE vac_log" \
    -c "REVOKE USAGE ON SCHEMA cron FROM vac_admin" -c "DROP ROLE vac_admin" >/dev/null
  fresh_db vacnocron
  val "CREATE TABLE v (id int PRIMARY KEY, at timestamptz NOT NULL)" >/dev/null
  local out; out="$(q -c "SELECT retention.create_policy('v', 'v', 'at', interval '1 year', vacuum_after => true)" 2>&1 || true)"
  grep -q 'pg_cron keeps its jobs in database "postgres", not in "it_vacnocron"' <<<"$out" || fail "$out"
}

# The erasure certificate says, per table, whether a VACUUM has finished
# since the erasure (until then old row versions may remain on disk).
test_certificates_say_whether_tables_were_vacuumed() {
  fresh_db certvac
  q >/dev/null <<'SQL'
CREATE TABLE c_people (id int PRIMARY KEY, email text);
CREATE TABLE c_orders (id int PRIMARY KEY, person int REFERENCES c_people ON DELETE CASCADE);
INSERT INTO c_people VALUES (1, 'a@example.org'), (2, 'b@example.org');
INSERT INTO c_orders VALUES (10, 1), (11, 1), (20, 2);
SELECT retention.register_subject('person', 'c_people', 'id');
SELECT retention.request_erasure('person', '1');
SQL
  q -c "CALL retention.process_erasures()" >/dev/null
  local req; req="$(val "SELECT id FROM retention.requests")"
  expect_eq "$(val "SELECT string_agg((t ->> 'table') || ' ' || coalesce(t ->> 'vacuumed_at', 'null'), ', ' ORDER BY t ->> 'table') FROM jsonb_array_elements(retention.erasure_certificate($req) -> 'tables') t")" \
    "public.c_orders null, public.c_people null" "before VACUUM"
  grep -q "not vacuumed since: old row versions may remain" <<<"$(val "SELECT retention.erasure_certificate_text($req)")" || fail "text before"
  q -c "VACUUM c_orders" >/dev/null
  expect_eq "$(val "SELECT string_agg((t ->> 'table') || ' ' || (t ->> 'vacuumed_at' IS NOT NULL), ', ' ORDER BY t ->> 'table') FROM jsonb_array_elements(retention.erasure_certificate($req) -> 'tables') t")" \
    "public.c_orders true, public.c_people false" "after VACUUM of one table"
  grep -q "public.c_orders: .*; vacuumed at " <<<"$(val "SELECT retention.erasure_certificate_text($req)")" || fail "text after"
  # The audit record still matches: the VACUUM facts are read, not recorded.
  expect_eq "$(val "SELECT retention.erasure_certificate($req) ->> 'audit_record_matches'")" true "audit record"
}

# The safety cap: a period shortened by mistake makes most of the table due;
# the run changes nothing and the policy stays stopped until its owner
# acknowledges (one run goes ahead) or fixes the policy.
test_safety_cap_stops_a_mass_deletion() {
  fresh_db safetycap
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE c_tickets (id int PRIMARY KEY, closed_at timestamptz NOT NULL);
-- 50 tickets closed three years ago, 950 closed between 10 and 400 days ago.
INSERT INTO c_tickets SELECT g, now() - interval '3 years' FROM generate_series(1, 50) g;
INSERT INTO c_tickets SELECT g, now() - interval '10 days' - (g % 390) * interval '1 day' FROM generate_series(51, 1000) g;
SELECT retention.create_policy('c_tickets', 'c_tickets', 'closed_at', interval '2 years', max_due_fraction => 0.1);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cap_other') THEN CREATE ROLE cap_other LOGIN; END IF;
END $$;
GRANT retention_admin TO cap_other;
SQL
  # 5% due: under the cap (the table was never analysed: counted exactly).
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT status || ' ' || rows_purged FROM retention.runs ORDER BY id DESC LIMIT 1")" "succeeded 50" "under the cap"
  # The typo: 2 days instead of 2 years.
  val "SELECT retention.alter_policy('c_tickets', purge_after => interval '2 days')" >/dev/null
  local out; out="$(q -c "CALL retention.run()" 2>&1)"
  grep -q 'WARNING:  retention policy "c_tickets" stopped by max_due_fraction: 950 of 950 rows (100.0%) are due for the purge stage, more than 10.0% allowed' <<<"$out" \
    || fail "warning: $out"
  expect_eq "$(val "SELECT count(*) FROM c_tickets")" 950 "nothing deleted"
  expect_eq "$(val "SELECT status FROM retention.runs ORDER BY id DESC LIMIT 1")" skipped "run logged"
  expect_eq "$(val "SELECT state FROM retention.status")" "stopped by max_due_fraction" "status"
  expect_eq "$(val "SELECT count(*) FROM retention.audit_log WHERE event = 'policy stopped by its cap' AND details ->> 'due_rows' = '950'")" 1 "audit"
  # Still stopped at the next run; another admin may not acknowledge.
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT count(*) FROM c_tickets")" 950 "still nothing deleted"
  out="$(psql -X -q -h 127.0.0.1 -p "$IT_PORT" -U cap_other -d "$DB" -c "SELECT retention.acknowledge('c_tickets')" 2>&1 || true)"
  grep -q 'ERROR:  must be a member of role "postgres" to change policy "c_tickets"' <<<"$out" || fail "other admin: $out"
  # Fixing the policy is enough: the share is under the cap again.
  val "SELECT retention.alter_policy('c_tickets', purge_after => interval '380 days')" >/dev/null
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT state FROM retention.status")" active "fixed"
  local left; left="$(val "SELECT count(*) FROM c_tickets")"
  (( left < 950 && left > 850 )) || fail "the fixed period purges its few rows, $left left"
  # Intended after all: the owner acknowledges, one run goes ahead.
  val "SELECT retention.alter_policy('c_tickets', purge_after => interval '2 days')" >/dev/null
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT count(*) FROM c_tickets")" "$left" "stopped again"
  expect_eq "$(val "SELECT retention.acknowledge('c_tickets')")" t "acknowledged"
  expect_eq "$(val "SELECT count(*) FROM retention.audit_log WHERE event = 'policy cap acknowledged'")" 1 "acknowledgement audited"
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT count(*) FROM c_tickets")" 0 "went ahead"
  grep -q "going ahead as acknowledged" <<<"$(val "SELECT note FROM retention.runs ORDER BY id DESC LIMIT 1")" || fail "note"
  expect_eq "$(val "SELECT state FROM retention.status")" active "active again"
  expect_eq "$(q -c "SELECT retention.acknowledge('c_tickets')" 2>&1 | tr -d '\n')" \
    'NOTICE:  retention policy "c_tickets" is not stopped by max_due_fraction; nothing to acknowledgef' "nothing to acknowledge"
  # Checked arguments; the cap can be removed.
  out="$(q -c "SELECT retention.alter_policy('c_tickets', max_due_fraction => 1.5)" 2>&1 || true)"
  grep -q "max_due_fraction must lie above 0 and at most 1" <<<"$out" || fail "$out"
  val "SELECT retention.alter_policy('c_tickets', no_max_due_fraction => true)" >/dev/null
  expect_eq "$(val "SELECT max_due_fraction IS NULL FROM retention.policies")" t "cap removed"
  q -c "DROP OWNED BY cap_other" -c "DROP ROLE cap_other" >/dev/null
}

# retention.max_wal_rate paces a run by the WAL its batches write: the run
# pauses after each batch (counted as throttled) so that its WAL, spread
# over batches and pauses, stays under the rate; without it, no pause.
test_wal_rate_paces_the_run() {
  fresh_db walrate
  q >/dev/null <<'SQL'
CREATE TABLE w_paced (id int PRIMARY KEY, at timestamptz NOT NULL, payload text)
  WITH (autovacuum_enabled = off);
INSERT INTO w_paced SELECT g, now() - interval '2 years', repeat('x', 400) FROM generate_series(1, 30000) g;
CREATE TABLE w_free (LIKE w_paced INCLUDING ALL) WITH (autovacuum_enabled = off);
INSERT INTO w_free SELECT * FROM w_paced;
SELECT retention.create_policy('w_paced', 'w_paced', 'at', interval '1 year', batch_size => 3000);
SELECT retention.create_policy('w_free', 'w_free', 'at', interval '1 year', batch_size => 3000);
SQL
  # The WAL is measured for the whole server, so nothing else may write
  # much meanwhile: autovacuum is off for both tables, and they are frozen
  # beforehand (else setting hint bits and freezing would add WAL of their
  # own). After the checkpoint every page the run touches is written to WAL
  # whole: about 13 MB for the 1,700 pages. Batches of at most 3,000 rows
  # keep the last batch, after which the run does not pause, small.
  q -c "VACUUM (FREEZE) w_paced" -c "VACUUM (FREEZE) w_free" >/dev/null
  local l0 l1 l2 l3
  q -c "CHECKPOINT" >/dev/null
  l0="$(val "SELECT pg_current_wal_insert_lsn()")"
  q -c "SET retention.max_wal_rate = 4" -c "CALL retention.run('w_paced')" >/dev/null 2>&1
  l1="$(val "SELECT pg_current_wal_insert_lsn()")"
  q -c "CHECKPOINT" >/dev/null
  l2="$(val "SELECT pg_current_wal_insert_lsn()")"
  q -c "CALL retention.run('w_free')" >/dev/null 2>&1
  l3="$(val "SELECT pg_current_wal_insert_lsn()")"
  expect_eq "$(val "SELECT string_agg(policy || ' ' || rows_purged, ', ' ORDER BY policy) FROM retention.runs")" \
    "w_free 30000, w_paced 30000" "both purged"
  # The pauses add up to at least the WAL at 4 MB/s minus the time the
  # batches themselves took (all but the last batch pause). Other work of
  # the server (autovacuum of other tests' databases, after the checkpoint,
  # writes whole pages too) may add WAL while the run pauses: the run's own
  # WAL is taken as the lesser of the two identical runs' measures.
  local wal_mb throttled duration
  wal_mb="$(val "SELECT round(least(pg_wal_lsn_diff('$l1', '$l0'), pg_wal_lsn_diff('$l3', '$l2')) / 1048576.0, 1)")"
  throttled="$(val "SELECT throttled_ms FROM retention.runs WHERE policy = 'w_paced'")"
  duration="$(val "SELECT round(extract(epoch FROM duration) * 1000) FROM retention.runs WHERE policy = 'w_paced'")"
  awk -v w="$wal_mb" 'BEGIN { exit !(w > 8) }' || fail "the run wrote only $wal_mb MB of WAL"
  awk -v t="$throttled" -v d="$duration" -v w="$wal_mb" 'BEGIN { exit !(t > 0 && d >= w / 4 * 1000 * 0.6) }' \
    || fail "paced run: $wal_mb MB of WAL, $throttled ms throttled, $duration ms in all"
  expect_eq "$(val "SELECT throttled_ms FROM retention.runs WHERE policy = 'w_free'")" 0.0 "no limit, no pause"
}
