# Hostile session settings change nothing: the same policies, holds and
# erasure requests, declared and run once under defaults and once under
# settings that change what SQL text means (standard_conforming_strings,
# TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output,
# serializable transactions, a search_path with planted objects first), give
# the same previews, the same surviving rows, masked values, run counts and
# erasure outcomes.

# Settings of every hostile session. The time zone differs between declaring
# (UTC+14) and running (UTC-10, with daylight saving time); previews are also
# taken at UTC-12, so that at any time of day some hostile session is on
# another date than UTC.
HS_SETTINGS="-c standard_conforming_strings=off -c DateStyle=SQL,DMY -c IntervalStyle=sql_standard \
-c extra_float_digits=-15 -c bytea_output=escape -c default_transaction_isolation=serializable \
-c transform_null_equals=on -c search_path=evil,pg_catalog,public"
HS_DECLARE_TZ="Pacific/Kiritimati"
HS_RUN_TZ="America/Adak"
HS_OTHER_TZ="Etc/GMT+12"

hs_on() { local db="$1"; shift; DB="$db" q "$@"; }
hs_val() { DB="$1" val "$2"; }
hs_in_zone() { local zone="$1" db="$2"; shift 2; PGOPTIONS="$HS_SETTINGS -c TimeZone=$zone" DB="$db" q "$@"; }
hs_declaring() { hs_in_zone "$HS_DECLARE_TZ" "$@"; }
hs_running() { hs_in_zone "$HS_RUN_TZ" "$@"; }

# Replaces every occurrence of $2 in $1 by $3, literally (backslashes kept).
hs_subst() {
  local s="$1" from="$2" to="$3" out=""
  while [[ "$s" == *"$from"* ]]; do
    out+="${s%%"$from"*}$to"
    s="${s#*"$from"}"
  done
  printf '%s' "$out$s"
}

# Non-fatal checks: every difference is reported, the test fails at the end.
HS_FAILED=0
hs_check() { # what actual expected
  if [[ "$2" != "$3" ]]; then
    echo "    differs: $1" >&2
    diff -u --label expected --label actual <(printf '%s\n' "$3") <(printf '%s\n' "$2") | sed 's/^/      /' >&2 || true
    HS_FAILED=$((HS_FAILED + 1))
  fi
  return 0
}
# The same query under default settings in both databases must agree.
hs_same() { # what sql
  local ref bad
  ref="$(hs_val "$HS_REF" "$2")" || ref="(query failed)"
  bad="$(hs_val "$HS_BAD" "$2")" || bad="(query failed)"
  hs_check "$1 (hostile vs reference)" "$bad" "$ref"
  if [[ "$ref" == "(query failed)" ]]; then hs_check "$1: the query works" "failed" "works"; fi
}

# The fixture, identical in both databases and built under default settings.
# Every time is relative to one anchor (psql variable 'anchor', UTC), so both
# databases hold exactly the same rows. Clocks stay hours (timestamps), half
# an hour (hourly partition rows) or a day (dates) away from the cutoffs.
hs_fixture() {
  cat <<'SQL'
SET client_min_messages = warning;

-- Objects planted for sessions whose search_path puts schema evil first.
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT timestamptz '2999-12-31 00:00+00' $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT timestamptz '2999-12-31 00:00+00' $$;
CREATE FUNCTION evil.statement_timestamp() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT timestamptz '2999-12-31 00:00+00' $$;
CREATE FUNCTION evil.transaction_timestamp() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT timestamptz '2999-12-31 00:00+00' $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'evil'::text $$;
CREATE FUNCTION evil.length(text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT 0 $$;
CREATE FUNCTION evil.array_length(anyarray, integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT 0 $$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'off'::text $$;
CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'off'::text $$;
CREATE FUNCTION evil.always(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
CREATE FUNCTION evil.always(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.always);
CREATE FUNCTION evil.always(timestamp, timestamp) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE OPERATOR evil.< (LEFTARG = timestamp, RIGHTARG = timestamp, FUNCTION = evil.always);
CREATE FUNCTION evil.always(date, date) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE OPERATOR evil.< (LEFTARG = date, RIGHTARG = date, FUNCTION = evil.always);
CREATE AGGREGATE evil.count(*) (SFUNC = pg_catalog.int8inc, STYPE = int8, INITCOND = '1000');
CREATE TABLE evil.pg_class AS SELECT * FROM pg_catalog.pg_class WHERE false;
CREATE TABLE evil.pg_namespace AS SELECT * FROM pg_catalog.pg_namespace WHERE false;
CREATE TABLE evil.pg_attribute AS
    SELECT attrelid, attname, atttypid, atttypmod, attnum, attnotnull, attisdropped FROM pg_catalog.pg_attribute WHERE false;

-- A timestamptz clock; the filter combines a string literal with a backslash
-- and a quote, an interval comparison, a numeric, a float and a timestamptz.
CREATE TABLE tickets (
    id        int PRIMARY KEY,
    note      text,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz NOT NULL,
    amount    numeric NOT NULL,
    score     double precision NOT NULL
);
INSERT INTO tickets (id, note, opened_at, closed_at, amount, score)
SELECT id, note, closed - open_for, closed, amount, score
  FROM (VALUES
    (1,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 3.0::float8),
    (2,  'a\'' OR true',   :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 3.0),  -- a\' OR true
    (3,  'a\\'' OR true',  :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 3.0),  -- a\\' OR true
    (4,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '24 hours', 2.0, 3.0),
    (5,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '27 hours', 2.0, 3.0),
    (6,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '30 hours', 1.5, 3.0),
    (7,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '30 hours', 1.6, 3.0),
    (8,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 1.7),
    (9,  'plain',          :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 1.5),
    (10, 'plain',          timestamptz '2000-02-22 00:00+00',            interval '2 days',   2.0, 3.0),
    (11, 'plain',          timestamptz '2000-01-22 00:00+00',            interval '2 days',   2.0, 3.0),
    (12, 'plain',          :'anchor'::timestamptz - interval '10 days',  interval '30 hours', 2.0, 3.0),
    (13, 'hold\x',         :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 3.0),  -- hold\x
    (14, 'hold\\x',        :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 3.0),  -- hold\\x
    (15, NULL,             :'anchor'::timestamptz - interval '100 days', interval '30 hours', 2.0, 3.0)
  ) v(id, note, closed, open_for, amount, score);

-- A timestamp clock holding UTC wall-clock time: rows 3 hours on either side
-- of the 30-day cutoff.
CREATE TABLE visits (id int PRIMARY KEY, seen_at timestamp NOT NULL, page text NOT NULL);
INSERT INTO visits
SELECT id, w + off, 'page ' || id
  FROM (SELECT (:'anchor'::timestamptz AT TIME ZONE 'UTC') - interval '30 days' AS w) c,
       (VALUES (1, interval '-3 hours'), (2, interval '3 hours'), (3, interval '-2 days'), (4, interval '2 days')) v(id, off)
UNION ALL VALUES (5, timestamp '2000-02-20 00:00', 'page 5'), (6, timestamp '2000-01-20 00:00', 'page 6');

-- A date clock: the days around the 30-day cutoff's (UTC) date.
CREATE TABLE subscriptions (id int PRIMARY KEY, ended_on date NOT NULL, plan text NOT NULL);
INSERT INTO subscriptions
SELECT k + 3, d + k, 'plan ' || (k + 3)
  FROM (SELECT ((:'anchor'::timestamptz AT TIME ZONE 'UTC') - interval '30 days')::date AS d) c, generate_series(-2, 2) k
UNION ALL VALUES (6, date '2000-02-20', 'plan 6'), (7, date '2000-01-20', 'plan 7');

-- Range-partitioned by a timestamp, one partition per day around the
-- 10-day cutoff; one row an hour, each half an hour off the cutoff.
CREATE TABLE measurements (id int NOT NULL, taken_at timestamp NOT NULL, value int NOT NULL, PRIMARY KEY (id, taken_at))
    PARTITION BY RANGE (taken_at);
SELECT format('CREATE TABLE %I PARTITION OF measurements FOR VALUES FROM (%L) TO (%L)',
              'measurements_' || (k + 3), d + k, d + k + 1)
  FROM (SELECT ((:'anchor'::timestamptz AT TIME ZONE 'UTC') - interval '10 days')::date AS d) c, generate_series(-3, 2) k
\gexec
CREATE TABLE measurements_other PARTITION OF measurements DEFAULT;
INSERT INTO measurements
SELECT 1000 + g, t, g
  FROM (SELECT (:'anchor'::timestamptz AT TIME ZONE 'UTC') - interval '10 days' AS c) c,
       generate_series(-100, 100) g, LATERAL (SELECT c.c + (g - 0.5) * interval '1 hour' AS t) r
 WHERE t >= c.c::date - 3 AND t < c.c::date + 3;
INSERT INTO measurements VALUES (1, timestamp '2000-01-01 00:00', 0),
                                (2, (:'anchor'::timestamptz AT TIME ZONE 'UTC') + interval '20 days', 0);

-- Mark, anonymise and purge stages with deterministic masks; the data
-- subjects of an erasure kind (members, with their notes).
CREATE TABLE members (
    id            bigint PRIMARY KEY,
    email         text NOT NULL,
    phone         text,
    full_name     text,
    birth_date    date,
    last_login    timestamptz,
    rating        double precision,
    left_at       timestamptz NOT NULL,
    restricted    boolean,
    anonymised_at timestamptz
);
CREATE TABLE member_notes (id int PRIMARY KEY, member_id bigint NOT NULL REFERENCES members ON DELETE CASCADE, body text);
CREATE INDEX ON member_notes (member_id);
INSERT INTO members (id, email, phone, full_name, birth_date, last_login, rating, left_at)
SELECT id, name || '@example.com', '+49 151 ' || (1000000 + id), initcap(name) || ' Example',
       date '1980-07-23' + id::int, timestamptz '2020-05-06 07:08:09+00' + id * interval '1 day', 4.5,
       :'anchor'::timestamptz - age
  FROM (VALUES (1, 'ann', interval '10 days'), (2, 'ben', interval '10 days'),
               (3, 'cem', interval '60 days'), (4, 'dora', interval '60 days'),
               (5, 'emil', interval '2 years'), (6, 'fritz', interval '2 years'),
               (7, 'gina', interval '6 years'), (8, 'hans', interval '6 years'),
               (4711, 'xaver', interval '10 days'),   -- erased on request
               (4712, 'yvonne', interval '6 years'),  -- under a subject hold, and requested
               (4713, 'wanda', interval '2 years')    -- request refused
       ) v(id, name, age);
INSERT INTO member_notes VALUES (1, 1, 'note ann'), (2, 7, 'note gina'), (3, 4711, 'note xaver'),
                                (4, 4712, 'note yvonne'), (5, 4713, 'note wanda');
SQL
}

# The declarations. @NOTE@ and @HOLD@ are string literals that the two
# databases write differently (the hostile one under
# standard_conforming_strings = off) but that mean the same value there.
hs_declarations() {
  cat <<'SQL'
SET client_min_messages = warning;
SELECT retention.create_policy('tickets_90d', 'tickets', 'closed_at', interval '90 days', batch_size => 2,
    filter => $f$note <> @NOTE@ AND opened_at - closed_at < interval '-1 day -2 hours' AND amount > 1.5
                 AND score > '1.5' AND opened_at > '2000-02-03 04:05:06+00'$f$);
SELECT retention.place_hold('tax audit 2026', target => 'tickets', filter => $f$note = @HOLD@$f$);
SELECT retention.create_policy('visits_30d', 'visits', 'seen_at', interval '30 days',
    filter => $f$seen_at > '2000-02-03 04:05:06'$f$);
SELECT retention.create_policy('subscriptions_30d', 'subscriptions', 'ended_on', interval '30 days',
    filter => $f$ended_on > '2000-02-03'$f$);
SELECT retention.create_policy('measurements_10d', 'measurements', 'taken_at', interval '10 days');
SELECT retention.create_policy('members_5y', 'members', 'left_at', interval '5 years', batch_size => 2);
SELECT retention.add_stage('members_5y', interval '30 days', 'mark', column_name => 'restricted');
SELECT retention.add_stage('members_5y', interval '1 year', 'anonymise', column_name => 'anonymised_at');
SELECT retention.set_mask('members_5y', 'email', 'email', '{"keep_domain": false}');
SELECT retention.set_mask('members_5y', 'phone', 'partial', '{"keep_start": 3, "keep_end": 2, "fill": "#"}');
SELECT retention.set_mask('members_5y', 'birth_date', 'generalise', '{"unit": "year"}');
SELECT retention.set_mask('members_5y', 'full_name', 'constant', '{"value": "(erased)"}');
SELECT retention.set_mask('members_5y', 'last_login', 'constant', '{"value": "2000-02-03 04:05:06+00"}');
SELECT retention.set_mask('members_5y', 'rating', 'constant', '{"value": 2.75}');
SELECT retention.register_subject('member', 'members', 'id');
SELECT retention.place_hold('dispute with member 4712', kind => 'member', subject_id => '4712');
SELECT retention.request_erasure('member', '4711', reference => 'letter 1');
SELECT retention.request_erasure('member', '4712', reference => 'letter 2');
SELECT retention.refuse_request(retention.request_erasure('member', '4713', reference => 'letter 3'), '17(3)(e)');
SQL
}

# Read under default settings in each database and compared.
HS_PREVIEW="SELECT string_agg(concat_ws(' | ', policy, action, due_rows,
                                         round(extract(epoch FROM pg_catalog.now() - cutoff) / 60)),
                              E'\n' ORDER BY policy, action)
              FROM retention.preview()"
declare -A HS_STATE=(
  [policies]="SELECT string_agg(concat_ws(' | ', name, target, clock, clock_type, filter, mark_after, anonymise_after,
                                          purge_after, marker_column, anonymised_column, key_columns, batch_size, paused),
                                E'\n' ORDER BY name) FROM retention.policies"
  [masks]="SELECT string_agg(p.name || '.' || m.column_name || ' ' || m.strategy || ' ' || m.options::text, E'\n'
                             ORDER BY p.name, m.column_name)
             FROM retention.masks m JOIN retention.policies p ON p.id = m.policy_id"
  [holds]="SELECT string_agg(concat_ws(' | ', id, kind, subject_blind IS NOT NULL, target, filter, reason, until,
                                       released_at IS NULL), E'\n' ORDER BY id) FROM retention.holds"
  [subject map]="SELECT string_agg(concat_ws(' | ', target, link, depth, path, action), E'\n' ORDER BY depth, target)
                   FROM retention.subject_map('member')"
  [tickets]="SELECT string_agg(concat_ws(' | ', id, coalesce(note, '(null)'), opened_at, closed_at, amount, score), E'\n' ORDER BY id) FROM tickets"
  [visits]="SELECT string_agg(concat_ws(' | ', id, seen_at, page), E'\n' ORDER BY id) FROM visits"
  [subscriptions]="SELECT string_agg(concat_ws(' | ', id, ended_on, plan), E'\n' ORDER BY id) FROM subscriptions"
  [measurements]="SELECT md5(string_agg(concat_ws(' | ', tableoid::regclass, id, taken_at, value), E'\n' ORDER BY id))
                         || ' ' || count(*) FROM measurements"
  [partitions]="SELECT string_agg(c.relname, ',' ORDER BY c.relname)
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'measurements'::regclass"
  [members]="SELECT string_agg(concat_ws(' | ', id, email, phone, full_name, birth_date, last_login, rating, left_at,
                                         coalesce(restricted::text, '-'), anonymised_at IS NOT NULL), E'\n' ORDER BY id)
                FROM members"
  [member notes]="SELECT string_agg(concat_ws(' | ', id, member_id, body), E'\n' ORDER BY id) FROM member_notes"
  [runs]="SELECT string_agg(concat_ws(' | ', policy, target, status, stage, rows_purged, rows_anonymised, rows_marked,
                                      rows_held, rows_blocked, partitions_dropped, retries, error_code, error,
                                      round(extract(epoch FROM started_at - cutoff) / 60),
                                      round(extract(epoch FROM started_at - anonymise_cutoff) / 60),
                                      round(extract(epoch FROM started_at - mark_cutoff) / 60)),
                            E'\n' ORDER BY policy, id) FROM retention.run_log"
  [requests]="SELECT string_agg(concat_ws(' | ', id, kind, reference, status, refusal_ground, completed_at IS NOT NULL),
                                E'\n' ORDER BY id) FROM retention.requests"
  [certificates]="SELECT string_agg(r.id || ' ' || (retention.erasure_certificate(r.id) #- '{received_at}' #- '{due_at}'
                                     #- '{completed_at}' #- '{issued_at}' #- '{audit_hash}' #- '{subject_blind_index}')::text,
                                    E'\n' ORDER BY r.id) FROM retention.requests r WHERE r.status <> 'refused'"
  [audit chain]="SELECT ok || ' ' || entries FROM retention.verify_audit()"
  [audit entries]="SELECT string_agg(event || ' ' || regexp_replace(regexp_replace(at || ' ' || details::text,
                                     '[0-9a-f]{64}', 'H', 'g'), '[0-9]+', 'N', 'g'), E'\n' ORDER BY id)
                     FROM retention.audit_log"
)

test_hostile_session_settings_change_nothing() {
  HS_FAILED=0
  # Date clocks compare with the cutoff's date: stay clear of a change of
  # date (UTC) between building the fixture and running.
  local left; left="$(hs_val postgres "SELECT floor(extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day'
                                                               - now() AT TIME ZONE 'UTC'))")"
  if (( left < 120 )); then sleep $((left + 2)); fi

  fresh_db hostile_ref; HS_REF="$DB"
  fresh_db hostile_bad; HS_BAD="$DB"
  local anchor; anchor="$(hs_val "$HS_REF" "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"
  local fixture; fixture="$(hs_fixture)"
  hs_on "$HS_REF" -v anchor="$anchor" <<<"$fixture" >/dev/null
  hs_on "$HS_BAD" -v anchor="$anchor" <<<"$fixture" >/dev/null

  # The same values in both: a\' OR true and hold\x.
  local ref_note bad_note ref_hold bad_hold
  read -r ref_note <<'EOF'
'a\'' OR true'
EOF
  read -r bad_note <<'EOF'
'a\\'' OR true'
EOF
  read -r ref_hold <<'EOF'
'hold\x'
EOF
  read -r bad_hold <<'EOF'
'hold\\x'
EOF
  local decl; decl="$(hs_declarations)"
  local tmp; tmp="$(mktemp -d)"
  hs_on "$HS_REF" <<<"$(hs_subst "$(hs_subst "$decl" @NOTE@ "$ref_note")" @HOLD@ "$ref_hold")" >/dev/null
  if ! hs_declaring "$HS_BAD" <<<"$(hs_subst "$(hs_subst "$decl" @NOTE@ "$bad_note")" @HOLD@ "$bad_hold")" \
       >/dev/null 2>"$tmp/declare.err"; then
    fail "declaring under hostile settings failed: $(grep -v -e 'nonstandard use of' -e '^LINE' -e '^ *\^' \
                                                              -e 'HINT:  Use the escape string syntax' "$tmp/declare.err")"
  fi
  # The hostile sessions are what they should be, and the planted objects
  # would be found by a careless lookup.
  hs_check "hostile running session" \
    "$(hs_running "$HS_BAD" -c "SELECT concat_ws(' ', now() > pg_catalog.now() + interval '100 years',
                                  pg_catalog.current_setting('standard_conforming_strings'), pg_catalog.current_setting('TimeZone'),
                                  pg_catalog.current_setting('DateStyle'), pg_catalog.current_setting('IntervalStyle'),
                                  pg_catalog.current_setting('extra_float_digits'), pg_catalog.current_setting('bytea_output'),
                                  pg_catalog.current_setting('transaction_isolation'))")" \
    "t off $HS_RUN_TZ SQL, DMY sql_standard -15 escape serializable"

  # Previews: under defaults, and in the hostile database in three zones.
  local ref_preview; ref_preview="$(hs_val "$HS_REF" "$HS_PREVIEW")"
  local zone
  for zone in "$HS_DECLARE_TZ" "$HS_RUN_TZ" "$HS_OTHER_TZ"; do
    hs_check "preview under hostile settings in $zone" "$(hs_in_zone "$zone" "$HS_BAD" -c "$HS_PREVIEW" 2>&1)" "$ref_preview"
  done

  # Run (policies, then the pending erasure requests).
  hs_on "$HS_REF" -c "CALL retention.run()" >"$tmp/ref.out" 2>&1 || fail "run under defaults failed: $(cat "$tmp/ref.out")"
  if ! hs_running "$HS_BAD" -c "CALL retention.run()" >"$tmp/bad.out" 2>&1; then
    hs_check "CALL retention.run() under hostile settings" "failed: $(cat "$tmp/bad.out")" "succeeded"
  fi
  hs_check "run messages (warnings, errors)" "$(grep -E 'WARNING|ERROR' "$tmp/bad.out" || true)" \
    "$(grep -E 'WARNING|ERROR' "$tmp/ref.out" || true)"

  local what
  for what in policies masks holds "subject map" tickets visits subscriptions measurements partitions members \
              "member notes" runs requests certificates "audit chain" "audit entries"; do
    hs_same "$what" "${HS_STATE[$what]}"
  done

  # The reference itself is right, so that both cannot be wrong alike.
  local r="$HS_REF"
  # (Held rows are left out: the preview may count them as due.)
  hs_check "reference: preview (policy action due_rows)" \
    "$(awk -F' [|] ' '$1 ~ /^(visits|subscriptions)_30d$/ || ($1 == "members_5y" && $2 != "purge") { print $1, $2, $3 }' \
         <<<"$ref_preview")" \
    "members_5y anonymise 3
members_5y mark 5
subscriptions_30d purge 3
visits_30d purge 3"
  hs_check "reference: tickets left" "$(hs_val "$r" "SELECT string_agg(id::text, ',' ORDER BY id) FROM tickets")" \
    "2,4,6,9,11,12,13,15"
  hs_check "reference: visits left (3 hours younger than the cutoff kept, 3 hours older purged)" \
    "$(hs_val "$r" "SELECT string_agg(id::text, ',' ORDER BY id) FROM visits")" "2,4,6"
  hs_check "reference: subscriptions left (the cutoff's own date kept)" \
    "$(hs_val "$r" "SELECT string_agg(id::text, ',' ORDER BY id) FROM subscriptions")" "3,4,5,7"
  hs_check "reference: measurement partitions left" "$(hs_val "$r" "${HS_STATE[partitions]}")" \
    "measurements_3,measurements_4,measurements_5,measurements_other"
  hs_check "reference: measurements purged exactly before the cutoff" \
    "$(hs_val "$r" "SELECT count(*) FILTER (WHERE id > 1000 AND value <= 0) || ' ' || count(*) FILTER (WHERE id = 1) || ' '
                           || count(*) FILTER (WHERE id = 2) || ' ' || min(value) FILTER (WHERE id > 1000) FROM measurements")" \
    "0 0 1 1"
  # Every hourly row after the cutoff is kept, every one before it purged
  # (by dropping partitions or row by row), plus the old row of the default
  # partition.
  local hourly="FROM (SELECT (timestamptz '$anchor' AT TIME ZONE 'UTC') - interval '10 days' AS c) c, generate_series(-100, 100) g
                WHERE c + (g - 0.5) * interval '1 hour' >= c::date - 3 AND c + (g - 0.5) * interval '1 hour' < c::date + 3"
  local previewed; previewed="$(awk -F' [|] ' '$1 == "measurements_10d" && $2 == "purge" { print $3 }' <<<"$ref_preview")"
  hs_check "reference: measurements kept, purged, previewed" \
    "$(hs_val "$r" "SELECT (SELECT count(*) FROM measurements) || ' ' || (SELECT rows_purged FROM retention.run_log
                                                                           WHERE policy = 'measurements_10d')") $previewed" \
    "$(hs_val "$r" "SELECT 1 + count(*) FILTER (WHERE g > 0) || ' ' || 1 + count(*) FILTER (WHERE g <= 0) || ' '
                           || 1 + count(*) FILTER (WHERE g <= 0) $hourly")"
  hs_check "reference: members" \
    "$(hs_val "$r" "SELECT string_agg(concat_ws(' ', id, email, phone, full_name, birth_date, last_login, rating,
                                                 coalesce(restricted::text, '-'), anonymised_at IS NOT NULL), E'\n' ORDER BY id)
                      FROM members")" \
    "1 ann@example.com +49 151 1000001 Ann Example 1980-07-24 2020-05-07 07:08:09+00 4.5 - f
2 ben@example.com +49 151 1000002 Ben Example 1980-07-25 2020-05-08 07:08:09+00 4.5 - f
3 cem@example.com +49 151 1000003 Cem Example 1980-07-26 2020-05-09 07:08:09+00 4.5 true f
4 dora@example.com +49 151 1000004 Dora Example 1980-07-27 2020-05-10 07:08:09+00 4.5 true f
5 e***@***.com +49##########05 (erased) 1980-01-01 2000-02-03 04:05:06+00 2.75 true t
6 f***@***.com +49##########06 (erased) 1980-01-01 2000-02-03 04:05:06+00 2.75 true t
4712 yvonne@example.com +49 151 1004712 Yvonne Example 1993-06-17 2033-03-31 07:08:09+00 4.5 - f
4713 w***@***.com +49##########13 (erased) 1993-01-01 2000-02-03 04:05:06+00 2.75 true t"
  hs_check "reference: member notes left" "$(hs_val "$r" "SELECT string_agg(id::text, ',' ORDER BY id) FROM member_notes")" "1,4,5"
  hs_check "reference: runs" \
    "$(hs_val "$r" "SELECT string_agg(concat_ws(' ', policy, status, CASE WHEN policy <> 'measurements_10d' THEN rows_purged END,
                                                 rows_anonymised, rows_marked, rows_held, partitions_dropped), E'\n' ORDER BY policy)
                      FROM retention.run_log")" \
    "measurements_10d succeeded 0 0 0 3
members_5y succeeded 2 3 5 1 0
subscriptions_30d succeeded 3 0 0 0 0
tickets_90d succeeded 7 0 0 1 0
visits_30d succeeded 3 0 0 0 0"
  hs_check "reference: requests" \
    "$(hs_val "$r" "SELECT string_agg(reference || ' ' || status, ', ' ORDER BY id) FROM retention.requests")" \
    "letter 1 completed, letter 2 partially completed, letter 3 refused"

  if (( HS_FAILED > 0 )); then fail "$HS_FAILED comparison(s) differ"; fi
}
