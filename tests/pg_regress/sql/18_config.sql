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

-- Policy-as-code, the way back: retention.apply_config(doc, dry_run).
-- Errors show as SQLSTATE and message.
CREATE FUNCTION pg_temp.try_apply(doc jsonb, dry boolean DEFAULT true) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM retention.apply_config(doc, dry);
    RETURN 'applied';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
INSERT INTO cf.customers SELECT g, 'c' || g || '@example.org' FROM generate_series(1, 10) g;
INSERT INTO cf.orders (id, customer_id, delivered_at)
SELECT g, g, now() - g * interval '1 year' - interval '1 day' FROM generate_series(1, 10) g;
SELECT retention.export_config() AS doc \gset

-- The document of the whole database (everything the earlier files
-- declared) applied to the database it came from: nothing to do.
SELECT count(*) AS changes FROM retention.apply_config(:'doc');
SELECT count(*) AS changes FROM retention.apply_config(:'doc', dry_run => false);
SELECT retention.export_config() = :'doc'::jsonb AS unchanged;

-- A shorter period: the plan names the change and the rows it makes due
-- now; the dry run (the default) changes nothing.
SELECT jsonb_set(:'doc', '{policies,cf_orders,stages,purge,after}', '"P5Y"') AS shorter \gset
SELECT change, object, name, regexp_replace(detail, 'cutoff [0-9: -]+ UTC', 'cutoff …') AS detail, due_rows, due_rows_before
  FROM retention.apply_config(:'shorter') WHERE change <> 'due now' OR name LIKE 'cf\_%';
SELECT retention.export_config() = :'doc'::jsonb AS dry_run_changed_nothing;
-- Applied: the export gives the document back.
SELECT count(*) AS changes FROM retention.apply_config(:'shorter', dry_run => false);
SELECT retention.export_config() = :'shorter'::jsonb AS applied;
SELECT purge_after FROM retention.policies WHERE name = 'cf_orders';
-- And back again.
SELECT count(*) AS changes FROM retention.apply_config(:'doc', dry_run => false);
SELECT retention.export_config() = :'doc'::jsonb AS restored;

-- Several changes at once: stages reordered, a mask, the statutory
-- minimum, a new policy and a policy left out.
SELECT jsonb_set(jsonb_set(jsonb_set(jsonb_set(:'doc'::jsonb #- '{policies,cf_orders,stages,mark}',
         '{policies,cf_orders,stages,anonymise,after}', '"P1Y"'),
         '{policies,cf_orders,masks,email}', '{"strategy": "null", "options": {}}'),
         '{policies,cf_orders,statutory_minimum}', '{"period": "P6Y", "ground": "HGB §257"}'),
         '{policies,cf_invoices}', jsonb_build_object('table', 'cf.invoices', 'clock', 'issued_at',
             'stages', '{"purge": {"after": "P10Y"}}'::jsonb, 'purpose', 'invoicing')) AS several \gset
SELECT change, object, name, regexp_replace(detail, 'cutoff [0-9: -]+ UTC', 'cutoff …') AS detail, due_rows, due_rows_before
  FROM retention.apply_config(:'several', dry_run => false) WHERE change <> 'due now' OR name LIKE 'cf\_%';
SELECT mark_after, anonymise_after, purge_after, min_retention, min_retention_ground
  FROM retention.policies WHERE name = 'cf_orders';
SELECT m.column_name, m.strategy FROM retention.masks m JOIN retention.policies p ON p.id = m.policy_id WHERE p.name = 'cf_orders';
-- alter_policy changes the statutory minimum, checked against the purge
-- stage, and the audit log records each change.
SELECT retention.alter_policy('cf_orders', min_retention => interval '20 years', min_retention_ground => 'AO §147');
SELECT retention.alter_policy('cf_orders', min_retention => interval '8 years', no_min_retention => true);
SELECT retention.alter_policy('cf_orders', min_retention => interval '8 years', min_retention_ground => 'AO §147') > 0 AS altered;
SELECT details FROM retention.audit_log WHERE event = 'policy minimum changed' AND details ->> 'policy' = 'cf_orders' ORDER BY id;
-- Leaving cf_invoices out of the document drops it.
SELECT change, object, name FROM retention.apply_config(:'doc', dry_run => false) WHERE change <> 'due now';
SELECT retention.export_config() = :'doc'::jsonb AS restored;
SELECT retention.alter_policy('cf_orders', min_retention_ground => 'AO §147');

-- A failure anywhere changes nothing: cf_orders is changed first, then the
-- new policy's clock is refused.
SELECT pg_temp.try_apply(jsonb_set(:'shorter', '{policies,cf_zz}',
    '{"table": "cf.orders", "clock": "no_such_column"}'), false) AS bad_clock;
SELECT retention.export_config() = :'doc'::jsonb AS nothing_half_applied;
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{policies,cf_orders,stages,purge,after}', '"P1Y"')) AS breaks_order;
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{policies,cf_orders,batches,sise}', '10')) AS typo;
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{version}', '2')) AS version;
SELECT pg_temp.try_apply('{"format": "something else"}') AS not_a_config;
SELECT pg_temp.try_apply(:'doc'::jsonb - 'policies') AS no_policies;
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{policies,cf_zz}', '{"table": "orders", "clock": "delivered_at"}')) AS unqualified;
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{subject_kinds,cf_customer,tables}',
    (:'doc'::jsonb -> 'subject_kinds' -> 'cf_customer' -> 'tables') - 1)) AS map_differs;
SELECT retention.export_config() = :'doc'::jsonb AS unchanged;

-- Holds: the document's holds are placed; a hold on a subject only by
-- place_hold (the document knows its blind index, not the subject); holds
-- the document leaves out are kept unless it says to release them.
SELECT jsonb_set(:'doc', '{holds}', (:'doc'::jsonb -> 'holds') || '[{"reason": "cf new", "kind": null,
    "subject_blind_index": null, "table": "cf.orders", "filter": "id = 3", "until": null}]') AS more_holds \gset
SELECT change, object, name, detail FROM retention.apply_config(:'more_holds', dry_run => false) WHERE object = 'hold';
SELECT reason, target, filter FROM retention.holds WHERE reason = 'cf new' AND released_at IS NULL;
-- The same document again: the hold is in force (its filter compared in
-- the form holds store it), nothing is placed twice or released.
SELECT count(*) AS hold_changes FROM retention.apply_config(:'more_holds'::jsonb || '{"release_unlisted_holds": true}', false)
 WHERE object = 'hold' AND name LIKE 'cf %';
SELECT count(*) AS cf_new_in_force FROM retention.holds WHERE reason = 'cf new' AND released_at IS NULL;
-- A hold on a kind needs the subject's blind index; NULL for dry_run is a
-- dry run.
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{holds}', '[{"reason": "cf kind", "kind": "cf_customer",
    "subject_blind_index": null, "table": null, "filter": null, "until": null}]')) AS kind_without_subject;
SELECT count(*) AS changes FROM retention.apply_config(:'shorter', dry_run => NULL) WHERE change = 'change';
SELECT retention.export_config() -> 'policies' -> 'cf_orders' -> 'stages' -> 'purge' ->> 'after' AS purge_after_still;
SELECT pg_temp.try_apply(jsonb_set(:'doc', '{holds}', '[{"reason": "cf someone", "kind": "cf_customer",
    "subject_blind_index": "00", "table": null, "filter": null, "until": null}]')) AS subject_hold;
SELECT change, object, name FROM retention.apply_config(jsonb_set(:'doc', '{holds}', '[]'))
 WHERE object = 'hold' AND name LIKE 'cf %' ORDER BY name;
SELECT change, object, name FROM retention.apply_config(jsonb_set(:'doc', '{holds}', '[]') || '{"release_unlisted_holds": true}')
 WHERE object = 'hold' AND name LIKE 'cf %' ORDER BY name;
SELECT change, object, name FROM retention.apply_config(:'doc'::jsonb || '{"release_unlisted_holds": true}', dry_run => false)
 WHERE object = 'hold';
SELECT count(*) FILTER (WHERE released_at IS NULL) AS in_force, count(*) FILTER (WHERE released_at IS NOT NULL) AS released
  FROM retention.holds WHERE reason LIKE 'cf %';
-- Left out of the document, holds stay.
SELECT count(*) AS changes FROM retention.apply_config(:'doc'::jsonb - 'holds', dry_run => false);

-- Auditors export, but do not apply.
SET ROLE retention_auditor;
SELECT pg_temp.try_apply(:'doc') AS auditor_applies;
RESET ROLE;

-- Clean up.
SELECT retention.drop_policy('cf_orders');
UPDATE retention.holds SET released_at = now() WHERE released_at IS NULL;
SELECT retention.drop_subject('cf_customer');
DROP SCHEMA cf CASCADE;
