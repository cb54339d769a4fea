-- The right to erasure, from request to certificate.
-- A shop's customer lives in six tables: the root, two tables linked by
-- foreign key, two more one level deeper, and a newsletter list linked by
-- e-mail value only. Invoices must be kept 10 years (HGB §257, AO §147).
CREATE SCHEMA crm;
SET search_path = crm, public;
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, placed_at date NOT NULL);
CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, product text, gift_note text);
CREATE TABLE tickets (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, subject text, disputed boolean NOT NULL DEFAULT false);
CREATE TABLE ticket_messages (id bigint PRIMARY KEY, ticket_id bigint NOT NULL REFERENCES tickets ON DELETE CASCADE, body text);
CREATE TABLE newsletter (address text PRIMARY KEY, subscribed_at date NOT NULL);
CREATE TABLE invoices (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE SET NULL,
                       billed_to text, issued_on date NOT NULL, amount numeric NOT NULL, restricted_at timestamptz);
-- Reviews are kept for the shop's statistics, but anonymised on erasure.
CREATE TABLE reviews (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, author_name text,
                      body text, rating int NOT NULL, anonymised_at timestamptz);
CREATE INDEX ON reviews (customer_id);
CREATE INDEX ON orders (customer_id); CREATE INDEX ON order_items (order_id); CREATE INDEX ON tickets (customer_id);
CREATE INDEX ON ticket_messages (ticket_id); CREATE INDEX ON invoices (customer_id);

INSERT INTO customers VALUES (4711, 'alice@example.com', 'Alice Example'), (4712, 'bob@example.org', 'Bob Other');
INSERT INTO orders VALUES (1, 4711, '2025-03-01'), (2, 4711, '2026-02-01'), (3, 4712, '2026-02-02');
INSERT INTO order_items VALUES (1, 1, 'book', 'for alice@example.com'), (2, 2, 'lamp', NULL), (3, 3, 'pen', NULL);
INSERT INTO tickets VALUES (1, 4711, 'where is my lamp', false), (2, 4711, 'refund dispute', true), (3, 4712, 'hello', false);
INSERT INTO ticket_messages VALUES (1, 1, 'Dear shop, Alice here'), (2, 2, 'I want my money back - Alice'), (3, 3, 'Bob says hi');
INSERT INTO newsletter VALUES ('alice@example.com', '2024-01-01'), ('bob@example.org', '2024-01-01');
INSERT INTO invoices VALUES (1, 4711, 'Alice Example, 1 Main St', current_date - 400, 19.99, NULL),
                            (2, 4711, 'Alice Example, 1 Main St', current_date - 4000, 5.00, NULL),
                            (3, 4712, 'Bob Other', current_date - 10, 1.00, NULL);

-- Invoices have a policy with masks and a mark stage: retained invoice rows
-- are minimised and restricted with them.
SELECT retention.create_policy('invoices_10y', 'invoices', 'issued_on', interval '10 years') > 0 AS created;
SELECT retention.add_stage('invoices_10y', interval '1 year', 'mark', column_name => 'restricted_at') > 0 AS added;
SELECT retention.set_mask('invoices_10y', 'billed_to', 'constant', '{"value": "(erased)"}');

SELECT retention.create_policy('reviews_5y', 'reviews', 'anonymised_at', NULL) > 0 AS created;
SELECT retention.add_stage('reviews_5y', interval '5 years', 'anonymise', column_name => 'anonymised_at') > 0 AS added;
SELECT retention.set_mask('reviews_5y', 'customer_id', 'null');
SELECT retention.set_mask('reviews_5y', 'author_name', 'constant', '{"value": "(anonymous)"}');
SELECT retention.set_mask('reviews_5y', 'body', 'null');

-- Register the kind of subject: foreign keys are followed from the root.
SELECT retention.register_subject('customer', 'customers', 'id');
SELECT retention.add_subject_table('customer', 'newsletter', 'address', matches => 'email');
SELECT retention.set_subject_table('customer', 'reviews', action => 'anonymise');
SELECT retention.set_subject_table('customer', 'invoices', min_retention => interval '10 years',
                                   clock => 'issued_on', legal_ground => 'HGB §257, AO §147: 10 years');
SELECT target, link, depth, path, action, min_retention, legal_ground, indexed, warning
  FROM retention.subject_map('customer') ORDER BY depth, target;

-- A dispute about ticket 2 is a legal claim: hold it.
SELECT retention.place_hold('refund dispute, case 17/26', target => 'tickets', filter => 'disputed') > 0 AS held;

-- The request: due one month after receipt.
SELECT retention.request_erasure('customer', '4711', reference => 'ticket #99') AS request \gset
SELECT id, kind, reference, status, due_at = received_at + interval '1 month' AS due_in_a_month, days_left >= 27 AS days_left_ok, overdue
  FROM retention.requests;
-- Nothing personal in the request list or the audit log.
SELECT count(*) AS personal_data FROM retention.requests r WHERE r::text ~ '(^|[^0-9a-f])4711([^0-9a-f]|$)' OR r::text LIKE '%alice%';

-- Processing (CALL retention.run() does this too).
CALL retention.process_erasures();
SELECT status, completed_at IS NOT NULL AS completed, overdue FROM retention.requests WHERE id = :request;

-- What is left of Alice: the held ticket (and its messages), the invoices
-- under the 10-year minimum, minimised and restricted; nothing else.
SELECT 'customers' AS t, count(*) FROM customers WHERE id = 4711
UNION ALL SELECT 'orders', count(*) FROM orders WHERE id IN (1, 2)
UNION ALL SELECT 'order_items', count(*) FROM order_items WHERE id IN (1, 2)
UNION ALL SELECT 'tickets', count(*) FROM tickets WHERE id IN (1, 2)
UNION ALL SELECT 'ticket_messages', count(*) FROM ticket_messages WHERE id IN (1, 2)
UNION ALL SELECT 'newsletter', count(*) FROM newsletter WHERE address = 'alice@example.com'
UNION ALL SELECT 'invoices', count(*) FROM invoices WHERE id IN (1, 2);
SELECT id, customer_id, billed_to, restricted_at IS NOT NULL AS restricted FROM invoices ORDER BY id;
-- Bob is untouched.
SELECT (SELECT count(*) FROM customers WHERE id = 4712) + (SELECT count(*) FROM orders WHERE customer_id = 4712)
     + (SELECT count(*) FROM newsletter WHERE address = 'bob@example.org') AS bob_rows;

-- The certificate names what was kept and why; it holds no subject id.
SELECT jsonb_pretty(retention.erasure_certificate(:request) #- '{received_at}' #- '{due_at}' #- '{completed_at}'
                    #- '{issued_at}' #- '{audit_hash}' #- '{subject_blind_index}') AS certificate;
SELECT retention.erasure_certificate(:request)::text ~ '(^|[^0-9a-f])4711([^0-9a-f]|$)' AS certificate_has_id;
SELECT regexp_replace(regexp_replace(retention.erasure_certificate_text(:request),
                      '[0-9]{4}-[0-9]{2}-[0-9]{2}[^ ]*( [0-9:.+]+)?', '<time>', 'g'), '[0-9a-f]{64}', '<hash>', 'g') AS certificate_text;

-- The audit log and the run log know the subject only by blind index.
SELECT event, details ? 'subject' AS has_blind_index FROM retention.audit_log WHERE event <> 'policy run' ORDER BY id;
-- Policy runs are in it too, with names and counts.
SELECT count(*) > 0 AS policy_runs_audited,
       bool_and(details ?& ARRAY['policy', 'table', 'status', 'purged', 'anonymised', 'marked', 'held']) AS with_counts
  FROM retention.audit_log WHERE event = 'policy run';
SELECT count(*) AS audit_rows_with_personal_data FROM retention.audit_log a
 WHERE a::text ~ '(^|[^0-9a-f])4711([^0-9a-f]|$)' OR a::text ~* 'alice';
SELECT count(*) AS run_rows_with_personal_data FROM retention.run_log r WHERE r::text ~ '(^|[^0-9a-f])4711([^0-9a-f]|$)' OR r::text LIKE '%alice%';
SELECT ok, first_broken_id FROM retention.verify_audit();

-- A second customer, with no hold and no invoices, is erased completely
-- by a normal run (CALL retention.run() processes pending requests): no
-- registered table holds her id or e-mail afterwards.
INSERT INTO customers VALUES (4713, 'carol@example.net', 'Carol Third');
INSERT INTO orders VALUES (10, 4713, '2026-01-01');
INSERT INTO order_items VALUES (10, 10, 'mug', 'gift for carol@example.net');
INSERT INTO tickets VALUES (10, 4713, 'mug broken', false);
INSERT INTO ticket_messages VALUES (10, 10, 'Carol: please send a new one');
INSERT INTO newsletter VALUES ('carol@example.net', '2025-01-01');
INSERT INTO reviews VALUES (20, 4713, 'Carol T.', 'Great mug, says Carol', 5, NULL);
SELECT retention.request_erasure('customer', '4713') AS carol \gset
CALL retention.run();
SELECT status FROM retention.requests WHERE id = :carol;
CREATE FUNCTION pg_temp.rows_mentioning(pattern text) RETURNS TABLE (target text, n bigint) LANGUAGE plpgsql AS $$
DECLARE t text;
BEGIN
    FOR t IN SELECT m.target FROM retention.subject_map('customer') m ORDER BY 1 LOOP
        target := t;
        EXECUTE format('SELECT count(*) FROM %s x WHERE x::text ~ $1', t) INTO n USING pattern;
        RETURN NEXT;
    END LOOP;
END $$;
SELECT * FROM pg_temp.rows_mentioning('(^|[^0-9a-f])4713([^0-9a-f]|$)|carol');
-- The review stays for the statistics, anonymised.
SELECT id, customer_id, author_name, body, rating, anonymised_at IS NOT NULL AS anonymised FROM reviews;
SELECT count(*) AS elsewhere FROM retention.audit_log a WHERE a::text ~ '(^|[^0-9a-f])4713([^0-9a-f]|$)|carol';
SELECT count(*) AS elsewhere FROM retention.erasure_requests r WHERE r::text ~ '(^|[^0-9a-f])4713([^0-9a-f]|$)|carol';

-- Deadlines: a request received 40 days ago and not processed is overdue;
-- an extension (within the first month) moves the deadline.
SELECT retention.request_erasure('customer', '4712', received_at => now() - interval '40 days') AS late \gset
SELECT id, status, overdue FROM retention.requests WHERE id = :late;
SELECT retention.request_erasure('customer', '4712', received_at => now() - interval '10 days') AS recent \gset
SELECT retention.extend_request(:recent, 2, 'complex request: many systems') = (SELECT received_at FROM retention.requests WHERE id = :recent) + interval '3 months' AS extended;
SELECT retention.extend_request(:late, 1, 'too late');
SELECT retention.extend_request(:recent, 1, 'more than two months in all');
SELECT retention.refuse_request(:late, '17(3)(e)');
SELECT retention.refuse_request(:recent, 'we would rather not');

-- The audit log is append-only, for owners too ...
UPDATE retention.audit_log SET actor = 'someone else' WHERE id = 1;
DELETE FROM retention.audit_log;
TRUNCATE retention.audit_log;

-- Bad input is refused.
SELECT retention.request_erasure('supplier', '1');
SELECT retention.request_erasure('customer', '04712');
SELECT retention.request_erasure('customer', 'x');
SELECT retention.add_subject_table('customer', 'tickets', 'subject', matches => 'name');
SELECT retention.register_subject('customer', 'customers', 'id');
SELECT retention.register_subject('client', 'no_such_table', 'id');
SELECT retention.register_subject('client', 'customers', 'no_such_column');
SELECT retention.register_subject('Client!', 'customers', 'id');
SELECT retention.add_subject_table('customer', 'newsletter', 'no_such_column');
CREATE TABLE employees (id int PRIMARY KEY, manager int REFERENCES employees);
SELECT retention.register_subject('employee', 'employees', 'id');
SELECT retention.place_hold('');
SELECT retention.place_hold('audit');

-- ... and a forged edit (a superuser with the guard disabled) is found.
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_no_update;
UPDATE retention.audit_log SET details = details || '{"tables": []}'
 WHERE id = (SELECT min(id) FROM retention.audit_log WHERE event = 'erasure completed');
ALTER TABLE retention.audit_log ENABLE TRIGGER audit_log_no_update;
SELECT ok, first_broken_id = (SELECT min(id) FROM retention.audit_log WHERE event = 'erasure completed') AS names_the_forged_row, problem
  FROM retention.verify_audit();

SELECT retention.drop_policy('invoices_10y'), retention.drop_policy('reviews_5y');
-- A kind with pending requests cannot be dropped.
SELECT retention.drop_subject('customer');
SELECT retention.refuse_request(:recent, '17(3)(b)') IS NOT NULL AS refused;
SELECT retention.drop_subject('customer');
DROP SCHEMA crm CASCADE;
RESET search_path;
