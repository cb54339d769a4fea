-- The privilege matrix: every function, procedure, table and view of schema
-- retention, called as each of seven roles. The matrix below is the
-- decision; README.md ("Security model") shows it as a table.
--
--   superuser    the session user (postgres)
--   ext_owner    the extension owner, by SET ROLE
--   admin_owner  a retention_admin that owns the application tables, declared
--                the policies, registered the subject kind, placed the hold
--                and filed the requests
--   other_admin  another retention_admin, with USAGE on the application
--                schema but no privilege on the tables of the policies, the
--                subject kind and the hold
--   auditor      a retention_auditor
--   app_owner    owns a table, member of no retention role
--   plain        nothing at all
--
-- Each call runs as the role in a subtransaction that is always rolled back
-- (a successful call ends by raising a private SQLSTATE). Outcome: 'denied'
-- when it fails with SQLSTATE 42501, otherwise 'ok': any other error means
-- the privilege decision let the call through (e.g. 2D000 from a procedure's
-- COMMIT inside the subtransaction, 25001 from retention.run(), 55000 from
-- schedule() without pg_cron here). A call text that does not resolve
-- (undefined function, syntax error) is 'broken', never a pass.
-- Trigger functions are not called directly: their EXECUTE privilege is
-- what counts (CREATE TRIGGER checks it), read with has_function_privilege.
-- request_erasure_trigger() is also fired, by an UPDATE every role may make:
-- whoever fires it must be entitled to the kind's subjects.
--
-- The test prints only what disagrees with the matrix: objects without a
-- decision, decisions naming no object, and mismatching outcomes.
SET client_min_messages = warning;
DROP ROLE IF EXISTS pm_admin_owner, pm_other_admin, pm_auditor, pm_app_owner, pm_plain;

CREATE ROLE pm_admin_owner NOLOGIN IN ROLE retention_admin;
CREATE ROLE pm_other_admin NOLOGIN IN ROLE retention_admin;
CREATE ROLE pm_auditor NOLOGIN IN ROLE retention_auditor;
CREATE ROLE pm_app_owner NOLOGIN;
CREATE ROLE pm_plain NOLOGIN;

-- Every role may look up names in the application schema (so that a
-- regclass argument resolves for all of them); only the owners may create.
CREATE SCHEMA pm_app;
GRANT USAGE ON SCHEMA pm_app TO pm_admin_owner, pm_other_admin, pm_auditor, pm_app_owner, pm_plain;
GRANT CREATE ON SCHEMA pm_app TO pm_admin_owner, pm_app_owner;

-- The fixtures, all made by admin_owner.
SET ROLE pm_admin_owner;
CREATE TABLE pm_app.customers (id integer PRIMARY KEY, email text NOT NULL UNIQUE,
                               created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE pm_app.orders (id integer PRIMARY KEY, customer_id integer REFERENCES pm_app.customers,
                            placed_at timestamptz NOT NULL, note text,
                            marked_at timestamptz, anonymised_at timestamptz);
CREATE INDEX ON pm_app.orders (customer_id);
CREATE TABLE pm_app.visits (id integer PRIMARY KEY, seen_at timestamptz NOT NULL, ip inet,
                            flagged_at timestamptz, anonymised_at timestamptz);
CREATE TABLE pm_app.newsletter (address text PRIMARY KEY);
INSERT INTO pm_app.customers (id, email) VALUES (1, 'one@example.com'), (2, 'two@example.com'),
                                                (3, 'three@example.com'), (4, 'four@example.com');
INSERT INTO pm_app.orders (id, customer_id, placed_at, note)
VALUES (1, 2, now() - interval '3 years', 'call first'), (2, 3, now() - interval '1 day', NULL),
       (3, NULL, now() - interval '11 years', 'old');
INSERT INTO pm_app.visits (id, seen_at, ip) VALUES (1, now() - interval '2 years', '192.0.2.1'), (2, now(), '192.0.2.2');
INSERT INTO pm_app.newsletter VALUES ('one@example.com'), ('three@example.com');
-- An application table whose trigger files erasure requests; every role may
-- update it, so that only the trigger's own check decides.
CREATE TABLE pm_app.accounts (customer_id integer PRIMARY KEY, erase boolean NOT NULL DEFAULT false);
INSERT INTO pm_app.accounts VALUES (3), (4);
CREATE TRIGGER erase AFTER UPDATE OF erase ON pm_app.accounts FOR EACH ROW WHEN (NEW.erase)
    EXECUTE FUNCTION retention.request_erasure_trigger('pm_customer', 'customer_id');
GRANT SELECT, UPDATE ON pm_app.accounts TO pm_other_admin, pm_auditor, pm_app_owner, pm_plain;

SELECT retention.create_policy('pm_orders', 'pm_app.orders', 'placed_at', interval '10 years') AS pm_orders \gset
SELECT retention.add_stage('pm_orders', interval '30 days', 'mark', column_name => 'marked_at') AS pm_orders \gset
SELECT retention.add_stage('pm_orders', interval '2 years', 'anonymise', column_name => 'anonymised_at') AS pm_orders \gset
SELECT retention.set_mask('pm_orders', 'note', 'null') AS pm_mask \gset
SELECT retention.restrict('pm_app.orders') AS pm_restricted \gset
SELECT retention.create_policy('pm_visits', 'pm_app.visits', 'seen_at', interval '1 year') AS pm_visits \gset
SELECT retention.add_stage('pm_visits', interval '30 days', 'mark', column_name => 'flagged_at') AS pm_visits \gset
SELECT retention.pause_policy('pm_visits') AS pm_paused \gset
SELECT retention.register_subject('pm_customer', 'pm_app.customers', 'id') AS pm_kind_tables \gset
SELECT retention.place_hold('pm fixture hold', target => 'pm_app.visits') AS pm_hold \gset
SELECT retention.request_erasure('pm_customer', '1', reference => 'pm processed') AS pm_done \gset
CALL retention.process_erasures();
SELECT retention.request_erasure('pm_customer', '2', reference => 'pm pending') AS pm_pending \gset
SELECT retention.request_access('pm_customer', '2', reference => 'pm access') AS pm_access \gset
RESET ROLE;

SET ROLE pm_app_owner;
CREATE TABLE pm_app.app_notes (id integer PRIMARY KEY, written_at timestamptz NOT NULL);
RESET ROLE;

SELECT subject_blind AS pm_blind FROM retention.requests WHERE id = :pm_done \gset

-- The fixtures are in place: two policies (one paused), one kind mapping
-- two tables, one processed and one pending request, one active hold.
SELECT (SELECT count(*) FROM retention.policies WHERE name IN ('pm_orders', 'pm_visits')) AS policies,
       (SELECT paused FROM retention.policies WHERE name = 'pm_visits') AS visits_paused,
       (SELECT count(*) FROM retention.subject_tables WHERE kind = 'pm_customer') AS kind_tables,
       (SELECT status FROM retention.requests WHERE id = :pm_done) AS processed,
       (SELECT status FROM retention.requests WHERE id = :pm_pending) AS pending,
       (SELECT released_at IS NULL FROM retention.holds WHERE id = :pm_hold) AS hold_active;

-- The roles, in column order.
CREATE TEMP TABLE pm_roles (ord int PRIMARY KEY, col text NOT NULL, rolname text NOT NULL);
INSERT INTO pm_roles VALUES
    (1, 'superuser',   session_user),
    (2, 'ext_owner',   (SELECT r.rolname FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner
                         WHERE e.extname = 'pg_retention')),
    (3, 'admin_owner', 'pm_admin_owner'),
    (4, 'other_admin', 'pm_other_admin'),
    (5, 'auditor',     'pm_auditor'),
    (6, 'app_owner',   'pm_app_owner'),
    (7, 'plain',       'pm_plain');

-- The matrix. obj: the function's signature (as to_regprocedure reads it),
-- the relation's name, or 'schema retention'. how: 'call' runs the call
-- text as the role; 'priv' evaluates the call text (a has_*_privilege
-- expression, %L standing for the role) instead. {done}, {pending}, {hold}
-- and {blind} stand for the fixtures' ids.
CREATE TEMP TABLE pm_matrix (
    ord          serial PRIMARY KEY,
    obj          text NOT NULL,
    variant      text,
    how          text NOT NULL CHECK (how IN ('call', 'priv')),
    call         text NOT NULL,
    superuser    text NOT NULL, ext_owner text NOT NULL, admin_owner text NOT NULL, other_admin text NOT NULL,
    auditor      text NOT NULL, app_owner text NOT NULL, plain       text NOT NULL,
    CHECK (ARRAY[superuser, ext_owner, admin_owner, other_admin, auditor, app_owner, plain]
           <@ ARRAY['ok', 'denied'])
);
INSERT INTO pm_matrix (obj, variant, how, call,
                       superuser, ext_owner, admin_owner, other_admin, auditor, app_owner, plain) VALUES
-- The schema: everybody may look up names in it (batches run as table
-- owners and call the mask functions); nobody else may create in it.
('schema retention', 'USAGE', 'priv', $c$has_schema_privilege(%L, 'retention', 'USAGE')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('schema retention', 'CREATE', 'priv', $c$has_schema_privilege(%L, 'retention', 'CREATE')$c$,
    'ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'),

-- PUBLIC: trigger functions applications attach, and the pure mask functions.
('retention.touch()', NULL, 'priv', $c$has_function_privilege(%L, 'retention.touch()', 'EXECUTE')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.refuse_restricted_update()', NULL, 'priv', $c$has_function_privilege(%L, 'retention.refuse_restricted_update()', 'EXECUTE')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.request_erasure_trigger()', NULL, 'priv', $c$has_function_privilege(%L, 'retention.request_erasure_trigger()', 'EXECUTE')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
-- Whoever fires it must be entitled to the kind's subjects, as for
-- request_erasure.
('retention.request_erasure_trigger()', 'fired', 'call',
    $c$/* fires retention.request_erasure_trigger */ UPDATE pm_app.accounts SET erase = true WHERE customer_id = 3$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.mask_partial(text,integer,integer,text)', NULL, 'call', $c$SELECT retention.mask_partial('DE89370400440532013000', 2, 2, '*')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_email(text,boolean)', NULL, 'call', $c$SELECT retention.mask_email('alice@example.com', false)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_hmac(text,bytea)', NULL, 'call', $c$SELECT retention.mask_hmac('alice', '\x000102030405060708090a0b0c0d0e0f'::bytea)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_hash_random(text)', NULL, 'call', $c$SELECT retention.mask_hash_random('alice')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_generalise(date,text)', NULL, 'call', $c$SELECT retention.mask_generalise(date '1984-07-23', 'year')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_generalise(bigint,bigint)', NULL, 'call', $c$SELECT retention.mask_generalise(37::bigint, 10::bigint)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_generalise(inet,integer)', NULL, 'call', $c$SELECT retention.mask_generalise('192.168.17.42'::inet, 24)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_noise(double precision,double precision)', NULL, 'call', $c$SELECT retention.mask_noise(1000::float8, 50::float8)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_noise(bigint,bigint)', NULL, 'call', $c$SELECT retention.mask_noise(1000::bigint, 50::bigint)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_noise(date,integer)', NULL, 'call', $c$SELECT retention.mask_noise(date '2020-01-01', 3)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
('retention.mask_jsonb_drop(jsonb,text[])', NULL, 'call', $c$SELECT retention.mask_jsonb_drop('{"phone": "1", "city": "x"}'::jsonb, ARRAY['phone'])$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'),
-- Executable by PUBLIC, but refuses everyone outside a running stage.
('retention._stage_pseudonym(text)', NULL, 'call', $c$SELECT retention._stage_pseudonym('alice')$c$,
    'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('retention._stage_hash_random(text)', NULL, 'call', $c$SELECT retention._stage_hash_random('alice')$c$,
    'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

-- Extension owner only: the blind-index function and the key and
-- subject-id tables.
('retention._blind(text,text)', NULL, 'call', $c$SELECT retention._blind('pm_customer', '3')$c$,
    'ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'),
('retention.secrets', NULL, 'call', $c$SELECT count(*) FROM retention.secrets$c$,
    'ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'),
('retention.erasure_requests', NULL, 'call', $c$SELECT count(*) FROM retention.erasure_requests$c$,
    'ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'),

-- Read by admins and auditors: the catalogue, the logs and the proofs.
('retention.policies', NULL, 'call', $c$SELECT count(*) FROM retention.policies$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.masks', NULL, 'call', $c$SELECT count(*) FROM retention.masks$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.run_log', NULL, 'call', $c$SELECT count(*) FROM retention.run_log$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.subject_kinds', NULL, 'call', $c$SELECT count(*) FROM retention.subject_kinds$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.subject_tables', NULL, 'call', $c$SELECT count(*) FROM retention.subject_tables$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.subject_paths', NULL, 'call', $c$SELECT count(*) FROM retention.subject_paths$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.holds', NULL, 'call', $c$SELECT count(*) FROM retention.holds$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.audit_log', NULL, 'call', $c$SELECT count(*) FROM retention.audit_log$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.runs', NULL, 'call', $c$SELECT count(*) FROM retention.runs$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.status', NULL, 'call', $c$SELECT count(*) FROM retention.status$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.requests', NULL, 'call', $c$SELECT count(*) FROM retention.requests$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.mask_strategies', NULL, 'call', $c$SELECT count(*) FROM retention.mask_strategies$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.preview(text)', NULL, 'call', $c$SELECT count(*) FROM retention.preview('pm_orders')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._preview(text)', NULL, 'call', $c$SELECT count(*) FROM retention._preview('pm_orders')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._status()', NULL, 'call', $c$SELECT count(*) FROM retention._status()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.verify_audit(jsonb)', NULL, 'call', $c$SELECT ok FROM retention.verify_audit()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._verify_audit(jsonb)', NULL, 'call', $c$SELECT ok FROM retention._verify_audit(NULL)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.version()', NULL, 'call', $c$SELECT retention.version()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.export_config()', NULL, 'call', $c$SELECT jsonb_typeof(retention.export_config())$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._export_config()', NULL, 'call', $c$SELECT jsonb_typeof(retention._export_config())$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.apply_config(jsonb,boolean)', NULL, 'call', $c$SELECT count(*) FROM retention.apply_config(retention.export_config())$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
-- Discovery samples tables as their owners but returns no values, and only
-- for tables the caller may read: readers.
('retention.discover(text,integer)', NULL, 'call', $c$SELECT count(*) FROM retention.discover('pm_app', 10)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._discover(text,integer)', NULL, 'call', $c$SELECT count(*) FROM retention._discover('pm_app', 10)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.coverage(text,integer)', NULL, 'call', $c$SELECT count(*) FROM retention.coverage('pm_app', 10)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
-- Locating a subject handles its identifiers: admins entitled to the kind.
('retention.locate(text,text)', NULL, 'call', $c$SELECT count(*) FROM retention.locate('pm_customer', '2')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
-- Outside locate's own counts it answers nobody.
('retention._locate_match(text)', NULL, 'call', $c$SELECT retention._locate_match('alice@example.org')$c$,
    'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
('retention._hold_filter(oid,text)', NULL, 'call', $c$SELECT retention._hold_filter('pm_app.orders'::regclass, 'id > 1')$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._locate(text,text)', NULL, 'call', $c$SELECT count(*) FROM retention._locate('pm_customer', '2')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.processing_record()', NULL, 'call', $c$SELECT jsonb_typeof(retention.processing_record())$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.processing_record_text()', NULL, 'call', $c$SELECT length(retention.processing_record_text()) > 0$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._library_version()', NULL, 'call', $c$SELECT retention._library_version()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.installation', NULL, 'call', $c$SELECT count(*) FROM retention.installation$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._revalidate_declared()', NULL, 'call', $c$SELECT retention._revalidate_declared()$c$,
    'ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'),
('retention.audit_anchor()', NULL, 'call', $c$SELECT retention.audit_anchor()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._audit_anchor()', NULL, 'call', $c$SELECT retention._audit_anchor()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.erasure_certificate(bigint)', NULL, 'call', $c$SELECT retention.erasure_certificate({done})$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._erasure_certificate(bigint)', NULL, 'call', $c$SELECT retention._erasure_certificate({done})$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.access_certificate(bigint)', NULL, 'call', $c$SELECT retention.access_certificate({access})$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._access_certificate(bigint)', NULL, 'call', $c$SELECT retention._access_certificate({access})$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.erasure_certificate_text(bigint)', NULL, 'call', $c$SELECT retention.erasure_certificate_text({done})$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.erasure_ledger(timestamptz)', NULL, 'call', $c$SELECT retention.erasure_ledger()$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._erasure_ledger(timestamptz)', NULL, 'call', $c$SELECT retention._erasure_ledger(NULL)$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.subject_map(text)', NULL, 'call', $c$SELECT count(*) FROM retention.subject_map('pm_customer')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._subject_map(text)', NULL, 'call', $c$SELECT count(*) FROM retention._subject_map('pm_customer')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention.link_suggestions(text)', NULL, 'call', $c$SELECT count(*) FROM retention.link_suggestions('pm_customer')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),
('retention._link_suggestions(text)', NULL, 'call', $c$SELECT count(*) FROM retention._link_suggestions('pm_customer')$c$,
    'ok', 'ok', 'ok', 'ok', 'ok', 'denied', 'denied'),

-- Any admin: running, scheduling, pseudonyms and the internal run steps
-- (called with ids that do not exist: only the privilege decision counts).
('retention.run(text)', NULL, 'call', $c$CALL retention.run('pm_orders')$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.process_erasures()', NULL, 'call', $c$CALL retention.process_erasures()$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.schedule(text,text)', NULL, 'call', $c$SELECT retention.schedule()$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._schedule(text,text)', NULL, 'call', $c$SELECT retention._schedule('0 3 * * *', NULL)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.unschedule(text)', NULL, 'call', $c$SELECT retention.unschedule()$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._unschedule(text)', NULL, 'call', $c$SELECT retention._unschedule(NULL)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.pseudonym(text)', NULL, 'call', $c$SELECT retention.pseudonym('alice')$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.rotate_pseudonym_key()', NULL, 'call', $c$SELECT retention.rotate_pseudonym_key()$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._run_open(text,boolean)', NULL, 'call', $c$SELECT retention._run_open('pm_orders', false)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._run_batch(bigint,integer)', NULL, 'call', $c$SELECT * FROM retention._run_batch(-1, NULL)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._run_retry(bigint,integer,text)', NULL, 'call', $c$SELECT retention._run_retry(-1, NULL, '55P03')$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._run_close(bigint)', NULL, 'call', $c$SELECT retention._run_close(-1)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._run_fail(bigint,text,text,text,text,text)', NULL, 'call', $c$SELECT retention._run_fail(-1, '55P03', 'lock timeout', NULL, NULL, NULL)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention._erase_subject(bigint)', NULL, 'call', $c$SELECT retention._erase_subject(-1)$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.audit_log_guard()', NULL, 'priv', $c$has_function_privilege(%L, 'retention.audit_log_guard()', 'EXECUTE')$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),
('retention.erasure_requests_guard()', NULL, 'priv', $c$has_function_privilege(%L, 'retention.erasure_requests_guard()', 'EXECUTE')$c$,
    'ok', 'ok', 'ok', 'ok', 'denied', 'denied', 'denied'),

-- Admins with rights on the object: policies of admin_owner, its tables,
-- its subject kind, its requests and its hold. other_admin is refused.
('retention.create_policy(text,regclass,text,interval,text,integer,interval,boolean,text,text,interval,interval,interval,integer,boolean,text,interval,text,interval,boolean,real)', NULL, 'call',
    $c$SELECT retention.create_policy('pm_new', 'pm_app.customers', 'created_at', interval '5 years')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
-- Owning a table is not enough to declare a policy; being an admin is not
-- enough either.
('retention.create_policy(text,regclass,text,interval,text,integer,interval,boolean,text,text,interval,interval,interval,integer,boolean,text,interval,text,interval,boolean,real)', 'app_owner''s table', 'call',
    $c$SELECT retention.create_policy('pm_notes', 'pm_app.app_notes', 'written_at', interval '5 years')$c$,
    'ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'),
('retention._create_policy(text,oid,text,interval,text,integer,interval,boolean,text,text,interval,interval,interval,integer,boolean,text,interval,text,interval,boolean,real)', NULL, 'call',
    $c$SELECT retention._create_policy('pm_new', 'pm_app.customers'::regclass::oid, 'created_at', interval '5 years', NULL, 1000, interval '0', true, NULL, NULL, interval '2 seconds', interval '1 minute', NULL, NULL, true, NULL, NULL, NULL, interval '100 ms', false, NULL)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.alter_policy(text,text,text,interval,text,boolean,integer,interval,boolean,text,text,interval,interval,interval,integer,boolean,boolean,boolean,text,boolean,interval,boolean,boolean,real,boolean,interval,text,boolean)', NULL, 'call',
    $c$SELECT retention.alter_policy('pm_orders', batch_size => 500)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._alter_policy(text,text,text,interval,text,boolean,integer,interval,boolean,text,text,interval,interval,interval,integer,boolean,boolean,boolean,text,boolean,interval,boolean,boolean,real,boolean,interval,text,boolean)', NULL, 'call',
    $c$SELECT retention._alter_policy('pm_orders', NULL, NULL, NULL, NULL, false, 500, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, false, NULL, NULL, false, NULL, false, NULL, NULL, false, NULL, NULL, false)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.drop_policy(text,boolean)', NULL, 'call', $c$SELECT retention.drop_policy('pm_orders')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._drop_policy(text,boolean)', NULL, 'call', $c$SELECT retention._drop_policy('pm_orders', false)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.pause_policy(text)', NULL, 'call', $c$SELECT retention.pause_policy('pm_orders')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.resume_policy(text)', NULL, 'call', $c$SELECT retention.resume_policy('pm_visits')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._set_paused(text,boolean)', NULL, 'call', $c$SELECT retention._set_paused('pm_orders', true)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
-- Acknowledging a policy its safety cap stopped (false: pm_orders is not stopped).
('retention.acknowledge(text)', NULL, 'call', $c$SELECT retention.acknowledge('pm_orders')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._acknowledge(text)', NULL, 'call', $c$SELECT retention._acknowledge('pm_orders')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.add_stage(text,interval,text,text)', NULL, 'call',
    $c$SELECT retention.add_stage('pm_visits', interval '6 months', 'anonymise', column_name => 'anonymised_at')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._add_stage(text,interval,text,text)', NULL, 'call',
    $c$SELECT retention._add_stage('pm_visits', interval '6 months', 'anonymise', 'anonymised_at')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.drop_stage(text,text)', NULL, 'call', $c$SELECT retention.drop_stage('pm_orders', 'anonymise')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._drop_stage(text,text)', NULL, 'call', $c$SELECT retention._drop_stage('pm_orders', 'anonymise')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.set_mask(text,text,text,jsonb)', NULL, 'call',
    $c$SELECT retention.set_mask('pm_orders', 'note', 'constant', '{"value": "(removed)"}')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._set_mask(text,text,text,jsonb)', NULL, 'call',
    $c$SELECT retention._set_mask('pm_orders', 'note', 'constant', '{"value": "(removed)"}')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.drop_mask(text,text)', NULL, 'call', $c$SELECT retention.drop_mask('pm_orders', 'note')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._drop_mask(text,text)', NULL, 'call', $c$SELECT retention._drop_mask('pm_orders', 'note')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.restrict(regclass)', NULL, 'call', $c$SELECT retention.restrict('pm_app.visits')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._restrict(oid)', NULL, 'call', $c$SELECT retention._restrict('pm_app.visits'::regclass::oid)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.unrestrict(regclass)', NULL, 'call', $c$SELECT retention.unrestrict('pm_app.orders')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._unrestrict(oid)', NULL, 'call', $c$SELECT retention._unrestrict('pm_app.orders'::regclass::oid)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.register_subject(text,regclass,text,boolean)', NULL, 'call',
    $c$SELECT retention.register_subject('pm_buyer', 'pm_app.customers', 'id')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._register_subject(text,oid,text,boolean)', NULL, 'call',
    $c$SELECT retention._register_subject('pm_buyer', 'pm_app.customers'::regclass::oid, 'id', true)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.add_subject_table(text,regclass,text,text,text)', NULL, 'call',
    $c$SELECT retention.add_subject_table('pm_customer', 'pm_app.newsletter', 'address', matches => 'email')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._add_subject_table(text,oid,text,text,text)', NULL, 'call',
    $c$SELECT retention._add_subject_table('pm_customer', 'pm_app.newsletter'::regclass::oid, 'address', 'email', 'purge')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.set_subject_table(text,regclass,text,interval,text,text,text)', NULL, 'call',
    $c$SELECT retention.set_subject_table('pm_customer', 'pm_app.orders', min_retention => interval '10 years', legal_ground => 'HGB 257', clock => 'placed_at')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._set_subject_table(text,oid,text,interval,text,text,text)', NULL, 'call',
    $c$SELECT retention._set_subject_table('pm_customer', 'pm_app.orders'::regclass::oid, NULL, interval '10 years', 'HGB 257', 'placed_at', NULL)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.drop_subject(text)', NULL, 'call', $c$SELECT retention.drop_subject('pm_customer')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._drop_subject(text)', NULL, 'call', $c$SELECT retention._drop_subject('pm_customer')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.add_owned_table(text,regclass,regclass,text)', NULL, 'call',
    $c$SELECT retention.add_owned_table('pm_customer', 'pm_app.customers')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._add_owned_table(text,oid,oid,text)', NULL, 'call',
    $c$SELECT retention._add_owned_table('pm_customer', 'pm_app.customers'::regclass, NULL, 'purge')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.add_subject_path(text,regclass,text)', NULL, 'call',
    $c$SELECT retention.add_subject_path('pm_customer', 'pm_app.orders', 'no_such_key')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._add_subject_path(text,oid,text)', NULL, 'call',
    $c$SELECT retention._add_subject_path('pm_customer', 'pm_app.orders'::regclass, 'no_such_key')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.set_erasure_sweep(text,boolean)', NULL, 'call',
    $c$SELECT retention.set_erasure_sweep('pm_customer', true)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._set_erasure_sweep(text,boolean)', NULL, 'call',
    $c$SELECT retention._set_erasure_sweep('pm_customer', true)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.request_erasure(text,text,text,timestamptz)', NULL, 'call',
    $c$SELECT retention.request_erasure('pm_customer', '3', reference => 'pm matrix')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._request_erasure(text,text,text,timestamptz)', NULL, 'call',
    $c$SELECT retention._request_erasure('pm_customer', '3', 'pm matrix', now())$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.request_access(text,text,text,timestamptz)', NULL, 'call',
    $c$SELECT retention.request_access('pm_customer', '3', reference => 'pm matrix')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._request_access(text,text,text,timestamptz)', NULL, 'call',
    $c$SELECT retention._request_access('pm_customer', '3', 'pm matrix', now())$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
-- Delivering an access request returns personal data: admins entitled to
-- the kind only.
('retention.deliver_access(bigint)', NULL, 'call',
    $c$SELECT jsonb_typeof(retention.deliver_access({access}))$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._deliver_access(bigint)', NULL, 'call',
    $c$SELECT jsonb_typeof(retention._deliver_access({access}))$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.extend_request(bigint,integer,text)', NULL, 'call',
    $c$SELECT retention.extend_request({pending}, 1, 'the order history is large')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._extend_request(bigint,integer,text)', NULL, 'call',
    $c$SELECT retention._extend_request({pending}, 1, 'the order history is large')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.refuse_request(bigint,text)', NULL, 'call', $c$SELECT retention.refuse_request({pending}, '17(3)(e)')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._refuse_request(bigint,text)', NULL, 'call', $c$SELECT retention._refuse_request({pending}, '17(3)(e)')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.reapply_erasures(timestamptz,jsonb)', NULL, 'call',
    $c$SELECT count(*) FROM retention.reapply_erasures(ledger => '[{"kind": "pm_customer", "subject": "{blind}"}]')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._reapply_erasures(timestamptz,jsonb)', NULL, 'call',
    $c$SELECT count(*) FROM retention._reapply_erasures(NULL, '[{"kind": "pm_customer", "subject": "{blind}"}]')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.place_hold(text,text,text,regclass,text,timestamptz)', 'table', 'call',
    $c$SELECT retention.place_hold('pm matrix hold', target => 'pm_app.orders', filter => 'note IS NOT NULL')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.place_hold(text,text,text,regclass,text,timestamptz)', 'subject', 'call',
    $c$SELECT retention.place_hold('pm matrix hold', kind => 'pm_customer', subject_id => '3')$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._place_hold(text,text,text,oid,text,timestamptz)', 'table', 'call',
    $c$SELECT retention._place_hold('pm matrix hold', NULL, NULL, 'pm_app.orders'::regclass::oid, 'note IS NOT NULL', NULL)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._place_hold(text,text,text,oid,text,timestamptz)', 'subject', 'call',
    $c$SELECT retention._place_hold('pm matrix hold', 'pm_customer', '3', NULL, NULL, NULL)$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention.release_hold(bigint)', NULL, 'call', $c$SELECT retention.release_hold({hold})$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied'),
('retention._release_hold(bigint)', NULL, 'call', $c$SELECT retention._release_hold({hold})$c$,
    'ok', 'ok', 'ok', 'denied', 'denied', 'denied', 'denied');

UPDATE pm_matrix
   SET call = replace(replace(replace(replace(replace(call, '{done}', :'pm_done'), '{pending}', :'pm_pending'),
                              '{hold}', :'pm_hold'), '{blind}', :'pm_blind'), '{access}', :'pm_access');

-- What each matrix entry names in the catalogue.
CREATE TEMP VIEW pm_entries AS
SELECT m.*,
       CASE WHEN m.obj = 'schema retention' THEN 'retention'::regnamespace::oid
            WHEN m.obj LIKE '%(%' THEN to_regprocedure(m.obj)::oid
            ELSE to_regclass(m.obj)::oid END AS oid,
       CASE WHEN m.obj = 'schema retention' THEN 'retention'
            WHEN m.obj LIKE '%(%' THEN (SELECT proname FROM pg_proc WHERE oid = to_regprocedure(m.obj))
            ELSE (SELECT relname FROM pg_class WHERE oid = to_regclass(m.obj)) END AS name
  FROM pm_matrix m;

-- Objects of schema retention without a decision (none).
SELECT p.oid::regprocedure::text AS undecided
  FROM pg_proc p
 WHERE p.pronamespace = 'retention'::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pm_entries e WHERE e.oid = p.oid)
UNION ALL
SELECT c.oid::regclass::text
  FROM pg_class c
 WHERE c.relnamespace = 'retention'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND NOT EXISTS (SELECT 1 FROM pm_entries e WHERE e.oid = c.oid)
 ORDER BY 1;

-- Decisions naming no object, or whose call does not name their object (none).
SELECT obj, variant, CASE WHEN oid IS NULL THEN 'no such object' ELSE 'call does not name it' END AS problem
  FROM pm_entries
 WHERE oid IS NULL OR (obj <> 'schema retention' AND position('retention.' || name IN call) = 0)
 ORDER BY ord;

-- Run the matrix.
CREATE TEMP TABLE pm_result (ord int, col text, got text, sqlstate text, message text, PRIMARY KEY (ord, col));
SET client_min_messages = error;
DO $run$
DECLARE
    m      record;
    r      record;
    st     text;
    msg    text;
    got    text;
    holds  boolean;
BEGIN
    FOR m IN SELECT * FROM pm_entries WHERE oid IS NOT NULL ORDER BY ord LOOP
        FOR r IN SELECT * FROM pm_roles ORDER BY ord LOOP
            st := NULL; msg := NULL;
            IF m.how = 'priv' THEN
                EXECUTE 'SELECT ' || format(m.call, r.rolname) INTO holds;
                got := CASE WHEN holds THEN 'ok' ELSE 'denied' END;
            ELSE
                BEGIN
                    IF r.col <> 'superuser' THEN
                        EXECUTE format('SET ROLE %I', r.rolname);
                    END IF;
                    EXECUTE m.call;
                    RAISE EXCEPTION 'call returned' USING ERRCODE = 'PMOK0';
                EXCEPTION WHEN OTHERS THEN
                    -- Rolling back the subtransaction also undid SET ROLE.
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                END;
                got := CASE
                    WHEN st = '42501' THEN 'denied'
                    WHEN st = '42601'
                      OR (st = '42883' AND msg ~ '^(function|procedure) .* does not exist$') THEN 'broken'
                    ELSE 'ok' END;
                IF st = 'PMOK0' THEN
                    st := NULL; msg := NULL;
                END IF;
            END IF;
            INSERT INTO pm_result VALUES (m.ord, r.col, got, st, msg);
        END LOOP;
    END LOOP;
    -- Runs opened in the rolled-back calls may have left session locks.
    PERFORM pg_advisory_unlock_all();
END
$run$;
RESET client_min_messages;

-- Outcomes that differ from the matrix (none).
-- (Long argument lists are shortened to "(...)".)
SELECT regexp_replace(e.obj, '\(.{40,}\)$', '(...)') || coalesce(' [' || e.variant || ']', '') AS object,
       x.col AS role, x.expected, r.got,
       r.sqlstate, r.message
  FROM pm_entries e
 CROSS JOIN LATERAL (VALUES (1, 'superuser', e.superuser), (2, 'ext_owner', e.ext_owner),
                            (3, 'admin_owner', e.admin_owner), (4, 'other_admin', e.other_admin),
                            (5, 'auditor', e.auditor), (6, 'app_owner', e.app_owner),
                            (7, 'plain', e.plain)) AS x(n, col, expected)
  LEFT JOIN pm_result r ON r.ord = e.ord AND r.col = x.col
 WHERE e.oid IS NOT NULL AND r.got IS DISTINCT FROM x.expected
 ORDER BY e.ord, x.n;

-- How much was checked.
SELECT count(DISTINCT e.oid) AS objects, count(*) AS checks
  FROM pm_result r JOIN pm_entries e USING (ord);

-- Clean up: the fixtures' catalogue entries, the tables, the roles.
SET client_min_messages = warning;
SELECT retention.refuse_request(:pm_access, '12(5)') IS NOT NULL AS access_refused;
SELECT retention.refuse_request(:pm_pending, '17(3)(e)') IS NOT NULL AS refused,
       retention.release_hold(:pm_hold) AS released,
       retention.drop_policy('pm_orders') AS dropped_orders,
       retention.drop_policy('pm_visits') AS dropped_visits,
       retention.drop_subject('pm_customer') AS dropped_kind;
DROP SCHEMA pm_app CASCADE;
DROP OWNED BY pm_admin_owner, pm_other_admin, pm_auditor, pm_app_owner, pm_plain;
DROP ROLE pm_admin_owner, pm_other_admin, pm_auditor, pm_app_owner, pm_plain;
