#!/usr/bin/env bash
# Runs every test on one PostgreSQL major (PG=NN, default the first of
# pgrx.toml): #[pg_test] unit tests, the pg_regress suite, the integration
# tests (real sessions against a throwaway cluster) and the randomized oracle.
# Ends with "total: P passed, F failed, S skipped" (scripts/test.sh sums them).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
mkdir -p target
passed=0; failed=0; skipped=0

section() { printf '\n=== %s ===\n' "$*"; }

section "PostgreSQL $PG_MAJOR: unit tests (cargo pgrx test)"
pgdata=/tmp/pg_retention-pgrx-test-pg$PG_MAJOR
mkdir -p "$pgdata" && chown postgres: "$pgdata"
unit_log=target/unit-tests-pg$PG_MAJOR.log
( unset RUST_BACKTRACE; cargo pgrx test "pg$PG_MAJOR" --runas postgres --pgdata "$pgdata" ) 2>&1 | tee "$unit_log" \
  | grep -E "^test |^test result|panicked|^error" || true
if grep -qE '^test result:' "$unit_log"; then
  p="$(grep -E '^test result:' "$unit_log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')"
  f="$(grep -E '^test result:' "$unit_log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')"
  passed=$((passed + p)); failed=$((failed + f))
else
  echo "unit tests did not run"; failed=$((failed + 1))
fi

section "install"
if ! bash scripts/install.sh; then
  echo "install failed"; echo "total: $passed passed, $((failed + 1)) failed"; exit 1
fi

section "test cluster"
bash scripts/cluster.sh destroy test
bash scripts/cluster.sh start test || { echo "total: $passed passed, $((failed + 1)) failed"; exit 1; }
trap 'bash scripts/cluster.sh stop test >/dev/null 2>&1 || true' EXIT

section "pg_regress"
regress_log=target/regress-pg$PG_MAJOR.log
bash scripts/regress.sh 2>&1 | tee "$regress_log" | grep -E "^(test |ok |not ok|=|[[:space:]]+(All|[0-9]+ of))|^\+|^-" || true
p=$(grep -cE '^(test|ok) .* \.\.\. ok|^ok ' "$regress_log" || true)
f=$(grep -cE '\.\.\. FAILED|^not ok ' "$regress_log" || true)
passed=$((passed + p)); failed=$((failed + f))

section "integration"
int_log=target/integration-pg$PG_MAJOR.log
bash tests/integration/run.sh 2>&1 | tee "$int_log"
if line="$(grep -E '^integration: ' "$int_log" | tail -1)" && [[ -n "$line" ]]; then
  p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"; f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
  s="$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
else
  failed=$((failed + 1))
fi

section "randomized oracle (tests/fuzz, fixed seed)"
fuzz_log=target/fuzz-pg$PG_MAJOR.log
bash tests/fuzz/run.sh "${FUZZ_CASES:-40}" "${FUZZ_SEED:-20261130}" 2>&1 | tee "$fuzz_log" | grep -vE "^\s*$" | tail -20
if line="$(grep -E '^fuzz: ' "$fuzz_log" | tail -1)" && [[ -n "$line" ]]; then
  # One test: every case must pass.
  f="$(sed -E 's/^fuzz: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")"
  if ((f == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
else
  failed=$((failed + 1))
fi

echo
echo "total: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
