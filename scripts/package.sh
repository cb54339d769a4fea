#!/usr/bin/env bash
# `make package`: an installable tarball per PostgreSQL major (PG=NN for one),
# built in release mode (--debug for a quick one, as the package test does):
#   target/package/pg_retention-<version>-pg<NN>-<arch>.tar.gz
# It holds lib/ (the library) and extension/ (control file, install and
# update scripts), laid out as the server's own directories, and install.sh:
#   tar -xzf pg_retention-0.2.0-pg15-x86_64.tar.gz && sudo ./pg_retention-0.2.0-pg15-x86_64/install.sh [pg_config]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"
cd "$here"
profile=(); [[ "${1:-}" == --debug ]] && profile=(--debug)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
arch="$(uname -m)"
mkdir -p target/package
for m in ${PG:-$PG_MAJORS}; do
  pgc="$(pg_config_of "$m")"
  [[ -x "$pgc" ]] || { echo "[package] PostgreSQL $m is not installed ($pgc); skipped" >&2; continue; }
  name="pg_retention-$version-pg$m-$arch"
  stage="target/package/$name"; rm -rf "$stage" "target/package/pgrx-pg$m"
  echo "[package] building $name ${profile[*]:-(release)}"
  cargo pgrx package "${profile[@]}" --pg-config "$pgc" --out-dir "target/package/pgrx-pg$m" >"target/package/$name.log" 2>&1 \
    || { tail -20 "target/package/$name.log" >&2; exit 1; }
  mkdir -p "$stage/lib" "$stage/extension"
  find "target/package/pgrx-pg$m" -name "pg_retention-$version.so" -exec cp {} "$stage/lib/" \;
  find "target/package/pgrx-pg$m" \( -name 'pg_retention.control' -o -name 'pg_retention--*.sql' \) -exec cp {} "$stage/extension/" \;
  test -f "$stage/lib/pg_retention-$version.so" && test -f "$stage/extension/pg_retention--$version.sql"
  cat >"$stage/install.sh" <<INSTALL
#!/usr/bin/env bash
# Installs pg_retention $version for PostgreSQL $m: ./install.sh [path to pg_config]
set -euo pipefail
pgc="\${1:-pg_config}"
here="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
major="\$("\$pgc" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\\1/')"
[[ "\$major" == "$m" ]] || { echo "this package is for PostgreSQL $m, \$pgc is PostgreSQL \$major" >&2; exit 1; }
install -m 0755 "\$here"/lib/*.so "\$("\$pgc" --pkglibdir)/"
install -m 0644 "\$here"/extension/* "\$("\$pgc" --sharedir)/extension/"
echo "pg_retention $version installed; in each database: CREATE EXTENSION pg_retention; (or ALTER EXTENSION pg_retention UPDATE)"
INSTALL
  chmod 0755 "$stage/install.sh"
  tar -czf "target/package/$name.tar.gz" -C target/package "$name"
  echo "[package] target/package/$name.tar.gz"
done
