-- The data map on a large table: retention.discover, coverage and locate
-- over a schema with a :rows-row event table (JSON payloads and notes, 10%
-- of the notes quoting an e-mail address) and 100,000 people. discover and
-- coverage are bounded by the sample; locate reads every text column once.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
SELECT retention.drop_subject(kind) FROM retention.subject_kinds WHERE kind = 'bench_person';
DROP SCHEMA IF EXISTS bench_dm CASCADE;
CREATE SCHEMA bench_dm;
CREATE TABLE bench_dm.people (id bigint PRIMARY KEY, email text UNIQUE, phone text, full_name text, created_at timestamptz);
INSERT INTO bench_dm.people
SELECT g, 'p' || g || '@example.com', '+49 170 ' || lpad(g::text, 7, '0'), 'Person ' || g, now() - g * interval '1 minute'
  FROM generate_series(1, 100000) g;
CREATE TABLE bench_dm.events (id bigint PRIMARY KEY, person_id bigint, payload jsonb, note text, at timestamptz);
INSERT INTO bench_dm.events
SELECT g, 1 + g % 100000, jsonb_build_object('action', 'view', 'page', g % 50),
       CASE WHEN g % 10 = 0 THEN 'asked to write to p' || (1 + g % 100000) || '@example.com' ELSE 'viewed page ' || g % 50 END,
       now() - g * interval '1 second'
  FROM generate_series(1, :rows) g;
VACUUM ANALYZE bench_dm.people;
VACUUM ANALYZE bench_dm.events;
SELECT retention.register_subject('bench_person', 'bench_dm.people', 'id', follow_foreign_keys => false) AS mapped;
SELECT pg_size_pretty(pg_total_relation_size('bench_dm.events')) AS events_size, :rows AS event_rows;
\timing on
SELECT count(*) AS columns_found FROM retention.discover('bench_dm');
SELECT count(*) AS tables_covered FROM retention.coverage('bench_dm');
SELECT count(*) AS columns_with_the_person FROM retention.locate('bench_person', '4711');
\timing off
SELECT target, column_name, category, confidence, found_by FROM retention.discover('bench_dm') ORDER BY 1, 2;
SELECT target, column_name, "rows", in_map FROM retention.locate('bench_person', '4711') ORDER BY 1, 2;
