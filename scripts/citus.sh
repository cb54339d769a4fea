#!/usr/bin/env bash
# Starts, stops or inspects the Citus cluster of the integration tests: a
# coordinator and its workers, each a PostgreSQL server on 127.0.0.1 with its
# own data directory, set up from pgrx.toml [citus].
#   scripts/citus.sh start     initdb where needed, start every node, CREATE
#                              EXTENSION citus and register the workers
#                              (database postgres); a no-op when it is ready
#   scripts/citus.sh stop      stop every node
#   scripts/citus.sh status    each node's state and the workers the
#                              coordinator sees; exit status 0 when ready
#   scripts/citus.sh createdb NAME
#                              a fresh database NAME on every node (dropped
#                              first if it exists) with citus and its workers
#                              registered
#   scripts/citus.sh destroy   stop and remove the data directories
#   scripts/citus.sh psql [psql args...]   psql to the coordinator
# CITUS_PORT (coordinator), CITUS_WORKER_PORTS ("p1 p2 ...") and CITUS_DATA_DIR
# override pgrx.toml. Nodes run as the 'postgres' OS user (the server refuses
# root), with trust authentication on 127.0.0.1 only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$here/scripts/config.sh"

usage="usage: citus.sh start|stop|status|createdb NAME|destroy|psql [args...]"
cmd="${1:?$usage}"
shift

major="$(cfg_str citus major)"
pgc="$(pg_config_of "$major")"
bin="$(dirname "$pgc")"
port="${CITUS_PORT:-$(cfg_str citus port)}"
workers="${CITUS_WORKER_PORTS:-$(cfg_list citus worker_ports)}"
data="${CITUS_DATA_DIR:-$here/$(cfg_str citus data_dir)}"

unset RUST_BACKTRACE RUST_LIB_BACKTRACE

as_pg() {
  if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# As in cluster.sh: under /tmp when the postgres user cannot reach the
# repository.
if ! as_pg test -x "$(dirname "$data")" 2>/dev/null && [[ -z "${CITUS_DATA_DIR:-}" ]]; then
  mkdir -p "$(dirname "$data")"
  if ! as_pg test -x "$(dirname "$data")"; then
    data="/tmp/pg_retention-citus-$port"
  fi
fi

node_dir() { # port
  if [[ "$1" == "$port" ]]; then echo "$data/coordinator-$1"; else echo "$data/worker-$1"; fi
}
nodes() { echo "$port $workers"; }
running() { as_pg "$bin/pg_ctl" -D "$(node_dir "$1")" status >/dev/null 2>&1; }
# psql to one node: psql_at PORT DATABASE [args...]
psql_at() {
  local p="$1" d="$2"; shift 2
  "$bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d "$d" "$@"
}

need_citus() {
  if [[ ! -x "$pgc" ]]; then
    echo "citus.sh: PostgreSQL $major is not installed ($pgc)" >&2; exit 1
  fi
  if [[ ! -f "$("$pgc" --pkglibdir)/citus.so" ]]; then
    echo "citus.sh: Citus is not installed for PostgreSQL $major (no citus.so in $("$pgc" --pkglibdir))" >&2; exit 1
  fi
}

init_node() { # port
  local p="$1" dir; dir="$(node_dir "$1")"
  [[ -s "$dir/PG_VERSION" ]] && return 0
  mkdir -p "$dir"
  chown postgres: "$data" "$dir"
  chmod 700 "$dir"
  as_pg "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  {
    echo "# pg_retention Citus node (from pgrx.toml [citus])"
    echo "port = $p"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '/tmp'"
    echo "fsync = off"
    if [[ -f "$("$pgc" --pkglibdir)/pg_cron.so" ]]; then
      cfg_conf_lines citus
    else
      cfg_conf_lines citus | grep -v cron | sed "s/, *pg_cron//"
    fi
  } | as_pg tee -a "$dir/postgresql.conf" >/dev/null
}

start_node() { # port
  local p="$1" dir; dir="$(node_dir "$1")"
  running "$p" && return 0
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
}

# Citus keeps its node list per database: every database that uses it
# registers the coordinator and the workers itself.
register_nodes() { # database
  local d="$1" w
  for w in $(nodes); do
    psql_at "$w" "$d" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS citus" >/dev/null
  done
  psql_at "$port" "$d" -c "SELECT citus_set_coordinator_host('127.0.0.1', $port)" >/dev/null
  for w in $workers; do
    psql_at "$port" "$d" -c "SET client_min_messages = warning" -c "SELECT citus_add_node('127.0.0.1', $w)
      WHERE NOT EXISTS (SELECT 1 FROM pg_dist_node WHERE nodename = '127.0.0.1' AND nodeport = $w)" >/dev/null
  done
}

# True when the coordinator is up and sees every worker as active.
ready() {
  running "$port" || return 1
  local want n
  want="$(wc -w <<<"$workers")"
  n="$(psql_at "$port" postgres -c "SELECT count(*) FROM citus_get_active_worker_nodes()" 2>/dev/null)" || return 1
  [[ "$n" == "$want" ]]
}

describe() { echo "coordinator 127.0.0.1:$port, workers ${workers// /, } ($data)"; }

case "$cmd" in
  start)
    need_citus
    if ready; then
      echo "citus cluster already running and ready: $(describe)"; exit 0
    fi
    for p in $(nodes); do init_node "$p"; start_node "$p"; done
    register_nodes postgres
    ready || { echo "citus.sh: the coordinator does not see every worker" >&2; exit 1; }
    echo "citus cluster ready: $(describe)"
    ;;
  stop)
    stopped=0
    for p in $workers $port; do
      if [[ -d "$(node_dir "$p")" ]] && running "$p"; then
        as_pg "$bin/pg_ctl" -D "$(node_dir "$p")" -m fast -w stop >/dev/null
        stopped=$((stopped + 1))
      fi
    done
    if ((stopped)); then echo "citus cluster stopped ($stopped nodes)"; else echo "citus cluster is not running"; fi
    ;;
  status)
    rc=0
    for p in $(nodes); do
      if running "$p"; then echo "node $p: running ($(node_dir "$p"))"; else echo "node $p: not running"; rc=1; fi
    done
    if ready; then echo "citus cluster ready: $(describe)"; else echo "citus cluster not ready"; rc=1; fi
    exit $rc
    ;;
  createdb)
    name="${1:?usage: citus.sh createdb NAME}"
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "citus.sh: database names are lower-case identifiers" >&2; exit 2; }
    ready || { echo "citus.sh: the citus cluster is not ready (scripts/citus.sh start)" >&2; exit 1; }
    for p in $(nodes); do
      psql_at "$p" postgres -c "SET client_min_messages = warning" -c "SET citus.enable_create_database_propagation = off" \
        -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
    done
    register_nodes "$name"
    ;;
  destroy)
    bash "$0" stop >/dev/null
    rm -rf "$data"
    ;;
  datadir)
    echo "$data"
    ;;
  psql)
    exec "$bin/psql" -X -h 127.0.0.1 -p "$port" -U postgres "$@"
    ;;
  *)
    echo "$usage" >&2; exit 2 ;;
esac
