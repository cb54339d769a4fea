-- One line per property of everything pg_retention installs, in a stable
-- order: two databases with the same lines have the same extension. The
-- upgrade test runs this in an updated database and in a fresh install and
-- compares the output. Nothing here depends on OIDs or on the order objects
-- were created in (except column order, which the lines keep on purpose).
WITH ext AS (
    SELECT e.oid, e.extversion, e.extconfig, e.extcondition FROM pg_catalog.pg_extension e
     WHERE e.extname = 'pg_retention'
), members AS (
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), fns AS (
    SELECT p.oid::regprocedure::text AS sig, p.*, l.lanname
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
     WHERE p.oid IN (SELECT objid FROM members WHERE classid = 'pg_catalog.pg_proc'::regclass)
), rels AS (
    SELECT c.oid::regclass::text AS name, c.*
      FROM pg_catalog.pg_class c
     WHERE c.oid IN (SELECT objid FROM members WHERE classid = 'pg_catalog.pg_class'::regclass)
), lines AS (
    SELECT 'extension version ' || extversion FROM ext
    UNION ALL
    SELECT 'member ' || pg_catalog.pg_describe_object(classid, objid, 0) FROM members
    UNION ALL
    -- Functions: signature, result, argument names and defaults, kind,
    -- volatility, strictness, security, parallel safety, language,
    -- settings, privileges, the library and symbol of C functions, and the
    -- whole definition of the others.
    SELECT 'function ' || sig || ' returns ' || pg_catalog.pg_get_function_result(oid)
           || ' args (' || pg_catalog.pg_get_function_arguments(oid) || ')'
           || ' kind ' || prokind::text || ' volatile ' || provolatile::text || ' strict ' || proisstrict
           || ' secdef ' || prosecdef || ' leakproof ' || proleakproof || ' parallel ' || proparallel::text
           || ' cost ' || procost || ' rows ' || prorows
           || ' language ' || lanname || ' config ' || coalesce(pg_catalog.array_to_string(proconfig, ','), '-')
           || ' acl ' || coalesce(proacl::text, '-')
           || CASE WHEN lanname = 'c' THEN ' library ' || coalesce(probin, '-') || ' symbol ' || prosrc
                   ELSE ' definition ' || pg_catalog.md5(pg_catalog.pg_get_functiondef(oid)) END
           || ' comment ' || coalesce(pg_catalog.md5(pg_catalog.obj_description(oid, 'pg_proc')), '-')
      FROM fns
    UNION ALL
    -- Relations: kind, persistence, row security, privileges, options, comment.
    SELECT 'relation ' || name || ' kind ' || relkind::text || ' persistence ' || relpersistence::text
           || ' rls ' || relrowsecurity || ' force_rls ' || relforcerowsecurity
           || ' acl ' || coalesce(relacl::text, '-') || ' options ' || coalesce(reloptions::text, '-')
           || ' comment ' || coalesce(pg_catalog.md5(pg_catalog.obj_description(oid, 'pg_class')), '-')
      FROM rels
    UNION ALL
    -- Columns, in order: type, nullability, default, identity, privileges.
    SELECT 'column ' || r.name || ' #' || pg_catalog.row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum)
           || ' ' || a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
           || ' notnull ' || a.attnotnull || ' identity ' || coalesce(nullif(a.attidentity::text, ''), '-')
           || ' generated ' || coalesce(nullif(a.attgenerated::text, ''), '-')
           || ' default ' || coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '-')
           || ' acl ' || coalesce(a.attacl::text, '-')
      FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE r.relkind IN ('r', 'v', 'p', 'm', 'f')
    UNION ALL
    SELECT 'constraint ' || r.name || ' ' || c.conname || ' ' || pg_catalog.pg_get_constraintdef(c.oid)
      FROM rels r JOIN pg_catalog.pg_constraint c ON c.conrelid = r.oid
    UNION ALL
    SELECT 'index ' || r.name || ' ' || pg_catalog.regexp_replace(pg_catalog.pg_get_indexdef(i.indexrelid), ' INDEX \S+ ON ', ' INDEX ON ')
      FROM rels r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT 'trigger ' || r.name || ' ' || pg_catalog.pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
      FROM rels r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT 'policy ' || r.name || ' ' || p.polname || ' ' || p.polcmd::text || ' ' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '-')
      FROM rels r JOIN pg_catalog.pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT 'view ' || name || ' ' || pg_catalog.md5(pg_catalog.pg_get_viewdef(oid))
      FROM rels WHERE relkind IN ('v', 'm')
    UNION ALL
    SELECT 'sequence ' || r.name || ' ' || s.seqtypid::regtype || ' ' || s.seqstart || ' ' || s.seqincrement
           || ' ' || s.seqmin || ' ' || s.seqmax || ' ' || s.seqcycle
      FROM rels r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    -- What pg_dump keeps of the extension's tables.
    SELECT 'dumped ' || c.oid::regclass::text || ' where ' || coalesce(nullif(ext.extcondition[i], ''), '-')
      FROM ext, pg_catalog.generate_subscripts(ext.extconfig, 1) AS i
      JOIN pg_catalog.pg_class c ON true
     WHERE c.oid = ext.extconfig[i]
    UNION ALL
    SELECT 'schema retention acl ' || coalesce(n.nspacl::text, '-') || ' owner ' || n.nspowner::regrole
      FROM pg_catalog.pg_namespace n WHERE n.nspname = 'retention'
    UNION ALL
    SELECT 'role ' || r.rolname || ' login ' || r.rolcanlogin
      FROM pg_catalog.pg_roles r WHERE r.rolname LIKE 'retention\_%'
)
SELECT * FROM lines AS l(line) ORDER BY 1;
