-- First purge comparison: 1M rows, 10% due and scattered through the heap.
-- The same data in two tables; a plain DELETE on one, CALL retention.run()
-- on the other. Run by bench/run.sh; \timing prints the figures.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP DATABASE IF EXISTS pg_retention_bench;
CREATE DATABASE pg_retention_bench;
\c pg_retention_bench
SET client_min_messages = warning;
CREATE EXTENSION pg_retention;
CREATE TABLE engine_t (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
INSERT INTO engine_t
SELECT g, CASE WHEN g % 10 = 0 THEN now() - interval '400 days' ELSE now() - interval '10 days' END, repeat('x', 40)
  FROM generate_series(1, :rows) g;
CREATE INDEX ON engine_t (at);
CREATE TABLE plain_t AS SELECT * FROM engine_t;
ALTER TABLE plain_t ADD PRIMARY KEY (id);
CREATE INDEX ON plain_t (at);
VACUUM ANALYZE engine_t;
VACUUM ANALYZE plain_t;
SELECT retention.create_policy('bench', 'engine_t', 'at', interval '1 year' :opts) > 0 AS policy;
\timing on
\echo '--- plain DELETE'
DELETE FROM plain_t WHERE at < now() - interval '1 year';
\echo '--- CALL retention.run()'
CALL retention.run();
\timing off
SELECT rows_purged, batches, round(extract(epoch FROM duration) * 1000) AS ms FROM retention.runs;
