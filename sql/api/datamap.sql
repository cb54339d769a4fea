------------------------------------------------------------------------------
-- The data map: where personal data is, and what covers it
------------------------------------------------------------------------------

CREATE FUNCTION retention.discover(schema_filter text DEFAULT NULL, sample_rows integer DEFAULT 1000)
RETURNS TABLE (target text, column_name text, data_type text, category text, found_by text,
               share real, confidence text, sampled bigint)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM retention._discover("schema_filter" => $1, "sample_rows" => $2); END;
COMMENT ON FUNCTION retention.discover(text, integer) IS
'Finds columns that look like personal data in the tables of the schemas matching SCHEMA_FILTER (a LIKE pattern; all but the system''s and pg_retention''s when NULL): per column, the CATEGORY (e-mail, phone, IBAN, credit card, IP address, birth date, name, street address, postcode, national id, free text), how it was recognised (FOUND_BY: the column''s name in English or German, the share of sampled values of that shape, or free text containing such values), and a CONFIDENCE (high, medium, low). Reads at most SAMPLE_ROWS rows per table (TABLESAMPLE SYSTEM on larger tables), only of tables the caller may SELECT, as the table''s owner, only columns of built-in types, at most 10 s per table. Never returns a sampled value.';

CREATE FUNCTION retention.coverage(schema_filter text DEFAULT NULL, sample_rows integer DEFAULT 1000)
RETURNS TABLE (target text, personal_data text[], policies text[], stages text, subject_kinds text[],
               missing text, suggestion text)
LANGUAGE sql VOLATILE
BEGIN ATOMIC
WITH found AS (
    SELECT d.target, pg_catalog.array_agg(d.column_name || ' (' || d.category || ')' ORDER BY d.column_name) AS personal
      FROM retention.discover(schema_filter, sample_rows) d
     WHERE d.confidence <> 'low'
     GROUP BY d.target),
named AS (
    SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS target, c.relname::text AS relname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE schema_filter IS NULL OR n.nspname LIKE schema_filter),
pol AS (
    SELECT t.target, pg_catalog.array_agg(p.name ORDER BY p.name) AS policies,
           pg_catalog.string_agg(p.name || ': ' || coalesce(nullif(pg_catalog.concat_ws(', ',
               'mark after ' || p.mark_after::text, 'anonymise after ' || p.anonymise_after::text,
               'purge after ' || p.purge_after::text), ''), 'no stages'), '; ' ORDER BY p.name) AS stages
      FROM retention.policies p JOIN named t ON t.oid = p.target
     GROUP BY t.target),
kinds AS (
    SELECT t.target, pg_catalog.array_agg(DISTINCT st.kind) AS kinds
      FROM retention.subject_tables st JOIN named t ON t.oid = st.target
     GROUP BY t.target),
tables AS (
    SELECT found.target FROM found UNION SELECT pol.target FROM pol UNION SELECT kinds.target FROM kinds),
-- The column a new policy's period would most likely run from: a date or
-- timestamp named like a creation or event time, else the first one.
clocks AS (
    SELECT DISTINCT ON (t.target) t.target, a.attname::text AS clock
      FROM tables t JOIN named nm ON nm.target = t.target
      JOIN pg_catalog.pg_attribute a ON a.attrelid = nm.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
     ORDER BY t.target, (a.attname ~ '(created|inserted|placed|signed|registered|date|_at$|_on$)') DESC, a.attnum)
SELECT t.target, f.personal, p.policies, p.stages, k.kinds,
       CASE WHEN p.policies IS NULL AND f.personal IS NOT NULL THEN 'personal data, no retention policy'
            WHEN p.policies IS NULL THEN 'mapped for erasure, no retention period'
            WHEN k.kinds IS NULL AND f.personal IS NOT NULL AND EXISTS (SELECT 1 FROM retention.subject_kinds)
                 THEN 'personal data in no subject map: erasure does not reach it' END,
       CASE WHEN p.policies IS NULL THEN
                 -- A policy without stages changes nothing: it records the
                 -- table as governed; the stages follow after review.
                 pg_catalog.format('SELECT retention.create_policy(%L, %L, %L, NULL, purpose => %L, legal_basis => %L); '
                                   '-- then, after review: SELECT retention.add_stage(%L, interval ''<period>'', ''purge'');',
                                   nm.relname, t.target, coalesce(pg_catalog.quote_ident(c.clock), '<clock column>'), '<purpose>', '<legal basis>',
                                   nm.relname)
            WHEN k.kinds IS NULL AND f.personal IS NOT NULL AND EXISTS (SELECT 1 FROM retention.subject_kinds)
                 THEN (SELECT pg_catalog.string_agg(pg_catalog.format('SELECT * FROM retention.link_suggestions(%L);', sk.kind), ' ' ORDER BY sk.kind)
                         FROM retention.subject_kinds sk) END
  FROM tables t
  JOIN named nm ON nm.target = t.target
  LEFT JOIN found f ON f.target = t.target
  LEFT JOIN pol p ON p.target = t.target
  LEFT JOIN kinds k ON k.target = t.target
  LEFT JOIN clocks c ON c.target = t.target
 ORDER BY t.target;
END;
COMMENT ON FUNCTION retention.coverage(text, integer) IS
'Per table of the schemas matching SCHEMA_FILTER that holds personal data (as retention.discover finds it, confidence medium or high) or is governed by a policy or a subject map: the personal-data columns, the policies and their stages, the subject kinds that map it, and what is MISSING ("personal data, no retention policy"; "mapped for erasure, no retention period"; "personal data in no subject map: erasure does not reach it"), with a SUGGESTION of SQL to run after review (a policy declared without stages changes nothing until a stage is added).';

CREATE FUNCTION retention.locate(kind text, subject_id text)
RETURNS TABLE (target text, column_name text, "rows" bigint, in_map boolean, note text)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM retention._locate("kind" => $1, "subject_id" => $2); END;
COMMENT ON FUNCTION retention.locate(text, text) IS
'Where else does the subject SUBJECT_ID of KIND appear? Takes the subject''s identifiers from the root row (the columns named like an e-mail address, phone number, IBAN, card number or national id) and counts, in every text and json column of every table the caller may read, the rows containing one of them (case-insensitive). Returns table, column and row count, never values; IN_MAP is false, with a note, for tables the kind''s map does not reach. Each table is read as its owner, in one scan, at most 30 s. The identifiers stay in the backend''s memory: they are never a statement''s text or parameter.';
