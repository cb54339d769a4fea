------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; admins declare and run, auditors read.
------------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA retention FROM PUBLIC;
REVOKE ALL ON PROCEDURE retention.run(text) FROM PUBLIC;
-- Batches run as the table owner and call the masking functions; the
-- trigger functions are attached by applications. None of these reads a
-- secret or writes the extension's tables as anyone but the caller, except
-- _stage_pseudonym and _stage_hash_random, which answer only inside a
-- running stage statement, and _locate_match, which answers only inside
-- retention.locate's own counts (run as each table's owner).
GRANT USAGE ON SCHEMA retention TO PUBLIC;
REVOKE ALL ON retention.runs, retention.status, retention.mask_strategies, retention.requests, retention.installation FROM PUBLIC;
REVOKE ALL ON PROCEDURE retention.process_erasures() FROM PUBLIC;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA retention TO retention_admin;
-- Blind indexes are computed inside the extension only: whoever could
-- compute them for chosen ids could reverse the audit log's and the
-- ledger's identifiers by trying every id.
REVOKE EXECUTE ON FUNCTION retention._blind(text, text) FROM retention_admin;
GRANT EXECUTE ON FUNCTION retention.touch(), retention.refuse_restricted_update(), retention.request_erasure_trigger(),
    retention.mask_partial(text, integer, integer, text), retention.mask_email(text, boolean),
    retention.mask_hmac(text, bytea), retention.mask_hash_random(text),
    retention.mask_generalise(date, text), retention.mask_generalise(bigint, bigint), retention.mask_generalise(inet, integer),
    retention.mask_noise(double precision, double precision), retention.mask_noise(bigint, bigint), retention.mask_noise(date, integer),
    retention.mask_jsonb_drop(jsonb, text[]), retention._stage_pseudonym(text), retention._stage_hash_random(text),
    retention._locate_match(text) TO PUBLIC;
GRANT EXECUTE ON PROCEDURE retention.run(text) TO retention_admin;
GRANT SELECT ON retention.runs, retention.status, retention.mask_strategies, retention.requests, retention.installation
    TO retention_admin, retention_auditor;
-- Re-validating declared expressions is part of ALTER EXTENSION UPDATE (a
-- superuser); nobody else calls it.
REVOKE EXECUTE ON FUNCTION retention._revalidate_declared() FROM retention_admin;
GRANT EXECUTE ON PROCEDURE retention.process_erasures() TO retention_admin;
GRANT EXECUTE ON FUNCTION retention.verify_audit(jsonb), retention._verify_audit(jsonb),
    retention.audit_anchor(), retention._audit_anchor(),
    retention.erasure_certificate(bigint), retention._erasure_certificate(bigint), retention.erasure_certificate_text(bigint),
    retention.access_certificate(bigint), retention._access_certificate(bigint),
    retention.erasure_ledger(timestamptz), retention._erasure_ledger(timestamptz),
    retention.subject_map(text), retention._subject_map(text),
    retention.link_suggestions(text), retention._link_suggestions(text) TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.preview(text), retention._preview(text), retention._status() TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.version(), retention._library_version() TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.processing_record(), retention.processing_record_text() TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.export_config(), retention._export_config() TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.discover(text, integer), retention._discover(text, integer),
    retention.coverage(text, integer) TO retention_auditor;

-- Every function resolves names in pg_catalog only, whatever the caller's
-- search_path: objects planted in the caller's schemas (an operator "=" on
-- text, a function now()) never take part in the extension's own queries.
-- The SQL wrappers have bodies parsed when the extension is created (BEGIN
-- ATOMIC / RETURN), so their names are resolved once, in the extension's
-- own path. Not for the masking functions, the _stage_ ones and
-- _locate_match (called per row, they run no SQL) nor for the two procedures (a SET clause forbids
-- COMMIT; they pin the path themselves).
DO $pin$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'retention'::regnamespace AND p.prokind = 'f'
                AND p.proname NOT LIKE 'mask\_%' AND p.proname NOT IN ('_stage_pseudonym', '_stage_hash_random', '_locate_match')
                AND p.prolang <> (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'sql')
                AND p.proconfig IS NULL
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END
$pin$;
