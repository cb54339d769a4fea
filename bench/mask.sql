-- Masking benchmark: the Rust masks against their closest built-in SQL
-- equivalents, and the anonymise stage against the same UPDATE written with
-- built-in SQL. Run by bench/run.sh (psql variable :rows).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
DROP TABLE IF EXISTS mask_src, stage_t, plain_u;
CREATE TABLE mask_src (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    phone       text NOT NULL,
    birth_date  date NOT NULL,
    ip          inet NOT NULL,
    created_at  timestamptz NOT NULL,
    anonymised_at timestamptz
);
INSERT INTO mask_src
SELECT g, 'customer' || g || '@example.com', 'Customer Number ' || g, '+49 151 ' || lpad(g::text, 8, '0'),
       date '1950-01-01' + (g % 20000), ('10.' || (g % 250) || '.' || (g / 250 % 250) || '.' || (g % 97))::inet,
       now() - interval '3 years', NULL
  FROM generate_series(1, :rows) g;
CREATE TABLE stage_t (LIKE mask_src INCLUDING ALL);
INSERT INTO stage_t SELECT * FROM mask_src;
CREATE TABLE plain_u (LIKE mask_src INCLUDING ALL);
INSERT INTO plain_u SELECT * FROM mask_src;
VACUUM ANALYZE mask_src;
VACUUM ANALYZE stage_t;
VACUUM ANALYZE plain_u;

-- Function throughput: each expression over every row, best of 3.
CREATE OR REPLACE FUNCTION pg_temp.best_ms(expr text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best numeric := NULL; ms numeric;
BEGIN
    FOR i IN 1 .. 3 LOOP
        t0 := clock_timestamp();
        EXECUTE 'SELECT count(' || expr || ') FROM mask_src';
        ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        best := least(coalesce(best, ms), ms);
    END LOOP;
    RETURN round(best, 1);
END $$;

SELECT retention.pseudonym('warm-up') IS NOT NULL AS key_ready;
CREATE TEMP TABLE fn_results AS
SELECT f.contender, f.kind, pg_temp.best_ms(f.expr) AS ms
  FROM (VALUES
    ('email',      'rust', 'retention.mask_email(email)'),
    ('email',      'sql',  $q$left(email, 1) || '***@' || split_part(email, '@', 2)$q$),
    ('partial',    'rust', 'retention.mask_partial(phone, 3, 2)'),
    ('partial',    'sql',  $q$overlay(phone placing repeat('*', length(phone) - 5) from 4 for length(phone) - 5)$q$),
    ('keyed hash', 'rust', $q$retention.mask_hmac(full_name, '\x000102030405060708090a0b0c0d0e0f'::bytea)$q$),
    ('keyed hash', 'sql',  $q$encode(sha256(convert_to('salt' || full_name, 'UTF8')), 'hex')$q$),
    ('date→year',  'rust', $q$retention.mask_generalise(birth_date, 'year')$q$),
    ('date→year',  'sql',  $q$date_trunc('year', birth_date)::date$q$),
    ('ip→network', 'rust', 'retention.mask_generalise(ip, 24)'),
    ('ip→network', 'sql',  'network(set_masklen(ip, 24))')
  ) AS f(contender, kind, expr);

\echo '--- mask functions: best of 3 over all rows'
SELECT r.contender,
       r.ms AS rust_ms, s.ms AS sql_ms,
       round(:rows / (r.ms / 1000)) AS rust_calls_per_s,
       round(:rows / (s.ms / 1000)) AS sql_calls_per_s,
       round(r.ms / s.ms, 2) AS rust_to_sql
  FROM fn_results r JOIN fn_results s ON s.contender = r.contender AND s.kind = 'sql'
 WHERE r.kind = 'rust'
 ORDER BY r.contender;

-- The anonymise stage (four masks, one batch of all rows) against the same
-- UPDATE with built-in SQL.
SELECT retention.drop_policy('bench_anon', if_exists => true);
SELECT retention.create_policy('bench_anon', 'stage_t', 'created_at', NULL, batch_size => :rows, skip_locked => false) > 0 AS policy;
SELECT retention.add_stage('bench_anon', interval '2 years', 'anonymise', column_name => 'anonymised_at') > 0 AS stage;
SELECT retention.set_mask('bench_anon', 'email', 'email');
SELECT retention.set_mask('bench_anon', 'full_name', 'pseudonym');
SELECT retention.set_mask('bench_anon', 'phone', 'partial', '{"keep_start": 3, "keep_end": 2}');
SELECT retention.set_mask('bench_anon', 'birth_date', 'generalise', '{"unit": "year"}');
CHECKPOINT;
\timing on
\echo '--- built-in SQL UPDATE'
UPDATE plain_u SET
    email = left(email, 1) || '***@' || split_part(email, '@', 2),
    full_name = encode(sha256(convert_to('salt' || full_name, 'UTF8')), 'hex'),
    phone = overlay(phone placing repeat('*', length(phone) - 5) from 4 for length(phone) - 5),
    birth_date = date_trunc('year', birth_date)::date,
    anonymised_at = now()
 WHERE created_at < now() - interval '2 years' AND anonymised_at IS NULL;
CHECKPOINT;
\echo '--- anonymise stage: CALL retention.run(''bench_anon'')'
CALL retention.run('bench_anon');
\timing off
SELECT rows_anonymised, batches, round(extract(epoch FROM duration) * 1000) AS ms
  FROM retention.runs WHERE policy = 'bench_anon' ORDER BY id DESC LIMIT 1;
SELECT retention.drop_policy('bench_anon');
