-- Erasure benchmark: one subject across five tables that hold :rows rows in
-- all, with indexes on the subject columns. Median over 21 subjects.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\c pg_retention_bench
SET client_min_messages = warning;
SELECT retention.drop_subject(kind) FROM retention.subject_kinds WHERE kind = 'bench_customer';
DROP TABLE IF EXISTS b_items, b_orders, b_tickets, b_messages, b_newsletter, b_customers CASCADE;
SELECT (:rows / 20)::int AS n \gset
CREATE TABLE b_customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE b_orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES b_customers, total numeric);
CREATE TABLE b_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES b_orders, product text);
CREATE TABLE b_tickets (id bigint PRIMARY KEY, customer_id bigint REFERENCES b_customers, subject text);
CREATE TABLE b_messages (id bigint PRIMARY KEY, ticket_id bigint NOT NULL REFERENCES b_tickets, body text);
CREATE TABLE b_newsletter (address text PRIMARY KEY);
INSERT INTO b_customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, :n) g;
INSERT INTO b_orders SELECT g, 1 + g % :n, 10 FROM generate_series(1, :n * 4) g;
INSERT INTO b_items SELECT g, 1 + g % (:n * 4), 'item' FROM generate_series(1, :n * 8) g;
INSERT INTO b_tickets SELECT g, 1 + g % :n, 'subject' FROM generate_series(1, :n * 2) g;
INSERT INTO b_messages SELECT g, 1 + g % (:n * 2), 'body' FROM generate_series(1, :n * 4) g;
INSERT INTO b_newsletter SELECT 'c' || g || '@example.com' FROM generate_series(1, :n) g;
CREATE INDEX ON b_orders (customer_id); CREATE INDEX ON b_items (order_id);
CREATE INDEX ON b_tickets (customer_id); CREATE INDEX ON b_messages (ticket_id);
VACUUM ANALYZE b_customers; VACUUM ANALYZE b_orders; VACUUM ANALYZE b_items;
VACUUM ANALYZE b_tickets; VACUUM ANALYZE b_messages; VACUUM ANALYZE b_newsletter;
SELECT (SELECT count(*) FROM b_customers) + (SELECT count(*) FROM b_orders) + (SELECT count(*) FROM b_items)
     + (SELECT count(*) FROM b_tickets) + (SELECT count(*) FROM b_messages) + (SELECT count(*) FROM b_newsletter) AS total_rows;
SELECT retention.register_subject('bench_customer', 'b_customers', 'id') AS tables_in_map;
SELECT retention.add_subject_table('bench_customer', 'b_newsletter', 'address', matches => 'email');

CREATE TEMP TABLE timings (subject bigint, ms numeric, rows_erased bigint);
DO $$
DECLARE s bigint; r bigint; t0 timestamptz;
BEGIN
    FOR s IN SELECT g * 97 FROM generate_series(1, 21) g LOOP
        r := retention.request_erasure('bench_customer', s::text);
        t0 := clock_timestamp();
        PERFORM retention._erase_subject(r);
        INSERT INTO timings
        SELECT s, extract(epoch FROM clock_timestamp() - t0) * 1000,
               (SELECT sum((t ->> 'purged')::bigint) FROM retention.erasure_requests q, jsonb_array_elements(q.result) t WHERE q.id = r);
    END LOOP;
END $$;
\echo '--- erasure of one subject across five tables'
SELECT count(*) AS subjects, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) AS median_ms,
       round(max(ms), 2) AS max_ms, round(avg(rows_erased), 1) AS avg_rows_erased
  FROM timings;
SELECT retention.drop_subject('bench_customer');
DROP TABLE b_items, b_orders, b_messages, b_tickets, b_newsletter, b_customers;
