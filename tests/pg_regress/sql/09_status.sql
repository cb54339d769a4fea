-- retention.status: one row per policy, for people and for monitoring.
CREATE TABLE audit_events (id int PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON audit_events (at);
INSERT INTO audit_events SELECT g, now() - g * interval '1 day' FROM generate_series(1, 400) g;
ANALYZE audit_events;
SELECT retention.create_policy('audit_events', 'audit_events', 'at', interval '1 year') > 0 AS created;
SELECT retention.create_policy('audit_paused', 'audit_events', 'at', interval '3 years') > 0 AS created;
SELECT retention.pause_policy('audit_paused');

-- Before any run: no last run, a backlog estimate from the planner.
SELECT policy, target, state, stages, last_status, runs_total, rows_purged_total,
       backlog_estimate BETWEEN 20 AND 50 AS backlog_about_35, schedule, next_run
  FROM retention.status ORDER BY policy;

CALL retention.run();
SELECT policy, state, last_status, last_success IS NOT NULL AS succeeded_once, runs_total,
       runs_failed_total, rows_purged_total, backlog_estimate IS NOT NULL AS has_backlog_estimate
  FROM retention.status ORDER BY policy;

-- Auditors read it; others cannot.
CREATE ROLE rt_status_reader NOLOGIN IN ROLE retention_auditor;
SET ROLE rt_status_reader;
SELECT count(*) AS policies FROM retention.status;
RESET ROLE;
DROP ROLE rt_status_reader;

-- A postgres_exporter custom query could read:
SELECT policy AS label_policy, target AS label_target,
       (state = 'paused')::int AS paused, coalesce((last_status = 'failed')::int, 0) AS last_run_failed,
       rows_purged_total, runs_failed_total
  FROM retention.status ORDER BY policy;

SELECT retention.drop_policy('audit_events');
SELECT retention.drop_policy('audit_paused');
DROP TABLE audit_events;
