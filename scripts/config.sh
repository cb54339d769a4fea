# Reads pgrx.toml (the single place for cluster settings) into shell variables.
# Sourced by the other scripts. The file is a flat TOML subset: [section] and
# key = "string" | number | ["list", "of", "strings"].
_cfg_file="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/pgrx.toml"
cfg_get() { # section key -> raw value
  awk -v s="[$1]" -v k="$2" '
    /^\[/ { cur=$0; next }
    cur==s && $0 ~ "^"k"[ \t]*=" { sub(/^[^=]*=[ \t]*/, ""); print; exit }' "$_cfg_file"
}
cfg_str() { cfg_get "$1" "$2" | sed -e 's/^"//' -e 's/"[ \t]*$//'; }
# One postgresql.conf line per list element of [section] conf.
# Elements are double-quoted strings without double quotes inside.
cfg_conf_lines() {
  cfg_get "$1" conf | grep -o '"[^"]*"' | sed -e 's/^"//' -e 's/"$//'
}
# The elements of a list of strings, separated by spaces (no spaces inside).
cfg_list() { cfg_get "$1" "$2" | grep -o '"[^"]*"' | tr -d '"' | xargs; }
# The PostgreSQL majors of [postgres] majors, in order.
PG_MAJORS="$(cfg_list postgres majors)"
PG_FIRST_MAJOR="${PG_MAJORS%% *}"
# The major the scripts work with: PG=NN, else the first.
PG_MAJOR="${PG:-$PG_FIRST_MAJOR}"
# pg_config of a major; paths in pgrx.toml are relative to the repository.
pg_config_of() {
  local p; p="$(cfg_str "pg$1" pg_config)"
  [[ -z "$p" || "$p" == /* ]] && { echo "$p"; return; }
  echo "$(cd "$(dirname "$_cfg_file")" && pwd)/$p"
}
PG_CONFIG="$(pg_config_of "$PG_MAJOR")"
PGRX_VERSION="$(cfg_str toolchain cargo_pgrx)"
PG_BIN="$(dirname "$PG_CONFIG")"
# A cluster section's port and data directory for the current major: the
# first major uses them as written, others shift the port by the major's
# distance from 15 and suffix the directory.
cluster_port() {
  local base; base="$(cfg_str "$1" port)"
  if [[ "$PG_MAJOR" == "$PG_FIRST_MAJOR" ]]; then echo "$base"; else echo $((base + PG_MAJOR - 15)); fi
}
cluster_data_rel() {
  local d; d="$(cfg_str "$1" data_dir)"
  if [[ "$PG_MAJOR" == "$PG_FIRST_MAJOR" ]]; then echo "$d"; else echo "$d-pg$PG_MAJOR"; fi
}
