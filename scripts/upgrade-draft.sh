#!/usr/bin/env bash
# Maintainer tool: drafts the function, view and grant part of an update
# script from the current install script.
#   scripts/upgrade-draft.sh > draft.sql
# Every function, procedure and view of the current version, as the install
# script creates it, with CREATE turned into CREATE OR REPLACE, then the
# comments and grants. The tables' changes, the DROPs of what is gone or
# cannot be replaced in place (a changed result type or argument name) and
# the re-validation call are written by hand around it; the upgrade test
# (tests/integration/t_upgrade.sh) compares the result with a fresh install.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
script="$("$PG_CONFIG" --sharedir)/extension/pg_retention--$version.sql"
[[ -f "$script" ]] || { echo "install pg_retention $version first (make install)" >&2; exit 1; }
# Blocks of the generated script are delimited by "connected objects"
# comments; the bootstrap block (sql/schema.sql: tables, roles) is left out.
awk '
  /^\/\* <begin connected objects> \*\/$/ { block = ""; inblock = 1; next }
  /^\/\* <\/end connected objects> \*\/$/ {
    if (block !~ /(^|\n)-- bootstrap\n/ && block !~ /CREATE SCHEMA/) printf "%s\n", block
    inblock = 0; next
  }
  # Source locations change with every edit; the Rust path stays.
  inblock && /^-- src\/.*:[0-9]+$/ { next }
  inblock {
    line = $0
    sub(/^CREATE +FUNCTION /, "CREATE OR REPLACE FUNCTION ", line)
    sub(/^CREATE +PROCEDURE /, "CREATE OR REPLACE PROCEDURE ", line)
    sub(/^CREATE +VIEW /, "CREATE OR REPLACE VIEW ", line)
    block = block line "\n"
  }
' "$script"
