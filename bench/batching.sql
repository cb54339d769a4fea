-- What batching costs, without the engine: the append layout of
-- engine.sql (the clock grows with the row order, the oldest tenth is due)
-- in four identical tables, deleted four ways. Not part of `make bench`:
--   psql -h 127.0.0.1 -p 28815 -U postgres -v rows=10000000 -f bench/batching.sql
-- on the demo cluster after `make bench` created the database.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
DROP TABLE IF EXISTS b_one, b_ranges, b_ranges_ret, b_clock;
CREATE TABLE b_one (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
INSERT INTO b_one SELECT g, now() - interval '405 days' + (g::float8 / :rows) * interval '400 days', repeat('x', 40)
  FROM generate_series(1, :rows) g;
CREATE TABLE b_ranges (LIKE b_one INCLUDING ALL); INSERT INTO b_ranges SELECT * FROM b_one;
CREATE TABLE b_ranges_ret (LIKE b_one INCLUDING ALL); INSERT INTO b_ranges_ret SELECT * FROM b_one;
CREATE TABLE b_clock (LIKE b_one INCLUDING ALL); INSERT INTO b_clock SELECT * FROM b_one;
CREATE INDEX ON b_one (at); CREATE INDEX ON b_ranges (at); CREATE INDEX ON b_ranges_ret (at); CREATE INDEX ON b_clock (at);
VACUUM ANALYZE b_one; VACUUM ANALYZE b_ranges; VACUUM ANALYZE b_ranges_ret; VACUUM ANALYZE b_clock;
-- One cutoff for all four; the pages that hold due rows, split into 100 ranges.
SELECT now() - interval '1 year' AS cut \gset
SELECT ceil(pg_relation_size('b_one') / 8192.0 / 10)::int AS due_pages \gset

-- 100 page-range DELETEs, a COMMIT after each; counted with or without RETURNING.
CREATE PROCEDURE pg_temp.ranges(t regclass, pages int, with_returning boolean, cut timestamptz) LANGUAGE plpgsql AS $$
DECLARE step int := greatest(pages / 100, 1); n bigint;
BEGIN
    FOR b IN 0 .. pages - 1 BY step LOOP
        IF with_returning THEN
            EXECUTE format('WITH d AS (DELETE FROM %s WHERE ctid >= $1 AND ctid < $2 AND at < $3 RETURNING 1) SELECT count(*) FROM d', t)
               INTO n USING format('(%s,0)', b)::tid, format('(%s,0)', b + step)::tid, cut;
        ELSE
            EXECUTE format('DELETE FROM %s WHERE ctid >= $1 AND ctid < $2 AND at < $3', t)
               USING format('(%s,0)', b)::tid, format('(%s,0)', b + step)::tid, cut;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        COMMIT;
    END LOOP;
    -- Due rows past the ranges (none expected): the same cutoff, one statement.
    EXECUTE format('DELETE FROM %s WHERE at < $1', t) USING cut;
END $$;
-- 20 clock-range DELETEs through the index, a COMMIT after each.
CREATE PROCEDURE pg_temp.clock_ranges(t regclass, cut timestamptz) LANGUAGE plpgsql AS $$
DECLARE lo timestamptz := (SELECT min(at) FROM b_clock);
        step interval := (cut - lo) / 20;
BEGIN
    FOR i IN 0 .. 19 LOOP
        EXECUTE format('DELETE FROM %s WHERE at >= $1 AND at < $2', t) USING lo + i * step, least(lo + (i + 1) * step, cut);
        COMMIT;
    END LOOP;
    EXECUTE format('DELETE FROM %s WHERE at < $1', t) USING cut;
END $$;

CREATE TEMP TABLE b_results (contender text, ms numeric);
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
DELETE FROM b_one WHERE at < :'cut'::timestamptz;
INSERT INTO b_results SELECT 'one DELETE through the index', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL pg_temp.ranges('b_ranges_ret', :due_pages, true, :'cut');
INSERT INTO b_results SELECT '100 page-range DELETEs, counted with RETURNING', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL pg_temp.ranges('b_ranges', :due_pages, false, :'cut');
INSERT INTO b_results SELECT '100 page-range DELETEs, row count of the statement', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
CALL pg_temp.clock_ranges('b_clock', :'cut');
INSERT INTO b_results SELECT '20 clock-range DELETEs through the index', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;

\echo '--- what batching costs (append layout)'
SELECT contender, round(ms, 1) AS ms,
       (SELECT count(*) FROM b_one) = (SELECT count(*) FROM b_ranges)
   AND (SELECT count(*) FROM b_one) = (SELECT count(*) FROM b_ranges_ret)
   AND (SELECT count(*) FROM b_one) = (SELECT count(*) FROM b_clock) AS same_rows_left
  FROM b_results;
DROP TABLE b_one, b_ranges, b_ranges_ret, b_clock;
