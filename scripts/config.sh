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
PG_MAJOR="$(cfg_str postgres major)"
PG_CONFIG="$(cfg_str postgres pg_config)"
PGRX_VERSION="$(cfg_str toolchain cargo_pgrx)"
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
