#!/usr/bin/env bash
# `make run`: builds and installs pg_retention, starts the demo cluster (with
# pg_cron), loads the demo shop and its policies, shows the preview, runs one
# cycle and shows the run log. Leaves the cluster running. Safe to repeat.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
port="$(cluster_port demo)"
db="$(cfg_str demo database)"

bash scripts/install.sh
bash scripts/cluster.sh start demo
psql_demo() { psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }

if ! psql -X -tA -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  createdb -h 127.0.0.1 -p "$port" -U postgres "$db"
fi
# pg_cron's launcher starts its work once the database it is configured for
# exists; give it a moment after the first start.
psql_demo -q -c "SET client_min_messages = warning" \
  -c "DROP EXTENSION IF EXISTS pg_retention CASCADE" \
  -c "CREATE EXTENSION IF NOT EXISTS pg_cron" \
  -c "CREATE EXTENSION pg_retention"
echo "[demo] loading the demo shop (6 years of customers, orders, newsletter, tickets, access log)"
psql_demo -q -f demo/shop.sql
psql_demo -q -f demo/policies.sql >/dev/null

echo
echo "== Rows per table before the run"
psql_demo -c "SELECT 'customers' AS table, count(*) FROM shop.customers UNION ALL SELECT 'orders', count(*) FROM shop.orders
              UNION ALL SELECT 'newsletter_signups', count(*) FROM shop.newsletter_signups
              UNION ALL SELECT 'support_tickets', count(*) FROM shop.support_tickets
              UNION ALL SELECT 'web_access_log', count(*) FROM shop.web_access_log"
echo "== Policies"
psql_demo -c "SELECT name, target, clock, purge_after, filter, legal_basis FROM retention.policies ORDER BY id"
echo "== Preview: what is due now (nothing changed yet)"
psql_demo -c "SELECT policy, action, due_rows, clock_indexed, note FROM retention.preview()"
echo "== CALL retention.run()"
psql_demo -c "CALL retention.run()"
echo "== Run log"
psql_demo -c "SELECT policy, status, rows_purged, rows_anonymised, rows_marked, batches, round(extract(epoch FROM duration) * 1000) AS ms, error
                FROM retention.runs WHERE run_id = (SELECT max(run_id) FROM retention.runs) ORDER BY policy"
echo "== Rows per table after the run"
psql_demo -c "SELECT 'customers' AS table, count(*) FROM shop.customers UNION ALL SELECT 'orders', count(*) FROM shop.orders
              UNION ALL SELECT 'newsletter_signups', count(*) FROM shop.newsletter_signups
              UNION ALL SELECT 'support_tickets', count(*) FROM shop.support_tickets
              UNION ALL SELECT 'web_access_log', count(*) FROM shop.web_access_log"
echo "== Closed customer accounts after the run (restricted rows are hidden from ordinary roles)"
psql_demo -c "SELECT count(*) FILTER (WHERE closed_at IS NOT NULL AND restricted_at IS NULL) AS closed_recently,
                     count(*) FILTER (WHERE restricted_at IS NOT NULL AND anonymised_at IS NULL) AS restricted,
                     count(*) FILTER (WHERE anonymised_at IS NOT NULL) AS anonymised
                FROM shop.customers"
echo "== Erasure request of customer 42 (processed by the run): the certificate"
psql_demo -At -c "SELECT retention.erasure_certificate_text(id) FROM retention.requests ORDER BY id LIMIT 1"
psql_demo -c "SELECT ok AS audit_chain_ok, entries FROM retention.verify_audit()"
echo "== Scheduled with pg_cron"
psql_demo -c "SELECT jobid, jobname, schedule, command, database FROM cron.job"
echo
echo "The demo cluster is running. Connect with:"
echo "  psql -h 127.0.0.1 -p $port -U postgres $db"
echo "Stop it with: make stop"
