-- The lifecycle of a shop's orders: restricted (marked) 30 days after
-- delivery, anonymised after 2 years so that sales statistics survive,
-- deleted after 10 years (HGB §257).
CREATE TABLE shop_orders (
    id              bigint PRIMARY KEY,
    customer_email  text NOT NULL,
    customer_name   text,
    ship_to_ip      inet,
    birth_date      date,
    amount          numeric(10, 2) NOT NULL,
    details         jsonb,
    delivered_at    timestamptz NOT NULL,
    restricted_at   timestamptz,
    anonymised_at   timestamptz
);
CREATE INDEX ON shop_orders (delivered_at);

-- One order every 5 days over 12 years: ages 0, 5, 10, ... 4380 days.
INSERT INTO shop_orders
SELECT g, 'buyer' || g || '@example.com', 'Buyer ' || g,
       ('192.168.' || (g % 250) || '.' || (g % 200))::inet, date '1980-01-01' + g, 10 + g % 90,
       jsonb_build_object('phone', '0151-' || g, 'gift', g % 2 = 0),
       now() - g * interval '1 day' - interval '1 hour'
  FROM generate_series(0, 4380, 5) g;

SELECT retention.create_policy('orders_lifecycle', 'shop_orders', 'delivered_at', interval '10 years',
                               purpose => 'order processing', legal_basis => 'HGB §257: 10 years') > 0 AS created;
SELECT retention.add_stage('orders_lifecycle', interval '30 days', 'mark', column_name => 'restricted_at') > 0 AS added;
SELECT retention.add_stage('orders_lifecycle', interval '2 years', 'anonymize', column_name => 'anonymised_at') > 0 AS added;
SELECT retention.set_mask('orders_lifecycle', 'customer_email', 'email', '{"keep_domain": false}');
SELECT retention.set_mask('orders_lifecycle', 'customer_name', 'null');
SELECT retention.set_mask('orders_lifecycle', 'ship_to_ip', 'generalise', '{"bits": 16}');
SELECT retention.set_mask('orders_lifecycle', 'birth_date', 'generalise', '{"unit": "year"}');
SELECT retention.set_mask('orders_lifecycle', 'details', 'jsonb_drop', '{"keys": ["phone"]}');

SELECT name, mark_after, marker_column, anonymise_after, anonymised_column, purge_after FROM retention.policies;
SELECT column_name, strategy, options FROM retention.masks ORDER BY column_name;

-- Preview per stage; rows due for an older stage count there.
SELECT action, due_rows, clock_indexed, note FROM retention.preview('orders_lifecycle');

CALL retention.run();
SELECT status, rows_purged, rows_anonymised, rows_marked FROM retention.runs WHERE policy = 'orders_lifecycle';

-- Every row is in exactly the state its age calls for.
CREATE VIEW order_states AS
SELECT CASE WHEN delivered_at >= now() - interval '30 days' THEN 'unchanged'
            WHEN delivered_at >= now() - interval '2 years' THEN 'marked'
            ELSE 'anonymised' END AS expected,
       CASE WHEN restricted_at IS NULL AND anonymised_at IS NULL
                 AND customer_email = 'buyer' || id || '@example.com' AND customer_name IS NOT NULL
                 AND details ? 'phone' THEN 'unchanged'
            WHEN restricted_at IS NOT NULL AND anonymised_at IS NULL
                 AND customer_email = 'buyer' || id || '@example.com' AND customer_name IS NOT NULL
                 AND details ? 'phone' THEN 'marked'
            WHEN restricted_at IS NOT NULL AND anonymised_at IS NOT NULL
                 AND customer_email = 'b***@***.com' AND customer_name IS NULL
                 AND masklen(ship_to_ip) = 16 AND extract(doy FROM birth_date) = 1
                 AND NOT details ? 'phone' AND details ? 'gift' THEN 'anonymised'
            ELSE 'inconsistent' END AS actual
  FROM shop_orders;
SELECT expected, actual, count(*) FROM order_states GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS older_than_10_years FROM shop_orders WHERE delivered_at < now() - interval '10 years';
-- Sales statistics survive anonymisation.
SELECT count(*) AS orders, sum(amount) > 0 AS revenue_kept FROM shop_orders WHERE anonymised_at IS NOT NULL;

-- A second run changes nothing: rows are marked and anonymised once.
CREATE TEMP TABLE before_second_run AS SELECT md5(string_agg(o::text, ',' ORDER BY id)) AS h FROM shop_orders o;
CALL retention.run();
SELECT rows_purged, rows_anonymised, rows_marked FROM retention.runs WHERE policy = 'orders_lifecycle' ORDER BY id DESC LIMIT 1;
SELECT h = (SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM shop_orders o) AS unchanged FROM before_second_run;

-- Restriction in practice (GDPR Art. 18).
SELECT retention.restrict('shop_orders');
CREATE ROLE rt_clerk NOLOGIN;
GRANT SELECT, UPDATE ON shop_orders TO rt_clerk;
SET ROLE rt_clerk;
-- An ordinary role does not see restricted rows ...
SELECT count(*) AS visible, count(*) FILTER (WHERE restricted_at IS NOT NULL) AS restricted_visible FROM shop_orders;
-- ... cannot select them for an update ...
UPDATE shop_orders SET amount = amount WHERE id = 100;
-- ... and an update that does not read them is refused by the trigger.
UPDATE shop_orders SET customer_name = 'changed';
RESET ROLE;
-- The table owner (and superusers, BYPASSRLS roles, retention_admin
-- members) still see restricted rows, but cannot change them either.
SELECT count(*) FILTER (WHERE restricted_at IS NOT NULL) > 0 AS owner_sees_restricted FROM shop_orders;
UPDATE shop_orders SET customer_name = 'changed' WHERE id = 100;
-- Unrestricted rows stay changeable.
UPDATE shop_orders SET customer_name = 'Buyer 0' WHERE id = 0;

-- pg_retention's own stages still work on restricted rows: anonymising
-- earlier (from 1 year) reaches rows that are already marked.
SELECT retention.drop_stage('orders_lifecycle', 'anonymise');
SELECT retention.add_stage('orders_lifecycle', interval '1 year', 'anonymise', column_name => 'anonymised_at') > 0 AS added;
CALL retention.run();
SELECT rows_anonymised > 0 AS anonymised_marked_rows, status FROM retention.runs WHERE policy = 'orders_lifecycle' ORDER BY id DESC LIMIT 1;
SELECT count(*) AS marked_but_not_anonymised_beyond_1_year
  FROM shop_orders WHERE delivered_at < now() - interval '1 year' AND anonymised_at IS NULL;

SELECT retention.unrestrict('shop_orders');
SET ROLE rt_clerk;
SELECT count(*) FILTER (WHERE restricted_at IS NOT NULL) > 0 AS visible_again FROM shop_orders;
RESET ROLE;
REVOKE ALL ON shop_orders FROM rt_clerk;
DROP ROLE rt_clerk;

-- Declarations are validated.
CREATE FUNCTION pg_temp.refused(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; msg text; hint text;
BEGIN
    EXECUTE call;
    RETURN 'ACCEPTED';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN ' [hint given]' ELSE ' [NO HINT]' END;
END $$;
SELECT pg_temp.refused($$SELECT retention.add_stage('orders_lifecycle', '1 day', 'shred')$$);
SELECT pg_temp.refused($$SELECT retention.add_stage('orders_lifecycle', '20 years', 'purge')$$);
SELECT pg_temp.refused($$SELECT retention.drop_stage('orders_lifecycle', 'mark'); SELECT retention.add_stage('orders_lifecycle', '3 years', 'mark', column_name => 'restricted_at')$$);
SELECT pg_temp.refused($$SELECT retention.drop_stage('orders_lifecycle', 'mark'); SELECT retention.add_stage('orders_lifecycle', '7 days', 'mark')$$);
SELECT pg_temp.refused($$SELECT retention.drop_stage('orders_lifecycle', 'mark'); SELECT retention.add_stage('orders_lifecycle', '7 days', 'mark', column_name => 'no_such_column')$$);
SELECT pg_temp.refused($$SELECT retention.drop_stage('orders_lifecycle', 'mark'); SELECT retention.add_stage('orders_lifecycle', '7 days', 'mark', column_name => 'amount')$$);
SELECT pg_temp.refused($$SELECT retention.drop_stage('orders_lifecycle', 'mark'); SELECT retention.add_stage('orders_lifecycle', '7 days', 'mark', column_name => 'delivered_at')$$);
SELECT pg_temp.refused($$SELECT retention.alter_policy('orders_lifecycle', purge_after => '6 months')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'no_such_column', 'null')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'amount', 'email')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'amount', 'shuffle')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'customer_email', 'null')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'amount', 'constant', '{"value": "lots"}')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'amount', 'noise', '{"amount": -1}')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'customer_email', 'partial', '{"keep": 2}')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'id', 'noise', '{"amount": 5}')$$);
SELECT pg_temp.refused($$SELECT retention.set_mask('orders_lifecycle', 'anonymised_at', 'null')$$);
-- The policy is as it was.
SELECT name, mark_after, marker_column, anonymise_after, purge_after FROM retention.policies;
SELECT count(*) AS masks FROM retention.masks;

-- Applications reset a row's clock on activity with retention.touch().
CREATE TABLE accounts (id int PRIMARY KEY, name text, last_activity_at timestamptz, seen_on date);
CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION retention.touch('last_activity_at');
INSERT INTO accounts VALUES (1, 'a', '2000-01-01', '2000-01-01');
SELECT last_activity_at > now() - interval '1 minute' AS reset_on_insert FROM accounts;
UPDATE accounts SET last_activity_at = '2000-01-01';
SELECT last_activity_at > now() - interval '1 minute' AS reset_on_update FROM accounts;
CREATE TRIGGER touch_day BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION retention.touch('seen_on');
UPDATE accounts SET name = 'b';
SELECT seen_on = current_date AS date_clock_reset FROM accounts;
CREATE TRIGGER touch_bad BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION retention.touch('no_such_column');
UPDATE accounts SET name = 'c';
DROP TRIGGER touch_bad ON accounts;
CREATE TRIGGER touch_type BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION retention.touch('name');
UPDATE accounts SET name = 'c';
DROP TRIGGER touch_type ON accounts;
CREATE TRIGGER touch_after AFTER UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION retention.touch('seen_on');
UPDATE accounts SET name = 'd';
DROP TABLE accounts;

SELECT retention.drop_policy('orders_lifecycle');
DROP VIEW order_states;
DROP TABLE shop_orders;
