#!/usr/bin/env bash
# Installs what building and testing pg_retention needs, skipping whatever is
# already present. Safe to run any number of times. Expects to run as root on
# Debian (the project's build and CI machines); elsewhere it only checks.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/config.sh
. "$here/scripts/config.sh"

log() { printf '[setup] %s\n' "$*"; }

need_pkgs=()
for p in "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-cron" \
         libclang-dev clang pkg-config sudo make; do
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
  if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql/$PG_MAJOR/main ]]; then
    pg_ctlcluster "$PG_MAJOR" main stop 2>/dev/null || true
  fi
else
  log "Debian packages present"
fi

if [[ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx $PGRX_VERSION" ]]; then
  log "installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
else
  log "cargo-pgrx $PGRX_VERSION present"
fi

pgrx_home="${PGRX_HOME:-$HOME/.pgrx}"
if ! grep -qs "pg$PG_MAJOR *= *\"$PG_CONFIG\"" "$pgrx_home/config.toml"; then
  log "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
  cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG" >/dev/null
else
  log "pgrx is initialised for pg$PG_MAJOR"
fi
