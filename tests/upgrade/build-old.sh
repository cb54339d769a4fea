#!/usr/bin/env bash
# Builds an earlier release of pg_retention from this repository's history,
# for the upgrade test: tests/upgrade/build-old.sh VERSION COMMIT
# Prints the directory holding its library (lib/) and install script
# (extension/). Built once into target/upgrade/VERSION and kept there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$here/scripts/config.sh"
version="$1" commit="$2"
out="$here/target/upgrade/$version"
if [[ -f "$out/done" ]]; then echo "$out"; exit 0; fi
git -C "$here" cat-file -e "$commit^{commit}" 2>/dev/null \
  || { echo "commit $commit of release $version is not in this clone's history" >&2; exit 3; }
rm -rf "$out"; mkdir -p "$out/src" "$out/lib" "$out/extension"
git -C "$here" archive "$commit" | tar -x -C "$out/src"
# Its own target directory: the release's sources must not mix with the
# current build's (pgrx's embed binary has the same name in both).
echo "[upgrade] building pg_retention $version from $commit (debug)" >&2
CARGO_TARGET_DIR="$out/target" cargo pgrx package --debug \
  --manifest-path "$out/src/Cargo.toml" --pg-config "$PG_CONFIG" --out-dir "$out/pkg" >"$out/build.log" 2>&1 \
  || { tail -20 "$out/build.log" >&2; exit 1; }
find "$out/pkg" -name 'pg_retention*.so' -exec cp {} "$out/lib/" \;
find "$out/pkg" -name "pg_retention--$version.sql" -exec cp {} "$out/extension/" \;
find "$out/pkg" -name 'pg_retention.control' -exec cp {} "$out/extension/" \;
test -n "$(ls "$out/lib")" && test -f "$out/extension/pg_retention--$version.sql"
touch "$out/done"
echo "$out"
