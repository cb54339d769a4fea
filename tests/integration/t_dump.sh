# Policies (and their history) survive pg_dump and pg_restore.
test_policies_survive_dump_and_restore() {
  fresh_db dumpsrc
  q >/dev/null <<'SQL'
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int PRIMARY KEY, placed_at timestamptz NOT NULL, state text);
INSERT INTO shop.orders SELECT g, now() - g * interval '100 days', 'done' FROM generate_series(1, 10) g;
SELECT retention.create_policy('orders_1y', 'shop.orders', 'placed_at', interval '1 year',
                               filter => $$state = 'done'$$, purpose => 'bookkeeping');
SELECT retention.create_policy('orders_5y', 'shop.orders', 'placed_at', interval '5 years');
SELECT retention.pause_policy('orders_5y');
CALL retention.run();
SQL
  local before; before="$(val "SELECT string_agg(concat_ws('|', id, name, target, clock, filter, purge_after, paused, purpose, owner), E'\n' ORDER BY id) FROM retention.policies")"
  local runs_before; runs_before="$(val "SELECT count(*) FROM retention.run_log")"
  local dump; dump="$(mktemp -d)/db.dump"
  pg_dump -Fc -h 127.0.0.1 -p "$IT_PORT" -U postgres -d "$DB" -f "$dump"
  psql -X -q -h 127.0.0.1 -p "$IT_PORT" -U postgres -d postgres \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS it_dumpdst WITH (FORCE)" -c "CREATE DATABASE it_dumpdst" >/dev/null
  pg_restore -h 127.0.0.1 -p "$IT_PORT" -U postgres -d it_dumpdst --exit-on-error "$dump"
  DB=it_dumpdst
  local after; after="$(val "SELECT string_agg(concat_ws('|', id, name, target, clock, filter, purge_after, paused, purpose, owner), E'\n' ORDER BY id) FROM retention.policies")"
  expect_eq "$after" "$before" "policies after restore"
  expect_eq "$(val "SELECT count(*) FROM retention.run_log")" "$runs_before" "run history after restore"
  # The restored policies work, and new ids do not collide with restored ones.
  q -c "INSERT INTO shop.orders VALUES (100, now() - interval '2 years', 'done')"
  q -c "CALL retention.run()"
  expect_eq "$(val "SELECT count(*) FROM shop.orders WHERE id = 100")" 0 "restored policy purges"
  q -c "SELECT retention.create_policy('new_one', 'shop.orders', 'placed_at', interval '9 years')" >/dev/null
  expect_eq "$(val "SELECT count(DISTINCT id) FROM retention.policies")" 3 "ids after restore"
}
