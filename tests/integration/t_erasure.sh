# Erasure across backups: a dump taken before an erasure brings the person
# back when restored; re-applying the erasure ledger (which holds no personal
# data) erases them again.
test_restore_then_reapply_erasures() {
  fresh_db erasesrc
  q >/dev/null <<'SQL'
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric);
CREATE TABLE newsletter (address text PRIMARY KEY);
INSERT INTO customers VALUES (1, 'dora@example.com'), (2, 'emil@example.com');
INSERT INTO orders VALUES (1, 1, 10), (2, 1, 20), (3, 2, 30);
INSERT INTO newsletter VALUES ('dora@example.com'), ('emil@example.com');
SELECT retention.register_subject('customer', 'customers', 'id');
SELECT retention.add_subject_table('customer', 'newsletter', 'address', matches => 'email');
SQL
  local dump; dump="$(mktemp -d)/before.dump"
  pg_dump -Fc -h 127.0.0.1 -p "$IT_PORT" -U postgres -d "$DB" -f "$dump"
  q -c "SELECT retention.request_erasure('customer', '1', 'letter of 2026-11-20')" >/dev/null
  q -c "CALL retention.process_erasures()"
  expect_eq "$(val "SELECT count(*) FROM customers c WHERE c::text ~ 'dora'")" 0 "erased in the source"
  local ledger; ledger="$(val "SELECT retention.erasure_ledger()")"
  grep -qE "dora|\"1\"" <<<"$ledger" && fail "the ledger holds personal data: $ledger"
  # Restore the old backup into a new database: Dora is back.
  psql -X -q -h 127.0.0.1 -p "$IT_PORT" -U postgres -d postgres \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS it_erasedst WITH (FORCE)" -c "CREATE DATABASE it_erasedst" >/dev/null
  pg_restore -h 127.0.0.1 -p "$IT_PORT" -U postgres -d it_erasedst --exit-on-error "$dump"
  DB=it_erasedst
  expect_eq "$(val "SELECT count(*) FROM customers WHERE email = 'dora@example.com'")" 1 "back from the backup"
  # Re-apply the ledger kept from the source.
  local out; out="$(val "SELECT string_agg(status, ',') FROM retention.reapply_erasures(ledger => \$\$$ledger\$\$::jsonb)")"
  expect_eq "$out" "completed" "reapplied"
  expect_eq "$(val "SELECT count(*) FROM customers c WHERE c::text ~ 'dora'")" 0 "customers"
  expect_eq "$(val "SELECT count(*) FROM orders WHERE customer_id = 1")" 0 "orders"
  expect_eq "$(val "SELECT count(*) FROM newsletter WHERE address ~ 'dora'")" 0 "newsletter"
  expect_eq "$(val "SELECT count(*) FROM customers")" 1 "emil stays"
  expect_eq "$(val "SELECT ok FROM retention.verify_audit()")" t "audit chain in the restored database"
  # Re-applying again finds nothing left to do.
  expect_eq "$(val "SELECT string_agg(status, ',') FROM retention.reapply_erasures(ledger => \$\$$ledger\$\$::jsonb)")" "not present" "idempotent"
}

# An application files requests through the trigger function, once per
# pending subject, without being a retention admin: it needs the right to
# erase the kind's data itself (DELETE on the root table), nothing more.
test_request_erasure_trigger() {
  fresh_db erasetrigger
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE accounts (id int PRIMARY KEY, email text, delete_me boolean NOT NULL DEFAULT false);
INSERT INTO accounts VALUES (1, 'fritz@example.com', false), (2, 'gina@example.com', false);
SELECT retention.register_subject('account', 'accounts', 'id');
CREATE TRIGGER request_erasure AFTER UPDATE OF delete_me ON accounts
    FOR EACH ROW WHEN (NEW.delete_me) EXECUTE FUNCTION retention.request_erasure_trigger('account', 'id');
DROP ROLE IF EXISTS it_app;
CREATE ROLE it_app NOLOGIN;
GRANT SELECT, UPDATE ON accounts TO it_app;
SQL
  # Without DELETE on the root table the trigger refuses (and the update
  # with it).
  local out; out="$(q -c "SET ROLE it_app" -c "UPDATE accounts SET delete_me = true WHERE id = 1" 2>&1 || true)"
  [[ "$out" == *"permission denied to file erasure requests"* ]] || fail "not refused: $out"
  expect_eq "$(val "SELECT count(*) FROM retention.requests")" 0 "nothing filed"
  q -c "GRANT DELETE ON accounts TO it_app" >/dev/null
  q -c "SET ROLE it_app" -c "UPDATE accounts SET delete_me = true WHERE id = 1" -c "UPDATE accounts SET delete_me = true WHERE id = 1" >/dev/null
  expect_eq "$(val "SELECT count(*) || ' ' || min(status) || ' ' || min(reference) FROM retention.requests")" \
    "1 received filed by a trigger on accounts" "one request"
  q -c "CALL retention.run()"
  expect_eq "$(val "SELECT string_agg(id::text, ',') FROM accounts")" 2 "fritz erased"
  q -c "DROP OWNED BY it_app" -c "DROP ROLE it_app" >/dev/null
}

# Overlapping processing (the nightly run and a manual call) erases each
# request once: the second session waits for the first, finds the request
# done and leaves its certificate alone.
test_overlapping_processing_erases_once() {
  fresh_db eraseoverlap
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers);
INSERT INTO customers VALUES (1, 'Fritz'), (2, 'Gina');
INSERT INTO orders VALUES (1, 1), (2, 1), (3, 2);
SELECT retention.register_subject('customer', 'customers', 'id');
SELECT retention.request_erasure('customer', '1');
SQL
  open_session first
  say first "BEGIN; SELECT retention._erase_subject(1);"
  wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"
  q -c "CALL retention.process_erasures()" >/dev/null 2>&1 &
  local second=$!
  wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
  say first "COMMIT;"
  close_session first
  wait "$second"
  expect_eq "$(val "SELECT status FROM retention.requests WHERE id = 1")" "completed" "completed once"
  expect_eq "$(val "SELECT string_agg(t ->> 'purged', ',' ORDER BY t ->> 'table') FROM jsonb_array_elements(retention.erasure_certificate(1) -> 'tables') t")" "1,2" "certificate keeps the first counts"
  expect_eq "$(val "SELECT count(*) FROM retention.audit_log WHERE event = 'erasure completed'")" 1 "one audit entry"
}
