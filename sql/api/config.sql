------------------------------------------------------------------------------
-- Policy-as-code: applying a configuration document
------------------------------------------------------------------------------
-- retention.apply_config(doc, dry_run) makes the database match a document
-- in the format of retention.export_config(). It changes nothing by itself:
-- every change goes through the public functions (create_policy,
-- alter_policy, add_stage, set_mask, register_subject, place_hold, ...), so
-- the same checks, rights and SQLSTATEs apply as when a DBA calls them. All
-- of it happens in one subtransaction: an error anywhere undoes everything,
-- and a dry run undoes everything on purpose once the plan is known.

CREATE FUNCTION retention.apply_config(doc jsonb, dry_run boolean DEFAULT true)
RETURNS TABLE (change text, object text, name text, detail text, due_rows bigint, due_rows_before bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    before      jsonb;
    after       jsonb;
    due_before  jsonb;
    plan        jsonb := '[]';
    cur_policy  jsonb;
    p           record;
    k           record;
    t           record;
    h           record;
    m           record;
    bad         text;
    obj         text;  -- the object being applied, named in errors
    pname       text;
    pol         jsonb;
    st          jsonb;
    cur_st      jsonb;
    act         text;
    cur_kind    jsonb;
    rebuild     boolean;
    hold_id     bigint;
    wanted      bigint[] := '{}';
    canon       text;
    release_unlisted boolean;
    e_state     text;
    e_msg       text;
    e_detail    text;
    e_hint      text;
    undone      boolean := false;
BEGIN
    -- The document's shape, before anything is touched.
    IF doc IS NULL OR pg_catalog.jsonb_typeof(doc) <> 'object'
       OR (doc ->> 'format') IS DISTINCT FROM 'pg_retention config' THEN
        RAISE EXCEPTION 'the document is not a pg_retention configuration'
            USING ERRCODE = '22023', HINT = 'Start from retention.export_config(): an object with "format": "pg_retention config".';
    END IF;
    IF (doc -> 'version') IS DISTINCT FROM '1'::jsonb THEN
        RAISE EXCEPTION 'configuration version % is not supported', coalesce(doc ->> 'version', 'null')
            USING ERRCODE = '22023', HINT = 'This version of pg_retention reads version 1 (config/pg_retention-config-1.schema.json).';
    END IF;
    SELECT key INTO bad FROM pg_catalog.jsonb_object_keys(doc) key
     WHERE key <> ALL (ARRAY['format', 'version', 'policies', 'subject_kinds', 'holds', 'schedule', 'release_unlisted_holds'])
     ORDER BY 1 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown key "%" in the configuration', bad
            USING ERRCODE = '22023', HINT = 'Keys: format, version, policies, subject_kinds, holds, schedule, release_unlisted_holds.';
    END IF;
    IF pg_catalog.jsonb_typeof(doc -> 'policies') IS DISTINCT FROM 'object'
       OR pg_catalog.jsonb_typeof(doc -> 'subject_kinds') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'the configuration needs "policies" and "subject_kinds" objects'
            USING ERRCODE = '22023', HINT = 'Give {} for none: what the document leaves out is dropped.';
    END IF;
    IF (doc ? 'holds') AND pg_catalog.jsonb_typeof(doc -> 'holds') <> 'array' THEN
        RAISE EXCEPTION '"holds" must be an array' USING ERRCODE = '22023';
    END IF;
    release_unlisted := coalesce((doc ->> 'release_unlisted_holds')::boolean, false);
    FOR p IN SELECT e.key AS pname, e.value AS pol FROM pg_catalog.jsonb_each(doc -> 'policies') e ORDER BY 1 LOOP
        IF pg_catalog.jsonb_typeof(p.pol) <> 'object' THEN
            RAISE EXCEPTION 'policy "%" must be an object', p.pname USING ERRCODE = '22023';
        END IF;
        SELECT s.path INTO bad FROM (
            SELECT key AS path FROM pg_catalog.jsonb_object_keys(p.pol) key
             WHERE key <> ALL (ARRAY['table', 'clock', 'filter', 'purpose', 'legal_basis', 'stages', 'masks', 'statutory_minimum',
                                     'batches', 'limits', 'partitions', 'vacuum_after', 'paused', 'schedule'])
            UNION ALL
            SELECT 'stages.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'stages', '{}')) key
             WHERE key <> ALL (ARRAY['mark', 'anonymise', 'purge'])
            UNION ALL
            SELECT 'batches.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'batches', '{}')) key
             WHERE key <> ALL (ARRAY['size', 'target', 'pause', 'skip_locked'])
            UNION ALL
            SELECT 'limits.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'limits', '{}')) key
             WHERE key <> ALL (ARRAY['lock_timeout', 'statement_timeout', 'max_run_time', 'max_rows_per_second', 'max_due_fraction'])
            UNION ALL
            SELECT 'partitions.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'partitions', '{}')) key
             WHERE key <> ALL (ARRAY['drop', 'archive_schema'])
            UNION ALL
            SELECT 'statutory_minimum.' || key FROM pg_catalog.jsonb_object_keys(coalesce(nullif(p.pol -> 'statutory_minimum', 'null'), '{}')) key
             WHERE key <> ALL (ARRAY['period', 'ground'])) s
         ORDER BY 1 LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'unknown key "%" in policy "%"', bad, p.pname
                USING ERRCODE = '22023', HINT = 'retention.export_config() shows every key a policy has.';
        END IF;
        IF (p.pol ->> 'table') IS NULL OR (p.pol ->> 'clock') IS NULL THEN
            RAISE EXCEPTION 'policy "%" needs "table" and "clock"', p.pname USING ERRCODE = '22023';
        END IF;
    END LOOP;
    FOR k IN SELECT e.key AS kind, e.value AS def FROM pg_catalog.jsonb_each(doc -> 'subject_kinds') e ORDER BY 1 LOOP
        SELECT s.path INTO bad FROM (
            SELECT key AS path FROM pg_catalog.jsonb_object_keys(k.def) key
             WHERE key <> ALL (ARRAY['root', 'id_column', 'tables', 'sweep'])
            UNION ALL
            SELECT 'tables[].' || key FROM pg_catalog.jsonb_array_elements(coalesce(k.def -> 'tables', '[]')) t,
                   pg_catalog.jsonb_object_keys(t) key
             WHERE key <> ALL (ARRAY['table', 'link', 'columns', 'parent', 'parent_columns', 'matches', 'action',
                                     'statutory_minimum', 'mask_policy', 'also'])) s
         ORDER BY 1 LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'unknown key "%" in subject kind "%"', bad, k.kind
                USING ERRCODE = '22023', HINT = 'retention.export_config() shows every key a subject kind has.';
        END IF;
        IF (k.def ->> 'root') IS NULL OR (k.def ->> 'id_column') IS NULL THEN
            RAISE EXCEPTION 'subject kind "%" needs "root" and "id_column"', k.kind USING ERRCODE = '22023';
        END IF;
    END LOOP;

    before := retention.export_config();
    -- What every policy would do now, to show what each change makes due.
    SELECT coalesce(pg_catalog.jsonb_object_agg(v.policy || '/' || v.action, v.due_rows), '{}')
      INTO due_before FROM retention.preview() v;

    BEGIN
        -- 1. Policies: created, or changed to match.
        FOR p IN SELECT e.key AS pname, e.value AS pol FROM pg_catalog.jsonb_each(doc -> 'policies') e ORDER BY 1 LOOP
            obj := pg_catalog.format('policy "%s"', p.pname);
            pname := p.pname;
            pol := p.pol;
            cur_policy := before -> 'policies' -> pname;
                IF cur_policy IS NOT NULL AND (cur_policy ->> 'table') IS DISTINCT FROM
                   (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = (pol ->> 'table')::regclass) THEN
                    -- Another table: another policy under the same name.
                    IF (cur_policy ->> 'schedule') IS NOT NULL THEN
                        PERFORM retention.unschedule(pname);
                    END IF;
                    PERFORM retention.drop_policy(pname);
                    cur_policy := NULL;
                END IF;
                IF cur_policy IS NULL THEN
                    PERFORM retention.create_policy(
                        name => pname,
                        target => (pol ->> 'table')::regclass,
                        clock => pol ->> 'clock',
                        purge_after => (pol -> 'stages' -> 'purge' ->> 'after')::interval,
                        filter => pol ->> 'filter',
                        batch_size => coalesce((pol -> 'batches' ->> 'size')::integer, 100000),
                        batch_pause => coalesce((pol -> 'batches' ->> 'pause')::interval, interval '0'),
                        skip_locked => coalesce((pol -> 'batches' ->> 'skip_locked')::boolean, true),
                        purpose => pol ->> 'purpose',
                        legal_basis => pol ->> 'legal_basis',
                        lock_timeout => coalesce((pol -> 'limits' ->> 'lock_timeout')::interval, interval '2 seconds'),
                        statement_timeout => coalesce((pol -> 'limits' ->> 'statement_timeout')::interval, interval '1 minute'),
                        max_run_time => (pol -> 'limits' ->> 'max_run_time')::interval,
                        max_rows_per_second => (pol -> 'limits' ->> 'max_rows_per_second')::integer,
                        drop_partitions => coalesce((pol -> 'partitions' ->> 'drop')::boolean, true),
                        archive_schema => pol -> 'partitions' ->> 'archive_schema',
                        min_retention => (pol -> 'statutory_minimum' ->> 'period')::interval,
                        min_retention_ground => pol -> 'statutory_minimum' ->> 'ground',
                        batch_target => CASE WHEN (pol -> 'batches') ? 'target'
                                             THEN (pol -> 'batches' ->> 'target')::interval
                                             ELSE interval '100 milliseconds' END,
                        vacuum_after => coalesce((pol ->> 'vacuum_after')::boolean, false),
                        max_due_fraction => (pol -> 'limits' ->> 'max_due_fraction')::real);
                    cur_st := pg_catalog.jsonb_build_object('purge', pol -> 'stages' -> 'purge');
                ELSE
                    cur_st := coalesce(cur_policy -> 'stages', '{}');
                    -- Stages that change or go are dropped first, so that
                    -- the order of the stages holds at every step.
                    FOREACH act IN ARRAY ARRAY['mark', 'anonymise'] LOOP
                        -- As text: interval '1 mon' equals interval '30 days'.
                        IF ((cur_st -> act ->> 'after')::interval::text, cur_st -> act ->> 'column') IS DISTINCT FROM
                           ((pol -> 'stages' -> act ->> 'after')::interval::text, pol -> 'stages' -> act ->> 'column') THEN
                            PERFORM retention.drop_stage(pname, act);
                            cur_st := cur_st - act;
                        END IF;
                    END LOOP;
                    IF (cur_st ? 'purge') AND NOT coalesce(pol -> 'stages' ? 'purge', false) THEN
                        PERFORM retention.drop_stage(pname, 'purge');
                        cur_st := cur_st - 'purge';
                    END IF;
                    -- Only a policy whose settings differ is altered (and
                    -- so only then are the rights to alter it needed).
                    IF (SELECT pg_catalog.count(DISTINCT ROW(
                            j ->> 'clock', j ->> 'filter', j ->> 'purpose', j ->> 'legal_basis',
                            (j -> 'stages' -> 'purge' ->> 'after')::interval,
                            coalesce((j -> 'batches' ->> 'size')::integer, 100000),
                            coalesce((j -> 'batches' ->> 'pause')::interval, interval '0'),
                            coalesce((j -> 'batches' ->> 'skip_locked')::boolean, true),
                            CASE WHEN coalesce((j -> 'batches') ? 'target', false) THEN (j -> 'batches' ->> 'target')::interval
                                 ELSE interval '100 milliseconds' END,
                            coalesce((j -> 'limits' ->> 'lock_timeout')::interval, interval '2 seconds'),
                            coalesce((j -> 'limits' ->> 'statement_timeout')::interval, interval '1 minute'),
                            (j -> 'limits' ->> 'max_run_time')::interval,
                            (j -> 'limits' ->> 'max_rows_per_second')::integer,
                            (j -> 'limits' ->> 'max_due_fraction')::real,
                            coalesce((j -> 'partitions' ->> 'drop')::boolean, true),
                            j -> 'partitions' ->> 'archive_schema',
                            coalesce((j ->> 'vacuum_after')::boolean, false),
                            (j -> 'statutory_minimum' ->> 'period')::interval,
                            j -> 'statutory_minimum' ->> 'ground')::text)
                          FROM (VALUES (cur_policy), (pol)) v(j)) > 1 THEN
                    PERFORM retention.alter_policy(
                        name => pname,
                        clock => pol ->> 'clock',
                        purge_after => CASE WHEN cur_st ? 'purge' THEN (pol -> 'stages' -> 'purge' ->> 'after')::interval END,
                        filter => pol ->> 'filter',
                        drop_filter => (pol ->> 'filter') IS NULL,
                        batch_size => coalesce((pol -> 'batches' ->> 'size')::integer, 100000),
                        batch_pause => coalesce((pol -> 'batches' ->> 'pause')::interval, interval '0'),
                        skip_locked => coalesce((pol -> 'batches' ->> 'skip_locked')::boolean, true),
                        purpose => pol ->> 'purpose',
                        legal_basis => pol ->> 'legal_basis',
                        lock_timeout => coalesce((pol -> 'limits' ->> 'lock_timeout')::interval, interval '2 seconds'),
                        statement_timeout => coalesce((pol -> 'limits' ->> 'statement_timeout')::interval, interval '1 minute'),
                        max_run_time => (pol -> 'limits' ->> 'max_run_time')::interval,
                        no_max_run_time => (pol -> 'limits' ->> 'max_run_time') IS NULL,
                        max_rows_per_second => (pol -> 'limits' ->> 'max_rows_per_second')::integer,
                        no_rate_limit => (pol -> 'limits' ->> 'max_rows_per_second') IS NULL,
                        drop_partitions => coalesce((pol -> 'partitions' ->> 'drop')::boolean, true),
                        archive_schema => pol -> 'partitions' ->> 'archive_schema',
                        no_archive => (pol -> 'partitions' ->> 'archive_schema') IS NULL,
                        batch_target => CASE WHEN NOT coalesce((pol -> 'batches') ? 'target', false) THEN interval '100 milliseconds'
                                             ELSE (pol -> 'batches' ->> 'target')::interval END,
                        no_batch_target => coalesce((pol -> 'batches') ? 'target', false) AND (pol -> 'batches' ->> 'target') IS NULL,
                        vacuum_after => coalesce((pol ->> 'vacuum_after')::boolean, false),
                        max_due_fraction => (pol -> 'limits' ->> 'max_due_fraction')::real,
                        no_max_due_fraction => (pol -> 'limits' ->> 'max_due_fraction') IS NULL,
                        min_retention => (pol -> 'statutory_minimum' ->> 'period')::interval,
                        min_retention_ground => pol -> 'statutory_minimum' ->> 'ground',
                        no_min_retention => (pol -> 'statutory_minimum' ->> 'period') IS NULL);
                    END IF;
                    IF (cur_policy ->> 'purpose') IS NOT NULL AND (pol ->> 'purpose') IS NULL
                       OR (cur_policy ->> 'legal_basis') IS NOT NULL AND (pol ->> 'legal_basis') IS NULL THEN
                        RAISE EXCEPTION 'the purpose and legal basis of a policy cannot be removed'
                            USING ERRCODE = '0A000', HINT = 'They document the policy for the record of processing activities: give new ones.';
                    END IF;
                END IF;
                -- Stages the policy does not have yet, in lifecycle order
                -- (purge first: the others are checked against it).
                IF NOT (cur_st ? 'purge') AND (pol -> 'stages' ? 'purge') THEN
                    PERFORM retention.add_stage(pname, (pol -> 'stages' -> 'purge' ->> 'after')::interval, 'purge');
                END IF;
                FOREACH act IN ARRAY ARRAY['anonymise', 'mark'] LOOP
                    st := pol -> 'stages' -> act;
                    IF st IS NOT NULL AND st <> 'null' AND NOT (cur_st ? act) THEN
                        PERFORM retention.add_stage(pname, (st ->> 'after')::interval, act, st ->> 'column');
                    END IF;
                END LOOP;
                -- Masks.
                FOR m IN SELECT e.key AS col, e.value AS def FROM pg_catalog.jsonb_each(coalesce(pol -> 'masks', '{}')) e ORDER BY 1 LOOP
                    IF (cur_policy -> 'masks' -> m.col) IS DISTINCT FROM
                       pg_catalog.jsonb_build_object('strategy', m.def ->> 'strategy', 'options', coalesce(m.def -> 'options', '{}')) THEN
                        PERFORM retention.set_mask(pname, m.col, m.def ->> 'strategy', coalesce(m.def -> 'options', '{}'));
                    END IF;
                END LOOP;
                FOR m IN SELECT e.key AS col FROM pg_catalog.jsonb_each(coalesce(cur_policy -> 'masks', '{}')) e
                          WHERE NOT coalesce(pol -> 'masks' ? e.key, false) ORDER BY 1 LOOP
                    PERFORM retention.drop_mask(pname, m.col);
                END LOOP;
                IF coalesce((pol ->> 'paused')::boolean, false) IS DISTINCT FROM coalesce((cur_policy ->> 'paused')::boolean, false) THEN
                    IF coalesce((pol ->> 'paused')::boolean, false) THEN
                        PERFORM retention.pause_policy(pname);
                    ELSE
                        PERFORM retention.resume_policy(pname);
                    END IF;
                END IF;
                IF (pol ->> 'schedule') IS DISTINCT FROM (cur_policy ->> 'schedule') THEN
                    IF (pol ->> 'schedule') IS NULL THEN
                        PERFORM retention.unschedule(pname);
                    ELSE
                        PERFORM retention.schedule(pol ->> 'schedule', pname);
                    END IF;
                END IF;
        END LOOP;

        -- 2. Kinds of data subject: rebuilt when their map differs in
        -- shape (or loses a statutory minimum), else changed per table.
        FOR k IN SELECT e.key AS kind, e.value AS def FROM pg_catalog.jsonb_each(doc -> 'subject_kinds') e ORDER BY 1 LOOP
            obj := pg_catalog.format('subject kind "%s"', k.kind);
            cur_kind := before -> 'subject_kinds' -> k.kind;
                rebuild := cur_kind IS NULL
                    OR (SELECT (cur_kind ->> 'root')::regclass) <> (k.def ->> 'root')::regclass
                    OR (cur_kind ->> 'id_column') <> (k.def ->> 'id_column')
                    OR (SELECT pg_catalog.array_agg(x ORDER BY x) FROM (
                            SELECT pg_catalog.jsonb_build_array((e ->> 'table')::regclass::oid, e -> 'link', e -> 'columns', e -> 'matches',
                                                                coalesce(e -> 'also', '[]'))::text AS x
                              FROM pg_catalog.jsonb_array_elements(cur_kind -> 'tables') e) s)
                       IS DISTINCT FROM
                       (SELECT pg_catalog.array_agg(x ORDER BY x) FROM (
                            SELECT pg_catalog.jsonb_build_array((e ->> 'table')::regclass::oid, e -> 'link', e -> 'columns', e -> 'matches',
                                                                coalesce(e -> 'also', '[]'))::text AS x
                              FROM pg_catalog.jsonb_array_elements(coalesce(k.def -> 'tables', '[]')) e) s)
                    OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(cur_kind -> 'tables') c
                                 JOIN pg_catalog.jsonb_array_elements(k.def -> 'tables') d
                                   ON (c ->> 'table')::regclass = (d ->> 'table')::regclass
                                WHERE coalesce(c -> 'statutory_minimum', 'null') <> 'null'
                                  AND coalesce(d -> 'statutory_minimum', 'null') = 'null');
                IF rebuild THEN
                    IF cur_kind IS NOT NULL THEN
                        PERFORM retention.drop_subject(k.kind);
                    END IF;
                    PERFORM retention.register_subject(k.kind, (k.def ->> 'root')::regclass, k.def ->> 'id_column',
                        follow_foreign_keys => EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                                                        WHERE e ->> 'link' = 'foreign key'));
                    FOR t IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                              WHERE e ->> 'link' = 'value' LOOP
                        PERFORM retention.add_subject_table(k.kind, (t.def ->> 'table')::regclass, t.def -> 'columns' ->> 0,
                                                            matches => t.def ->> 'matches');
                    END LOOP;
                    -- Further foreign keys, then owned tables after the tables
                    -- that reference them.
                    FOR t IN SELECT e AS def, a AS path
                               FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e,
                                    pg_catalog.jsonb_array_elements(coalesce(e -> 'also', '[]')) a LOOP
                        PERFORM retention.add_subject_path(k.kind, (t.def ->> 'table')::regclass, t.path ->> 'foreign_key');
                    END LOOP;
                    FOR t IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') WITH ORDINALITY AS x(e, n)
                              WHERE e ->> 'link' = 'owned' ORDER BY x.n LOOP
                        PERFORM retention.add_owned_table(k.kind, (t.def ->> 'table')::regclass,
                                                          via => (t.def ->> 'parent')::regclass);
                    END LOOP;
                    -- The foreign keys of this database must give the map
                    -- the document describes.
                    SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO bad FROM (
                        SELECT (e ->> 'table') || ' (' || (e ->> 'link') || '), not found' AS x
                          FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                         WHERE NOT EXISTS (SELECT 1 FROM retention.subject_tables st2
                                            WHERE st2.kind = k.kind AND st2.target = (e ->> 'table')::regclass
                                              AND st2.link = (e ->> 'link'))
                        UNION ALL
                        SELECT pg_catalog.format('%s (%s), not in the document', st2.target::regclass::text, st2.link)
                          FROM retention.subject_tables st2
                         WHERE st2.kind = k.kind
                           AND NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                                            WHERE (e ->> 'table')::regclass = st2.target)) s;
                    IF bad IS NOT NULL THEN
                        RAISE EXCEPTION 'the foreign keys of this database give a different map than the document'
                            USING ERRCODE = '22023', DETAIL = 'Differs: ' || bad || '.',
                                  HINT = 'retention.subject_map(kind) shows the map the foreign keys give; change the document or the schema.';
                    END IF;
                    cur_kind := NULL;
                END IF;
                -- The final sweep.
                IF coalesce((k.def ->> 'sweep')::boolean, false)
                   IS DISTINCT FROM coalesce((cur_kind ->> 'sweep')::boolean, false) THEN
                    PERFORM retention.set_erasure_sweep(k.kind, coalesce((k.def ->> 'sweep')::boolean, false));
                END IF;
                -- Actions, statutory minimums and masks per table.
                FOR t IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e LOOP
                    IF (coalesce(t.def ->> 'action', 'purge'), t.def -> 'statutory_minimum', t.def ->> 'mask_policy') IS DISTINCT FROM
                       (SELECT (coalesce(c ->> 'action', 'purge'), c -> 'statutory_minimum', c ->> 'mask_policy')
                          FROM pg_catalog.jsonb_array_elements(cur_kind -> 'tables') c
                         WHERE (c ->> 'table')::regclass = (t.def ->> 'table')::regclass)
                       AND NOT (cur_kind IS NULL AND coalesce(t.def ->> 'action', 'purge') = 'purge'
                                AND coalesce(t.def -> 'statutory_minimum', 'null') = 'null') THEN
                        PERFORM retention.set_subject_table(k.kind, (t.def ->> 'table')::regclass,
                            action => coalesce(t.def ->> 'action', 'purge'),
                            min_retention => (t.def -> 'statutory_minimum' ->> 'period')::interval,
                            legal_ground => t.def -> 'statutory_minimum' ->> 'ground',
                            clock => t.def -> 'statutory_minimum' ->> 'clock',
                            mask_policy => t.def ->> 'mask_policy');
                    END IF;
                END LOOP;
        END LOOP;
        FOR k IN SELECT e.key AS kind FROM pg_catalog.jsonb_each(before -> 'subject_kinds') e
                  WHERE NOT (doc -> 'subject_kinds' ? e.key) ORDER BY 1 LOOP
            obj := pg_catalog.format('subject kind "%s"', k.kind);
            PERFORM retention.drop_subject(k.kind);
        END LOOP;

        -- 3. Policies the document leaves out.
        FOR p IN SELECT e.key AS pname, e.value AS pol FROM pg_catalog.jsonb_each(before -> 'policies') e
                  WHERE NOT (doc -> 'policies' ? e.key) ORDER BY 1 LOOP
            obj := pg_catalog.format('policy "%s"', p.pname);
            IF (p.pol ->> 'schedule') IS NOT NULL THEN
                PERFORM retention.unschedule(p.pname);
            END IF;
            PERFORM retention.drop_policy(p.pname);
        END LOOP;

        -- 4. Legal holds: placed when the document has one the database
        -- has not (filters compared in the form holds store them); released
        -- only when the document says so.
        IF doc ? 'holds' THEN
            FOR h IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(doc -> 'holds') e LOOP
                obj := pg_catalog.format('hold "%s"', h.def ->> 'reason');
                IF (h.def ->> 'kind') IS NOT NULL AND (h.def ->> 'subject_blind_index') IS NULL THEN
                    RAISE EXCEPTION 'a hold on a kind of data subject needs its subject_blind_index'
                        USING ERRCODE = '22023', HINT = 'A hold on a whole table names only "table" (and "filter").';
                END IF;
                canon := CASE WHEN (h.def ->> 'filter') IS NOT NULL AND (h.def ->> 'table') IS NOT NULL
                              THEN retention._hold_filter((h.def ->> 'table')::regclass, h.def ->> 'filter') END;
                SELECT hl.id INTO hold_id FROM retention.holds hl
                 WHERE hl.released_at IS NULL AND (hl.until IS NULL OR hl.until > pg_catalog.now())
                   AND (h.def ->> 'reason') = hl.reason
                   AND (h.def ->> 'kind') IS NOT DISTINCT FROM hl.kind
                   AND (h.def ->> 'subject_blind_index') IS NOT DISTINCT FROM hl.subject_blind
                   AND (h.def ->> 'table')::regclass IS NOT DISTINCT FROM hl.target
                   AND canon IS NOT DISTINCT FROM hl.filter
                   AND (h.def ->> 'until')::timestamptz IS NOT DISTINCT FROM hl.until
                   AND hl.id <> ALL (wanted)
                 ORDER BY hl.id LIMIT 1;
                IF hold_id IS NULL THEN
                    IF (h.def ->> 'subject_blind_index') IS NOT NULL THEN
                        RAISE EXCEPTION 'a hold on a data subject cannot be placed from its blind index'
                            USING ERRCODE = '22023',
                                  HINT = 'Place it with retention.place_hold(reason, kind, subject_id); the document lists it once it is in force.';
                    END IF;
                    hold_id := retention.place_hold(h.def ->> 'reason', target => (h.def ->> 'table')::regclass,
                                                    filter => h.def ->> 'filter', until => (h.def ->> 'until')::timestamptz);
                END IF;
                wanted := wanted || hold_id;
            END LOOP;
            obj := NULL;
            IF release_unlisted THEN
                FOR h IN SELECT hl.id FROM retention.holds hl
                          WHERE hl.released_at IS NULL AND (hl.until IS NULL OR hl.until > pg_catalog.now())
                            AND hl.id <> ALL (wanted)
                          ORDER BY hl.id LOOP
                    PERFORM retention.release_hold(h.id);
                END LOOP;
            END IF;
        END IF;

        -- 5. The schedule of runs of all policies.
        obj := 'schedule';
        IF (doc ? 'schedule') AND (doc ->> 'schedule') IS DISTINCT FROM (before ->> 'schedule') THEN
            IF (doc ->> 'schedule') IS NULL THEN
                PERFORM retention.unschedule();
            ELSE
                PERFORM retention.schedule(doc ->> 'schedule');
            END IF;
        END IF;

        obj := NULL;
        -- The plan: what differs between the configuration before and
        -- after, and what each created or changed policy finds due now.
        after := retention.export_config();
        WITH RECURSIVE
        leaves(root, name, path, v) AS (
            SELECT 'policy', e.key, ARRAY[]::text[], e.value FROM pg_catalog.jsonb_each(before -> 'policies') e
            UNION ALL
            SELECT 'policy', e.key, ARRAY[]::text[], e.value FROM pg_catalog.jsonb_each(after -> 'policies') e
            UNION ALL
            SELECT l.root, l.name, l.path || c.key, c.value
              FROM leaves l, pg_catalog.jsonb_each(l.v) c WHERE pg_catalog.jsonb_typeof(l.v) = 'object'),
        diff AS (
            SELECT pol.name, pg_catalog.string_agg(pg_catalog.format('%s: %s → %s', pg_catalog.array_to_string(pol.path, '.'),
                       coalesce(b.v::text, 'none'), coalesce(a.v::text, 'none')), '; ' ORDER BY pol.path) AS detail
              FROM (SELECT DISTINCT l.name, l.path FROM leaves l
                     WHERE pg_catalog.jsonb_typeof(l.v) <> 'object' OR l.v = '{}') pol
              LEFT JOIN LATERAL (SELECT before -> 'policies' -> pol.name #> pol.path AS v) b ON true
              LEFT JOIN LATERAL (SELECT after -> 'policies' -> pol.name #> pol.path AS v) a ON true
             WHERE (before -> 'policies') ? pol.name AND (after -> 'policies') ? pol.name
               AND b.v IS DISTINCT FROM a.v
               -- An object that appears or goes shows as its values.
               AND NOT coalesce(pg_catalog.jsonb_typeof(b.v) = 'object' AND b.v <> '{}', false)
               AND NOT coalesce(pg_catalog.jsonb_typeof(a.v) = 'object' AND a.v <> '{}', false)
             GROUP BY pol.name)
        SELECT coalesce(pg_catalog.jsonb_agg(x ORDER BY pg_catalog.array_position(ARRAY['policy', 'policy stage', 'subject kind', 'hold', 'schedule'], x ->> 'o'),
                                                       x ->> 'n', x ->> 'c'), '[]') INTO plan FROM (
            SELECT pg_catalog.jsonb_build_object('c', 'create', 'o', 'policy', 'n', e.key,
                       'd', 'on ' || (e.value ->> 'table')) AS x
              FROM pg_catalog.jsonb_each(after -> 'policies') e WHERE NOT (before -> 'policies' ? e.key)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'drop', 'o', 'policy', 'n', e.key, 'd', 'on ' || (e.value ->> 'table'))
              FROM pg_catalog.jsonb_each(before -> 'policies') e WHERE NOT (after -> 'policies' ? e.key)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'change', 'o', 'policy', 'n', d.name, 'd', d.detail) FROM diff d
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'due now', 'o', 'policy stage', 'n', v.policy || ' ' || v.action,
                       'd', 'cutoff ' || coalesce(pg_catalog.to_char(v.cutoff AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC', 'none')
                            || coalesce('; ' || v.note, ''),
                       'due', v.due_rows, 'due_before', due_before -> (v.policy || '/' || v.action))
              FROM retention.preview() v
             WHERE NOT (before -> 'policies' ? v.policy)
                OR EXISTS (SELECT 1 FROM diff d WHERE d.name = v.policy)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', CASE WHEN NOT (before -> 'subject_kinds' ? e.key) THEN 'create' ELSE 'change' END,
                       'o', 'subject kind', 'n', e.key,
                       'd', (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(e.value -> 'tables')) || ' tables')
              FROM pg_catalog.jsonb_each(after -> 'subject_kinds') e
             WHERE (before -> 'subject_kinds' -> e.key) IS DISTINCT FROM e.value
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'drop', 'o', 'subject kind', 'n', e.key, 'd', NULL)
              FROM pg_catalog.jsonb_each(before -> 'subject_kinds') e WHERE NOT (after -> 'subject_kinds' ? e.key)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'place', 'o', 'hold', 'n', a ->> 'reason', 'd', coalesce(a ->> 'table', a ->> 'kind'))
              FROM pg_catalog.jsonb_array_elements(after -> 'holds') a WHERE NOT (before -> 'holds') @> pg_catalog.jsonb_build_array(a)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'release', 'o', 'hold', 'n', b ->> 'reason', 'd', coalesce(b ->> 'table', b ->> 'kind'))
              FROM pg_catalog.jsonb_array_elements(before -> 'holds') b WHERE NOT (after -> 'holds') @> pg_catalog.jsonb_build_array(b)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'keep', 'o', 'hold', 'n', hl.reason,
                       'd', coalesce(hl.target::regclass::text, hl.kind) || '; not in the document, kept ("release_unlisted_holds": true releases it)')
              FROM retention.holds hl
             WHERE (doc ? 'holds') AND hl.released_at IS NULL AND (hl.until IS NULL OR hl.until > pg_catalog.now())
               AND hl.id <> ALL (wanted)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'change', 'o', 'schedule', 'n', 'all policies',
                       'd', coalesce(before ->> 'schedule', 'none') || ' → ' || coalesce(after ->> 'schedule', 'none'))
             WHERE (before -> 'schedule') IS DISTINCT FROM (after -> 'schedule')) s;

        -- A dry run unless dry_run is false (NULL is not a yes).
        IF dry_run IS NOT FALSE THEN
            undone := true;
            RAISE EXCEPTION 'dry run' USING ERRCODE = 'RT001';
        END IF;
    EXCEPTION
        WHEN SQLSTATE 'RT001' THEN
            IF NOT undone THEN
                RAISE;
            END IF;
        WHEN OTHERS THEN
            -- Everything is undone; the error names the object it came from.
            IF obj IS NULL THEN
                RAISE;
            END IF;
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
            IF e_state = '42P01' THEN
                e_hint := 'Tables in the document are schema-qualified, e.g. public.orders.';
            END IF;
            IF e_detail = '' AND e_hint = '' THEN
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state;
            ELSIF e_detail = '' THEN
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state, HINT = e_hint;
            ELSIF e_hint = '' THEN
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state, DETAIL = e_detail;
            ELSE
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state, DETAIL = e_detail, HINT = e_hint;
            END IF;
    END;

    RETURN QUERY
    SELECT x ->> 'c', x ->> 'o', x ->> 'n', x ->> 'd', (x ->> 'due')::bigint, (x ->> 'due_before')::bigint
      FROM pg_catalog.jsonb_array_elements(plan) x;
END
$fn$;

COMMENT ON FUNCTION retention.apply_config(jsonb, boolean) IS
'Makes the configuration match DOC, a document in the format of retention.export_config(): policies and subject kinds it lists are created or changed, those it leaves out are dropped; holds it lists are placed (holds on subjects only by retention.place_hold), holds it leaves out are kept unless "release_unlisted_holds": true. Every change goes through the public functions, with their checks, rights and SQLSTATEs, in one transaction: an error anywhere changes nothing. Returns the plan, one row per change, and for every created or changed policy the rows each stage finds due now (due_rows) and found due before (due_rows_before). DRY_RUN (the default) returns the plan and changes nothing.';
