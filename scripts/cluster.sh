#!/usr/bin/env bash
# Starts, stops or inspects one of the project's PostgreSQL clusters.
#   scripts/cluster.sh start|stop|status|psql SECTION [psql args...]
# SECTION is a section of pgrx.toml ([demo], [test]) giving port, data_dir and
# the postgresql.conf lines. Clusters run as the 'postgres' OS user (the
# server refuses root) and listen on 127.0.0.1 only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"

cmd="${1:?usage: cluster.sh start|stop|status|psql SECTION}"
section="${2:?usage: cluster.sh start|stop|status|psql SECTION}"
shift 2
port="$(cluster_port "$section")"
data_rel="$(cluster_data_rel "$section")"
data="${CLUSTER_DATA_DIR:-$here/$data_rel}"
port="${CLUSTER_PORT:-$port}"

# No Rust backtraces in the server's environment: errors stay SQL errors.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

as_pg() {
  if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# The data directory lives in the repository when the postgres user can reach
# it, else under /tmp (e.g. a checkout inside a private home directory).
if ! as_pg test -x "$(dirname "$data")" 2>/dev/null && [[ -z "${CLUSTER_DATA_DIR:-}" ]]; then
  mkdir -p "$(dirname "$data")"
  if ! as_pg test -x "$(dirname "$data")"; then
    data="/tmp/pg_retention-$section-$port"
  fi
fi

case "$cmd" in
  start)
    if [[ ! -s "$data/PG_VERSION" ]]; then
      mkdir -p "$data"
      chown postgres: "$data"
      chmod 700 "$data"
      as_pg "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
      {
        echo "# pg_retention $section cluster (from pgrx.toml)"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '/tmp'"
        echo "fsync = off"
        # pg_cron's lines only where pg_cron is installed for this major
        # (tests that need it are skipped otherwise).
        if [[ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ]]; then
          cfg_conf_lines "$section"
        else
          cfg_conf_lines "$section" | grep -v cron || true
        fi
      } | as_pg tee -a "$data/postgresql.conf" >/dev/null
    fi
    if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "cluster '$section' already running on port $port ($data)"
    else
      as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
      echo "cluster '$section' started on port $port ($data)"
    fi
    ;;
  stop)
    if [[ -d "$data" ]] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
      echo "cluster '$section' stopped"
    else
      echo "cluster '$section' is not running"
    fi
    ;;
  destroy)
    "$0" stop "$section" >/dev/null || true
    rm -rf "$data"
    ;;
  status)
    as_pg "$PG_BIN/pg_ctl" -D "$data" status
    ;;
  datadir)
    echo "$data"
    ;;
  psql)
    exec psql -X -h 127.0.0.1 -p "$port" -U postgres "$@"
    ;;
  *)
    echo "unknown command: $cmd" >&2; exit 2 ;;
esac
