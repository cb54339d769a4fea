#!/usr/bin/env bash
# Runs the pg_regress suite (tests/pg_regress) against the running test
# cluster. The extension must already be installed.
#   scripts/regress.sh            compare with expected output
#   scripts/regress.sh --update   accept current output as expected
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
port="${CLUSTER_PORT:-$(cluster_port test)}"
pg_regress="$("$PG_CONFIG" --pgxs | xargs dirname)/../test/regress/pg_regress"
out="$here/target/regress"
rm -rf "$out"; mkdir -p "$out"
status=0
"$pg_regress" \
  --host=127.0.0.1 --port="$port" --user=postgres \
  --inputdir="$here/tests/pg_regress" --outputdir="$out" \
  --schedule="${SCHEDULE:-$here/tests/pg_regress/schedule}" \
  --dbname=pg_retention_regress \
  --bindir="$PG_BIN" || status=$?
if [[ "${1:-}" == "--update" ]]; then
  for f in "$out"/results/*.out; do
    cp "$f" "$here/tests/pg_regress/expected/"
  done
  echo "expected output updated from $out/results"
  exit 0
fi
if [[ $status -ne 0 && -f "$out/regression.diffs" ]]; then
  cat "$out/regression.diffs"
fi
exit $status
