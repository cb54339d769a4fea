-- Owned parent rows: a customer references its address row; erasing the
-- customer erases the address once nothing else references it, keeps and
-- counts a shared one, and holds on a customer keep its address out of
-- every policy.
SET client_min_messages = warning;
CREATE SCHEMA ow;
CREATE TABLE ow.addresses (id int PRIMARY KEY, street text, postcode text, created_at timestamptz NOT NULL);
CREATE TABLE ow.customers (id int PRIMARY KEY, name text,
                           address_id int REFERENCES ow.addresses ON DELETE SET NULL);
CREATE TABLE ow.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES ow.customers,
                        ship_to int REFERENCES ow.addresses);
CREATE TABLE ow.deliveries (id int PRIMARY KEY, address_id int REFERENCES ow.addresses);
INSERT INTO ow.addresses SELECT g, 'Street ' || g, '1' || g, now() - interval '2 years' FROM generate_series(101, 105) g;
-- 101: customer 1's; 102: shared by customers 2 and 3; 103: customer 4's,
-- also in a delivery log outside the map; 104: customer 5's; 105: nobody's.
INSERT INTO ow.customers VALUES (1, 'Ann', 101), (2, 'Ben', 102), (3, 'Cid', 102), (4, 'Dan', 103), (5, 'Eve', 104);
INSERT INTO ow.orders VALUES (1, 1, NULL), (2, 2, NULL);
INSERT INTO ow.deliveries VALUES (1, 103);
SELECT retention.register_subject('ow_customer', 'ow.customers', 'id') AS mapped;
-- The map's suggestions name the referenced table, with the call.
SELECT target, found_by, note, suggestion FROM retention.link_suggestions('ow_customer')
 WHERE found_by = 'referenced by a mapped table' ORDER BY suggestion;
-- Two mapped tables reference it: the one to follow must be named.
SELECT retention.add_owned_table('ow_customer', 'ow.addresses');
SELECT retention.add_owned_table('ow_customer', 'ow.deliveries');
SELECT retention.add_owned_table('ow_customer', 'ow.addresses', via => 'ow.deliveries');
SELECT retention.add_owned_table('ow_customer', 'ow.addresses', via => 'ow.customers') AS added;
SELECT retention.add_owned_table('ow_customer', 'ow.addresses', via => 'ow.customers');
SELECT target, link, depth, path FROM retention.subject_map('ow_customer') ORDER BY depth, target;

-- Customer 1: the address is erased with the customer.
SELECT retention.request_erasure('ow_customer', '1') AS r1 \gset
CALL retention.process_erasures();
SELECT status FROM retention.requests WHERE id = :r1;
SELECT t ->> 'table' AS "table", t -> 'purged' AS purged, t -> 'kept_referenced' AS kept
  FROM jsonb_array_elements(retention.erasure_certificate(:r1) -> 'tables') t ORDER BY 1;
SELECT id FROM ow.addresses ORDER BY id;
-- Customer 2: the address is shared with customer 3, so it stays, counted
-- with the table that still references it.
SELECT retention.request_erasure('ow_customer', '2') AS r2 \gset
CALL retention.process_erasures();
SELECT status FROM retention.requests WHERE id = :r2;
SELECT t ->> 'table' AS "table", t -> 'purged' AS purged, t -> 'kept_referenced' AS kept, t -> 'referenced_by' AS referenced_by
  FROM jsonb_array_elements(retention.erasure_certificate(:r2) -> 'tables') t WHERE t ->> 'table' = 'ow.addresses';
-- Customer 4: a delivery log outside the map references the address.
SELECT retention.request_erasure('ow_customer', '4') AS r4 \gset
CALL retention.process_erasures();
SELECT t -> 'purged' AS purged, t -> 'kept_referenced' AS kept, t -> 'referenced_by' AS referenced_by
  FROM jsonb_array_elements(retention.erasure_certificate(:r4) -> 'tables') t WHERE t ->> 'table' = 'ow.addresses';
SELECT id FROM ow.addresses ORDER BY id;

-- A hold on customer 3 keeps its (shared) address out of a policy that
-- purges old addresses (the key is ON DELETE SET NULL: nothing else would
-- stop it). The address of customer 5, not held, and the one nobody owns
-- go; the one the delivery log references stays (its key blocks it).
SELECT retention.place_hold('ow dispute', kind => 'ow_customer', subject_id => '3') > 0 AS held;
SELECT retention.create_policy('ow_addresses', 'ow.addresses', 'created_at', interval '1 year') > 0 AS created;
CALL retention.run('ow_addresses');
SELECT status, rows_purged FROM retention.runs WHERE policy = 'ow_addresses';
SELECT a.id, c.id AS customer FROM ow.addresses a LEFT JOIN ow.customers c ON c.address_id = a.id ORDER BY a.id, c.id;

-- The export names the owned table; applying the export changes nothing.
SELECT t ->> 'table' AS "table", t ->> 'link' AS link, t ->> 'parent' AS parent, t -> 'columns' AS columns,
       t -> 'parent_columns' AS parent_columns
  FROM jsonb_array_elements(retention.export_config() -> 'subject_kinds' -> 'ow_customer' -> 'tables') t
 WHERE t ->> 'link' = 'owned';
SELECT count(*) AS changes FROM retention.apply_config(retention.export_config(), dry_run => false);

-- Clean up.
SELECT retention.drop_policy('ow_addresses');
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL AND reason LIKE 'ow %';
SELECT retention.drop_subject('ow_customer');
DROP SCHEMA ow CASCADE;
