-- Policy-as-code, the export: the whole configuration as one canonical
-- document, the same whatever the session's IntervalStyle and search_path,
-- the same twice, without subject ids.
SET client_min_messages = warning;
CREATE SCHEMA cf;
CREATE TABLE cf.customers (id int PRIMARY KEY, email text);
CREATE TABLE cf.orders (id int PRIMARY KEY, customer_id int REFERENCES cf.customers, delivered_at timestamptz,
                        email text, anonymised_at timestamptz, restricted_at timestamptz);
CREATE TABLE cf.invoices (id int PRIMARY KEY, customer_id int REFERENCES cf.customers, issued_at timestamptz);
SELECT retention.create_policy('cf_orders', 'cf.orders', 'delivered_at', interval '10 years',
    filter => 'customer_id IS NOT NULL', purpose => 'order handling', legal_basis => 'GDPR Art. 6(1)(b)',
    max_due_fraction => 0.25, batch_size => 5000, max_run_time => interval '1 hour') > 0 AS created;
SELECT retention.add_stage('cf_orders', interval '2 years 6 months', 'anonymise', column_name => 'anonymised_at') > 0 AS added;
SELECT retention.add_stage('cf_orders', interval '30 days', 'mark', column_name => 'restricted_at') > 0 AS added;
SELECT retention.set_mask('cf_orders', 'email', 'email', '{"keep_domain": true}');
SELECT retention.register_subject('cf_customer', 'cf.customers', 'id') AS mapped;
SELECT retention.set_subject_table('cf_customer', 'cf.invoices', 'purge', min_retention => interval '10 years',
    clock => 'issued_at', legal_ground => 'HGB §257') IS NOT NULL AS set;
SELECT retention.place_hold('cf tax audit', target => 'cf.invoices', filter => 'id < 100') > 0 AS held;
SELECT retention.place_hold('cf litigation', kind => 'cf_customer', subject_id => '4711') > 0 AS held;

-- This schema's part of the document.
SELECT jsonb_pretty(retention.export_config() -> 'policies' -> 'cf_orders') AS policy;
SELECT jsonb_pretty(retention.export_config() -> 'subject_kinds' -> 'cf_customer') AS kind;
SELECT jsonb_pretty(h - 'subject_blind_index') AS hold, h ->> 'subject_blind_index' ~ '^[0-9a-f]{64}$' AS blind_index
  FROM jsonb_array_elements(retention.export_config() -> 'holds') h WHERE h ->> 'reason' LIKE 'cf %' ORDER BY h ->> 'reason';
SELECT retention.export_config() ->> 'format' AS format, retention.export_config() -> 'version' AS version;

-- The same document whatever the session's settings, and twice.
SELECT retention.export_config() AS doc \gset
SET IntervalStyle = 'sql_standard';
SET search_path = cf, public;
SELECT retention.export_config() = :'doc'::jsonb AS same_document;
RESET IntervalStyle;
RESET search_path;
-- No subject id anywhere.
SELECT position('4711' IN retention.export_config()::text) = 0 AS no_subject_id;
-- Auditors may export.
SET ROLE retention_auditor;
SELECT retention.export_config() = :'doc'::jsonb AS auditor_exports;
RESET ROLE;

-- Clean up.
SELECT retention.drop_policy('cf_orders');
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL;
SELECT retention.drop_subject('cf_customer');
DROP SCHEMA cf CASCADE;
