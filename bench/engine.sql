-- Engine benchmark: purge throughput, partitions, scaling and idle cost.
-- Run by bench/run.sh with psql variables :rows (table size), :opts (create_policy
-- options: empty for the defaults) and :label (what they are).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
DROP TABLE IF EXISTS e_engine, e_plain, e_loop, e_small, e_large, p_rows, p_parts, p_drop CASCADE;
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'e\_%' OR name LIKE 'p\_%';

CREATE TEMP TABLE results (section text, contender text, rows bigint, ms numeric, wal_bytes numeric, longest_batch_ms numeric,
                           rep int DEFAULT 1);
-- :repeats (default 1) runs the two in-order layouts that many times, each on
-- freshly built tables, and reports the median ratio: there the engine and
-- the plain DELETE are close, and one run on this kind of machine can be off
-- by 10-30%.
\if :{?repeats}
\else
\set repeats 1
\endif
-- Three layouts of the same 10% due rows:
--   scattered  every tenth row, due clocks at random over 70 days (the clock
--              index leads to them in random page order)
--   one clock  every tenth row, all due rows with one clock value (the index
--              lists them in page order: a plain DELETE's best case)
--   append     the clock grows with the row order, the oldest tenth is due
CREATE FUNCTION pg_temp.fill(t regclass, n bigint, layout text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($f$INSERT INTO %s SELECT g, CASE %L
                WHEN 'scattered' THEN CASE WHEN g %% 10 = 0 THEN now() - interval '470 days' + random() * interval '70 days'
                                           ELSE now() - interval '10 days' END
                WHEN 'one clock' THEN CASE WHEN g %% 10 = 0 THEN now() - interval '400 days' ELSE now() - interval '10 days' END
                ELSE now() - interval '405 days' + (g::float8 / %s) * interval '400 days' END,
              repeat('x', 40)
            FROM generate_series(1, %s) g$f$, t, layout, n, n);
END $$;

-- 1. Purge: 10% of :rows due, in each layout; the row-by-row loop on the
--    scattered one.
\set layout 'append'
\set with_loop false
\set rep 0
\set times :repeats
\ir purge_repeat.sql
\set layout 'one clock'
\set rep 0
\ir purge_repeat.sql
\set layout 'scattered'
\set with_loop true
\set rep 0
\set times 1
\ir purge_repeat.sql

-- 2. Monthly partitions: removing 12 whole partitions against deleting the
--    same rows from an identical partitioned table, and against dropping the
--    same 12 partitions by hand in one transaction (the least any removal
--    can cost: its COMMIT frees the partitions' files).
CREATE TABLE p_parts (id bigint, at timestamptz NOT NULL, payload text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE p_rows (LIKE p_parts INCLUDING ALL) PARTITION BY RANGE (at);
CREATE TABLE p_drop (LIKE p_parts INCLUDING ALL) PARTITION BY RANGE (at);
DO $$
DECLARE t text;
BEGIN
    FOR m IN 0 .. 23 LOOP
        FOREACH t IN ARRAY ARRAY['p_parts', 'p_rows', 'p_drop'] LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', t || '_' || m, t,
                date_trunc('month', now() - interval '2 years') + m * interval '1 month',
                date_trunc('month', now() - interval '2 years') + (m + 1) * interval '1 month');
        END LOOP;
    END LOOP;
END $$;
-- One hour past midnight: no row sits on a partition bound, so both
-- contenders remove exactly the rows of the 12 oldest partitions.
INSERT INTO p_parts SELECT g, date_trunc('month', now() - interval '2 years') + (g % 700) * interval '1 day' + interval '1 hour', 'x'
  FROM generate_series(1, :rows) g;
INSERT INTO p_rows SELECT * FROM p_parts;
INSERT INTO p_drop SELECT * FROM p_parts;
CREATE INDEX ON p_parts (at); CREATE INDEX ON p_rows (at); CREATE INDEX ON p_drop (at);
VACUUM ANALYZE p_parts; VACUUM ANALYZE p_rows; VACUUM ANALYZE p_drop;
SELECT date_trunc('month', now() - interval '2 years') + interval '12 months' AS cut \gset
SELECT retention.create_policy('p_parts', 'p_parts', 'at', now() - :'cut'::timestamptz) > 0;
CHECKPOINT;
\! sync
SELECT clock_timestamp() AS t0 \gset
DELETE FROM p_rows WHERE at < :'cut'::timestamptz;
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'partitions', 'DELETE of the same rows', (SELECT count(*) FROM p_parts WHERE at < :'cut'::timestamptz),
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, NULL, NULL;
CHECKPOINT;
\! sync
SELECT clock_timestamp() AS t0 \gset
CALL retention.run('p_parts');
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'partitions', 'CALL retention.run() (' || r.partitions_dropped || ' partitions dropped)', r.rows_purged,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, NULL, r.max_batch_ms
  FROM retention.runs r WHERE r.policy = 'p_parts' ORDER BY r.id DESC LIMIT 1;
CHECKPOINT;
\! sync
-- The 12 oldest (p_drop_0 .. p_drop_11) end at :cut.
SELECT count(*) AS n_old FROM p_drop WHERE at < :'cut'::timestamptz \gset
SELECT string_agg('p_drop_' || m, ', ') AS old_parts FROM generate_series(0, 11) m \gset
SELECT clock_timestamp() AS t0 \gset
BEGIN;
DROP TABLE :old_parts;
COMMIT;
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'partitions', 'DROP TABLE of the same 12 partitions by hand', :n_old,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, NULL, NULL;

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
SELECT retention.create_policy('e_small', 'e_small', 'at', interval '1 year' :opts) > 0,
       retention.create_policy('e_large', 'e_large', 'at', interval '1 year' :opts) > 0;
CHECKPOINT;
\! sync
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

-- 4. Idle: a run with nothing due (all policies above are now empty), once
--    autovacuum has processed the purged tables (done here by hand). A run
--    right after a mass purge, before that, pays once for stepping over the
--    dead rows' index entries, as any DELETE-based job does.
VACUUM ANALYZE;
SELECT count(*) AS idle_policies FROM retention.policies \gset
SELECT clock_timestamp() AS t0 \gset
CALL retention.run();
SELECT clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'idle', 'CALL retention.run() with nothing due, per policy (' || :idle_policies || ' policies)', 0,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000 / :idle_policies, NULL::numeric, NULL::numeric;

\echo '--- engine benchmark'
SELECT section, rep, contender, rows, round(ms, 1) AS ms, round(rows / nullif(ms, 0) * 1000) AS rows_per_s,
       pg_size_pretty(wal_bytes) AS wal, round(longest_batch_ms, 1) AS longest_batch_ms
  FROM results ORDER BY section, rep, ms;
SELECT p.section, count(*) AS runs,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (e.rows / e.ms) / (p.rows / p.ms))::numeric, 2) AS engine_vs_plain_throughput,
       round(min((e.rows / e.ms) / (p.rows / p.ms)), 2) AS lowest, round(max((e.rows / e.ms) / (p.rows / p.ms)), 2) AS highest,
       round(max(e.longest_batch_ms), 1) AS longest_batch_ms
  FROM results p JOIN results e ON e.section = p.section AND e.rep = p.rep AND e.contender LIKE 'CALL%'
 WHERE p.contender LIKE 'plain%' GROUP BY 1 ORDER BY 1;
SELECT round((SELECT rows / ms FROM results WHERE section = 'purge, scattered' AND contender LIKE 'CALL%')
           / (SELECT rows / ms FROM results WHERE contender LIKE 'row-by-row%'), 2) AS engine_vs_loop_speedup,
       round((SELECT ms FROM results WHERE contender LIKE 'DELETE of%') / (SELECT ms FROM results WHERE contender LIKE 'CALL%partitions%'), 1) AS partitions_vs_delete,
       round((SELECT ms FROM results WHERE contender LIKE 'DELETE of%') / (SELECT ms FROM results WHERE contender LIKE 'DROP TABLE%'), 1) AS by_hand_drop_vs_delete,
       round((SELECT ms FROM results WHERE contender LIKE '10,000 due in ' || :rows || '%') / (SELECT ms FROM results WHERE contender LIKE '10,000 due in 100,000%'), 2) AS large_vs_small_time;
DROP TABLE e_engine, e_plain, e_loop, e_small, e_large, p_rows, p_parts, p_drop CASCADE;
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'e\_%' OR name LIKE 'p\_%';
