# Neither the pseudonym key, the run's hash_random key nor the personal data
# an anonymise stage masks shows up in the run log, the extension's views,
# client messages or the server log, even with every statement logged and
# auto_explain logging the run's own statements with their parameters
# (PostgreSQL 16 and later log parameters there).
test_key_and_data_stay_out_of_logs_and_views() {
  fresh_db secrets
  local log_start; log_start=$(( $(stat -c %s "$IT_SERVER_LOG") + 1 ))
  q -c "ALTER DATABASE $DB SET log_statement = 'all'" -c "ALTER DATABASE $DB SET log_min_messages = 'info'" >/dev/null
  local out; out="$(mktemp)"
  q >"$out" 2>&1 <<'SQL'
SET client_min_messages = debug1;
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, nick text, seen timestamptz NOT NULL, anonymised_at timestamptz);
INSERT INTO people SELECT g, 'person' || g || '@secret-domain.example', 'nick-secret-' || g, now() - interval '3 years' FROM generate_series(1, 50) g;
SELECT retention.create_policy('people', 'people', 'seen', NULL);
SELECT retention.add_stage('people', interval '1 year', 'anonymise', column_name => 'anonymised_at');
SELECT retention.set_mask('people', 'email', 'pseudonym');
SELECT retention.set_mask('people', 'nick', 'hash_random');
SELECT * FROM retention.preview();
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
CALL retention.run();
RESET auto_explain.log_min_duration;
SELECT * FROM retention.runs;
SELECT * FROM retention.policies;
SELECT * FROM retention.masks;
SELECT * FROM retention.mask_strategies;
SQL
  local key; key="$(val "SELECT encode(key, 'hex') FROM retention.secrets WHERE name = 'pseudonym'")"
  [[ ${#key} -eq 64 ]] || fail "no pseudonym key was created"
  expect_eq "$(val "SELECT count(*) FROM people WHERE anonymised_at IS NOT NULL AND email !~ '^[0-9a-f]{64}$'")" 0 "emails pseudonymised"
  # The pseudonym is the keyed HMAC of the address (checked with the key
  # read by the superuser), so joins keep working.
  local expected; expected="$(val "SELECT retention.mask_hmac('person7@secret-domain.example', (SELECT key FROM retention.secrets WHERE name = 'pseudonym'))")"
  expect_eq "$(val "SELECT email FROM people WHERE id = 7")" "$expected" "pseudonym of row 7"
  local log; log="$(mktemp)"
  tail -c "+$log_start" "$IT_SERVER_LOG" >"$log"
  grep -q "CALL retention.run()" "$log" || fail "the server log was not captured"
  grep -q "retention._stage_hash_random(" "$log" || fail "auto_explain did not log the anonymise statement"
  for place in "$out" "$log"; do
    if grep -q "$key" "$place"; then fail "the pseudonym key appears in $place"; fi
    # No key of 32 bytes travels as a bytea parameter (or literal).
    if grep -Eq '\\x[0-9a-f]{64}' "$place"; then fail "a key appears in $place: $(grep -Eo '.{40}\\x[0-9a-f]{8}' "$place" | head -2)"; fi
  done
  expect_eq "$(val "SELECT count(*) FROM people WHERE anonymised_at IS NOT NULL AND nick !~ '^[0-9a-f]{64}$'")" 0 "nicks hashed"
  expect_eq "$(val "SELECT count(DISTINCT nick) FROM people")" 50 "hashed nicks stay distinct"
  # (Searched without writing the key into a logged statement.)
  local k="(SELECT encode(key, 'hex') FROM retention.secrets WHERE name = 'pseudonym')"
  expect_eq "$(val "SELECT count(*) FROM retention.run_log l WHERE l::text ~ 'secret' OR strpos(l::text, $k) > 0")" 0 "run log"
  expect_eq "$(val "SELECT count(*) FROM retention.masks m WHERE m::text ~ 'secret' OR strpos(m::text, $k) > 0")" 0 "masks"
  expect_eq "$(val "SELECT count(*) FROM retention.runs r WHERE r::text ~ 'secret' OR strpos(r::text, $k) > 0")" 0 "runs view"
  expect_eq "$(val "SELECT count(*) FROM retention.policies p WHERE strpos(p::text, $k) > 0")" 0 "policies"
  # Apart from the statements this test sent (logged by log_statement), no
  # log line and no client message carries the masked data.
  # (The row data all contains "secret-"; the table retention.secrets does not.)
  if grep -v "statement: " "$log" | grep -q "secret-"; then
    fail "row data in the server log: $(grep -v 'statement: ' "$log" | grep secret- | head -2)"
  fi
  if grep -v "^ *people *|" "$out" | grep -E "NOTICE|WARNING|DEBUG|INFO" | grep -q "secret-"; then
    fail "row data in a client message"
  fi
}
