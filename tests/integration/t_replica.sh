# Replicas and replication slots: a run waits between batches while a real
# streaming standby (pg_basebackup, its replay paused) lags by more than
# retention.max_replica_lag, counts the wait in retention.runs, and goes on
# once the standby has caught up. An unconsumed logical slot holding back
# more than retention.max_slot_lag makes it wait the same way.
replica_setup() {
  q >/dev/null <<'SQL'
CREATE TABLE public.log_lines (id int PRIMARY KEY, at timestamptz NOT NULL, line text);
INSERT INTO public.log_lines SELECT g, now() - interval '3 years', repeat('x', 100) FROM generate_series(1, 300) g;
SELECT retention.create_policy('lines', 'public.log_lines', 'at', interval '1 year', batch_size => 100);
CREATE TABLE public.filler (id int, pad text);
SQL
}

# Makes $1 MB of WAL on the primary.
make_wal() {
  q -c "INSERT INTO public.filler SELECT g, repeat('w', 1000) FROM generate_series(1, $(( $1 * 1000 ))) g" >/dev/null
}

test_runs_wait_for_a_lagging_standby() {
  fresh_db replica
  local standby port=$((IT_PORT + 50))
  standby="$(mktemp -d /tmp/pg_retention-standby-XXXX)"
  chown postgres: "$standby"; chmod 700 "$standby"
  trap "runuser -u postgres -- '$PG_BIN/pg_ctl' -D '$standby' -m immediate stop >/dev/null 2>&1 || true; rm -rf '$standby'" EXIT
  runuser -u postgres -- "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$IT_PORT" -U postgres -D "$standby" -R -X stream -c fast >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$standby" -l "$standby/log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c hot_standby=on -c shared_preload_libraries=''" start >/dev/null
  wait_for "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'" 30
  replica_setup
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "SELECT pg_wal_replay_pause()" >/dev/null
  make_wal 3
  wait_for "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 2 * 1024 * 1024 FROM pg_stat_replication" 30
  # A run in its own session, with a 1 MB limit: it waits.
  open_session runner
  say runner "SET retention.max_replica_lag = '1MB';"
  say runner "CALL retention.run('lines');"
  wait_for "SELECT coalesce((SELECT throttled_ms >= 2000 FROM retention.runs WHERE policy = 'lines' ORDER BY id DESC LIMIT 1), false)" 30
  expect_eq "$(val "SELECT status || ' ' || rows_purged FROM retention.runs WHERE policy = 'lines' ORDER BY id DESC LIMIT 1")" \
    "running 0" "the run while the standby lags"
  expect_eq "$(val "SELECT count(*) FROM public.log_lines")" "300" "rows while the standby lags"
  # The standby catches up: the run goes on and finishes.
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "SELECT pg_wal_replay_resume()" >/dev/null
  wait_for "SELECT status = 'succeeded' FROM retention.runs WHERE policy = 'lines' ORDER BY id DESC LIMIT 1" 60
  close_session runner
  expect_eq "$(val "SELECT rows_purged || ' ' || (throttled_ms > 0) FROM retention.runs WHERE policy = 'lines' ORDER BY id DESC LIMIT 1")" \
    "300 true" "the run after the standby caught up"
  grep -q "waits: a standby has" "${SESSION_OUT[runner]}" || fail "no NOTICE said why the run waited"
}

test_runs_wait_for_an_unconsumed_slot() {
  fresh_db slotlag
  [[ "$(val "SHOW wal_level")" == logical ]] || skip "the test cluster does not run with wal_level = logical"
  local slot="it_lag_slot"
  q -c "SELECT pg_drop_replication_slot('$slot') FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null
  trap "psql -X -q -h 127.0.0.1 -p '$IT_PORT' -U postgres -d '$DB' -c \"SELECT pg_drop_replication_slot('$slot')\" >/dev/null 2>&1 || true" EXIT
  replica_setup
  val "SELECT lsn IS NOT NULL FROM pg_create_logical_replication_slot('$slot', 'test_decoding')" >/dev/null
  make_wal 3
  # The slot holds back about 3 MB: with a 1 MB limit and a 3 s run limit,
  # the run waits and then stops, deleting nothing.
  q -c "SELECT retention.alter_policy('lines', max_run_time => '3 seconds')" >/dev/null
  q -c "SET retention.max_slot_lag = '1MB'" -c "SET retention.max_replica_lag = 0" -c "CALL retention.run('lines')" >/dev/null 2>&1
  expect_eq "$(val "SELECT status || ' ' || rows_purged || ' ' || (throttled_ms >= 2000) FROM retention.runs WHERE policy = 'lines' ORDER BY id DESC LIMIT 1")" \
    "succeeded 0 true" "a run held back by the slot"
  # Without the slot, nothing is held back and the next run purges.
  q -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null
  q -c "SET retention.max_slot_lag = '1MB'" -c "CALL retention.run('lines')" >/dev/null 2>&1
  expect_eq "$(val "SELECT rows_purged FROM retention.runs WHERE policy = 'lines' ORDER BY id DESC LIMIT 1")" "300" "the run after the slot was read"
}
