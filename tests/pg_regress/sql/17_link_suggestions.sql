-- Places a subject's data may live that the foreign keys do not show:
-- columns named and typed like the root id, foreign keys declared only on
-- partitions, and a second foreign key the map does not follow. Each is
-- listed for review, with the add_subject_table call where one maps it.
-- A foreign key declared on a partition maps its partitioned table.
SET client_min_messages = notice;
CREATE SCHEMA ls;
SET search_path = ls, public;
CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE);
CREATE TABLE messages (id int PRIMARY KEY, author_id int REFERENCES customers, addressee_id int REFERENCES customers,
                       body text);
CREATE TABLE carts (id int PRIMARY KEY, customer_id bigint);           -- no foreign key, an integer: suggested
CREATE TABLE audit_trail (id int, customerid int);                     -- another spelling: suggested
CREATE TABLE visits (id int, customer_id text);                        -- another type: not suggested
CREATE TABLE products (id int PRIMARY KEY, name text);                 -- nothing like the id: not suggested
CREATE TABLE events (at timestamptz NOT NULL, customer_id int) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
ALTER TABLE events_2026 ADD FOREIGN KEY (customer_id) REFERENCES customers;
-- The same key on a second partition: the same link, no second path.
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
ALTER TABLE events_2025 ADD FOREIGN KEY (customer_id) REFERENCES customers;
-- A foreign key only on a partition of a table that is not in the map
-- through anything else: listed, with the call.
CREATE TABLE tickets (opened timestamptz NOT NULL, cart int) PARTITION BY RANGE (opened);
CREATE TABLE tickets_2026 PARTITION OF tickets FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO customers VALUES (1, 'a@example.org'), (2, 'b@example.org');
INSERT INTO events VALUES ('2025-06-01', 1), ('2026-06-01', 1), ('2027-06-01', 1), ('2026-06-01', 2);
-- register_subject says how many there are.
SELECT retention.register_subject('ls_customer', 'ls.customers', 'id');
SELECT target, link, path FROM retention.subject_map('ls_customer') ORDER BY target;
SELECT target, column_name, found_by, suggestion
  FROM retention.link_suggestions('ls_customer') ORDER BY target, column_name;
-- The note of the second foreign key says what an erasure does without it.
SELECT note LIKE 'also references ls.customers (id); the map follows %: rows linked to the subject only through this key are not erased%' AS explained
  FROM retention.link_suggestions('ls_customer') WHERE found_by = 'second foreign key';
-- A suggestion taken is no longer suggested; it is in the map.
SELECT retention.add_subject_table('ls_customer', 'ls.carts', 'customer_id');
SELECT count(*) AS carts_suggested FROM retention.link_suggestions('ls_customer') WHERE target = 'ls.carts';
SELECT target, link, path FROM retention.subject_map('ls_customer') WHERE target = 'ls.carts';
-- An erasure reaches the subject's rows in every partition, with or
-- without the key.
SELECT retention.request_erasure('ls_customer', '1') > 0 AS filed;
CALL retention.process_erasures();
SELECT at::date, customer_id FROM events ORDER BY at, customer_id;
-- A foreign key on the partition of a table outside the map, to a mapped
-- table (carts, mapped by value): suggested, no call (a value link cannot
-- follow it).
ALTER TABLE tickets_2026 ADD FOREIGN KEY (cart) REFERENCES carts;
SELECT target, column_name, found_by, suggestion IS NULL AS no_call
  FROM retention.link_suggestions('ls_customer') WHERE found_by = 'foreign key on partitions';
-- Unknown kinds are refused; auditors may read.
SELECT * FROM retention.link_suggestions('ls_nobody');
SET ROLE retention_auditor;
SELECT count(*) AS auditor_sees FROM retention.link_suggestions('ls_customer');
RESET ROLE;
-- Clean up.
SET client_min_messages = warning;
SELECT retention.drop_subject('ls_customer');
DROP SCHEMA ls CASCADE;
RESET search_path;
