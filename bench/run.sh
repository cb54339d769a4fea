#!/usr/bin/env bash
# `make bench`: builds a release build, starts the demo cluster and runs the
# benchmark scripts in bench/. Not part of `make test`.
#   make bench                                   default scale (2M rows), a few minutes
#   BENCH_ARGS="--rows 10000000" make bench      the 10M-row scale
#   --batch N     fixed batches of N rows instead of create_policy's defaults
#   --repeats N   run the in-order purge layouts N times, report the median
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
rows=2000000; batch=default; repeats=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash scripts/install.sh --release
bash scripts/cluster.sh start demo
port="$(cluster_port demo)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m), PostgreSQL $("$PG_CONFIG" --version)"
echo "command: make bench BENCH_ARGS=\"--rows $rows --batch $batch --repeats $repeats\""
# Policies with create_policy's defaults (batches sized to 100 ms), or with
# fixed batches of N rows (--batch N).
if [[ "$batch" == default ]]; then
  opts=""; label="default settings"
else
  [[ "$batch" =~ ^[0-9]+$ ]] || { echo "--batch: default or a number of rows" >&2; exit 2; }
  opts=", batch_size => $batch, batch_target => NULL"; label="batches of $batch"
fi
psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -v rows="$rows" -v opts="$opts" -v label="$label" -f bench/purge_quick.sql
psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -v rows="$rows" -f bench/mask.sql
psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -v rows="$rows" -v opts="$opts" -v label="$label" -v repeats="$repeats" -f bench/engine.sql
psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -v rows="$rows" -f bench/erasure.sql
psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -v rows="$rows" -f bench/datamap.sql
# Citus (skipped where citus.so is not installed): its own cluster, see bench/citus.sh.
bash bench/citus.sh
