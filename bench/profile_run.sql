-- Where one run's time goes: every statement the run executes (its batches'
-- DELETEs and its own bookkeeping) is logged with its duration by
-- auto_explain, in the server log. Not part of `make bench`:
--   psql -h 127.0.0.1 -p 28815 -U postgres -v rows=2000000 -v opts= -v layout=scattered -f bench/profile_run.sql
--   (opts as in bench/run.sh: empty for create_policy's defaults; layout
--   'scattered' or 'one clock' as in bench/engine.sql)
-- then sum the durations by statement: save the server log's lines written
-- during the run and call python3 bench/profile_sum.py <that file>.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
DROP TABLE IF EXISTS prof_t, prof_plain;
SELECT retention.drop_policy('prof_t', if_exists => true);
-- Every tenth row due, as in bench/engine.sql; a copy for a plain DELETE.
CREATE TABLE prof_t (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
INSERT INTO prof_t SELECT g, CASE WHEN g % 10 <> 0 THEN now() - interval '10 days'
                                  WHEN :'layout' = 'one clock' THEN now() - interval '400 days'
                                  ELSE now() - interval '470 days' + random() * interval '70 days' END, repeat('x', 40)
  FROM generate_series(1, :rows) g;
CREATE TABLE prof_plain AS SELECT * FROM prof_t;
ALTER TABLE prof_plain ADD PRIMARY KEY (id);
CREATE INDEX ON prof_t (at);
CREATE INDEX ON prof_plain (at);
VACUUM ANALYZE prof_t;
VACUUM ANALYZE prof_plain;
SELECT retention.create_policy('prof_t', 'prof_t', 'at', interval '1 year' :opts) > 0;
CHECKPOINT;
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_format = 'json';
DELETE FROM prof_plain WHERE at < now() - interval '1 year';
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL retention.run('prof_t');
SELECT clock_timestamp() AS t1 \gset
RESET auto_explain.log_min_duration;
SELECT round(extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000) AS run_ms, batches, rows_purged, max_batch_ms
  FROM retention.runs WHERE policy = 'prof_t' ORDER BY id DESC LIMIT 1;
DROP TABLE prof_t, prof_plain;
SELECT retention.drop_policy('prof_t');
