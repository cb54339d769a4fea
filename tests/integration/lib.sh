# Helpers for integration tests: each test gets a fresh database in the
# running test cluster and talks to it through real psql sessions.
# Sourced by tests/integration/run.sh.

IT_PORT="${CLUSTER_PORT:?}"

# psql against database $DB (set per test), quiet, failing on the first error.
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$IT_PORT" -U postgres -d "$DB" "$@"; }
# The value of one query.
val() { q -c "$1"; }

# The server's own client programs (pg_dump must not be older than the server).
pg_dump() { "$PG_BIN/pg_dump" "$@"; }
pg_restore() { "$PG_BIN/pg_restore" "$@"; }

# Skips the test unless pg_cron is installed for this major and preloaded.
need_pg_cron() {
  local ok
  ok="$(psql -X -q -A -t -h 127.0.0.1 -p "$IT_PORT" -U postgres -d postgres \
    -c "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pg_cron')
               AND pg_catalog.current_setting('shared_preload_libraries') LIKE '%pg_cron%'")"
  [[ "$ok" == t ]] || skip "pg_cron is not installed for PostgreSQL $PG_MAJOR"
}

fresh_db() {
  DB="it_$1"
  psql -X -q -h 127.0.0.1 -p "$IT_PORT" -U postgres -d postgres \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  val "CREATE EXTENSION pg_retention" >/dev/null
}

fail() { echo "    assertion failed: $*" >&2; return 1; }
# Ends the test as skipped, with the reason (a component this machine lacks).
skip() { echo "$*" >&3; exit 77; }
expect_eq() { # actual expected what
  if [[ "$1" != "$2" ]]; then fail "$3: expected '$2', got '$1'"; fi
}

# A long-lived session fed through a FIFO, for holding locks or transactions
# open while another session works. open_session NAME; say NAME "SQL"; close_session NAME
declare -A SESSION_FD SESSION_PID SESSION_OUT
open_session() {
  local name="$1" dir; dir="$(mktemp -d)"
  mkfifo "$dir/in"
  SESSION_OUT[$name]="$dir/out"
  psql -X -q -A -t -h 127.0.0.1 -p "$IT_PORT" -U postgres -d "$DB" -v ON_ERROR_STOP=0 \
    <"$dir/in" >"$dir/out" 2>&1 &
  SESSION_PID[$name]=$!
  exec {fd}>"$dir/in"
  SESSION_FD[$name]=$fd
}
say() { printf '%s\n' "$2" >&"${SESSION_FD[$1]}"; }
session_output() { cat "${SESSION_OUT[$1]}"; }
close_session() {
  local fd="${SESSION_FD[$1]}"
  exec {fd}>&-
  wait "${SESSION_PID[$1]}" 2>/dev/null || true
}

# Waits until a query returns 't' (at most $2 seconds).
wait_for() {
  local sql="$1" limit="${2:-30}" i=0
  while [[ "$(val "$sql")" != "t" ]]; do
    sleep 0.1; i=$((i + 1))
    if (( i > limit * 10 )); then fail "timed out waiting for: $sql"; return 1; fi
  done
}

# A python3 that can import module $1 (the one on PATH, else Debian's);
# scripts/ensure-toolchain.sh installs the modules the tests use.
python_with() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c "import $1" 2>/dev/null; then echo "$py"; return; fi
  done
  fail "no python3 with the $1 module (scripts/ensure-toolchain.sh installs it)"
}

# A directory for this run's scratch files.
IT_TMP="$(mktemp -d)"
# The version in Cargo.toml (the version a fresh install has).
cargo_version() { sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1; }
