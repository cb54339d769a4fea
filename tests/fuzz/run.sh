#!/usr/bin/env bash
# Randomized oracle test (see oracle.sql): CASES random cases from SEED on.
#   tests/fuzz/run.sh [CASES] [SEED]
# Runs against the test cluster (CLUSTER_PORT, default from pgrx.toml),
# which must be running with the extension installed (make fuzz does both).
# Prints every failing case with the seed that reproduces it, then
# "fuzz: N passed, M failed".
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$here/scripts/config.sh"
cases="${1:-20}"
seed="${2:-1}"
port="${CLUSTER_PORT:-$(cluster_port test)}"
db=pg_retention_fuzz
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null || exit 1
q -c "CREATE EXTENSION pg_retention" -f "$here/tests/fuzz/oracle.sql" >/dev/null || exit 1
passed=0; failed=0
for ((i = 0; i < cases; i++)); do
  s=$((seed + i))
  if ! desc="$(q -c "SET client_min_messages = warning" -c "SELECT fuzz.setup($s)" 2>&1)"; then
    echo "  case $s: setup failed: $desc"; failed=$((failed + 1)); continue
  fi
  run_out="$(q -c "SET client_min_messages = warning" -c "CALL retention.run()" 2>&1)"
  diffs="$(q -c "SELECT * FROM fuzz.check()" 2>&1)"
  if [[ -n "$diffs" || -n "$run_out" ]]; then
    failed=$((failed + 1))
    echo "  FAILED $desc"
    [[ -n "$run_out" ]] && echo "$run_out" | head -5 | sed 's/^/    run: /'
    echo "$diffs" | head -10 | sed 's/^/    /'
    echo "    reproduce: make fuzz CASES=1 SEED=$s"
  else
    passed=$((passed + 1))
  fi
  q -c "SET client_min_messages = warning" -c "SELECT fuzz.teardown()" >/dev/null 2>&1
done
echo "fuzz: $passed passed, $failed failed (seeds $seed to $((seed + cases - 1)))"
((failed == 0))
