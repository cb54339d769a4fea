# Citus: policies, erasure, holds, partitions and stages on a real Citus
# cluster (a coordinator and two workers on loopback, scripts/citus.sh and
# pgrx.toml [citus]), checked on the coordinator and on the workers' shards.
# The cluster is started once for this file; each test has a database of its
# own on every node. Skipped on other majors than [citus] major and where
# citus.so is not installed.

CT_MAJOR="$(cfg_str citus major)"
CT_PORT="${CITUS_PORT:-$(cfg_str citus port)}"
CT_WORKERS="${CITUS_WORKER_PORTS:-$(cfg_list citus worker_ports)}"

# Why the Citus tests cannot run here; nothing when they can.
citus_missing() {
  local libdir
  if [[ "$PG_MAJOR" != "$CT_MAJOR" ]]; then
    echo "Citus is tested on PostgreSQL $CT_MAJOR only ([citus] major in pgrx.toml), not on $PG_MAJOR"; return
  fi
  libdir="$("$(pg_config_of "$CT_MAJOR")" --pkglibdir 2>/dev/null)" || libdir="(PostgreSQL $CT_MAJOR not installed)"
  [[ -f "$libdir/citus.so" ]] || echo "Citus is not installed for PostgreSQL $CT_MAJOR (no citus.so in $libdir)"
}

setup_file() {
  [[ -z "$(citus_missing)" ]] || return 0
  bash "$here/scripts/citus.sh" destroy >/dev/null
  bash "$here/scripts/citus.sh" start >/dev/null
}

teardown_file() {
  [[ -z "$(citus_missing)" ]] || return 0
  bash "$here/scripts/citus.sh" stop >/dev/null
}

# A fresh database it_citus_NAME on every node, with citus, the workers
# registered and pg_retention created on the coordinator; q and val talk to
# the coordinator.
citus_db() {
  local why; why="$(citus_missing)"
  [[ -z "$why" ]] || skip "$why"
  IT_PORT="$CT_PORT"
  DB="it_citus_$1"
  bash "$here/scripts/citus.sh" createdb "$DB"
  val "CREATE EXTENSION pg_retention" >/dev/null
}

# The value of one query on the worker listening on port $1.
on_worker() {
  psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$DB" -c "$2"
}

# Compares two comma-separated lists of ids; on a difference names the ids
# missing and those not expected.
expect_ids() { # actual expected what
  [[ "$1" == "$2" ]] && return 0
  local missing extra
  missing="$(comm -13 <(tr ',' '\n' <<<"$1" | sort) <(tr ',' '\n' <<<"$2" | sort) | head -20 | xargs)"
  extra="$(comm -23 <(tr ',' '\n' <<<"$1" | sort) <(tr ',' '\n' <<<"$2" | sort) | head -20 | xargs)"
  fail "$3: missing ids [$missing], ids not expected [$extra]"
}
# 'a,a+1,...,b' (empty when b < a).
id_range() { if (($2 >= $1)); then seq -s, "$1" "$2"; fi; }

# One run purges a hash-distributed table (32 shards), a reference table and
# a local table of the coordinator; exactly the due rows go, on every shard
# and every placement of the reference table.
test_citus_purge_distributed_reference_and_local_tables() {
  citus_db purge
  # Row g is g days and 12 hours old: a period of N days keeps the rows 1 .. N-1.
  q >/dev/null <<'SQL'
SET citus.shard_count = 32;
CREATE TABLE events (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('events', 'tenant');
INSERT INTO events SELECT g % 97, g, now() - g * interval '1 day' - interval '12 hours' FROM generate_series(1, 2000) g;
CREATE TABLE countries (id int PRIMARY KEY, changed_at timestamptz NOT NULL);
SELECT create_reference_table('countries');
INSERT INTO countries SELECT g, now() - g * interval '1 day' - interval '12 hours' FROM generate_series(1, 50) g;
CREATE TABLE audit_trail (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO audit_trail SELECT g, now() - g * interval '1 day' - interval '12 hours' FROM generate_series(1, 300) g;
SELECT retention.create_policy('events', 'events', 'at', interval '1000 days', batch_size => 200, skip_locked => false);
SELECT retention.create_policy('countries', 'countries', 'changed_at', interval '20 days', batch_size => 10, skip_locked => false);
SELECT retention.create_policy('audit_trail', 'audit_trail', 'at', interval '100 days', batch_size => 50);
SQL
  expect_eq "$(val "SELECT string_agg(table_name::text || ' ' || citus_table_type || ' ' || shard_count, ', ' ORDER BY table_name::text) FROM citus_tables")" \
    "countries reference 1, events distributed 32" "Citus tables"
  expect_eq "$(val "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'audit_trail'::regclass")" 0 "audit_trail stays local"
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT string_agg(policy || ' ' || status || ' ' || rows_purged, ', ' ORDER BY policy) FROM retention.runs")" \
    "audit_trail succeeded 201, countries succeeded 31, events succeeded 1001" "run log"
  local batches; batches="$(val "SELECT batches FROM retention.runs WHERE policy = 'events'")"
  ((batches >= 6)) || fail "1001 rows in batches of at most 200 took $batches batches"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM events")" "$(id_range 1 999)" "events"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM countries")" "$(id_range 1 19)" "countries"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM audit_trail")" "$(id_range 1 99)" "audit_trail"
  # The shards themselves, on the workers.
  expect_eq "$(val "SELECT count(*) || ' shards, ' || sum(result::int) || ' rows' FROM run_command_on_shards('events', 'SELECT count(*) FROM %s')")" \
    "32 shards, 999 rows" "events' shards"
  expect_eq "$(val "SELECT sum(result::int) FROM run_command_on_shards('events', \$\$SELECT count(*) FROM %s WHERE at < now() - interval '1000 days'\$\$)")" \
    0 "due rows left on the shards"
  # Every placement of the reference table (the coordinator's and each worker's).
  expect_eq "$(val "SELECT count(*) || ' placements: ' || string_agg(DISTINCT result, ' | ') FROM run_command_on_placements('countries', \$\$SELECT string_agg(id::text, ',' ORDER BY id) FROM %s\$\$)")" \
    "3 placements: $(id_range 1 19)" "reference table placements"
}

# A kind of data subject over colocated distributed tables (found through
# their foreign keys), a reference table and a local table, erased in one
# request: nothing of the subject is left on any node, every other subject
# keeps all its rows, the certificate counts what went; a legal hold on a
# subject keeps all its rows and its request ends partially completed.
test_citus_erasure_across_distributed_reference_and_local_tables() {
  citus_db erasure
  q >/dev/null <<'SQL'
SET citus.shard_count = 32;
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (customer_id bigint NOT NULL REFERENCES customers, id bigint NOT NULL, total numeric,
                     PRIMARY KEY (customer_id, id));
CREATE TABLE order_items (customer_id bigint NOT NULL, order_id bigint NOT NULL, id bigint NOT NULL, sku text,
                          PRIMARY KEY (customer_id, order_id, id), FOREIGN KEY (customer_id, order_id) REFERENCES orders);
SELECT create_distributed_table('customers', 'id');
SELECT create_distributed_table('orders', 'customer_id', colocate_with => 'customers');
SELECT create_distributed_table('order_items', 'customer_id', colocate_with => 'customers');
CREATE TABLE notes (id int PRIMARY KEY, customer_id bigint NOT NULL, body text);
SELECT create_reference_table('notes');
CREATE TABLE newsletter (address text PRIMARY KEY, customer_id bigint NOT NULL);
-- 20 customers, 10 orders each with 2 items, 3 notes and 1 newsletter address each.
INSERT INTO customers SELECT c, 'c' || c || '@example.org' FROM generate_series(1, 20) c;
INSERT INTO orders SELECT c, c * 100 + o, o FROM generate_series(1, 20) c, generate_series(1, 10) o;
INSERT INTO order_items SELECT customer_id, id, i, 'sku' || i FROM orders, generate_series(1, 2) i;
INSERT INTO notes SELECT c * 10 + n, c, 'note' FROM generate_series(1, 20) c, generate_series(1, 3) n;
INSERT INTO newsletter SELECT 'c' || c || '@example.org', c FROM generate_series(1, 20) c;
SET client_min_messages = warning;
SELECT retention.register_subject('customer', 'customers', 'id');
SELECT retention.add_subject_table('customer', 'notes', 'customer_id');
SELECT retention.add_subject_table('customer', 'newsletter', 'customer_id');
SQL
  expect_eq "$(val "SELECT string_agg(target::text || ' ' || link, ', ' ORDER BY target::text) FROM retention.subject_map('customer')")" \
    "public.customers root, public.newsletter value, public.notes value, public.order_items foreign key, public.orders foreign key" "subject map"
  local r7 r9
  r7="$(val "SELECT retention.request_erasure('customer', '7', reference => 'letter')")"
  val "SELECT retention.place_hold('lawsuit', kind => 'customer', subject_id => '9')" >/dev/null
  r9="$(val "SELECT retention.request_erasure('customer', '9', reference => 'mail')")"
  q -c "CALL retention.process_erasures()" >/dev/null
  expect_eq "$(val "SELECT string_agg(status, ', ' ORDER BY id) FROM retention.requests")" "completed, partially completed" "requests"
  # Nothing of customer 7 on any shard or placement, nor in the local table.
  local t
  for t in customers:id orders:customer_id order_items:customer_id notes:customer_id; do
    expect_eq "$(val "SELECT sum(result::int) FROM run_command_on_placements('${t%%:*}', 'SELECT count(*) FROM %s WHERE ${t#*:} = 7')")" \
      0 "customer 7 in ${t%%:*}"
  done
  expect_eq "$(val "SELECT count(*) FROM newsletter WHERE customer_id = 7")" 0 "customer 7 in newsletter"
  # Every other customer keeps every row (customer 9 under the hold too).
  expect_eq "$(val "SELECT (SELECT count(*) FROM customers WHERE id <> 7) || '/' || (SELECT count(*) FROM orders WHERE customer_id <> 7)
                    || '/' || (SELECT count(*) FROM order_items WHERE customer_id <> 7) || '/' || (SELECT count(*) FROM notes WHERE customer_id <> 7)
                    || '/' || (SELECT count(*) FROM newsletter WHERE customer_id <> 7)")" "19/190/380/57/19" "other customers' rows"
  expect_eq "$(val "SELECT (SELECT count(*) FROM customers WHERE id = 9) || '/' || (SELECT count(*) FROM orders WHERE customer_id = 9)
                    || '/' || (SELECT count(*) FROM order_items WHERE customer_id = 9) || '/' || (SELECT count(*) FROM notes WHERE customer_id = 9)
                    || '/' || (SELECT count(*) FROM newsletter WHERE customer_id = 9)")" "1/10/20/3/1" "held customer's rows"
  # The certificates: per table purged and held.
  local certified="SELECT c->>'status' || ': ' || string_agg(t->>'table' || ' ' || (t->>'purged') || ' purged ' || (t->>'held') || ' held', ', ' ORDER BY t->>'table')
                     FROM retention.erasure_certificate(%s) c, jsonb_array_elements(c->'tables') t GROUP BY c->>'status'"
  # shellcheck disable=SC2059
  expect_eq "$(val "$(printf "$certified" "$r7")")" \
    "completed: public.customers 1 purged 0 held, public.newsletter 1 purged 0 held, public.notes 3 purged 0 held, public.order_items 20 purged 0 held, public.orders 10 purged 0 held" \
    "certificate of the erasure"
  # shellcheck disable=SC2059
  expect_eq "$(val "$(printf "$certified" "$r9")")" \
    "partially completed: public.customers 0 purged 1 held, public.newsletter 0 purged 1 held, public.notes 0 purged 3 held, public.order_items 0 purged 20 held, public.orders 0 purged 10 held" \
    "certificate of the held request"
  expect_eq "$(val "SELECT ok FROM retention.verify_audit()")" t "audit chain"
}

# A table partitioned by month and distributed: partitions wholly before the
# cutoff are dropped with their shards on the workers, the boundary partition
# is purged in batches, and exactly the rows from the cutoff on stay.
test_citus_partitioned_distributed_table_drops_expired_partitions() {
  citus_db partitions
  q >/dev/null <<'SQL'
SET citus.shard_count = 8;
CREATE TABLE metrics (device int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (device, id, at))
    PARTITION BY RANGE (at);
-- metrics_mK holds the month K months before the current one.
DO $$ DECLARE m timestamptz := date_trunc('month', now()); BEGIN
  FOR k IN 0..6 LOOP
    EXECUTE format('CREATE TABLE metrics_m%s PARTITION OF metrics FOR VALUES FROM (%L) TO (%L)',
                   k, m - k * interval '1 month', m - (k - 1) * interval '1 month');
  END LOOP;
END $$;
SELECT create_distributed_table('metrics', 'device');
-- 10 rows in the middle of each month but the boundary one (3 months back) ...
INSERT INTO metrics SELECT g % 4, k * 100 + g, date_trunc('month', now()) - k * interval '1 month' + interval '14 days'
  FROM generate_series(0, 6) k, generate_series(1, 10) g WHERE k <> 3;
-- ... and hourly rows from 12.5 days before the cutoff to 12.5 days after it.
INSERT INTO metrics SELECT g % 4, 10000 + g, now() - interval '3 months' + g * interval '1 hour' - interval '30 minutes'
  FROM generate_series(-300, 300) g;
SELECT retention.create_policy('metrics', 'metrics', 'at', interval '3 months', batch_size => 50, skip_locked => false);
SQL
  local expected due boundary_due shards_of
  expected="$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM metrics WHERE at >= now() - interval '3 months'")"
  due="$(val "SELECT count(*) FROM metrics WHERE at < now() - interval '3 months'")"
  boundary_due="$(val "SELECT count(*) FROM metrics_m3 WHERE at < now() - interval '3 months'")"
  shards_of="SELECT sum(result::int) FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_class WHERE relname ~ '^metrics_m[%s]_[0-9]+\$' AND relkind = 'r'\$\$)"
  # shellcheck disable=SC2059
  expect_eq "$(val "$(printf "$shards_of" 4-6)")" 24 "shards of the expired partitions before the run"
  expect_eq "$(val "SELECT note FROM retention.preview('metrics') WHERE action = 'drop partitions'")" \
    "3 partitions dropped whole (rows from statistics when analysed): public.metrics_m4, public.metrics_m5, public.metrics_m6" "preview"
  q -c "CALL retention.run('metrics')" >/dev/null 2>&1
  expect_eq "$(val "SELECT status || ' ' || partitions_dropped || ' ' || rows_purged FROM retention.runs")" "succeeded 3 $due" "run log"
  expect_eq "$(val "SELECT batches FROM retention.runs")" "$(( (boundary_due + 49) / 50 ))" "batches of 50 in the boundary partition ($boundary_due due)"
  expect_eq "$(val "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'metrics'::regclass")" "metrics_m0,metrics_m1,metrics_m2,metrics_m3" "partitions left"
  expect_eq "$(val "SELECT count(*) FROM pg_class WHERE relname ~ '^metrics_m[4-6]'")" 0 "dropped on the coordinator"
  expect_eq "$(val "SELECT string_agg(table_name::text || ' ' || n, ', ' ORDER BY table_name::text)
                      FROM (SELECT table_name, count(*) n FROM citus_shards GROUP BY table_name) s")" \
    "metrics 8, metrics_m0 8, metrics_m1 8, metrics_m2 8, metrics_m3 8" "shards in the metadata"
  # shellcheck disable=SC2059
  expect_eq "$(val "$(printf "$shards_of" 4-6)")" 0 "shards of the expired partitions on the workers"
  # shellcheck disable=SC2059
  expect_eq "$(val "$(printf "$shards_of" 0-3)")" 32 "shards of the other partitions on the workers"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM metrics")" "$expected" "rows left"
}

# The mark and anonymise stages (masks 'partial' and 'null') and the purge
# stage on a distributed table: every row ends in the state its age calls
# for, and a second run changes nothing.
test_citus_mark_and_anonymise_stages_on_a_distributed_table() {
  citus_db stages
  # Row g is g days and 12 hours old: marked from 30 days, anonymised from
  # 60, purged from 90.
  q >/dev/null <<'SQL'
SET citus.shard_count = 32;
CREATE TABLE accounts (id bigint PRIMARY KEY, name text, iban text, at timestamptz NOT NULL,
                       restricted_at timestamptz, anonymised_at timestamptz);
SELECT create_distributed_table('accounts', 'id');
INSERT INTO accounts (id, name, iban, at)
  SELECT g, 'Name ' || g, 'DE89370400440532' || lpad(g::text, 6, '0'), now() - g * interval '1 day' - interval '12 hours'
    FROM generate_series(1, 100) g;
SELECT retention.create_policy('accounts', 'accounts', 'at', interval '90 days', skip_locked => false);
SELECT retention.add_stage('accounts', interval '30 days', 'mark', column_name => 'restricted_at');
SELECT retention.add_stage('accounts', interval '60 days', 'anonymise', column_name => 'anonymised_at');
SELECT retention.set_mask('accounts', 'iban', 'partial', '{"keep_start": 2, "keep_end": 2}');
SELECT retention.set_mask('accounts', 'name', 'null');
SQL
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT status || ' ' || rows_purged || ' ' || rows_anonymised || ' ' || rows_marked FROM retention.runs")" \
    "succeeded 11 30 60" "run log"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM accounts")" "$(id_range 1 89)" "rows left"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM accounts WHERE anonymised_at IS NOT NULL")" "$(id_range 60 89)" "anonymised"
  expect_ids "$(val "SELECT string_agg(id::text, ',' ORDER BY id) FROM accounts WHERE restricted_at IS NOT NULL")" "$(id_range 30 89)" "marked"
  # Anonymised rows: name NULL, IBAN masked but for two characters at each end.
  expect_eq "$(val "SELECT name IS NULL, iban FROM accounts WHERE id = 61")" "t|DE******************61" "row 61"
  expect_eq "$(val "SELECT count(*) FROM accounts WHERE id >= 60 AND name IS NULL
                      AND iban = 'DE' || repeat('*', 18) || right(lpad(id::text, 6, '0'), 2)")" 30 "masked rows"
  # The others keep their values.
  expect_eq "$(val "SELECT count(*) FROM accounts WHERE id < 60 AND name = 'Name ' || id
                      AND iban = 'DE89370400440532' || lpad(id::text, 6, '0') AND anonymised_at IS NULL")" 59 "unmasked rows"
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT rows_purged || ' ' || rows_anonymised || ' ' || rows_marked FROM retention.runs ORDER BY id DESC LIMIT 1")" \
    "0 0 0" "second run"
}

# retention.preview and retention.status on the coordinator list the policies
# on distributed, reference and partitioned distributed tables with their
# counts.
test_citus_status_and_preview_list_distributed_policies() {
  citus_db status
  q >/dev/null <<'SQL'
SET citus.shard_count = 4;
CREATE TABLE events (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, marked boolean NOT NULL DEFAULT false,
                     PRIMARY KEY (tenant, id));
SELECT create_distributed_table('events', 'tenant');
INSERT INTO events SELECT g % 7, g, now() - g * interval '1 day' - interval '12 hours' FROM generate_series(1, 100) g;
CREATE TABLE countries (id int PRIMARY KEY, changed_at timestamptz NOT NULL);
SELECT create_reference_table('countries');
INSERT INTO countries SELECT g, now() - g * interval '1 day' - interval '12 hours' FROM generate_series(1, 40) g;
SELECT retention.create_policy('events_30d', 'events', 'at', interval '30 days', skip_locked => false);
SELECT retention.create_policy('countries_10d', 'countries', 'changed_at', interval '10 days', skip_locked => false);
SELECT retention.add_stage('events_30d', interval '10 days', 'mark', column_name => 'marked');
SQL
  expect_eq "$(val "SELECT string_agg(policy || ' ' || target || ' ' || action || ' ' || due_rows, ', ' ORDER BY policy, action) FROM retention.preview()")" \
    "countries_10d public.countries purge 31, events_30d public.events mark 20, events_30d public.events purge 71" "preview"
  expect_eq "$(val "SELECT string_agg(policy || ' ' || target || ' ' || state || ' ' || coalesce(last_status, '-'), ', ' ORDER BY policy) FROM retention.status")" \
    "countries_10d public.countries active -, events_30d public.events active -" "status before a run"
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT string_agg(policy || ' ' || last_status || ' ' || rows_purged_total || ' ' || rows_marked_total || ' ' || runs_total, ', ' ORDER BY policy) FROM retention.status")" \
    "countries_10d succeeded 31 0 1, events_30d succeeded 71 20 1" "status after a run"
  expect_eq "$(val "SELECT string_agg(policy || ' ' || action || ' ' || due_rows, ', ' ORDER BY policy, action) FROM retention.preview()")" \
    "countries_10d purge 0, events_30d mark 0, events_30d purge 0" "preview after a run"
}

# Where pg_retention lives: its catalogue is a set of local tables of the
# coordinator (not distributed); CREATE EXTENSION pg_retention on the
# coordinator is propagated by Citus, so each worker has the extension with
# its own, empty catalogue that the coordinator's policies and runs never
# write to.
test_citus_catalogue_stays_on_the_coordinator() {
  citus_db catalogue
  q >/dev/null <<'SQL'
SET citus.shard_count = 4;
CREATE TABLE events (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('events', 'tenant');
INSERT INTO events SELECT g % 7, g, now() - interval '2 years' FROM generate_series(1, 100) g;
SELECT retention.create_policy('events', 'events', 'at', interval '1 year', skip_locked => false);
CALL retention.run();
SQL
  expect_eq "$(val "SELECT count(*) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'retention'")" 0 "distributed retention tables"
  expect_eq "$(val "SELECT string_agg(logicalrelid::text, ',') FROM pg_dist_partition")" "events" "Citus tables"
  expect_eq "$(val "SELECT (SELECT count(*) FROM retention.policies) || '/' || (SELECT count(*) FROM retention.run_log)")" "1/1" "coordinator catalogue"
  # Citus records the extension as a distributed object ...
  expect_eq "$(val "SELECT count(*) FROM pg_dist_object WHERE classid = 'pg_extension'::regclass
                     AND objid = (SELECT oid FROM pg_extension WHERE extname = 'pg_retention')")" 1 "extension in pg_dist_object"
  local w version; version="$(val "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")"
  for w in $CT_WORKERS; do
    # ... created on every worker, with the same version, schema and roles ...
    expect_eq "$(on_worker "$w" "SELECT extversion FROM pg_extension WHERE extname = 'pg_retention'")" "$version" "extension on worker $w"
    expect_eq "$(on_worker "$w" "SELECT count(*) FROM pg_roles WHERE rolname IN ('retention_admin', 'retention_auditor')")" 2 "roles on worker $w"
    # ... whose catalogue stays empty: policies and runs are the coordinator's.
    expect_eq "$(on_worker "$w" "SELECT (SELECT count(*) FROM retention.policies) || '/' || (SELECT count(*) FROM retention.run_log)
                                   || '/' || (SELECT count(*) FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
                                              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'retention')")" \
      "0/0/0" "catalogue on worker $w"
  done
}

# A worker lost in the middle of a run: the policy ends with the error on
# record (failed, recorded in a transaction of its own since Citus cannot
# commit the one whose batch lost the node; or interrupted, when the node
# went while a batch committed), every batch committed before stays done,
# and the next run after the worker is back finishes the rest.
test_citus_a_worker_lost_mid_run_fails_the_policy_and_the_next_run_finishes() {
  citus_db worker_lost
  q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE big (id bigint PRIMARY KEY, at timestamptz NOT NULL);
SELECT create_distributed_table('big', 'id', shard_count => 8);
INSERT INTO big SELECT g, now() - interval '2 years' FROM generate_series(1, 200000) g;
SELECT retention.create_policy('big', 'big', 'at', interval '1 year', batch_size => 500, batch_target => NULL);
SQL
  local worker; worker="${CT_WORKERS##* }"
  local wdir; wdir="$(bash "$here/scripts/citus.sh" datadir)/worker-$worker"
  local pgctl; pgctl="$(dirname "$(pg_config_of "$CT_MAJOR")")/pg_ctl"
  as_postgres() { if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi; }
  q -c "CALL retention.run('big')" >"$IT_TMP/run.out" 2>&1 &
  local pid=$!
  wait_for "SELECT coalesce((SELECT rows_purged >= 5000 FROM retention.runs WHERE policy = 'big'), false)" 60 || return 1
  as_postgres "$pgctl" -D "$wdir" -m immediate stop >/dev/null
  wait "$pid" || true
  as_postgres "$pgctl" -D "$wdir" -l "$wdir/server.log" -w -t 60 start >/dev/null
  local purged; purged="$(val "SELECT rows_purged FROM retention.run_log WHERE policy = 'big'")"
  awk -v n="$purged" 'BEGIN { exit !(n >= 5000 && n < 200000) }' || fail "rows purged before the loss: $purged"
  expect_eq "$(val "SELECT count(*) FROM big")" "$((200000 - purged))" "every batch committed before the loss stays done"
  q -c "CALL retention.run('big')" >/dev/null 2>&1
  # Where the node went while a batch ran, the batch fails and the policy
  # is logged failed, with 08006 (the connection failed) or XX000 (Citus's
  # error for a lost node). Where it went while the batch committed, the
  # COMMIT itself fails: the calling session gets the error, and the next
  # run closes the entry as interrupted, saying so.
  local outcome; outcome="$(val "SELECT CASE WHEN status = 'failed' AND error_code IN ('08006', 'XX000') AND error <> '' THEN 'failed, error recorded'
                                              WHEN status = 'interrupted' AND error LIKE '%could not commit%' THEN 'interrupted, error recorded'
                                              ELSE status || ' ' || coalesce(error_code, '-') || ' ' || coalesce(error, '-') END
                                    FROM retention.run_log WHERE policy = 'big' ORDER BY id LIMIT 1")"
  case "$outcome" in
    "failed, error recorded") ;;
    "interrupted, error recorded") grep -q "ERROR" "$IT_TMP/run.out" || fail "the interrupted run's session got no error" ;;
    *) fail "the lost worker's run: $outcome" ;;
  esac
  expect_eq "$(val "SELECT string_agg(rows_purged::text, ', ' ORDER BY id) || ' ' || (SELECT status FROM retention.run_log WHERE policy = 'big' ORDER BY id DESC LIMIT 1)
                      FROM retention.run_log WHERE policy = 'big'")" \
    "$purged, $((200000 - purged)) succeeded" "the next run finishes"
  expect_eq "$(val "SELECT count(*) FROM big")" 0 "nothing left"
}

# Large distributed tables are walked on all shards at once, one statement
# per batch that Citus runs on every shard in parallel: scattered due rows in
# ranges of pages (each covering the same pages of every shard), rows in the
# order of their clock in windows of the clock, and a table without a key
# (which cannot be batched by key) too. Exactly the due rows go; an operator
# who is not a superuser runs the policies on an application role's tables;
# the preview counts the due rows per shard and per node.
test_citus_distributed_tables_are_walked_on_all_shards_at_once() {
  citus_db walk
  q >/dev/null <<'SQL'
SET citus.shard_count = 8;
CREATE TABLE w_events (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, payload text, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('w_events', 'tenant');
INSERT INTO w_events
SELECT g % 101, g, CASE WHEN g % 10 = 0 THEN now() - interval '400 days' ELSE now() - interval '10 days' END, repeat('x', 60)
  FROM generate_series(1, 60000) g;
CREATE INDEX ON w_events (at);
-- Rows appended in the order of their clock: an index scan finds the due
-- rows together, and the walk goes through windows of the clock.
CREATE TABLE w_stream (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, payload text, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('w_stream', 'tenant');
INSERT INTO w_stream SELECT g % 101, g, now() - interval '500 days' + g * interval '10 minutes', repeat('y', 60)
  FROM generate_series(1, 60000) g;
-- Two rows years older: a gap the windows cross by jumping to the next due row.
INSERT INTO w_stream VALUES (1, 60001, now() - interval '6 years', 'old'), (2, 60002, now() - interval '5 years', 'old');
-- A clock at -infinity (due): there is no first window to start from, and
-- the table is walked in page ranges instead.
CREATE TABLE w_inf (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, payload text, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('w_inf', 'tenant');
INSERT INTO w_inf SELECT g % 101, g, now() - interval '500 days' + g * interval '10 minutes', repeat('z', 60)
  FROM generate_series(1, 30000) g;
INSERT INTO w_inf VALUES (3, 30001, '-infinity', 'inf');
CREATE INDEX ON w_inf (at);
CREATE INDEX ON w_stream (at);
CREATE TABLE w_log (tenant int NOT NULL, at timestamptz NOT NULL, line text);
SELECT create_distributed_table('w_log', 'tenant');
INSERT INTO w_log SELECT g % 13, CASE WHEN g % 3 = 0 THEN now() - interval '400 days' ELSE now() END, 'line ' || g
  FROM generate_series(1, 3000) g;
VACUUM ANALYZE w_events;
VACUUM ANALYZE w_stream;
VACUUM ANALYZE w_inf;
VACUUM ANALYZE w_log;
-- The tables belong to an application role; an operator who is not a
-- superuser declares the policies and runs them (batches run as the owner).
CREATE ROLE ct_walk_app LOGIN;
CREATE ROLE ct_walk_ops LOGIN IN ROLE retention_admin;
ALTER TABLE w_events OWNER TO ct_walk_app;
ALTER TABLE w_stream OWNER TO ct_walk_app;
ALTER TABLE w_log OWNER TO ct_walk_app;
ALTER TABLE w_inf OWNER TO ct_walk_app;
GRANT SELECT, UPDATE, DELETE ON w_events, w_stream, w_log, w_inf TO ct_walk_ops;
SET ROLE ct_walk_ops;
-- A small time budget: the walk takes several ranges.
SELECT retention.create_policy('w_events', 'w_events', 'at', interval '365 days', batch_target => interval '5 ms');
SELECT retention.create_policy('w_log', 'w_log', 'at', interval '365 days');
SELECT retention.create_policy('w_stream', 'w_stream', 'at', interval '365 days', batch_target => interval '5 ms');
SELECT retention.create_policy('w_inf', 'w_inf', 'at', interval '365 days');
SQL
  # The preview counts the due rows of each shard and node.
  local shards nodes
  shards="$(val "SELECT count(*) || ' ' || sum(n) FROM (SELECT count(*) AS n FROM w_events WHERE at < now() - interval '1 year' GROUP BY tenant % 1, get_shard_id_for_distribution_column('w_events', tenant)) s")"
  expect_eq "$(val "SELECT note ~ '^due rows by shard: 8 of 8 shards hold some, from [0-9]+ to [0-9]+ each; by node: 127\.0\.0\.1:[0-9]+ [0-9]+, 127\.0\.0\.1:[0-9]+ [0-9]+; ' FROM retention.preview('w_events')")" t \
    "preview: $(val "SELECT note FROM retention.preview('w_events')")"
  nodes="$(val "SELECT sum(m[1]::int8) FROM retention.preview('w_events') p, regexp_matches(p.note, 'by node: [^ ]+ ([0-9]+), [^ ]+ ([0-9]+);') r, LATERAL (SELECT ARRAY[r[1]::int8 + r[2]::int8]) a(m)")"
  expect_eq "$shards $nodes" "8 6000 6000" "due rows per shard and per node"
  local stream_due inf_due
  stream_due="$(val "SELECT count(*) FROM w_stream WHERE at < now() - interval '365 days'")"
  inf_due="$(val "SELECT count(*) FROM w_inf WHERE at < now() - interval '365 days'")"
  q -c "SET ROLE ct_walk_ops" -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT string_agg(policy || ' ' || status || ' ' || rows_purged, ', ' ORDER BY policy) FROM retention.runs")" \
    "w_events succeeded 6000, w_inf succeeded $inf_due, w_log succeeded 1000, w_stream succeeded $stream_due" "runs"
  expect_eq "$(val "SELECT count(*) FILTER (WHERE at < now() - interval '1 year') || ' ' || count(*) FROM w_inf")" "0 $((30001 - inf_due))" "w_inf after the run"
  expect_eq "$(val "SELECT count(*) || ' ' || count(*) FILTER (WHERE id % 10 = 0) || ' ' || bool_and(at > now() - interval '1 year') FROM w_events")" \
    "54000 0 true" "w_events after the run"
  expect_eq "$(val "SELECT count(*) || ' ' || count(*) FILTER (WHERE at < now() - interval '1 year') FROM w_log")" "2000 0" "w_log after the run"
  expect_eq "$(val "SELECT note LIKE 'the purge stage walked pages 0 to % of each of the table''s 8 shards in ranges%' FROM retention.runs WHERE policy = 'w_events'")" t \
    "w_events walked: $(val "SELECT note FROM retention.runs WHERE policy = 'w_events'")"
  expect_eq "$(val "SELECT batches > 2 FROM retention.runs WHERE policy = 'w_events'")" t \
    "several ranges: $(val "SELECT batches FROM retention.runs WHERE policy = 'w_events'")"
  expect_eq "$(val "SELECT note LIKE 'the purge stage walked pages 0 to % of each of the table''s 8 shards in ranges%' FROM retention.runs WHERE policy = 'w_log'")" t \
    "w_log walked: $(val "SELECT note FROM retention.runs WHERE policy = 'w_log'")"
  expect_eq "$(val "SELECT count(*) FILTER (WHERE at < now() - interval '1 year') || ' ' || count(*) FROM w_stream")" "0 $((60002 - stream_due))" "w_stream after the run"
  expect_eq "$(val "SELECT note LIKE 'the purge stage went through the due rows of the table''s 8 shards in % windows of the clock%' AND batches > 2 FROM retention.runs WHERE policy = 'w_stream'")" t \
    "w_stream in windows of the clock: $(val "SELECT batches || ' batches: ' || note FROM retention.runs WHERE policy = 'w_stream'")"
  # On the workers' shards too: no due row left anywhere.
  local port left=0
  for port in $CT_WORKERS; do
    left=$((left + $(on_worker "$port" "SELECT coalesce(sum(n), 0) FROM (SELECT (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s WHERE at < now() - interval ''1 year''', c.oid::regclass), false, false, '')))[1]::text::int AS n FROM pg_class c WHERE c.relname ~ '^w_(events|log|stream|inf)_[0-9]+\$' AND c.relkind = 'r') s")))
  done
  expect_eq "$left" 0 "due rows left on the workers' shards"
}

# An application that holds a due row locked is neither waited for nor
# disturbed: the range that meets the lock is rolled back and split until
# only that row's position (its page and line on every shard) is left for
# the next run. A table small enough for batches by key goes on in page
# ranges after its batch met the lock. The application's transaction then
# commits, and the next run removes what was left.
test_citus_locked_rows_are_left_for_the_next_run_not_waited_for() {
  citus_db locks
  q >/dev/null <<'SQL'
SET citus.shard_count = 4;
CREATE TABLE l_events (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, payload text, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('l_events', 'tenant');
INSERT INTO l_events
SELECT g % 31, g, CASE WHEN g % 4 = 0 THEN now() - interval '400 days' ELSE now() - interval '10 days' END, repeat('x', 60)
  FROM generate_series(1, 40000) g;
CREATE INDEX ON l_events (at);
-- Rows in the order of their clock: walked in windows of the clock, which a
-- locked row narrows down first.
CREATE TABLE l_stream (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, payload text, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('l_stream', 'tenant');
INSERT INTO l_stream SELECT g % 31, g, now() - interval '500 days' + g * interval '10 minutes', repeat('y', 60)
  FROM generate_series(1, 40000) g;
CREATE INDEX ON l_stream (at);
CREATE TABLE l_small (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('l_small', 'tenant');
INSERT INTO l_small SELECT g % 31, g, CASE WHEN g % 2 = 0 THEN now() - interval '400 days' ELSE now() END FROM generate_series(1, 400) g;
VACUUM ANALYZE l_events;
VACUUM ANALYZE l_stream;
VACUUM ANALYZE l_small;
-- Were the run to wait for the lock, it would fail after 20 s.
SELECT retention.create_policy('l_events', 'l_events', 'at', interval '365 days', statement_timeout => interval '20 s');
SELECT retention.create_policy('l_small', 'l_small', 'at', interval '365 days', statement_timeout => interval '20 s');
SELECT retention.create_policy('l_stream', 'l_stream', 'at', interval '365 days', statement_timeout => interval '20 s');
SQL
  local stream_due
  stream_due="$(val "SELECT count(*) FROM l_stream WHERE at < now() - interval '365 days'")"
  open_session app
  say app "BEGIN;"
  say app "SELECT 'locked ' || count(*) FROM (SELECT id FROM l_events WHERE tenant = 1 AND id = 4000 FOR UPDATE) a, (SELECT id FROM l_small WHERE tenant = 14 AND id = 200 FOR UPDATE) b, (SELECT id FROM l_stream WHERE tenant = 24 AND id = 3000 FOR UPDATE) c;"
  # The row locks are taken on the workers: the session says when it has them.
  local i=0
  until grep -q 'locked 1' <(session_output app); do
    sleep 0.1; i=$((i + 1))
    ((i < 100)) || { fail "the application did not lock its rows: $(session_output app)"; return 1; }
  done
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT string_agg(policy || ' ' || status || ' ' || coalesce(error_code, '-'), ', ' ORDER BY policy) FROM retention.runs")" \
    "l_events succeeded -, l_small succeeded -, l_stream succeeded -" "runs while a row is locked"
  # The locked rows stay; of the other due rows only those at the same
  # position of another shard may stay with them.
  expect_eq "$(val "SELECT count(*) FROM l_events WHERE tenant = 1 AND id = 4000")" 1 "locked row of l_events"
  expect_eq "$(val "SELECT count(*) FROM l_small WHERE tenant = 14 AND id = 200")" 1 "locked row of l_small"
  expect_eq "$(val "SELECT count(*) BETWEEN 1 AND 4 FROM l_events WHERE at < now() - interval '1 year'")" t \
    "due rows left in l_events: $(val "SELECT count(*) FROM l_events WHERE at < now() - interval '1 year'") (at most one per shard)"
  expect_eq "$(val "SELECT count(*) BETWEEN 1 AND 4 FROM l_small WHERE at < now() - interval '1 year'")" t \
    "due rows left in l_small: $(val "SELECT count(*) FROM l_small WHERE at < now() - interval '1 year'") (at most one per shard)"
  expect_eq "$(val "SELECT note LIKE '%leaving % narrowed-down parts for the next run: rows in them were locked by other sessions%' FROM retention.runs WHERE policy = 'l_events'")" t \
    "l_events note: $(val "SELECT note FROM retention.runs WHERE policy = 'l_events'")"
  expect_eq "$(val "SELECT due_left > 0 FROM retention.runs WHERE policy = 'l_small'")" t "l_small counts what it left"
  # In windows of the clock too, the locked row's position (on every shard,
  # within the window) is left.
  expect_eq "$(val "SELECT count(*) BETWEEN 1 AND 4 AND bool_or(tenant = 24 AND id = 3000) FROM l_stream WHERE at < now() - interval '1 year'")" t \
    "due rows left in l_stream: $(val "SELECT count(*) FROM l_stream WHERE at < now() - interval '1 year'") (at most one per shard)"
  expect_eq "$(val "SELECT rows_purged = $stream_due - (SELECT count(*) FROM l_stream WHERE at < now() - interval '1 year')
                       AND note LIKE '%windows of the clock, leaving 1 narrowed-down parts for the next run%' FROM retention.runs WHERE policy = 'l_stream'")" t \
    "l_stream: $(val "SELECT rows_purged || ' rows: ' || note FROM retention.runs WHERE policy = 'l_stream'")"
  # The application was not disturbed: its transaction goes on and commits.
  say app "UPDATE l_events SET payload = 'kept' WHERE tenant = 1 AND id = 4000;"
  say app "COMMIT;"
  close_session app
  if grep -q ERROR <(session_output app); then fail "the application saw an error: $(session_output app)"; fi
  expect_eq "$(val "SELECT payload FROM l_events WHERE tenant = 1 AND id = 4000")" kept "the application's update"
  q -c "CALL retention.run()" >/dev/null 2>&1
  expect_eq "$(val "SELECT (SELECT count(*) FROM l_events WHERE at < now() - interval '1 year') + (SELECT count(*) FROM l_small WHERE at < now() - interval '1 year')
                             + (SELECT count(*) FROM l_stream WHERE at < now() - interval '1 year')")" 0 "due rows after the next run"
  expect_eq "$(val "SELECT (SELECT count(*) FROM l_events) || ' ' || (SELECT count(*) FROM l_small)")" "30000 200" "rows kept"
  # A lock on a shard itself (DDL, a shard move) is not a locked row: the
  # batch fails as a lock timeout and is retried, instead of leaving the
  # whole table for the next run as "locked rows".
  val "UPDATE l_events SET at = now() - interval '400 days' WHERE id % 4 = 1" >/dev/null
  local shard port
  read -r shard port < <(val "SELECT shard_name('l_events'::regclass, s.shardid) || ' ' || n.nodeport FROM pg_dist_shard s
                                JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
                               WHERE s.logicalrelid = 'l_events'::regclass ORDER BY s.shardid LIMIT 1")
  local dir; dir="$(mktemp -d)"; mkfifo "$dir/in"
  psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d "$DB" <"$dir/in" >"$dir/out" 2>&1 &
  local holder=$! fd
  exec {fd}>"$dir/in"
  printf '%s\n' "SET citus.override_table_visibility = off;" "SET citus.enable_manual_changes_to_shards = on;" "BEGIN;" "LOCK TABLE $shard IN SHARE MODE;" "SELECT 'held';" >&"$fd"
  local i=0
  until grep -q held "$dir/out"; do
    sleep 0.1; i=$((i + 1))
    ((i < 100)) || { fail "the shard lock was not taken: $(cat "$dir/out")"; return 1; }
  done
  q -c "CALL retention.run('l_events')" >/dev/null 2>&1
  printf '%s\n' "COMMIT;" >&"$fd"
  exec {fd}>&-
  wait "$holder" 2>/dev/null || true
  expect_eq "$(val "SELECT status || ' ' || coalesce(error_code, '-') || ' ' || rows_purged FROM retention.runs WHERE policy = 'l_events' ORDER BY id DESC LIMIT 1")" \
    "failed 55P03 0" "a run while a shard is locked"
  q -c "CALL retention.run('l_events')" >/dev/null 2>&1
  expect_eq "$(val "SELECT count(*) FROM l_events WHERE at < now() - interval '1 year'")" 0 "due rows after the shard lock"
}
