------------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------------

CREATE VIEW retention.requests AS
SELECT r.id, r.kind, r.subject_blind, r.reference, r.received_at, r.due_at, r.extended_months,
       r.extension_reason, r.status, r.refusal_ground, r.completed_at,
       CASE WHEN r.status = 'received' THEN pg_catalog.date_part('day', r.due_at - pg_catalog.now())::int END AS days_left,
       (r.status = 'received' AND r.due_at < pg_catalog.now()) AS overdue,
       r.audit_hash, r.request_type
  FROM retention.erasure_requests r;
COMMENT ON VIEW retention.requests IS
'Requests of data subjects without their ids: erasure (request_type erasure) and access (access): deadlines, days left, overdue ones (status received and past due), outcome and the audit hash at completion.';

CREATE VIEW retention.runs AS
SELECT l.id,
       l.run_id,
       l.policy_id,
       l.policy,
       l.target,
       CASE
           WHEN l.status = 'running' AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_locks k
                 WHERE k.locktype = 'advisory' AND k.granted
                   AND k.classid = 1380275249::oid AND k.objid = l.policy_id::oid
                   AND k.objsubid = 2 AND k.pid = l.backend_pid)
           THEN 'interrupted'
           ELSE l.status
       END AS status,
       l.started_at,
       l.finished_at,
       coalesce(l.finished_at, pg_catalog.clock_timestamp()) - l.started_at AS duration,
       l.cutoff,
       l.rows_purged,
       l.rows_anonymised,
       l.rows_marked,
       l.batches,
       l.retries,
       round(l.max_batch_ms::numeric, 1) AS max_batch_ms,
       l.rows_blocked,
       l.rows_held,
       l.partitions_dropped,
       l.error_code,
       l.error,
       l.note,
       l.run_by,
       l.backend_pid,
       round(l.throttled_ms::numeric, 1) AS throttled_ms,
       l.due_left,
       l.oldest_due,
       l.vacuum_job,
       l.vacuumed_at
  FROM retention.run_log l;

CREATE VIEW retention.status AS SELECT * FROM retention._status();

COMMENT ON VIEW retention.status IS
'One row per policy: state (active, paused, running, or stopped by max_due_fraction until retention.acknowledge), stages, the last run and its result, the last success, the pg_cron schedule and next run (UTC schedules, when pg_cron is installed here), a planner estimate of the due rows (backlog_estimate) and totals. Keeping up: due_left and oldest_due are the due rows of the last stage (purge, else anonymise, else mark) that the last run left, not counting rows kept by holds or references, and the clock of the oldest of them (the watermark); lag is how long that row has been due; became_due_per_day and removed_per_day compare, over the last eight counted runs, the rows that became due between runs with the rows the runs removed; falling_behind is true when what the runs left grew over the last three; overdue_requests counts erasure requests past their deadline whose kind maps this table; dead_rows and last_vacuum come from the statistics. Numeric columns with policy/target labels, ready for a postgres_exporter custom query (monitoring/postgres_exporter.yml).';

COMMENT ON VIEW retention.runs IS
'One row per policy per run: when, by whom, the purge cutoff, rows purged, anonymised and marked, batches committed so far (updated after every batch) and the outcome: running, succeeded, failed (with SQLSTATE and a message free of row data), skipped, or interrupted (the session ended mid-run; committed batches are kept). due_left and oldest_due: the due rows of the last stage the run left (NULL: not counted); vacuum_job: the pg_cron job vacuum_after scheduled; vacuumed_at: when a VACUUM of the table was first seen to have finished after the run.';

------------------------------------------------------------------------------
-- The record of processing activities (GDPR Art. 30(1)(f))
------------------------------------------------------------------------------

CREATE FUNCTION retention.processing_record() RETURNS jsonb
LANGUAGE sql STABLE
-- Periods read the same whatever the caller's IntervalStyle.
SET IntervalStyle = 'postgres'
BEGIN ATOMIC
WITH tables AS (
    -- Named with their schema, whatever the caller's search_path.
    SELECT u.target, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
      FROM (SELECT p.target FROM retention.policies p
            UNION
            SELECT t.target FROM retention.subject_tables t) u
      JOIN pg_catalog.pg_class c ON c.oid = u.target
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
),
policy_entries AS (
    SELECT p.target,
           pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'policy', p.name,
               'purpose', p.purpose,
               'legal_basis', p.legal_basis,
               'clock', p.clock,
               'rows_governed', coalesce(p.filter, 'every row'),
               'stages', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('stage', s.stage, 'after', s.after::text) ORDER BY s.ord), '[]'::jsonb)
                            FROM (VALUES (1, 'mark', p.mark_after), (2, 'anonymise', p.anonymise_after), (3, 'purge', p.purge_after)) s(ord, stage, after)
                           WHERE s.after IS NOT NULL),
               'statutory_minimum', CASE WHEN p.min_retention IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('period', p.min_retention::text, 'ground', p.min_retention_ground) END,
               'masked_columns', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('column', m.column_name, 'mask', m.strategy) ORDER BY m.column_name), '[]'::jsonb)
                                    FROM retention.masks m WHERE m.policy_id = p.id),
               'paused', p.paused,
               'last_successful_run', (SELECT max(r.finished_at) FROM retention.run_log r WHERE r.policy_id = p.id AND r.status = 'succeeded')
           ) ORDER BY p.name) AS entries
      FROM retention.policies p
     GROUP BY p.target
),
subject_entries AS (
    SELECT t.target,
           pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'kind', t.kind,
               'path', t.path,
               'on_erasure', t.action,
               'statutory_minimum', CASE WHEN t.min_retention IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('period', t.min_retention::text, 'ground', t.legal_ground, 'clock', t.clock) END
           ) ORDER BY t.kind) AS entries
      FROM retention.subject_tables t
     GROUP BY t.target
),
holds_in_force AS (
    SELECT h.id, h.reason, h.kind, h.target, h.subject_blind IS NOT NULL AS on_subject
      FROM retention.holds h
     WHERE h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now())
),
table_holds AS (
    SELECT x.target, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('reason', x.reason, 'holds', x.n, 'on', x.scope) ORDER BY x.scope, x.reason) AS entries
      FROM (SELECT h.target, h.reason, 'the table' AS scope, count(*) AS n
              FROM holds_in_force h WHERE h.target IS NOT NULL GROUP BY h.target, h.reason
            UNION ALL
            SELECT t.target, h.reason, 'data subjects (' || h.kind || ')', count(*)
              FROM holds_in_force h JOIN retention.subject_tables t ON t.kind = h.kind
             WHERE h.on_subject GROUP BY t.target, h.kind, h.reason) x
     GROUP BY x.target
)
SELECT pg_catalog.jsonb_build_object(
    'format', 'pg_retention processing record 1',
    'database', pg_catalog.current_database(),
    'generated_at', pg_catalog.now(),
    'tables', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'table', t.name,
                   'retention_policies', coalesce(pe.entries, '[]'::jsonb),
                   'erasure', coalesce(se.entries, '[]'::jsonb),
                   'holds_in_force', coalesce(th.entries, '[]'::jsonb),
                   'gaps', (SELECT coalesce(pg_catalog.jsonb_agg(g.gap), '[]'::jsonb) FROM (
                                SELECT 'mapped for erasure, no retention period' AS gap WHERE pe.entries IS NULL
                                UNION ALL
                                SELECT 'no purpose or legal basis recorded' WHERE EXISTS (
                                    SELECT 1 FROM retention.policies p WHERE p.target = t.target AND (p.purpose IS NULL OR p.legal_basis IS NULL))) g)
               ) ORDER BY t.name), '[]'::jsonb)
                 FROM tables t
                 LEFT JOIN policy_entries pe ON pe.target = t.target
                 LEFT JOIN subject_entries se ON se.target = t.target
                 LEFT JOIN table_holds th ON th.target = t.target),
    'erasure_requests', (SELECT pg_catalog.jsonb_build_object(
                   'received', count(*),
                   'completed', count(*) FILTER (WHERE r.status = 'completed'),
                   'partially_completed', count(*) FILTER (WHERE r.status = 'partially completed'),
                   'refused', count(*) FILTER (WHERE r.status = 'refused'),
                   'completed_on_time', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at <= r.due_at),
                   'completed_late', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at > r.due_at),
                   'pending', count(*) FILTER (WHERE r.status = 'received'),
                   'overdue', count(*) FILTER (WHERE r.overdue))
                 FROM retention.requests r WHERE r.request_type = 'erasure'),
    'access_requests', (SELECT pg_catalog.jsonb_build_object(
                   'received', count(*),
                   'delivered', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed')),
                   'refused', count(*) FILTER (WHERE r.status = 'refused'),
                   'answered_on_time', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at <= r.due_at),
                   'answered_late', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at > r.due_at),
                   'pending', count(*) FILTER (WHERE r.status = 'received'),
                   'overdue', count(*) FILTER (WHERE r.overdue))
                 FROM retention.requests r WHERE r.request_type = 'access'),
    'holds_in_force', (SELECT pg_catalog.jsonb_build_object(
                   'total', count(*),
                   'on_data_subjects', count(*) FILTER (WHERE h.on_subject),
                   'on_tables', count(*) FILTER (WHERE NOT h.on_subject))
                 FROM holds_in_force h)
);
END;

COMMENT ON FUNCTION retention.processing_record() IS
'The retention part of the record of processing activities (GDPR Art. 30(1)(f)) as JSON: per table governed by a policy or mapped for erasure, the policies with purpose, legal basis, stages and their periods, statutory minimums with their grounds and masked columns; the kinds of data subject whose erasure reaches it; the holds in force (counts and reasons, never subjects); gaps (mapped for erasure without a retention period, no purpose or legal basis); then the erasure requests (received, completed on time or late, pending, overdue) and the last successful run of each policy. No personal data.';

CREATE FUNCTION retention.processing_record_text() RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
SELECT pg_catalog.concat_ws(E'\n',
    '# Retention and erasure: record of processing activities (Art. 30(1)(f) GDPR)',
    '',
    'Database `' || (r ->> 'database') || '`, generated ' || (r ->> 'generated_at') || '.',
    '',
    (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(E'\n',
         '## `' || (t ->> 'table') || '`',
         (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(E'\n',
              '- Policy **' || (p ->> 'policy') || '**: ' || coalesce(p ->> 'purpose', '(purpose not recorded)') ||
                  '; legal basis: ' || coalesce(p ->> 'legal_basis', '(not recorded)'),
              '  - Rows: ' || (p ->> 'rows_governed') || '; the period runs from `' || (p ->> 'clock') || '`',
              '  - ' || coalesce((SELECT pg_catalog.string_agg((s ->> 'stage') || ' after ' || (s ->> 'after'), ', ') FROM pg_catalog.jsonb_array_elements(p -> 'stages') s), 'no stages'),
              CASE WHEN p -> 'statutory_minimum' <> 'null'::jsonb THEN '  - Statutory minimum: ' || (p -> 'statutory_minimum' ->> 'period') || ' (' || coalesce(p -> 'statutory_minimum' ->> 'ground', '') || ')' END,
              CASE WHEN pg_catalog.jsonb_array_length(p -> 'masked_columns') > 0 THEN '  - Anonymised columns: ' ||
                  (SELECT pg_catalog.string_agg((m ->> 'column') || ' (' || (m ->> 'mask') || ')', ', ') FROM pg_catalog.jsonb_array_elements(p -> 'masked_columns') m) END,
              '  - Last successful run: ' || coalesce(p ->> 'last_successful_run', 'none yet')), E'\n')
            FROM pg_catalog.jsonb_array_elements(t -> 'retention_policies') p),
         (SELECT pg_catalog.string_agg('- Erasure of **' || (e ->> 'kind') || '** reaches it (' || (e ->> 'on_erasure') || ')' ||
              coalesce('; kept ' || (e -> 'statutory_minimum' ->> 'period') || ' from `' || (e -> 'statutory_minimum' ->> 'clock') || '` (' || (e -> 'statutory_minimum' ->> 'ground') || ')', ''), E'\n')
            FROM pg_catalog.jsonb_array_elements(t -> 'erasure') e),
         (SELECT pg_catalog.string_agg('- Hold in force on ' || (h ->> 'on') || ': ' || (h ->> 'reason') || ' (' || (h ->> 'holds') || ')', E'\n')
            FROM pg_catalog.jsonb_array_elements(t -> 'holds_in_force') h),
         (SELECT pg_catalog.string_agg('- **Gap:** ' || (g #>> '{}'), E'\n') FROM pg_catalog.jsonb_array_elements(t -> 'gaps') g),
         ''), E'\n')
       FROM pg_catalog.jsonb_array_elements(r -> 'tables') t),
    '## Erasure requests',
    '',
    '- Received: ' || (r -> 'erasure_requests' ->> 'received') || '; completed: ' || (r -> 'erasure_requests' ->> 'completed') ||
        ', partially completed: ' || (r -> 'erasure_requests' ->> 'partially_completed') || ', refused: ' || (r -> 'erasure_requests' ->> 'refused'),
    '- Answered on time: ' || (r -> 'erasure_requests' ->> 'completed_on_time') || '; late: ' || (r -> 'erasure_requests' ->> 'completed_late'),
    '- Pending: ' || (r -> 'erasure_requests' ->> 'pending') || '; overdue: ' || (r -> 'erasure_requests' ->> 'overdue'),
    '- Legal holds in force: ' || (r -> 'holds_in_force' ->> 'total') || ' (' || (r -> 'holds_in_force' ->> 'on_data_subjects') || ' on data subjects, ' ||
        (r -> 'holds_in_force' ->> 'on_tables') || ' on tables)',
    '',
    '## Access requests (Art. 15, 20)',
    '',
    '- Received: ' || (r -> 'access_requests' ->> 'received') || '; delivered: ' || (r -> 'access_requests' ->> 'delivered') ||
        ', refused: ' || (r -> 'access_requests' ->> 'refused'),
    '- Answered on time: ' || (r -> 'access_requests' ->> 'answered_on_time') || '; late: ' || (r -> 'access_requests' ->> 'answered_late'),
    '- Pending: ' || (r -> 'access_requests' ->> 'pending') || '; overdue: ' || (r -> 'access_requests' ->> 'overdue'))
  FROM (SELECT retention.processing_record() AS r) s;
END;

COMMENT ON FUNCTION retention.processing_record_text() IS
'retention.processing_record() as Markdown text a data-protection officer can paste into the record of processing activities.';

CREATE FUNCTION retention.export_config() RETURNS jsonb
LANGUAGE sql STABLE
RETURN retention._export_config();

COMMENT ON FUNCTION retention.export_config() IS
'The whole configuration as one canonical JSON document (format "pg_retention config", version 1, described by config/pg_retention-config-1.schema.json): policies with stages, masks, batch settings, limits, partitions, statutory minimum and pg_cron schedule; kinds of data subject with their maps; legal holds in force (subjects by blind index only). Periods are ISO 8601 durations, tables schema-qualified. Exporting the same configuration twice gives the same document; jsonb_pretty() of it diffs cleanly.';

CREATE FUNCTION retention.version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN retention._library_version();

COMMENT ON FUNCTION retention.version() IS
'The version of pg_retention''s library that this database''s functions call.';

CREATE VIEW retention.installation AS
SELECT e.extversion AS installed_version,
       retention._library_version() AS library_version,
       a.default_version AS available_version,
       e.extversion = retention._library_version() AS library_matches,
       a.default_version IS DISTINCT FROM e.extversion AS update_available
  FROM pg_catalog.pg_extension e
  LEFT JOIN pg_catalog.pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'pg_retention';

COMMENT ON VIEW retention.installation IS
'The installed version of pg_retention''s SQL, the version of the library it calls (library_matches is false only when the library file was replaced by another build), and the version the server''s installed files offer (update_available: run ALTER EXTENSION pg_retention UPDATE).';
