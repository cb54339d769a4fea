#!/usr/bin/env bash
# Builds pg_retention and installs it into the PostgreSQL named in pgrx.toml.
#   scripts/install.sh [--release]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
echo "[install] building and installing pg_retention into $(dirname "$PG_CONFIG")/.. ${1:-}"
cargo pgrx install --pg-config "$PG_CONFIG" ${1:-} 2>&1 | grep -E "^(error|warning)|Finished installing" || true
test -f "$("$PG_CONFIG" --sharedir)/extension/pg_retention.control" || { echo "install failed" >&2; exit 1; }
