-- Access and portability (GDPR Art. 15, 20): a request filed, extended or
-- refused like an erasure request, and delivered once as one JSON document
-- with exactly the subject's rows from every table of the kind's map.
SET client_min_messages = warning;
CREATE SCHEMA ac;
CREATE TABLE ac.customers (id int PRIMARY KEY, name text, email text UNIQUE);
CREATE TABLE ac.orders (id int PRIMARY KEY, customer_id int REFERENCES ac.customers, placed_at timestamptz NOT NULL,
                        note text, restricted_at timestamptz, anonymised_at timestamptz);
CREATE TABLE ac.invoices (id int PRIMARY KEY, customer_id int REFERENCES ac.customers, issued_on date NOT NULL, amount numeric);
CREATE TABLE ac.newsletter (email text, signed_up timestamptz);
INSERT INTO ac.customers VALUES (4711, 'Erika Mustermann', 'erika@example.org'), (4712, 'Max Muster', 'max@example.org');
INSERT INTO ac.orders SELECT g, 4711 + g % 2, now() - g * interval '100 days', 'note ' || g,
                             CASE WHEN g > 6 THEN now() END, NULL FROM generate_series(1, 10) g;
INSERT INTO ac.invoices SELECT g, 4711 + g % 2, current_date - g * 200, g * 10 FROM generate_series(1, 6) g;
INSERT INTO ac.newsletter VALUES ('erika@example.org', now()), ('max@example.org', now());
SELECT retention.create_policy('ac_orders', 'ac.orders', 'placed_at', interval '10 years',
    purpose => 'order handling', legal_basis => 'GDPR Art. 6(1)(b)') > 0 AS created;
SELECT retention.add_stage('ac_orders', interval '1 year', 'mark', column_name => 'restricted_at') > 0 AS added;
SELECT retention.add_stage('ac_orders', interval '2 years', 'anonymise', column_name => 'anonymised_at') > 0 AS added;
SELECT retention.set_mask('ac_orders', 'note', 'null');
SELECT retention.register_subject('ac_customer', 'ac.customers', 'id') AS mapped;
SELECT retention.add_subject_table('ac_customer', 'ac.newsletter', 'email', matches => 'email') AS mapped;
SELECT retention.set_subject_table('ac_customer', 'ac.invoices', min_retention => interval '10 years',
    legal_ground => 'AO §147', clock => 'issued_on');
SELECT retention.place_hold('ac tax audit', kind => 'ac_customer', subject_id => '4711') > 0 AS held;
SELECT retention.place_hold('ac invoices under review', target => 'ac.invoices', filter => 'amount > 50') > 0 AS held;

-- Filed like an erasure request: due in a month, the id kept only until
-- delivery, the type shown.
SELECT retention.request_access('ac_customer', '4711', 'ticket 7') AS req \gset
SELECT request_type, status, due_at = received_at + interval '1 month' AS due_in_a_month, reference
  FROM retention.requests WHERE id = :req;
-- Erasure never takes an access request.
CALL retention.process_erasures();
SELECT status FROM retention.requests WHERE id = :req;
SELECT count(*) AS orders_kept FROM ac.orders WHERE customer_id = 4711;
SELECT retention._erase_subject(:req);
SELECT retention.erasure_certificate(:req);

-- Delivered: one document.
SELECT retention.deliver_access(:req) AS doc \gset
SELECT :'doc'::jsonb ->> 'format' AS format, :'doc'::jsonb ->> 'status' AS status,
       :'doc'::jsonb ->> 'subject_id' AS subject_id, :'doc'::jsonb ->> 'reference' AS reference,
       :'doc'::jsonb -> 'holds_on_this_subject' AS holds;
-- Every mapped table, with the number of rows.
SELECT t ->> 'table' AS "table", t ->> 'link' AS link, t -> 'row_count' AS rows
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t;
-- Exactly the subject's rows: the same ids as the tables hold for 4711.
SELECT t ->> 'table' AS "table",
       (SELECT array_agg((r -> 'values' ->> 'id')::int ORDER BY (r -> 'values' ->> 'id')::int)
          FROM jsonb_array_elements(t -> 'rows') r) AS ids
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t WHERE t ->> 'table' IN ('ac.orders', 'ac.invoices');
SELECT array_agg(id ORDER BY id) AS orders FROM ac.orders WHERE customer_id = 4711;
SELECT array_agg(id ORDER BY id) AS invoices FROM ac.invoices WHERE customer_id = 4711;
-- Nothing of the other subject.
SELECT position('4712' IN :'doc') = 0 AND position('Max' IN :'doc') = 0 AND position('max@' IN :'doc') = 0 AS nothing_of_others;
-- Restricted rows are marked; the masked columns and the periods are named.
SELECT (r -> 'values' ->> 'id')::int AS id, r -> 'restricted' AS restricted, r -> 'anonymised' AS anonymised
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t, jsonb_array_elements(t -> 'rows') r
 WHERE t ->> 'table' = 'ac.orders' ORDER BY 1;
SELECT jsonb_pretty(t - 'rows' - 'path') AS orders
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t WHERE t ->> 'table' = 'ac.orders';
SELECT jsonb_pretty(t -> 'on_erasure') AS on_erasure, jsonb_pretty(t -> 'table_holds') AS table_holds
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t WHERE t ->> 'table' = 'ac.invoices';

-- Once: the id is gone, a second delivery is refused.
SELECT retention.deliver_access(:req);
SELECT count(*) AS ids_left FROM retention.erasure_requests WHERE id = :req AND subject_id IS NOT NULL;
-- The proof: on time, the rows per table, as the audit chain recorded.
SELECT c ->> 'status' AS status, c -> 'on_time' AS on_time, c -> 'audit_record_matches' AS matches,
       c -> 'audit_chain_verified' = (SELECT to_jsonb(ok) FROM retention.verify_audit()) AS chain_checked, c -> 'tables' AS tables
  FROM retention.access_certificate(:req) c;
-- An edit of the request row behind the audit chain's back shows.
ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
UPDATE retention.erasure_requests SET result = '[]' WHERE id = :req;
SELECT (retention.access_certificate(:req) ->> 'audit_record_matches')::boolean AS matches_after_edit;
UPDATE retention.erasure_requests r SET result = a.details -> 'result'
  FROM retention.audit_log a WHERE r.id = :req AND a.event = 'access delivered' AND (a.details ->> 'request')::bigint = r.id;
ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;
SELECT (retention.access_certificate(:req) ->> 'audit_record_matches')::boolean AS matches_restored;
SELECT retention.access_certificate(0);
-- No subject id, name or address in the audit log or the requests.
SELECT count(*) AS leaks FROM retention.audit_log
 WHERE details::text LIKE '%4711%' OR details::text LIKE '%Erika%' OR details::text LIKE '%erika@%';

-- Extended and refused like erasure requests, on Art. 12(5) or 15(4).
SELECT retention.request_access('ac_customer', '4712') AS req2 \gset
SELECT retention.extend_request(:req2, 1, 'many systems') = received_at + interval '2 months' AS extended
  FROM retention.requests WHERE id = :req2;
SELECT retention.refuse_request(:req2, '17(3)(e)');
SELECT retention.refuse_request(:req2, '12(5)');
SELECT c ->> 'status' AS status, c ->> 'refusal_ground' AS ground, c -> 'extended_months' AS extended,
       c -> 'audit_record_matches' AS matches
  FROM retention.access_certificate(:req2) c;
SELECT retention.deliver_access(:req2);

-- An admin who may not read a table, or not all of it, gets no rows from
-- it: the request is partially completed and says why.
CREATE ROLE ac_clerk NOLOGIN IN ROLE retention_admin;
GRANT USAGE ON SCHEMA ac TO ac_clerk;
GRANT SELECT, DELETE ON ac.customers TO ac_clerk;
GRANT SELECT ON ac.orders, ac.newsletter TO ac_clerk;
-- Row security that restricts the clerk on ac.orders: the owner would see
-- all rows, so none are read for the clerk.
ALTER TABLE ac.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY ac_clerk_sees_some ON ac.orders TO ac_clerk USING (id < 5);
SELECT retention.request_access('ac_customer', '4712') AS req3 \gset
SET ROLE ac_clerk;
SELECT retention.deliver_access(:req3) AS doc3 \gset
RESET ROLE;
SELECT :'doc3'::jsonb ->> 'status' AS status;
SELECT t ->> 'table' AS "table", t -> 'row_count' AS rows, t ->> 'problem' AS problem
  FROM jsonb_array_elements(:'doc3'::jsonb -> 'tables') t;
-- Auditors read certificates, but do not deliver.
SET ROLE retention_auditor;
SELECT (retention.access_certificate(:req3)) ->> 'status' AS status;
SELECT retention.deliver_access(:req3);
RESET ROLE;
-- The record of processing activities counts access requests apart.
SELECT retention.processing_record() -> 'access_requests' AS access_requests;

-- Clean up.
SELECT retention.drop_policy('ac_orders');
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL AND reason LIKE 'ac %';
SELECT retention.drop_subject('ac_customer');
DROP SCHEMA ac CASCADE;
DROP OWNED BY ac_clerk;
DROP ROLE ac_clerk;
