-- Engine benchmark: purge throughput, partitions, scaling and idle cost.
-- Run by bench/run.sh with psql variables :rows (table size) and :batch.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
DROP TABLE IF EXISTS e_engine, e_plain, e_loop, e_small, e_large, p_rows, p_parts CASCADE;
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'e\_%' OR name LIKE 'p\_%';

CREATE TEMP TABLE results (section text, contender text, rows bigint, ms numeric, wal_bytes numeric, longest_batch_ms numeric);
CREATE FUNCTION pg_temp.fill(t regclass, n bigint, every int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO %s SELECT g, CASE WHEN g %% %s = 0 THEN now() - interval ''400 days''
                                                ELSE now() - interval ''10 days'' END, repeat(''x'', 40)
                      FROM generate_series(1, %s) g', t, every, n);
END $$;

-- 1. Purge: 10% of :rows due, scattered through the heap.
CREATE TABLE e_engine (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
CREATE TABLE e_plain (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
CREATE TABLE e_loop (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
SELECT pg_temp.fill('e_engine', :rows, 10), pg_temp.fill('e_plain', :rows, 10), pg_temp.fill('e_loop', :rows, 10);
CREATE INDEX ON e_engine (at); CREATE INDEX ON e_plain (at); CREATE INDEX ON e_loop (at);
VACUUM ANALYZE e_engine; VACUUM ANALYZE e_plain; VACUUM ANALYZE e_loop;
SELECT retention.create_policy('e_engine', 'e_engine', 'at', interval '1 year', batch_size => :batch) > 0;
CHECKPOINT;

SELECT pg_current_wal_lsn() AS l0, clock_timestamp() AS t0 \gset
DELETE FROM e_plain WHERE at < now() - interval '1 year';
SELECT pg_current_wal_lsn() AS l1, clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'purge', 'plain DELETE (one transaction)', :rows / 10,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, pg_wal_lsn_diff(:'l1', :'l0'), NULL;
CHECKPOINT;

SELECT pg_current_wal_lsn() AS l0, clock_timestamp() AS t0 \gset
CALL retention.run('e_engine');
SELECT pg_current_wal_lsn() AS l1, clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'purge', 'CALL retention.run() (batches of ' || :batch || ')', r.rows_purged,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, pg_wal_lsn_diff(:'l1', :'l0'), r.max_batch_ms
  FROM retention.runs r WHERE r.policy = 'e_engine' ORDER BY r.id DESC LIMIT 1;
CHECKPOINT;

SELECT pg_current_wal_lsn() AS l0, clock_timestamp() AS t0 \gset
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT id FROM e_loop WHERE at < now() - interval '1 year' LOOP
        DELETE FROM e_loop WHERE id = r.id;
    END LOOP;
END $$;
SELECT pg_current_wal_lsn() AS l1, clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'purge', 'row-by-row PL/pgSQL loop', :rows / 10,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, pg_wal_lsn_diff(:'l1', :'l0'), NULL;

-- 2. Monthly partitions: removing 12 whole partitions against deleting the
--    same rows from an identical partitioned table.
CREATE TABLE p_parts (id bigint, at timestamptz NOT NULL, payload text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE p_rows (LIKE p_parts INCLUDING ALL) PARTITION BY RANGE (at);
DO $$
BEGIN
    FOR m IN 0 .. 23 LOOP
        EXECUTE format('CREATE TABLE p_parts_%s PARTITION OF p_parts FOR VALUES FROM (%L) TO (%L)', m,
            date_trunc('month', now() - interval '2 years') + m * interval '1 month',
            date_trunc('month', now() - interval '2 years') + (m + 1) * interval '1 month');
        EXECUTE format('CREATE TABLE p_rows_%s PARTITION OF p_rows FOR VALUES FROM (%L) TO (%L)', m,
            date_trunc('month', now() - interval '2 years') + m * interval '1 month',
            date_trunc('month', now() - interval '2 years') + (m + 1) * interval '1 month');
    END LOOP;
END $$;
INSERT INTO p_parts SELECT g, date_trunc('month', now() - interval '2 years') + (g % 700) * interval '1 day', 'x'
  FROM generate_series(1, :rows / 2) g;
INSERT INTO p_rows SELECT * FROM p_parts;
VACUUM ANALYZE p_parts; VACUUM ANALYZE p_rows;
SELECT date_trunc('month', now() - interval '2 years') + interval '12 months' AS cut \gset
SELECT retention.create_policy('p_parts', 'p_parts', 'at', now() - :'cut'::timestamptz) > 0;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
DELETE FROM p_rows WHERE at < :'cut'::timestamptz;
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'partitions', 'DELETE of the same rows', (SELECT count(*) FROM p_parts WHERE at < :'cut'::timestamptz),
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, NULL, NULL;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL retention.run('p_parts');
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'partitions', 'CALL retention.run() (' || r.partitions_dropped || ' partitions dropped)', r.rows_purged,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, NULL, r.max_batch_ms
  FROM retention.runs r WHERE r.policy = 'p_parts' ORDER BY r.id DESC LIMIT 1;

-- 3. Scaling: 10,000 due rows in a 100,000-row table and in a :rows table.
--    The due rows are the oldest, inserted first, as in an append-mostly
--    table: the engine's cost should follow the due rows, not the table.
CREATE TABLE e_small (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
CREATE TABLE e_large (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
INSERT INTO e_small SELECT g, CASE WHEN g <= 10000 THEN now() - interval '400 days' ELSE now() - interval '10 days' END,
       repeat('x', 40) FROM generate_series(1, 100000) g;
INSERT INTO e_large SELECT g, CASE WHEN g <= 10000 THEN now() - interval '400 days' ELSE now() - interval '10 days' END,
       repeat('x', 40) FROM generate_series(1, :rows) g;
CREATE INDEX ON e_small (at); CREATE INDEX ON e_large (at);
VACUUM ANALYZE e_small; VACUUM ANALYZE e_large;
SELECT retention.create_policy('e_small', 'e_small', 'at', interval '1 year', batch_size => :batch) > 0,
       retention.create_policy('e_large', 'e_large', 'at', interval '1 year', batch_size => :batch) > 0;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL retention.run('e_small');
SELECT clock_timestamp() AS t1 \gset
CALL retention.run('e_large');
SELECT clock_timestamp() AS t2 \gset
INSERT INTO results
SELECT 'scaling', '10,000 due in 100,000 rows', (SELECT rows_purged FROM retention.runs WHERE policy = 'e_small' ORDER BY id DESC LIMIT 1),
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, NULL::numeric, NULL::numeric
UNION ALL
SELECT 'scaling', '10,000 due in ' || :rows || ' rows', (SELECT rows_purged FROM retention.runs WHERE policy = 'e_large' ORDER BY id DESC LIMIT 1),
       extract(epoch FROM :'t2'::timestamptz - :'t1'::timestamptz) * 1000, NULL::numeric, NULL::numeric;

-- 4. Idle: a run with nothing due (all policies above are now empty).
SELECT count(*) AS idle_policies FROM retention.policies \gset
SELECT clock_timestamp() AS t0 \gset
CALL retention.run();
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'idle', 'CALL retention.run() with nothing due, per policy (' || :idle_policies || ' policies)', 0,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000 / :idle_policies, NULL::numeric, NULL::numeric;

\echo '--- engine benchmark'
SELECT section, contender, rows, round(ms, 1) AS ms, round(rows / nullif(ms, 0) * 1000) AS rows_per_s,
       pg_size_pretty(wal_bytes) AS wal, round(longest_batch_ms, 1) AS longest_batch_ms
  FROM results ORDER BY section, ms;
SELECT round((SELECT ms FROM results WHERE contender LIKE 'plain%') / (SELECT ms FROM results WHERE contender LIKE 'CALL%batches%'), 2) AS engine_vs_plain_throughput,
       round((SELECT ms FROM results WHERE contender LIKE 'row-by-row%') / (SELECT ms FROM results WHERE contender LIKE 'CALL%batches%'), 2) AS engine_vs_loop_speedup,
       round((SELECT ms FROM results WHERE contender LIKE 'DELETE of%') / (SELECT ms FROM results WHERE contender LIKE 'CALL%partitions%'), 1) AS partitions_vs_delete,
       round((SELECT ms FROM results WHERE contender LIKE '10,000 due in ' || :rows || '%') / (SELECT ms FROM results WHERE contender LIKE '10,000 due in 100,000%'), 2) AS large_vs_small_time;
DROP TABLE e_engine, e_plain, e_loop, e_small, e_large, p_rows, p_parts CASCADE;
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'e\_%' OR name LIKE 'p\_%';
