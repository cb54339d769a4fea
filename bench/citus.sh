#!/usr/bin/env bash
# The Citus benchmark (bench/citus.sql), part of `make bench`: starts the
# Citus cluster of pgrx.toml [citus] (scripts/citus.sh), runs :repeats
# rounds on a fresh database and prints each contender's median, the ratios
# to the plain DELETE and the longest batch. Skipped where citus.so is not
# installed for [citus] major. Options: --rows N (1000000), --shards N (32),
# --repeats N (3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
rows=1000000; shards=32; repeats=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
major="$(cfg_str citus major)"
libdir="$("$(pg_config_of "$major")" --pkglibdir 2>/dev/null || true)"
if [[ ! -f "$libdir/citus.so" ]]; then
  echo "--- Citus: skipped (citus.so is not installed for PostgreSQL $major)"
  exit 0
fi
bash scripts/citus.sh start >/dev/null
bash scripts/citus.sh createdb pg_retention_bench_citus
q() { bash scripts/citus.sh psql -d pg_retention_bench_citus -v ON_ERROR_STOP=1 "$@"; }
q -q -c "CREATE EXTENSION pg_retention"
echo "--- Citus: $rows rows over $shards shards, 10% due; $repeats rounds"
echo "command: bash bench/citus.sh --rows $rows --shards $shards --repeats $repeats"
mkdir -p target
for round in $(seq 1 "$repeats"); do
  for layout in scattered append; do
    q -q -v rows="$rows" -v shards="$shards" -v round="$round" -v layout="$layout" -f bench/citus.sql \
      >"target/bench-citus-$layout-$round.log" 2>&1
    echo "round $round, $layout: $(q -A -t -c "SELECT 'run: ' || batches || ' batches, ' || rows_purged || ' rows, note: ' || note FROM retention.runs ORDER BY id DESC LIMIT 1")"
  done
done
echo "per round: throughput of the run and of the batches by key against the DELETE of the same round"
q -c "
SELECT r.layout, r.round, round(r.ms, 1) AS run_ms, round(d.ms, 1) AS delete_ms, round(k.ms, 1) AS key_batches_ms,
       round(d.ms / r.ms, 2) AS run_vs_delete, round(d.ms / k.ms, 2) AS key_batches_vs_delete, r.longest_batch_ms
  FROM bench_citus_results r
  JOIN bench_citus_results d ON (d.round, d.layout, d.contender) = (r.round, r.layout, 'delete')
  JOIN bench_citus_results k ON (k.round, k.layout, k.contender) = (r.round, r.layout, 'key batches')
 WHERE r.contender = 'run' ORDER BY r.layout, r.round"
echo "medians of the per-round ratios, and the erasure of one subject across three colocated tables"
q -c "
SELECT r.layout, count(*) AS rounds,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d.ms / r.ms)::numeric, 2) AS run_vs_delete,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d.ms / k.ms)::numeric, 2) AS key_batches_vs_delete,
       max(r.longest_batch_ms) AS longest_batch_ms
  FROM bench_citus_results r
  JOIN bench_citus_results d ON (d.round, d.layout, d.contender) = (r.round, r.layout, 'delete')
  JOIN bench_citus_results k ON (k.round, k.layout, k.contender) = (r.round, r.layout, 'key batches')
 WHERE r.contender = 'run' GROUP BY r.layout ORDER BY r.layout"
q -c "SELECT rows AS rows_erased, round(ms, 1) AS median_ms, round(longest_batch_ms, 1) AS max_ms FROM bench_citus_results WHERE contender LIKE 'erasure%'"
