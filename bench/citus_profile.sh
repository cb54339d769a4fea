#!/usr/bin/env bash
# Profile of one round of bench/citus.sql on the Citus cluster of pgrx.toml
# [citus]: logs every statement on the first worker while the round runs and
# sums their durations by kind (the shards' DELETEs of the run, of the plain
# DELETE and of the batches by key; first statements of connections; the
# two-phase commit). Durations overlap (statements run side by side).
#   bash bench/citus_profile.sh [--rows N] [--shards N] [--layout scattered|append]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
rows=1000000; shards=32; layout=scattered
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --layout) layout="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash scripts/citus.sh start >/dev/null
bash scripts/citus.sh createdb pg_retention_bench_citus
q() { bash scripts/citus.sh psql -d pg_retention_bench_citus -v ON_ERROR_STOP=1 "$@"; }
q -q -c "CREATE EXTENSION pg_retention"
worker="$(cfg_list citus worker_ports | awk '{print $1}')"
worker="${CITUS_WORKER_PORTS:-$worker}"; worker="${worker%% *}"
log="$(bash scripts/citus.sh datadir)/worker-$worker/server.log"
w() { psql -X -q -h 127.0.0.1 -p "$worker" -U postgres -d postgres "$@"; }
start=$(($(wc -c <"$log") + 1))
w -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
trap 'w -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
q -q -v rows="$rows" -v shards="$shards" -v round=1 -v layout="$layout" -f bench/citus.sql >/dev/null 2>&1
echo "--- Citus profile: $rows rows over $shards shards, $layout; statements on the worker on port $worker"
echo "command: bash bench/citus_profile.sh --rows $rows --shards $shards --layout $layout"
q -A -t -c "SELECT 'the run: ' || batches || ' batches, ' || rows_purged || ' rows; ' || note FROM retention.runs ORDER BY id DESC LIMIT 1"
tail -c "+$start" "$log" | grep -a 'duration:' \
  | sed -E 's/.* duration: ([0-9.]+) ms +(statement|execute[^:]*): (.*)/\1|\3/' \
  | awk -F'|' '
      $2 ~ /^DELETE FROM [^ ]*c_run_/     { k = "the run: the shards'"'"' DELETE statements" }
      $2 ~ /^DELETE FROM [^ ]*c_delete_/  { k = "one DELETE: the shards'"'"' DELETE statements" }
      $2 ~ /^(WITH|DELETE).*c_keys_/      { k = "batches by key: the shards'"'"' statements" }
      $2 ~ /^BEGIN TRANSACTION/           { k = "first statement of a connection (BEGIN ...)" }
      $2 ~ /^(PREPARE TRANSACTION|COMMIT PREPARED)/ { k = "PREPARE TRANSACTION + COMMIT PREPARED" }
      k != "" { s[k] += $1; n[k]++; k = "" }
      END { for (k in s) printf "%10.1f ms %6d statements  %s\n", s[k], n[k], k }' | sort -k5
