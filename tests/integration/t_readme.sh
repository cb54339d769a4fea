# The README's reference describes what a fresh install has and what the code
# raises. A change to the catalogue, to an error raised in src/ or sql/, or to
# the README without the other fails here.

# The lines of section HEADING (e.g. "### Errors") of FILE, up to the next heading.
rd_section() { # file heading
  awk -v h="$2" '$0 == h { on = 1; next } on && /^#/ { exit } on' "$1"
}

rd_trim() {
  local s="$1"
  s="${s#"${s%%[![:space:]]*}"}"
  printf '%s\n' "${s%"${s##*[![:space:]]}"}"
}

# The position of the parenthesis that closes the first "(" of a text, outside
# single-quoted literals; -1 if there is none.
rd_closing_paren() {
  local s="$1" i c depth=-1 quoted=0
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    if ((quoted)); then
      if [[ $c == "'" ]]; then quoted=0; fi
    elif [[ $c == "'" ]]; then
      quoted=1
    elif [[ $c == "(" ]]; then
      depth=$((depth + 1))
    elif [[ $c == ")" ]] && ((depth >= 0)); then
      if ((depth == 0)); then echo "$i"; return 0; fi
      depth=$((depth - 1))
    fi
  done
  echo -1
}

# The items of a comma-separated list, one a line, trimmed; commas inside
# parentheses, brackets or single-quoted literals do not separate.
rd_split() {
  local s="$1" i c depth=0 quoted=0 item=""
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    if ((quoted)); then
      if [[ $c == "'" ]]; then quoted=0; fi
    elif [[ $c == "'" ]]; then
      quoted=1
    elif [[ $c == "(" || $c == "[" ]]; then
      depth=$((depth + 1))
    elif [[ $c == ")" || $c == "]" ]]; then
      depth=$((depth - 1))
    elif [[ $c == "," ]] && ((depth == 0)); then
      rd_trim "$item"; item=""; continue
    fi
    item+="$c"
  done
  if [[ -n "${item//[[:space:]]/}" ]]; then rd_trim "$item"; fi
  return 0
}

# A type as format_type() names it: the usual short names are accepted.
rd_type() {
  local t setof="" arr=""
  t="$(rd_trim "$1")"
  t="${t,,}"
  while [[ $t == *"  "* ]]; do t="${t//  / }"; done
  if [[ $t == "setof "* ]]; then setof="SETOF "; t="${t#setof }"; fi
  while [[ $t == *"[]" ]]; do arr+="[]"; t="${t%"[]"}"; done
  case "$t" in
    int | int4) t=integer ;;
    int8) t=bigint ;;
    int2) t=smallint ;;
    bool) t=boolean ;;
    float8) t="double precision" ;;
    float4) t=real ;;
    decimal) t=numeric ;;
    timestamptz) t="timestamp with time zone" ;;
    timestamp) t="timestamp without time zone" ;;
    timetz) t="time with time zone" ;;
    time) t="time without time zone" ;;
    varchar) t="character varying" ;;
    char) t=character ;;
  esac
  printf '%s\n' "$setof$t$arr"
}

# One signature as README.md writes it, e.g.
#   retention.set_mask(policy text, ..., options jsonb DEFAULT '{}'::jsonb) RETURNS void
# in the form rd_catalogue_signatures prints:
#   set_mask(policy text, ..., options jsonb DEFAULT '{}')
rd_signature() {
  local s="$1" call="" name rest close ret arg mode argname type def cast out="" sep=""
  if [[ $s == "CALL "* ]]; then call="CALL "; s="${s#CALL }"; fi
  s="${s#retention.}"
  name="${s%%(*}"
  rest="${s#"$name"}"
  close="$(rd_closing_paren "$rest")"
  if [[ $rest != "("* ]] || ((close < 0)); then
    printf '%s%s (unreadable)\n' "$call" "$s"; return 0
  fi
  while IFS= read -r arg; do
    mode=""
    case "$arg" in
      "IN "*) arg="${arg#IN }" ;;
      "OUT "* | "INOUT "* | "VARIADIC "*) mode="${arg%% *} "; arg="${arg#* }" ;;
    esac
    def=""
    if [[ $arg == *" DEFAULT "* ]]; then
      def="$(rd_trim "${arg#* DEFAULT }")"; arg="$(rd_trim "${arg%% DEFAULT *}")"
    fi
    if [[ $arg == *" "* ]]; then
      argname="${arg%% *} "; type="$(rd_type "${arg#* }")"
    else
      argname=""; type="$(rd_type "$arg")"
    fi
    if [[ $def =~ ^(.*)::([a-z_][a-z0-9_ ]*(\[\])*)$ ]]; then
      cast="${BASH_REMATCH[2]}"
      if [[ "$(rd_type "$cast")" == "$type" ]]; then def="${def%"::$cast"}"; fi
    fi
    out+="$sep$mode$argname$type${def:+ DEFAULT $def}"; sep=", "
  done < <(rd_split "${rest:1:close-1}")
  ret="$(rd_trim "${rest:close+1}")"
  if [[ $ret =~ ^RETURNS\ TABLE\ ?\((.*)\)$ ]]; then
    ret=" RETURNS TABLE ($(rd_split "${BASH_REMATCH[1]}" | paste -sd, | sed 's/,/, /g'))"
  elif [[ $ret == "RETURNS "* ]]; then
    ret="$(rd_type "${ret#RETURNS }")"
    if [[ $ret == void || $ret == trigger ]]; then ret=""; else ret=" RETURNS $ret"; fi
  elif [[ -n $ret ]]; then
    ret=" $ret"
  fi
  printf '%s%s(%s)%s\n' "$call" "$name" "$out" "$ret"
}

# Every public function and procedure of schema retention, one a line, in the
# form rd_signature prints.
rd_catalogue_signatures() {
  q <<'SQL'
SET IntervalStyle = postgres;
SET DateStyle = 'ISO, MDY';
SELECT CASE p.prokind WHEN 'p' THEN 'CALL ' ELSE '' END || p.proname || '(' ||
       coalesce((SELECT string_agg(
                          CASE a.mode WHEN 'o' THEN 'OUT ' WHEN 'b' THEN 'INOUT ' WHEN 'v' THEN 'VARIADIC ' ELSE '' END
                          || coalesce(nullif(a.name, '') || ' ', '') || a.type
                          || coalesce(' DEFAULT ' || CASE WHEN right(a.def, length(a.type) + 2) = '::' || a.type
                                                          THEN left(a.def, -length(a.type) - 2) ELSE a.def END, ''),
                          ', ' ORDER BY a.n)
                   FROM (SELECT t.n, t.name, t.mode, pg_catalog.format_type(t.typ, NULL) AS type,
                                pg_catalog.pg_get_function_arg_default(p.oid, t.n::int) AS def
                           FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames, p.proargmodes)
                                WITH ORDINALITY AS t(typ, name, mode, n)) a
                  WHERE a.mode IS DISTINCT FROM 't'), '') || ')' ||
       CASE WHEN p.prokind = 'p' OR p.prorettype IN ('pg_catalog.void'::regtype, 'pg_catalog.trigger'::regtype) THEN ''
            WHEN 't' = ANY (p.proargmodes)
              THEN ' RETURNS TABLE (' || array_to_string(ARRAY(
                     SELECT t.name FROM unnest(p.proargnames, p.proargmodes) WITH ORDINALITY AS t(name, mode, n)
                      WHERE t.mode = 't' ORDER BY t.n), ', ') || ')'
            ELSE ' RETURNS ' || pg_catalog.pg_get_function_result(p.oid) END
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'retention'::regnamespace AND p.proname NOT LIKE '\_%'
 ORDER BY 1;
SQL
}

# The first place where two signatures in that form differ.
rd_first_difference() { # readme catalogue
  local r="$1" c="$2" head="${1%%(*}" rc cc i
  local -a ra ca
  if [[ $head != "${c%%(*}" ]]; then
    if [[ $head == "CALL "* ]]; then echo "kind: README.md has a procedure (CALL), the catalogue a function"
    else echo "kind: README.md has a function, the catalogue a procedure (CALL)"; fi
    return 0
  fi
  rc="$(rd_closing_paren "$r")"; cc="$(rd_closing_paren "$c")"
  if ((rc < 0)); then echo "README.md's signature cannot be read"; return 0; fi
  mapfile -t ra < <(rd_split "${r:${#head}+1:rc-${#head}-1}")
  mapfile -t ca < <(rd_split "${c:${#head}+1:cc-${#head}-1}")
  for ((i = 0; i < ${#ra[@]} || i < ${#ca[@]}; i++)); do
    if [[ ${ra[i]:-} != "${ca[i]:-}" ]]; then
      echo "argument $((i + 1)): README.md '${ra[i]:-(none)}', catalogue '${ca[i]:-(none)}'"; return 0
    fi
  done
  echo "result: README.md '$(rd_trim "${r:rc+1}")', catalogue '$(rd_trim "${c:cc+1}")'"
}

# Signatures in that form, each preceded by its function's name and a tab.
rd_by_name() {
  local sig n
  while IFS= read -r sig; do
    if [[ -z $sig ]]; then continue; fi
    n="${sig#CALL }"; printf '%s\t%s\n' "${n%%(*}" "$sig"
  done
}

# What is compared, besides the tables' and views' columns and the settings:
# the "Functions and procedures" table of README.md gives the full signature
# of every public function and procedure of schema retention (name not
# starting with "_"), each overload included, and nothing else. A row's first
# cell holds one or more signatures, each in backticks (e.g. separated by
# " / "). Compared per signature, after normalising both sides to one form:
#  - procedures start with "CALL " and have no RETURNS; functions without it;
#  - the arguments in order, each with its mode (IN may be written or left
#    out), its name, its type and its default. Types as format_type() names
#    them; the short names timestamptz, timestamp, int, int4, int8, int2,
#    bool, float8, float4, decimal, varchar, char, timetz and time stand for
#    the standard ones. A default ("DEFAULT <expression>") as
#    pg_get_function_arg_default() deparses it under IntervalStyle postgres,
#    with or without the cast to the argument's own type: '{}'::jsonb may be
#    written '{}', NULL::text NULL, '00:00:02'::interval '00:00:02' (not
#    '2 seconds'). So an argument has a default exactly when README.md says
#    DEFAULT, and it is the same default;
#  - the result: "RETURNS <type>"; "RETURNS TABLE (a, b, ...)" with the output
#    columns' names only, in order; functions returning void or trigger may
#    leave RETURNS out (a trigger function such as retention.touch() is
#    written with its empty argument list; its arguments come from CREATE
#    TRIGGER).
test_readme_reference_matches_the_catalogue() {
  fresh_db readme
  local readme="$here/README.md" missing="" f obj line listed actual cell span sig n c r
  local catalogue readme_sigs="" problems="" only_r only_c
  catalogue="$(rd_catalogue_signatures)"
  while IFS= read -r line; do
    [[ $line == "| "* ]] || continue
    cell="${line#| }"; cell="${cell%% | *}"
    [[ $cell != object ]] || continue
    while IFS= read -r span; do
      span="${span//\`/}"
      if [[ $span =~ ^(CALL\ )?retention\. ]]; then
        readme_sigs+="$(rd_signature "$span")"$'\n'
      else
        problems+=$'\n'"      '$span' in the table is not a signature retention.name(...)"
      fi
    done < <(grep -oE '`[^`]+`' <<<"$cell" || true)
  done < <(rd_section "$readme" "### Functions and procedures")
  catalogue="$(rd_by_name <<<"$catalogue")"; readme_sigs="$(rd_by_name <<<"$readme_sigs")"
  while IFS= read -r n; do
    c="$(awk -F '\t' -v n="$n" '$1 == n { print $2 }' <<<"$catalogue" | sort)"
    r="$(awk -F '\t' -v n="$n" '$1 == n { print $2 }' <<<"$readme_sigs" | sort)"
    if [[ $c == "$r" ]]; then continue; fi
    if [[ -z $c ]]; then
      problems+=$'\n'"      retention.$n is not in the catalogue, but README.md gives: $(paste -sd'|' <<<"$r" | sed 's/|/ and /g')"
    elif [[ -z $r ]]; then
      problems+=$'\n'"      retention.$n has no signature in README.md; the catalogue has: $(paste -sd'|' <<<"$c" | sed 's/|/ and /g')"
    else
      only_r="$(comm -23 <(echo "$r") <(echo "$c"))"; only_c="$(comm -13 <(echo "$r") <(echo "$c"))"
      problems+=$'\n'"      retention.$n differs"
      if [[ $only_r != *$'\n'* && $only_c != *$'\n'* && -n $only_r && -n $only_c ]]; then
        problems+=" in $(rd_first_difference "$only_r" "$only_c")"
      fi
      problems+=$'\n'"        README.md:     ${only_r:-(nothing more)}"
      problems+=$'\n'"        the catalogue: ${only_c:-(nothing more)}"
    fi
  done < <(cut -f1 <<<"$catalogue"$'\n'"$readme_sigs" | grep -v '^$' | sort -u)
  [[ -z "$problems" ]] || fail "README.md's function signatures differ from the catalogue:$problems"
  while read -r obj; do
    line="$(grep -E "^\| \`retention\.$obj\`( \(view\))? \|" "$readme" || true)"
    [[ -n "$line" ]] || { fail "retention.$obj has no row in README.md"; continue; }
    listed="$(sed -nE 's/.*: `([a-z_]+(, [a-z_]+)*)`.*/\1/p' <<<"$line" | head -1)"
    actual="$(val "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'retention.$obj'::regclass AND attnum > 0 AND NOT attisdropped")"
    expect_eq "$listed" "$actual" "columns of retention.$obj in README.md"
  done < <(val "SELECT relname FROM pg_catalog.pg_class
                 WHERE relnamespace = 'retention'::regnamespace AND relkind IN ('r', 'v') ORDER BY 1")
  missing=""
  while read -r f; do
    grep -q "| \`$f\` |" "$readme" || missing+=" $f"
  done < <(q -c "SELECT FROM retention.version()" -c "SELECT name FROM pg_catalog.pg_settings WHERE name LIKE 'retention.%' ORDER BY 1" | grep .)
  [[ -z "$missing" ]] || fail "settings missing from README.md:$missing"
}

# The mentions of PgSqlErrorCode::ERRCODE_* in a Rust file that raise the
# code, one ERRCODE_* name a line. Comments ("//") are left out, and so are
# mentions that only recognise an error something else raised (e.g. a lock
# timeout to retry): in a comparison (== or != before or after it) or in a
# match pattern (=> after it, or an alternative: " |" before or "|" after
# it; a closure's "|x| " before it does not count as one). Every other
# mention counts as raised: an argument of raise(), raise_detail() or
# ErrorReport::new(), or a code handed on to be raised.
rd_rust_raised() {
  local text at m recognised
  text="$(sed -e 's://.*$::' "$1")"
  recognised="$({
    grep -ozbP 'PgSqlErrorCode::ERRCODE_\w+(?=\s*(?:==|!=|=>|\|))' <<<"$text" || true
    grep -ozbP '(?:==|!=|(?<=\s)\|)\s*(?:\w+::)*\KPgSqlErrorCode::ERRCODE_\w+' <<<"$text" || true
  } | tr '\0' '\n' | cut -d: -f1)"
  { grep -ozbP 'PgSqlErrorCode::ERRCODE_\w+' <<<"$text" || true; } | tr '\0' '\n' |
    while IFS=: read -r at m; do
      if [[ -n $at ]] && ! grep -qxF "$at" <<<"$recognised"; then echo "${m#PgSqlErrorCode::}"; fi
    done
}

# The errors a PL/pgSQL file raises, one a line: a SQLSTATE or a condition
# name. The file is read as SQL: the keyword RAISE counts outside comments and
# single-quoted literals (function bodies are dollar-quoted and read as code),
# and its statement ends at the next ";" outside literals. A RAISE at level
# EXCEPTION, written or by default, raises the code of its USING ERRCODE =
# '...', else of its SQLSTATE '...', else its condition name, else P0001.
# "RAISE;" re-raises the error being handled, and so does a RAISE whose
# ERRCODE is a variable (the handled error's code, with a longer message);
# RAISE at a lower level (WARNING, NOTICE, ...) raises no error.
rd_sql_raised() {
  awk '
    function skip_space() { match(u, /^[[:space:]]*/); s = substr(s, RLENGTH + 1); u = substr(u, RLENGTH + 1) }
    function finish(stmt,   v) {
      s = substr(stmt, 6); u = toupper(s); skip_space()
      if (u == "" || u ~ /^(DEBUG|LOG|INFO|NOTICE|WARNING)([^A-Z0-9_]|$)/) return
      if (u ~ /^EXCEPTION([^A-Z0-9_]|$)/) { s = substr(s, 10); u = substr(u, 10); skip_space() }
      if (match(u, /(^|[^A-Z0-9_])ERRCODE[[:space:]]*=[[:space:]]*[A-Z_][A-Z0-9_]*[[:space:]]*(,|$)/)) return
      if (match(u, /(^|[^A-Z0-9_])ERRCODE[[:space:]]*=[[:space:]]*\047[^\047]*\047/) ||
          match(u, /^SQLSTATE[[:space:]]*\047[^\047]*\047/)) {
        v = substr(s, RSTART, RLENGTH); sub(/^[^\047]*\047/, "", v); sub(/\047$/, "", v)
      } else if (match(u, /^[A-Z_][A-Z0-9_]*/) && substr(u, 1, RLENGTH) != "USING") {
        v = tolower(substr(u, 1, RLENGTH))
      } else v = "P0001"
      print v
    }
    { text = text $0 "\n" }
    END {
      n = length(text); quoted = 0; on = 0; stmt = ""
      for (i = 1; i <= n; i++) {
        c = substr(text, i, 1)
        if (quoted) { if (on) stmt = stmt c; if (c == "\047") quoted = 0; continue }
        if (c == "-" && substr(text, i + 1, 1) == "-") { j = index(substr(text, i), "\n"); i = j ? i + j - 2 : n; continue }
        if (c == "/" && substr(text, i + 1, 1) == "*") { j = index(substr(text, i + 2), "*/"); i = j ? i + j + 2 : n; continue }
        if (c == "\047") { quoted = 1; if (on) stmt = stmt c; continue }
        if (on) { if (c == ";") { finish(stmt); on = 0 } else stmt = stmt c; continue }
        if (toupper(substr(text, i, 5)) == "RAISE" && substr(text, i - 1, 1) !~ /[A-Za-z0-9_$.]/ &&
            substr(text, i + 5, 1) !~ /[A-Za-z0-9_$]/) { on = 1; stmt = substr(text, i, 5); i += 4 }
      }
    }
  ' "$1"
}

# What is compared: the SQLSTATEs in the table of section "### Errors" of
# README.md (rows "| `CODE` | when |", one code a row) are exactly those the
# code raises:
#  - in src/ (every *.rs file, at any depth): every PgSqlErrorCode::ERRCODE_*
#    that is not only compared or matched (see rd_rust_raised), mapped to its
#    SQLSTATE by the server's utils/errcodes.h;
#  - in sql/ (every *.sql file, at any depth): the error of every RAISE at
#    level EXCEPTION, mostly its USING ERRCODE = '...' (see rd_sql_raised),
#    condition names mapped to SQLSTATEs by the server's errcodes.txt.
# Not counted: SQLSTATEs only written into the run log (a policy logged as
# failed), codes the server raised first and pg_retention raises again with
# the same code, and errors PostgreSQL raises on the way (e.g. a regclass
# argument naming no table). README.md mentions those in the section's prose.
# Adds file $rel and name $name to what test_readme_errors_are_the_sqlstates_raised
# knows of $code.
rd_note_raised() {
  if [[ ", ${raised[$code]:-}, " != *", $rel, "* ]]; then raised[$code]="${raised[$code]:+${raised[$code]}, }$rel"; fi
  if [[ ", ${names[$code]:-}, " != *", $name, "* ]]; then names[$code]="${names[$code]:+${names[$code]}, }$name"; fi
  return 0
}

test_readme_errors_are_the_sqlstates_raised() {
  local readme="$here/README.md" pg_config="${PG_CONFIG:-pg_config}" header conditions
  local f rel name code line problems=""
  local -A of_macro=() of_condition=() raised=() names=() documented=()
  header="$("$pg_config" --includedir-server)/utils/errcodes.h"
  conditions="$("$pg_config" --sharedir)/errcodes.txt"
  [[ -r $header && -r $conditions ]] || { fail "cannot read $header or $conditions"; return 1; }
  while read -r name code; do of_macro[$name]="$code"; done < <(
    sed -nE "s/^#define (ERRCODE_[A-Z0-9_]+)[[:space:]]+MAKE_SQLSTATE\('(.)', *'(.)', *'(.)', *'(.)', *'(.)'\).*/\1 \2\3\4\5\6/p" "$header")
  while read -r code _ _ name; do
    if [[ -n $name && -z ${of_condition[$name]:-} ]]; then of_condition[$name]="$code"; fi
  done < <(grep -E '^[0-9A-Z]{5}[[:space:]]' "$conditions")
  ((${#of_macro[@]} > 100 && ${#of_condition[@]} > 100)) || { fail "no error codes read from $header and $conditions"; return 1; }

  while IFS= read -r f; do
    rel="${f#"$here/"}"
    while IFS= read -r name; do
      code="${of_macro[$name]:-}"
      if [[ -z $code ]]; then problems+=$'\n'"      $rel raises $name, which $header does not define"; continue; fi
      rd_note_raised
    done < <(rd_rust_raised "$f" | sort -u)
  done < <(find "$here/src" -name '*.rs' -type f | sort)
  while IFS= read -r f; do
    rel="${f#"$here/"}"
    while IFS= read -r name; do
      if [[ $name =~ ^[0-9A-Z]{5}$ ]]; then code="$name"; else code="${of_condition[${name,,}]:-}"; fi
      if [[ -z $code ]]; then problems+=$'\n'"      $rel raises '$name', which is neither a SQLSTATE nor a condition name"; continue; fi
      rd_note_raised
    done < <(rd_sql_raised "$f" | sort -u)
  done < <(find "$here/sql" -name '*.sql' -type f | sort)
  ((${#raised[@]} > 0)) || { fail "found no error raised in src/ or sql/"; return 1; }

  while IFS= read -r line; do
    if [[ $line =~ ^\|\ \`([0-9A-Z]{5})\`\ \| ]]; then
      code="${BASH_REMATCH[1]}"
      if [[ -n ${documented[$code]:-} ]]; then problems+=$'\n'"      README.md's Errors table lists $code twice"; fi
      documented[$code]=1
    elif [[ $line == "|"* && ! $line =~ ^\|\ *code\ *\| && ! $line =~ ^\|[-:|\ ]+$ ]]; then
      problems+=$'\n'"      README.md's Errors table has a row not of the form | \`CODE\` | when |: $line"
    fi
  done < <(rd_section "$readme" "### Errors")
  ((${#documented[@]} > 0)) || problems+=$'\n'"      README.md's section \"### Errors\" has no table of codes"

  for code in $(printf '%s\n' "${!raised[@]}" | sort); do
    if [[ -z ${documented[$code]:-} ]]; then
      problems+=$'\n'"      $code (${names[$code]}) is raised in ${raised[$code]} but is not in README.md's Errors table"
    fi
  done
  for code in $(printf '%s\n' "${!documented[@]}" | sort); do
    if [[ -z ${raised[$code]:-} ]]; then
      problems+=$'\n'"      $code is in README.md's Errors table but nothing in src/ or sql/ raises it"
    fi
  done
  [[ -z "$problems" ]] || fail "README.md's Errors table differs from the errors the code raises:$problems"
}
