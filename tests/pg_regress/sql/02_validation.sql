-- Every bad declaration is refused with a SQLSTATE and a hint, and leaves
-- the catalogue unchanged. The helper below runs one call and reports the
-- SQLSTATE and the message.
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer    text,
    created_at  timestamptz NOT NULL,
    closed_on   date,
    amount      numeric,
    note        text
);
CREATE VIEW orders_view AS SELECT * FROM orders;
CREATE SEQUENCE some_seq;
CREATE TABLE "we;ird ""name"" -- x" (id int PRIMARY KEY, "created;at" timestamptz);

CREATE FUNCTION pg_temp.refused(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; msg text; hint text;
BEGIN
    EXECUTE call;
    RETURN 'ACCEPTED';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN ' [hint given]' ELSE ' [NO HINT]' END;
END $$;

-- The target must exist and be an ordinary or partitioned table.
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'no_such_table', 'created_at', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders_view', 'created_at', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'some_seq', 'created_at', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'pg_class', 'created_at', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'retention.policies', 'created_at', '1 year')$$);

-- The clock must be one expression of type timestamptz, timestamp or date
-- over existing columns.
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'no_such_column', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'amount', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at, closed_on', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at; DROP TABLE orders', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at FROM orders', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at) IS NOT NULL OR (true', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', '(SELECT max(created_at) FROM public.orders)', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'clock_timestamp()', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', '', '1 year')$$);

-- The filter must be one boolean expression over existing columns, without
-- sub-queries or volatile functions.
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'amount')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'missing > 0')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'true; DELETE FROM orders')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'true -- '|| chr(10) || ') OR (true')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'id IN (SELECT 1)')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'random() < 0.5')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'count(*) > 0')$$);

-- Declared expressions are resolved with search_path = pg_catalog, pg_temp,
-- and may only call code built into PostgreSQL: they run inside statements
-- executed as the table's owner, so a function some role wrote is refused
-- even when it is schema-qualified.
CREATE FUNCTION public.is_test_order(bigint) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT $1 < 0';
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', filter => 'is_test_order(id)')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p_q', 'orders', 'created_at', '1 year', filter => 'public.is_test_order(id)')$$);
-- So is an operator some role wrote, and a domain whose checks run code.
CREATE FUNCTION public.bigint_eq_text(bigint, text) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT $1::text = $2';
CREATE OPERATOR public.=== (LEFTARG = bigint, RIGHTARG = text, FUNCTION = public.bigint_eq_text);
SELECT pg_temp.refused($$SELECT retention.create_policy('p_o', 'orders', 'created_at', '1 year', filter => 'id OPERATOR(public.===) ''1''')$$);
CREATE DOMAIN public.positive AS bigint CHECK (public.is_test_order(-VALUE));
SELECT pg_temp.refused($$SELECT retention.create_policy('p_d', 'orders', 'created_at', '1 year', filter => 'id::public.positive > 0')$$);
-- What is stored is the server's canonical form of the validated expression.
SELECT retention.create_policy('p_c', 'orders', 'created_at', '1 year', filter => $$note IN ('a', 'b') AND created_at > '2020-01-01'$$) > 0 AS created;
SELECT filter FROM retention.policies WHERE name = 'p_c';
SELECT retention.drop_policy('p_c');

-- purge_after must be positive and leave a representable cutoff; batch_size positive; batch_pause not negative.
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '0 days')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '-1 year')$$);
-- (A NULL purge_after declares a policy without a purge stage; its mark and
-- anonymise stages are added with retention.add_stage, see 06_lifecycle.)
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '300000 years')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', batch_size => 0)$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('p', 'orders', 'created_at', '1 year', batch_pause => '-1 second')$$);

-- Names: 1 to 63 characters, no control characters, unique.
SELECT pg_temp.refused($$SELECT retention.create_policy('', 'orders', 'created_at', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy(repeat('x', 64), 'orders', 'created_at', '1 year')$$);
SELECT pg_temp.refused($$SELECT retention.create_policy('a' || chr(10) || 'b', 'orders', 'created_at', '1 year')$$);
SELECT retention.create_policy('orders_1y', 'orders', 'created_at', '1 year') > 0 AS created;
SELECT pg_temp.refused($$SELECT retention.create_policy('orders_1y', 'orders', 'created_at', '2 years')$$);

-- Changing a policy validates the same way and changes nothing on error.
SELECT pg_temp.refused($$SELECT retention.alter_policy('orders_1y', clock => 'note')$$);
SELECT pg_temp.refused($$SELECT retention.alter_policy('orders_1y', purge_after => '-1 day')$$);
SELECT pg_temp.refused($$SELECT retention.alter_policy('orders_1y', filter => 'x', drop_filter => true)$$);
SELECT pg_temp.refused($$SELECT retention.alter_policy('no_such_policy', batch_size => 5)$$);
SELECT pg_temp.refused($$SELECT retention.pause_policy('no_such_policy')$$);
SELECT pg_temp.refused($$SELECT * FROM retention.preview('no_such_policy')$$);
CALL retention.run('no_such_policy');
-- retention.run commits after every batch, so it refuses to run inside a
-- transaction block.
BEGIN;
CALL retention.run();
ROLLBACK;

-- Only the valid policy exists, unchanged.
SELECT name, clock, purge_after, filter, batch_size FROM retention.policies;

-- Names with quotes, semicolons and comment markers are names, never SQL.
SELECT retention.create_policy('weird', '"we;ird ""name"" -- x"', '"created;at"', '1 day') > 0 AS created;
INSERT INTO "we;ird ""name"" -- x" VALUES (1, now() - interval '2 days'), (2, now());
SELECT policy, target, due_rows FROM retention.preview('weird');
CALL retention.run('weird');
SELECT id FROM "we;ird ""name"" -- x";
SELECT policy, target, status, rows_purged FROM retention.runs WHERE policy = 'weird';

SELECT retention.drop_policy(name) FROM retention.policies ORDER BY name;
DROP TABLE "we;ird ""name"" -- x";
