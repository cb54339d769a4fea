-- Legal holds hold on every path: through foreign-key actions, through the
-- partition tree both ways, below held rows at any depth, and across kinds.
CREATE SCHEMA hx;
SET search_path = hx, public;
SET client_min_messages = warning;

-- 1. A policy on a parent table never deletes or changes a held row of a
--    child through ON DELETE CASCADE or SET NULL: the parent stays, counted
--    as held.
CREATE TABLE customers (id int PRIMARY KEY, left_at timestamptz NOT NULL);
CREATE TABLE tickets (id int PRIMARY KEY, customer int REFERENCES customers ON DELETE CASCADE, disputed boolean NOT NULL);
CREATE TABLE ticket_files (id int PRIMARY KEY, ticket int REFERENCES tickets ON DELETE CASCADE, evidence boolean NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, customer int REFERENCES customers ON DELETE SET NULL, body text);
INSERT INTO customers SELECT g, now() - interval '5 years' FROM generate_series(1, 5) g;
INSERT INTO tickets VALUES (1, 1, true), (2, 2, false), (3, 3, false), (4, 5, false);
INSERT INTO ticket_files VALUES (1, 3, true), (2, 5 - 1, false);
INSERT INTO notes VALUES (1, 2, 'evidence');
SELECT retention.place_hold('refund dispute', target => 'hx.tickets', filter => 'disputed') > 0 AS held;
SELECT retention.place_hold('litigation', target => 'hx.notes') > 0 AS held;
SELECT retention.place_hold('evidence', target => 'hx.ticket_files', filter => 'evidence') > 0 AS held;
SELECT retention.create_policy('hx_customers', 'hx.customers', 'left_at', interval '2 years') > 0 AS created;
-- The preview says beforehand how many due rows the holds keep.
SELECT action, due_rows, strpos(note, '3 of the due rows are kept by legal holds') > 0 AS says_held
  FROM retention.preview('hx_customers');
CALL retention.run('hx_customers');
-- Customer 1 (a disputed ticket), 2 (a held note) and 3 (a held file two
-- cascades down) stay; 4 and 5 go.
SELECT id FROM customers ORDER BY id;
SELECT id, customer FROM notes;
SELECT count(*) AS disputed_tickets FROM tickets WHERE disputed;
SELECT rows_purged, rows_held FROM retention.runs WHERE policy = 'hx_customers';
SELECT retention.drop_policy('hx_customers');

-- 2. A hold on a partition keeps the parent's policy from dropping it and
--    from purging its rows; a hold on the parent applies to a policy on a
--    partition.
CREATE TABLE events (id int, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_old PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2020-01-01');
CREATE TABLE events_mid PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE events_new PARTITION OF events FOR VALUES FROM ('2021-01-01') TO ('2200-01-01');
INSERT INTO events VALUES (1, '2015-05-05'), (2, '2016-06-06'), (3, '2020-06-06'), (4, now());
SELECT retention.place_hold('tax audit 2015-2016', target => 'hx.events_old') > 0 AS held;
SELECT retention.create_policy('hx_events', 'hx.events', 'at', interval '1 year') > 0 AS created;
CALL retention.run('hx_events');
SELECT to_regclass('hx.events_old') IS NOT NULL AS held_partition_kept, (SELECT count(*) FROM hx.events_mid) AS rows_left_in_other_old_partition;
SELECT id FROM events ORDER BY id;
SELECT retention.drop_policy('hx_events');
CREATE TABLE logs (id int, at timestamptz NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE logs_all PARTITION OF logs FOR VALUES FROM ('2000-01-01') TO ('2200-01-01');
INSERT INTO logs VALUES (1, '2015-05-05'), (2, '2016-06-06');
SELECT retention.place_hold('litigation: all logs', target => 'hx.logs') > 0 AS held;
SELECT retention.create_policy('hx_logs_all', 'hx.logs_all', 'at', interval '1 year', skip_locked => false) > 0 AS created;
CALL retention.run('hx_logs_all');
SELECT count(*) AS held_log_rows FROM logs;
SELECT status, note LIKE 'the whole table is under legal hold %' AS held_by_parent FROM retention.runs WHERE policy = 'hx_logs_all';
SELECT retention.drop_policy('hx_logs_all');

-- 3. Erasure keeps rows below a row held by a filter, at any depth.
CREATE TABLE buyers (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, buyer int NOT NULL REFERENCES buyers, disputed boolean NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
CREATE TABLE item_notes (id int PRIMARY KEY, item int NOT NULL REFERENCES items, body text);
INSERT INTO buyers VALUES (7);
INSERT INTO orders VALUES (1, 7, true), (2, 7, false);
INSERT INTO items VALUES (10, 1), (20, 2);
INSERT INTO item_notes VALUES (100, 10, 'evidence'), (200, 20, 'x');
SELECT retention.register_subject('hx_buyer', 'hx.buyers', 'id');
SELECT retention.place_hold('order dispute', target => 'hx.orders', filter => 'disputed') > 0 AS held;
SELECT retention.request_erasure('hx_buyer', '7') AS buyer_request \gset
CALL retention.process_erasures();
SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM items) AS items,
       (SELECT count(*) FROM item_notes WHERE item = 10) AS held_item_note, (SELECT count(*) FROM item_notes WHERE item = 20) AS other_note;
SELECT status FROM retention.requests WHERE id = :buyer_request;

-- 4. Erasure respects holds on subjects of other kinds: erasing a shop keeps
--    the orders of a person under a legal hold.
CREATE TABLE people (id int PRIMARY KEY);
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE purchases (id int PRIMARY KEY, person int NOT NULL REFERENCES people, shop int NOT NULL REFERENCES shops);
INSERT INTO people VALUES (1), (2), (3);
INSERT INTO shops VALUES (1), (2);
INSERT INTO purchases SELECT g, (g % 3) + 1, (g % 2) + 1 FROM generate_series(1, 12) g;
SELECT retention.register_subject('hx_person', 'hx.people', 'id');
SELECT retention.register_subject('hx_shop', 'hx.shops', 'id');
SELECT retention.place_hold('lawsuit', kind => 'hx_person', subject_id => '3') > 0 AS held;
SELECT retention.request_erasure('hx_shop', '2') AS shop_request \gset
CALL retention.process_erasures();
SELECT person, shop FROM purchases WHERE shop = 2 ORDER BY id;
SELECT status FROM retention.requests WHERE id = :shop_request;
SELECT t ->> 'table' AS table_name, t ->> 'purged' AS purged, t ->> 'held' AS held
  FROM jsonb_array_elements(retention.erasure_certificate(:shop_request) -> 'tables') t ORDER BY 1;

-- 5. A subject hold matches values as the foreign key compares them
--    (numeric(12,2) referencing numeric: 7.00 is 7).
CREATE TABLE accounts (id numeric PRIMARY KEY);
CREATE TABLE payments (id int PRIMARY KEY, account numeric(12,2) NOT NULL REFERENCES accounts, at timestamptz NOT NULL);
INSERT INTO accounts VALUES (7), (8);
INSERT INTO payments VALUES (1, 7, now() - interval '3 years'), (2, 7, now() - interval '3 years'),
                            (3, 8, now() - interval '3 years');
SELECT retention.register_subject('hx_account', 'hx.accounts', 'id');
SELECT retention.place_hold('tax audit of account 7', kind => 'hx_account', subject_id => '7') > 0 AS held;
SELECT retention.create_policy('hx_payments', 'hx.payments', 'at', interval '1 year') > 0 AS created;
CALL retention.run('hx_payments');
SELECT id, account FROM payments ORDER BY id;
SELECT rows_purged, rows_held FROM retention.runs WHERE policy = 'hx_payments';

-- The erasure compares value links in the column's type as well.
CREATE TABLE ledger (id int PRIMARY KEY, account numeric(12,2));
INSERT INTO ledger VALUES (1, 8), (2, 7);
SELECT retention.add_subject_table('hx_account', 'hx.ledger', 'account');
SELECT retention.request_erasure('hx_account', '8') AS account_request \gset
CALL retention.process_erasures();
SELECT id, account FROM ledger ORDER BY id;
SELECT status FROM retention.requests WHERE id = :account_request;

-- Clean up.
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'hx\_%';
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL;
ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
DELETE FROM retention.erasure_requests WHERE kind LIKE 'hx\_%';
ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;
SELECT retention.drop_subject(kind) FROM retention.subject_kinds WHERE kind LIKE 'hx\_%' ORDER BY 1;
DROP SCHEMA hx CASCADE;
RESET search_path;
