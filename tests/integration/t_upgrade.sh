# Updating from 0.1.0 (commit cdef15b) with ALTER EXTENSION pg_retention
# UPDATE: the updated database has exactly the catalogue of a fresh install
# (every function with its attributes, table, column, constraint, index,
# trigger, view, grant and what pg_dump keeps: tests/upgrade/catalogue.sql),
# and its data, runs, holds, audit chain and certificates carry on.

UPGRADE_FROM=0.1.0
UPGRADE_COMMIT=cdef15b

# Installs release $UPGRADE_FROM's library and install script next to the
# current ones, as that release installed them; removed again by
# upgrade_remove_old.
upgrade_install_old() {
  local old libdir extdir
  # A release is built only for the majors its Cargo.toml has a feature for.
  git -C "$here" show "$UPGRADE_COMMIT:Cargo.toml" 2>/dev/null | grep -q "^pg$PG_MAJOR = " \
    || skip "release $UPGRADE_FROM was not built for PostgreSQL $PG_MAJOR"
  old="$(bash "$here/tests/upgrade/build-old.sh" "$UPGRADE_FROM" "$UPGRADE_COMMIT")" || return 1
  libdir="$("$PG_CONFIG" --pkglibdir)"; extdir="$("$PG_CONFIG" --sharedir)/extension"
  # 0.1.0 named its library pg_retention and let the control file fill in
  # MODULE_PATHNAME; the current control file leaves it out (each version's
  # script names its own library), so the path is written in.
  install -m 0755 "$old"/lib/pg_retention.so "$libdir/pg_retention.so"
  sed "s|MODULE_PATHNAME|\$libdir/pg_retention|g" "$old/extension/pg_retention--$UPGRADE_FROM.sql" \
    >"$extdir/pg_retention--$UPGRADE_FROM.sql"
  chmod 0644 "$extdir/pg_retention--$UPGRADE_FROM.sql"
}

upgrade_remove_old() {
  rm -f "$("$PG_CONFIG" --pkglibdir)/pg_retention.so" \
    "$("$PG_CONFIG" --sharedir)/extension/pg_retention--$UPGRADE_FROM.sql"
}

# A database on release $UPGRADE_FROM with every kind of object and some history.
upgrade_old_db() {
  DB="it_$1"
  psql -X -q -h 127.0.0.1 -p "$IT_PORT" -U postgres -d postgres \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  q >/dev/null <<SQL
CREATE EXTENSION pg_retention VERSION '$UPGRADE_FROM';
CREATE TABLE public.customers (id int PRIMARY KEY, email text UNIQUE NOT NULL);
CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers,
                            delivered_at timestamptz NOT NULL, customer_email text,
                            restricted_at timestamptz, anonymised_at timestamptz, disputed boolean NOT NULL DEFAULT false);
CREATE TABLE public.invoices (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers, issued_on date NOT NULL);
INSERT INTO public.customers SELECT g, 'c' || g || '@example.org' FROM generate_series(1, 20) g;
INSERT INTO public.orders (id, customer_id, delivered_at, customer_email, disputed)
     SELECT g, 1 + g % 20, now() - g * interval '20 days', 'c' || (1 + g % 20) || '@example.org', g % 50 = 0
       FROM generate_series(1, 240) g;
INSERT INTO public.invoices SELECT g, 1 + g % 20, current_date - g * 30 FROM generate_series(1, 100) g;
SELECT retention.create_policy('orders_lifecycle', 'public.orders', 'delivered_at', interval '10 years',
                               filter => 'customer_id > 0', batch_size => 50);
SELECT retention.add_stage('orders_lifecycle', interval '30 days', 'mark', column_name => 'restricted_at');
SELECT retention.add_stage('orders_lifecycle', interval '2 years', 'anonymise', column_name => 'anonymised_at');
SELECT retention.set_mask('orders_lifecycle', 'customer_email', 'email', '{"keep_domain": false}');
SELECT retention.register_subject('customer', 'public.customers', 'id');
SELECT retention.set_subject_table('customer', 'public.invoices', min_retention => '10 years',
                                   legal_ground => 'HGB 257', clock => 'issued_on');
SELECT retention.place_hold('refund dispute', target => 'public.orders', filter => 'disputed');
SELECT retention.place_hold('lawsuit', kind => 'customer', subject_id => '3');
SELECT retention.request_erasure('customer', '5', reference => 'ticket 1');
SQL
  q -c "CALL retention.run()" >/dev/null 2>&1
  q -c "CALL retention.process_erasures()" >/dev/null 2>&1 || true
}

test_update_from_0_1_0_gives_a_fresh_install_and_keeps_the_data() {
  trap upgrade_remove_old EXIT
  upgrade_install_old || return 1
  upgrade_old_db upgrade_old
  expect_eq "$(val "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")" "$UPGRADE_FROM" "version before"
  local before cert_before
  before="$(val "SELECT (SELECT count(*) FROM retention.policies) || '/' || (SELECT count(*) FROM retention.masks)
                 || '/' || (SELECT count(*) FROM retention.holds) || '/' || (SELECT count(*) FROM retention.subject_tables)
                 || '/' || (SELECT count(*) FROM retention.erasure_requests) || '/' || (SELECT count(*) FROM retention.audit_log)
                 || '/' || (SELECT count(*) FROM retention.run_log) || '/' || (SELECT count(*) FROM public.orders)")"
  cert_before="$(val "SELECT c->>'status' || ' ' || (c->'tables')::text FROM retention.erasure_certificate(1) c")"
  expect_eq "$(val "SELECT ok FROM retention.verify_audit()")" "t" "audit chain before the update"
  val "ALTER EXTENSION pg_retention UPDATE" >/dev/null
  expect_eq "$(val "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")" "$(cargo_version)" "version after"

  # (a) The catalogue equals a fresh install's.
  q -f "$here/tests/upgrade/catalogue.sql" >"$IT_TMP/updated.txt"
  local updated_db="$DB"
  fresh_db upgrade_fresh
  q -f "$here/tests/upgrade/catalogue.sql" >"$IT_TMP/fresh.txt"
  if ! diff -u "$IT_TMP/fresh.txt" "$IT_TMP/updated.txt" >"$IT_TMP/catalogue.diff"; then
    sed -n '1,60p' "$IT_TMP/catalogue.diff" >&2
    fail "the updated catalogue differs from a fresh install ($(grep -c '^[-+][^-+]' "$IT_TMP/catalogue.diff") lines)"
  fi

  # (b) The data is intact and everything carries on.
  DB="$updated_db"
  expect_eq "$(val "SELECT (SELECT count(*) FROM retention.policies) || '/' || (SELECT count(*) FROM retention.masks)
                 || '/' || (SELECT count(*) FROM retention.holds) || '/' || (SELECT count(*) FROM retention.subject_tables)
                 || '/' || (SELECT count(*) FROM retention.erasure_requests) || '/' || (SELECT count(*) FROM retention.audit_log)
                 || '/' || (SELECT count(*) FROM retention.run_log) || '/' || (SELECT count(*) FROM public.orders)")" \
    "$before" "rows of every table after the update"
  expect_eq "$(val "SELECT ok FROM retention.verify_audit()")" "t" "audit chain after the update"
  # 0.2.0 adds to each table whether a VACUUM has finished since; the rest
  # is what 0.1.0 recorded.
  expect_eq "$(val "SELECT c->>'status' || ' ' || (SELECT jsonb_agg(t - 'vacuumed_at' - 'row_versions' ORDER BY o) FROM jsonb_array_elements(c->'tables') WITH ORDINALITY a(t, o))::text FROM retention.erasure_certificate(1) c")" \
    "$cert_before" "the old certificate"
  expect_eq "$(val "SELECT count(*) FROM jsonb_array_elements(retention.erasure_certificate(1)->'tables') t WHERE t ? 'row_versions'")" 1 \
    "VACUUM stated for the one table with erased rows"
  # It was filed by 0.1.0, whose audit entries hold no dates: the status and
  # the audit hash are compared, and the certificate says so.
  expect_eq "$(val "SELECT (c->>'audit_record_matches') || ' ' || (c->>'audit_record_compared') FROM retention.erasure_certificate(1) c")" \
    "true status and audit hash (filed before 0.2.0, whose audit entries hold no dates or results)" "what the old certificate compares"
  # Holds keep rows and belong to the role that placed them.
  expect_eq "$(val "SELECT count(*) FROM retention.holds WHERE placed_by_role IS NULL")" "0" "holds with their role"
  # Clocks and filters were re-validated into their canonical form.
  expect_eq "$(val "SELECT filter FROM retention.policies")" "(customer_id > 0)" "the stored filter"
  # A run and an erasure work on the updated database.
  q -c "UPDATE public.orders SET delivered_at = now() - interval '11 years' WHERE id <= 10 AND NOT disputed" >/dev/null
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT string_agg(DISTINCT status, ',') FROM retention.runs WHERE run_id = (SELECT max(run_id) FROM retention.run_log)")" \
    "succeeded" "the first run after the update"
  # Order 2 belongs to customer 3, whose hold (placed under 0.1.0) keeps it.
  expect_eq "$(val "SELECT string_agg(id::text, ',') FROM public.orders WHERE id <= 10 AND NOT disputed")" "2" \
    "due rows purged after the update, the held subject's kept"
  local req; req="$(val "SELECT retention.request_erasure('customer', '7')")"
  q -c "CALL retention.process_erasures()" >/dev/null 2>&1
  expect_eq "$(val "SELECT status FROM retention.requests WHERE id = $req")" "partially completed" "an erasure after the update"
  expect_eq "$(val "SELECT (c->>'audit_record_matches') || (c->>'audit_chain_verified') FROM retention.erasure_certificate($req) c")" \
    "truetrue" "a new certificate"
  expect_eq "$(val "SELECT update_available::text || library_matches::text || installed_version FROM retention.installation")" \
    "falsetrue$(cargo_version)" "retention.installation"
}

# A declared expression that today's checks refuse (a function some role
# wrote) stops the update with the object named; nothing changes.
test_update_refuses_declared_text_that_fails_todays_checks() {
  trap upgrade_remove_old EXIT
  upgrade_install_old || return 1
  upgrade_old_db upgrade_refused
  q >/dev/null <<'SQL'
CREATE FUNCTION public.is_closed(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 100';
SELECT retention.alter_policy('orders_lifecycle', filter => 'public.is_closed(id)');
SQL
  local out
  out="$(q -c "ALTER EXTENSION pg_retention UPDATE" 2>&1)" && fail "the update went through: $out"
  [[ "$out" == *'the filter of retention policy "orders_lifecycle" does not pass this version'* ]] \
    || fail "unexpected error: $out"
  expect_eq "$(val "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")" "$UPGRADE_FROM" "version after the refusal"
  expect_eq "$(val "SELECT filter FROM retention.policies")" "public.is_closed(id)" "the filter after the refusal"
}
