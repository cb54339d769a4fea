-- Who may do what. Policies run with their owner's rights.
CREATE ROLE rt_app NOLOGIN;           -- owns the data, not a retention admin
CREATE ROLE rt_dba NOLOGIN IN ROLE retention_admin;
CREATE ROLE rt_reader NOLOGIN IN ROLE retention_auditor;
CREATE ROLE rt_stranger NOLOGIN;

CREATE TABLE sessions (id int PRIMARY KEY, started_at timestamptz NOT NULL);
INSERT INTO sessions SELECT g, now() - g * interval '1 day' FROM generate_series(1, 20) g;
GRANT SELECT ON sessions TO rt_dba, rt_reader;

-- A retention admin without DELETE on the table cannot declare a policy on it.
SET ROLE rt_dba;
SELECT retention.create_policy('sessions_10d', 'sessions', 'started_at', interval '10 days');
RESET ROLE;

-- With DELETE (and UPDATE, to skip locked rows) it can.
GRANT DELETE, UPDATE ON sessions TO rt_dba;
SET ROLE rt_dba;
SELECT retention.create_policy('sessions_10d', 'sessions', 'started_at', interval '10 days') > 0 AS created;
-- Without UPDATE, only a policy that waits for locked rows may be declared.
RESET ROLE;
REVOKE UPDATE ON sessions FROM rt_dba;
SET ROLE rt_dba;
SELECT retention.create_policy('sessions_5d', 'sessions', 'started_at', interval '5 days');
SELECT retention.create_policy('sessions_5d', 'sessions', 'started_at', interval '5 days', skip_locked => false) > 0 AS created;
SELECT retention.drop_policy('sessions_5d');
RESET ROLE;
GRANT UPDATE ON sessions TO rt_dba;
SELECT owner FROM retention.policies;

-- Roles that are not retention admins cannot declare, change or run policies.
GRANT SELECT, DELETE, UPDATE ON sessions TO rt_app, rt_stranger;
SET ROLE rt_stranger;
SELECT retention.create_policy('x', 'sessions', 'started_at', interval '1 day');
SELECT retention.alter_policy('sessions_10d', batch_size => 1);
SELECT retention.pause_policy('sessions_10d');
SELECT retention.drop_policy('sessions_10d');
CALL retention.run();
SELECT * FROM retention.preview();
SELECT count(*) FROM retention.runs;
SELECT count(*) FROM retention.policies;
RESET ROLE;
-- The functions check membership themselves too, should EXECUTE be granted
-- by mistake.
GRANT USAGE ON SCHEMA retention TO rt_stranger;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA retention TO rt_stranger;
SET ROLE rt_stranger;
SELECT retention.create_policy('x', 'sessions', 'started_at', interval '1 day');
SELECT retention.pause_policy('sessions_10d');
SELECT * FROM retention.preview();
RESET ROLE;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA retention FROM rt_stranger;
REVOKE USAGE ON SCHEMA retention FROM rt_stranger;

-- Auditors read policies, previews and the run log, and change nothing.
SET ROLE rt_reader;
SELECT name, owner FROM retention.policies;
SELECT policy, due_rows FROM retention.preview();
SELECT count(*) >= 0 AS can_read_runs FROM retention.runs;
SELECT retention.pause_policy('sessions_10d');
CALL retention.run();
UPDATE retention.policies SET filter = 'true';
RESET ROLE;

-- Admins cannot write the catalogue directly: all changes are validated.
SET ROLE rt_dba;
UPDATE retention.policies SET filter = 'true';
INSERT INTO retention.run_log (run_id, policy, target, run_by, backend_pid, started_at) VALUES (1, 'x', 'x', 'x', 1, now());
RESET ROLE;

-- Another admin may run the policy but not change it; the run uses the
-- owner's rights.
CREATE ROLE rt_dba2 NOLOGIN IN ROLE retention_admin;
SET ROLE rt_dba2;
SELECT retention.alter_policy('sessions_10d', batch_size => 1);
CALL retention.run();
SELECT policy, status, rows_purged, run_by FROM retention.runs WHERE policy = 'sessions_10d';
RESET ROLE;
SELECT count(*) FROM sessions;

-- When the owner loses DELETE, the run fails (logged) instead of deleting.
INSERT INTO sessions SELECT g, now() - g * interval '1 day' FROM generate_series(21, 25) g;
REVOKE DELETE ON sessions FROM rt_dba;
SET ROLE rt_dba;
CALL retention.run();
RESET ROLE;
SELECT status, error_code, error, rows_purged FROM retention.runs ORDER BY id DESC LIMIT 1;
SELECT count(*) FROM sessions;

SELECT retention.drop_policy('sessions_10d');
DROP TABLE sessions;
DROP ROLE rt_app, rt_dba, rt_dba2, rt_reader, rt_stranger;
