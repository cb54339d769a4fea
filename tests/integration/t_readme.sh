# The README's reference tables describe what a fresh install has: every
# public function and procedure is named, every table and view lists its
# columns in order, every setting is described. A change to the catalogue
# without the README fails here.
test_readme_reference_matches_the_catalogue() {
  fresh_db readme
  local readme="$here/README.md" missing="" f obj line listed actual
  while read -r f; do
    grep -q "retention\.$f(" "$readme" || missing+=" $f"
  done < <(val "SELECT DISTINCT proname FROM pg_catalog.pg_proc
                 WHERE pronamespace = 'retention'::regnamespace AND proname NOT LIKE '\_%' ORDER BY 1")
  [[ -z "$missing" ]] || fail "functions missing from README.md:$missing"
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
  done < <(q -c "LOAD 'pg_retention'" -c "SELECT name FROM pg_catalog.pg_settings WHERE name LIKE 'retention.%' ORDER BY 1")
  [[ -z "$missing" ]] || fail "settings missing from README.md:$missing"
}
