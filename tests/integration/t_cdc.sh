# Change-data capture: every batch and every erasure writes a logical
# decoding message in the same transaction as its changes, naming the
# action and the counts but no row data; retention.change_messages = off
# stops them. Read through a real logical slot (test_decoding).
test_change_messages_travel_with_their_changes() {
  fresh_db cdc
  [[ "$(val "SHOW wal_level")" == logical ]] || skip "the test cluster does not run with wal_level = logical"
  local slot="it_cdc_slot"
  q -c "SELECT pg_drop_replication_slot('$slot') FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null
  trap "psql -X -q -h 127.0.0.1 -p '$IT_PORT' -U postgres -d '$DB' -c \"SELECT pg_drop_replication_slot('$slot')\" >/dev/null 2>&1 || true" EXIT
  q >/dev/null <<'SQL'
CREATE TABLE public.events (id int PRIMARY KEY, at timestamptz NOT NULL, email text);
INSERT INTO public.events SELECT g, now() - interval '3 years', 'p' || g || '@example.org' FROM generate_series(1, 25) g;
INSERT INTO public.events SELECT g, now(), 'q' || g || '@example.org' FROM generate_series(26, 30) g;
SELECT retention.create_policy('ev', 'public.events', 'at', interval '1 year', batch_size => 10);
CREATE TABLE public.people (id int PRIMARY KEY, email text);
INSERT INTO public.people VALUES (1, 'one@example.org'), (2, 'two@example.org');
SELECT retention.register_subject('person', 'public.people', 'id');
SQL
  val "SELECT lsn IS NOT NULL FROM pg_create_logical_replication_slot('$slot', 'test_decoding')" >/dev/null
  q -c "CALL retention.run('ev')" >/dev/null 2>&1
  val "SELECT retention.request_erasure('person', '2')" >/dev/null
  q -c "CALL retention.process_erasures()" >/dev/null 2>&1
  # Switched off: the next purge writes no message.
  q -c "UPDATE public.events SET at = now() - interval '3 years' WHERE id = 26" >/dev/null
  q -c "SET retention.change_messages = off" -c "CALL retention.run('ev')" >/dev/null 2>&1
  q -c "SELECT data FROM pg_logical_slot_get_changes('$slot', NULL, NULL, 'include-xids', '1', 'skip-empty-xacts', '1')" \
    >"$IT_TMP/cdc.txt"
  # One line per transaction: its deletes per table and its messages.
  awk '
    /^BEGIN / { ev = 0; pe = 0; msgs = ""; next }
    /^table public\.events: DELETE/ { ev++; next }
    /^table public\.people: DELETE/ { pe++; next }
    /^message: transactional: 1 prefix: pg_retention,/ { sub(/.*content:/, ""); msgs = msgs $0 " "; next }
    /^COMMIT / { if (ev || pe || msgs != "") print ev " " pe " " msgs }
  ' "$IT_TMP/cdc.txt" >"$IT_TMP/xacts.txt"
  # Three purge batches (10, 10 and 5 rows), each with its own message.
  expect_eq "$(grep -c '"action":"purge"' "$IT_TMP/xacts.txt")" "3" "transactions with a purge message"
  while read -r ev pe msg; do
    if [[ "$msg" == *'"action":"purge"'* ]]; then
      expect_eq "$(sed -E 's/.*"rows":([0-9]+).*/\1/' <<<"$msg")" "$ev" "rows of a purge message and deletes of its transaction"
    fi
  done <"$IT_TMP/xacts.txt"
  # The erasure's message is in the transaction that deleted the subject.
  expect_eq "$(awk '$2 == 1 && /"action":"erasure"/' "$IT_TMP/xacts.txt" | wc -l)" "1" "the erasure's transaction"
  grep -q '"subject_blind_index":"[0-9a-f]\{64\}"' "$IT_TMP/xacts.txt" || fail "the erasure message names no blind index"
  # Switched off: the last purge's delete has no message.
  expect_eq "$(awk '$1 == 1 && NF == 2' "$IT_TMP/xacts.txt" | wc -l)" "1" "the purge with change_messages off"
  # No row data in any message.
  if grep '^message' "$IT_TMP/cdc.txt" | grep -q 'example\.org'; then fail "a message carries row data"; fi
}
