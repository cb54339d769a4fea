#!/usr/bin/env bash
# Runs every tests/integration/t_*.sh against the running test cluster and
# prints "N passed, M failed". Each test file defines functions named test_*.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$here/scripts/config.sh"
export CLUSTER_PORT="${CLUSTER_PORT:-$(cluster_port test)}"
export IT_SERVER_LOG="${IT_SERVER_LOG:-$(bash "$here/scripts/cluster.sh" datadir test)/server.log}"
. "$here/tests/integration/lib.sh"

passed=0; failed=0; skipped=0; failures=(); skips=()
only="${1:-}"
# A file may define setup_file and teardown_file: run once before its first
# and after its last selected test (e.g. to start and stop a cluster of its
# own), each in a subshell, timed on a line of its own.
file_hook() { # file hook
  declare -F "$2" >/dev/null || return 0
  local start rc; start=$(date +%s%N)
  ( set -e; "$2" ); rc=$?
  printf '  %-60s %s (%d ms)\n' "$(basename "$1" .sh)::$2" "$( ((rc == 0)) && echo done || echo "exit $rc")" \
    $(( ($(date +%s%N) - start) / 1000000 ))
}
for file in "$here"/tests/integration/t_*.sh; do
  unset -f setup_file teardown_file
  # shellcheck source=/dev/null
  . "$file"
  selected=()
  for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
    if [[ -n "$only" && "$t" != *"$only"* ]]; then unset -f "$t"; else selected+=("$t"); fi
  done
  ((${#selected[@]})) && file_hook "$file" setup_file
  for t in "${selected[@]}"; do
    start=$(date +%s%N)
    # Not inside 'if': errexit must stay in force in the test's subshell.
    ( set -e; "$t" ) 3>"$IT_TMP/skip"; rc=$?
    if ((rc == 0)); then
      passed=$((passed + 1)); result=ok
    elif ((rc == 77)); then
      skipped=$((skipped + 1)); result="skipped: $(cat "$IT_TMP/skip")"; skips+=("$t: $(cat "$IT_TMP/skip")")
    else
      failed=$((failed + 1)); result=FAILED; failures+=("$t")
    fi
    printf '  %-60s %s (%d ms)\n' "$(basename "$file" .sh)::$t" "$result" $(( ($(date +%s%N) - start) / 1000000 ))
    unset -f "$t"
  done
  ((${#selected[@]})) && file_hook "$file" teardown_file
  unset -f setup_file teardown_file
done
echo
if ((failed)); then printf 'failed: %s\n' "${failures[@]}"; fi
if ((skipped)); then printf 'skipped: %s\n' "${skips[@]}"; fi
echo "integration: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
