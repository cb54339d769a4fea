-- The record of processing activities (Art. 30(1)(f)): what processing_record
-- and processing_record_text say about tables with policies, subject maps,
-- statutory minimums, holds and erasure requests; no subject ids anywhere.
SET client_min_messages = warning;
CREATE SCHEMA pr;
SET search_path = pr, public;
CREATE TABLE customers (id int PRIMARY KEY, email text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, delivered_at timestamptz,
                     email text, anonymised_at timestamptz);
CREATE TABLE invoices (id int PRIMARY KEY, customer_id int REFERENCES customers, issued_at timestamptz);
CREATE TABLE access_log (at timestamptz, ip inet);
SELECT retention.processing_record() -> 'erasure_requests' AS requests_before \gset
SELECT retention.create_policy('pr_orders', 'pr.orders', 'delivered_at', interval '10 years',
    purpose => 'order handling', legal_basis => 'GDPR Art. 6(1)(b)') > 0 AS created;
SELECT retention.add_stage('pr_orders', interval '2 years', 'anonymise', column_name => 'anonymised_at') > 0 AS added;
SELECT retention.set_mask('pr_orders', 'email', 'email');
SELECT retention.create_policy('pr_access', 'pr.access_log', 'at', interval '90 days',
    min_retention => interval '30 days', min_retention_ground => 'BSI logging guidance') > 0 AS created;
SELECT retention.register_subject('pr_customer', 'pr.customers', 'id') AS tables_mapped;
SELECT retention.set_subject_table('pr_customer', 'pr.invoices', 'purge', min_retention => interval '10 years',
    clock => 'issued_at', legal_ground => 'HGB §257') IS NOT NULL AS set;
SELECT retention.place_hold('tax audit 2026', target => 'pr.invoices') > 0 AS held;
SELECT retention.place_hold('litigation', kind => 'pr_customer', subject_id => '4711') > 0 AS held;
SELECT retention.request_erasure('pr_customer', '4712', received_at => now() - interval '2 months') > 0 AS filed;

-- Per table: policies with purpose, basis, stages, minimums and masks; the
-- kinds whose erasure reaches it; the holds in force; the gaps.
SELECT jsonb_pretty(t)
  FROM jsonb_array_elements(retention.processing_record() -> 'tables') t
 WHERE t ->> 'table' LIKE 'pr.%'
 ORDER BY t ->> 'table';

-- Erasure requests: one more received, pending and overdue.
SELECT key, (retention.processing_record() -> 'erasure_requests' ->> key)::int - (:'requests_before'::jsonb ->> key)::int AS added
  FROM jsonb_object_keys(:'requests_before'::jsonb) key ORDER BY key;

-- The Markdown text: the lines about this schema's tables.
SELECT line
  FROM regexp_split_to_table(retention.processing_record_text(), E'\n') WITH ORDINALITY l(line, n)
 WHERE n >= (SELECT min(n) FROM regexp_split_to_table(retention.processing_record_text(), E'\n') WITH ORDINALITY m(line, n) WHERE line LIKE '## `pr.%')
   AND n <= (SELECT max(n) FROM regexp_split_to_table(retention.processing_record_text(), E'\n') WITH ORDINALITY m(line, n) WHERE line LIKE '## `pr.orders`') + 6
 ORDER BY n;

-- No subject id appears (the held and the erased subject).
SELECT position('4711' IN retention.processing_record()::text) = 0 AND position('4712' IN retention.processing_record_text()) = 0 AS no_subject_ids;

-- Auditors may read it.
SET ROLE retention_auditor;
SELECT jsonb_typeof(retention.processing_record()) AS auditor_reads, length(retention.processing_record_text()) > 0 AS auditor_reads_text;
RESET ROLE;

-- Clean up.
SELECT retention.drop_policy(name) FROM retention.policies WHERE name LIKE 'pr\_%' ORDER BY 1;
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL;
ALTER TABLE retention.erasure_requests DISABLE TRIGGER erasure_requests_guard;
DELETE FROM retention.erasure_requests WHERE kind LIKE 'pr\_%';
ALTER TABLE retention.erasure_requests ENABLE TRIGGER erasure_requests_guard;
SELECT retention.drop_subject('pr_customer');
DROP SCHEMA pr CASCADE;
RESET search_path;
