#!/usr/bin/env bash
# Builds pg_retention and installs it into the PostgreSQL named in pgrx.toml.
#   scripts/install.sh [--release]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
echo "[install] building and installing pg_retention into $(dirname "$PG_CONFIG")/.. ${1:-}"
log="$here/target/install.log"; mkdir -p "$here/target"
if ! cargo pgrx install --pg-config "$PG_CONFIG" ${1:-} >"$log" 2>&1; then
  grep -vE '^\s+(at |[0-9]+: )' "$log" | tail -30 >&2
  echo "install failed (full output: $log)" >&2; exit 1
fi
grep -E "^(error|warning)|Finished installing" "$log" || true
