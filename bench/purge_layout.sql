-- One purge comparison, included by purge_repeat.sql with :layout and :rep set: the same
-- data in two tables (three with :with_loop), one plain DELETE on one,
-- CALL retention.run() on the other (and the row-by-row loop on the third),
-- each after a CHECKPOINT, so that all write the same full-page images, and
-- a sync, so that none pays for the kernel writing back the pages of another.
DROP TABLE IF EXISTS e_engine, e_plain, e_loop;
SELECT retention.drop_policy('e_engine', if_exists => true);
CREATE TABLE e_engine (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
CREATE TABLE e_plain (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text);
SELECT pg_temp.fill('e_engine', :rows, :'layout');
INSERT INTO e_plain SELECT * FROM e_engine;
CREATE TABLE e_loop (LIKE e_plain INCLUDING ALL);
\if :with_loop
INSERT INTO e_loop SELECT * FROM e_engine;
\endif
CREATE INDEX ON e_engine (at); CREATE INDEX ON e_plain (at); CREATE INDEX ON e_loop (at);
VACUUM ANALYZE e_engine; VACUUM ANALYZE e_plain; VACUUM ANALYZE e_loop;
SELECT retention.create_policy('e_engine', 'e_engine', 'at', interval '1 year' :opts) > 0;
CHECKPOINT;
\! sync

SELECT pg_current_wal_lsn() AS l0, clock_timestamp() AS t0 \gset
DELETE FROM e_plain WHERE at < now() - interval '1 year';
SELECT pg_current_wal_lsn() AS l1, clock_timestamp() AS t1, :ROW_COUNT AS n \gset
INSERT INTO results SELECT 'purge, ' || :'layout', 'plain DELETE (one transaction)', :n,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, pg_wal_lsn_diff(:'l1', :'l0'), NULL, :rep;
CHECKPOINT;
\! sync

SELECT pg_current_wal_lsn() AS l0, clock_timestamp() AS t0 \gset
CALL retention.run('e_engine');
SELECT pg_current_wal_lsn() AS l1, clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'purge, ' || :'layout', 'CALL retention.run() (' || :'label'
       || coalesce(', ' || substring(r.note FROM 'walked \d+ of the table''s \d+ pages'), '') || ')', r.rows_purged,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, pg_wal_lsn_diff(:'l1', :'l0'), r.max_batch_ms, :rep
  FROM retention.runs r WHERE r.policy = 'e_engine' ORDER BY r.id DESC LIMIT 1;

\if :with_loop
CHECKPOINT;
\! sync
SELECT pg_current_wal_lsn() AS l0, clock_timestamp() AS t0 \gset
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT id FROM e_loop WHERE at < now() - interval '1 year' LOOP
        DELETE FROM e_loop WHERE id = r.id;
    END LOOP;
END $$;
SELECT pg_current_wal_lsn() AS l1, clock_timestamp() AS t1 \gset
INSERT INTO results SELECT 'purge, ' || :'layout', 'row-by-row PL/pgSQL loop', :n,
       extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz) * 1000, pg_wal_lsn_diff(:'l1', :'l0'), NULL, :rep;
\endif
