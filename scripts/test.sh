#!/usr/bin/env bash
# `make test`: every test on every PostgreSQL major of pgrx.toml ([postgres]
# majors), or on one with PG=NN. Prints per major what passed, failed and was
# skipped (with why), then the total.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
mkdir -p target
majors="${PG:-$PG_MAJORS}"
passed=0; failed=0; skipped=0; summary=()
for m in $majors; do
  pgc="$(pg_config_of "$m")"
  if [[ ! -x "$pgc" ]]; then
    summary+=("PostgreSQL $m: skipped entirely: $pgc is not installed (scripts/ensure-toolchain.sh installs it)")
    skipped=$((skipped + 1)); continue
  fi
  log="target/test-pg$m.log"
  PG="$m" bash scripts/test-major.sh 2>&1 | tee "$log"
  line="$(grep -E '^total: ' "$log" | tail -1)"
  if [[ -z "$line" ]]; then
    summary+=("PostgreSQL $m: did not finish (see $log)"); failed=$((failed + 1)); continue
  fi
  p="$(sed -E 's/^total: ([0-9]+) passed.*/\1/' <<<"$line")"
  f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
  s="$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
  summary+=("PostgreSQL $m ($("$pgc" --version)): ${line#total: }")
  while IFS= read -r why; do summary+=("    skipped $why"); done < <(sed -n 's/^skipped: //p' "$log")
done
echo
printf '%s\n' "${summary[@]}"
echo "total: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
