-- Citus benchmark, one round in one layout (bench/citus.sh runs :repeats
-- rounds of each and sums up): on the coordinator of a Citus cluster, three
-- identical distributed tables of :rows rows over :shards shards with 10% of
-- the rows due and an index on the clock, in the :layout
--   scattered  every tenth row due, its clock 380 to 450 days old at random,
--              the rest 10 days
--   append     the clock grows with the row order, the oldest tenth is due
--   run          CALL retention.run() with create_policy's defaults
--   delete       one multi-shard DELETE of the due rows
--   key batches  the statement of a batch by key (keys collected through
--                the coordinator) in a loop of 10,000-row batches, each
--                committed: what a run did on distributed tables before
--                their batches walked the shards' pages
-- Then the erasure of one subject across three colocated distributed
-- tables (round 1 only): median of 21 subjects.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS bench_citus_results (round int, layout text, contender text, rows bigint, ms numeric, longest_batch_ms numeric);
SELECT retention.drop_policy(name) FROM retention.policies WHERE name = 'c_run';
DROP TABLE IF EXISTS c_run, c_delete, c_keys;
SET citus.shard_count = :shards;
CREATE TABLE c_run (tenant int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, payload text, PRIMARY KEY (tenant, id));
SELECT create_distributed_table('c_run', 'tenant');
INSERT INTO c_run
SELECT g % 10007, g,
       CASE WHEN :'layout' = 'append' THEN now() - interval '405 days' + (g::float8 / :rows) * interval '400 days'
            WHEN g % 10 = 0 THEN now() - interval '450 days' + random() * interval '70 days'
            ELSE now() - interval '10 days' END,
       repeat('x', 40)
  FROM generate_series(1, :rows) g;
CREATE INDEX ON c_run (at);
CREATE TABLE c_delete (LIKE c_run INCLUDING ALL);
SELECT create_distributed_table('c_delete', 'tenant', colocate_with => 'c_run');
INSERT INTO c_delete SELECT * FROM c_run;
CREATE TABLE c_keys (LIKE c_run INCLUDING ALL);
SELECT create_distributed_table('c_keys', 'tenant', colocate_with => 'c_run');
INSERT INTO c_keys SELECT * FROM c_run;
VACUUM ANALYZE c_run;
VACUUM ANALYZE c_delete;
VACUUM ANALYZE c_keys;
CHECKPOINT;

CREATE OR REPLACE PROCEDURE public.bench_key_batches(cutoff timestamptz, n int) LANGUAGE plpgsql AS $$
DECLARE selected bigint;
BEGIN
    LOOP
        WITH due AS (SELECT tenant, id FROM c_keys WHERE at < cutoff LIMIT n),
             changed AS (DELETE FROM c_keys WHERE (tenant, id) IN (SELECT tenant, id FROM due) AND at < cutoff RETURNING 1)
        SELECT (SELECT count(*) FROM due) INTO selected;
        COMMIT;
        EXIT WHEN selected < n;
    END LOOP;
END $$;

SELECT retention.create_policy('c_run', 'c_run', 'at', interval '365 days');

SELECT clock_timestamp() AS t0 \gset
CALL retention.run('c_run');
INSERT INTO bench_citus_results
SELECT :round, :'layout', 'run', rows_purged, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000, max_batch_ms
  FROM retention.runs WHERE policy = 'c_run' ORDER BY id DESC LIMIT 1;

SELECT clock_timestamp() AS t0 \gset
DELETE FROM c_delete WHERE at < now() - interval '365 days';
INSERT INTO bench_citus_results
SELECT :round, :'layout', 'delete', :rows / 10, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000,
       extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;

SELECT clock_timestamp() AS t0 \gset
CALL public.bench_key_batches(now() - interval '365 days', 10000);
INSERT INTO bench_citus_results
SELECT :round, :'layout', 'key batches', :rows / 10, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000, NULL;

-- Every contender removed exactly the due rows.
SELECT (SELECT count(*) FROM c_run) = :rows - :rows / 10
   AND (SELECT count(*) FROM c_delete) = :rows - :rows / 10
   AND (SELECT count(*) FROM c_keys) = :rows - :rows / 10 AS all_removed_the_due_rows \gset
\if :all_removed_the_due_rows
\else
\echo 'a contender did not remove exactly the due rows'
SELECT 1 / 0;
\endif
\echo 'the last run:'
SELECT batches, retries, rows_purged, max_batch_ms, note FROM retention.runs WHERE policy = 'c_run' ORDER BY id DESC LIMIT 1;
SELECT retention.drop_policy('c_run');
DROP TABLE c_run, c_delete, c_keys;

-- Erasure across three colocated distributed tables, in the first round.
SELECT :round = 1 AND :'layout' = 'scattered' AS erasure_round \gset
\if :erasure_round
SELECT retention.drop_subject(kind) FROM retention.subject_kinds WHERE kind = 'c_customer';
DROP TABLE IF EXISTS c_tickets, c_orders, c_customers;
CREATE TABLE c_customers (id bigint PRIMARY KEY, email text NOT NULL);
SELECT create_distributed_table('c_customers', 'id');
CREATE TABLE c_orders (customer_id bigint NOT NULL REFERENCES c_customers, id bigint NOT NULL, total numeric, PRIMARY KEY (customer_id, id));
SELECT create_distributed_table('c_orders', 'customer_id', colocate_with => 'c_customers');
CREATE TABLE c_tickets (customer_id bigint NOT NULL REFERENCES c_customers, id bigint NOT NULL, subject text, PRIMARY KEY (customer_id, id));
SELECT create_distributed_table('c_tickets', 'customer_id', colocate_with => 'c_customers');
INSERT INTO c_customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, :rows / 10) g;
INSERT INTO c_orders SELECT 1 + g % (:rows / 10), g, 10 FROM generate_series(1, :rows * 4 / 10) g;
INSERT INTO c_tickets SELECT 1 + g % (:rows / 10), g, 'subject' FROM generate_series(1, :rows * 2 / 10) g;
VACUUM ANALYZE c_customers;
VACUUM ANALYZE c_orders;
VACUUM ANALYZE c_tickets;
SELECT retention.register_subject('c_customer', 'c_customers', 'id') AS tables_in_map;
CREATE TEMP TABLE erasures (subject bigint, ms numeric, rows_erased bigint);
DO $$
DECLARE s bigint; r bigint; t0 timestamptz;
BEGIN
    FOR s IN SELECT g * 97 FROM generate_series(1, 21) g LOOP
        r := retention.request_erasure('c_customer', s::text);
        t0 := clock_timestamp();
        PERFORM retention._erase_subject(r);
        INSERT INTO erasures
        SELECT s, extract(epoch FROM clock_timestamp() - t0) * 1000,
               (SELECT sum((t ->> 'purged')::bigint) FROM retention.erasure_requests q, jsonb_array_elements(q.result) t WHERE q.id = r);
    END LOOP;
END $$;
INSERT INTO bench_citus_results
SELECT 1, '-', 'erasure of one subject (median)', round(avg(rows_erased)), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), max(ms)
  FROM erasures;
SELECT retention.drop_subject('c_customer');
DROP TABLE c_tickets, c_orders, c_customers;
\endif
