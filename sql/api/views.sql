------------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------------

CREATE VIEW retention.requests AS
SELECT r.id, r.kind, r.subject_blind, r.reference, r.received_at, r.due_at, r.extended_months,
       r.extension_reason, r.status, r.refusal_ground, r.completed_at,
       CASE WHEN r.status = 'received' THEN pg_catalog.date_part('day', r.due_at - pg_catalog.now())::int END AS days_left,
       (r.status = 'received' AND r.due_at < pg_catalog.now()) AS overdue,
       r.audit_hash
  FROM retention.erasure_requests r;
COMMENT ON VIEW retention.requests IS
'Erasure requests without subject ids: deadlines, days left, overdue ones (status received and past due), outcome and the audit hash at completion.';

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
'One row per policy: state (active, paused, running), stages, the last run and its result, the last success, the pg_cron schedule and next run (UTC schedules, when pg_cron is installed here), a planner estimate of the due rows (backlog_estimate) and totals. Keeping up: due_left and oldest_due are the due rows of the last stage (purge, else anonymise, else mark) that the last run left, not counting rows kept by holds or references, and the clock of the oldest of them (the watermark); lag is how long that row has been due; became_due_per_day and removed_per_day compare, over the last eight counted runs, the rows that became due between runs with the rows the runs removed; falling_behind is true when what the runs left grew over the last three; overdue_requests counts erasure requests past their deadline whose kind maps this table; dead_rows and last_vacuum come from the statistics. Numeric columns with policy/target labels, ready for a postgres_exporter custom query (monitoring/postgres_exporter.yml).';

COMMENT ON VIEW retention.runs IS
'One row per policy per run: when, by whom, the purge cutoff, rows purged, anonymised and marked, batches committed so far (updated after every batch) and the outcome: running, succeeded, failed (with SQLSTATE and a message free of row data), skipped, or interrupted (the session ended mid-run; committed batches are kept). due_left and oldest_due: the due rows of the last stage the run left (NULL: not counted); vacuum_job: the pg_cron job vacuum_after scheduled; vacuumed_at: when a VACUUM of the table was first seen to have finished after the run.';

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
