-- pg_retention 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_retention UPDATE).
--
-- 0.2.0 runs every statement on an application table as the table's owner
-- under fixed settings, keeps the extension's functions out of the callers'
-- search_path, binds its SQL to a library of its own name
-- (pg_retention-0.2.0), guards erasure requests, records more in the audit
-- chain and re-validates every declared expression. This script:
--   1. adds the new columns and the request guard;
--   2. drops what 0.2.0 no longer has or defines differently;
--   3. creates or replaces every function, procedure and view as a fresh
--      0.2.0 install has them (pointing the C functions at the new
--      library), with their comments and grants;
--   4. re-validates the clocks and filters 0.1.0 stored as written: each is
--      stored in its canonical form, or the update stops naming the policy,
--      hold or subject table to fix first (nothing is changed then).
-- tests/integration/t_upgrade.sh checks that the result equals a fresh
-- install, object by object.

-- 1. Tables ------------------------------------------------------------------

ALTER TABLE retention.subject_tables ADD COLUMN mask_policy bigint;
ALTER TABLE retention.run_log ADD COLUMN throttled_ms double precision NOT NULL DEFAULT 0;
-- Keeping up and vacuuming: what each run left, and the VACUUM after it.
ALTER TABLE retention.run_log
    ADD COLUMN due_left bigint,
    ADD COLUMN oldest_due timestamptz,
    ADD COLUMN vacuum_job bigint,
    ADD COLUMN vacuumed_at timestamptz;
-- Batches sized to a time budget: existing policies get the 100 ms target,
-- and their batch_size becomes the most rows one batch changes.
ALTER TABLE retention.policies ALTER COLUMN batch_size SET DEFAULT 100000;
ALTER TABLE retention.policies
    ADD COLUMN batch_target interval DEFAULT interval '100 milliseconds'
        CHECK (batch_target BETWEEN interval '1 millisecond' AND interval '10 seconds'),
    ADD COLUMN vacuum_after boolean NOT NULL DEFAULT false,
    ADD COLUMN max_due_fraction real CHECK (max_due_fraction > 0 AND max_due_fraction <= 1),
    ADD COLUMN cap_tripped_at timestamptz,
    ADD COLUMN cap_acknowledged_at timestamptz;
-- The placing role, checked by identity on release: the role that has the
-- recorded name now (a hold whose role is gone is released by a superuser).
ALTER TABLE retention.holds ADD COLUMN placed_by_role oid;
UPDATE retention.holds h SET placed_by_role = r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = h.placed_by;
-- Owned parent rows (an address a customer references) in subject maps.
ALTER TABLE retention.subject_tables DROP CONSTRAINT subject_tables_link_check,
    ADD CONSTRAINT subject_tables_link_check CHECK (link IN ('root', 'foreign key', 'value', 'owned'));
-- Further foreign-key paths from a mapped table to the subject.
CREATE TABLE retention.subject_paths (
    kind           text     NOT NULL,
    target         regclass NOT NULL,
    foreign_key    text     NOT NULL,   -- the constraint on target
    parent         regclass NOT NULL,   -- the mapped table it references
    columns        text[]   NOT NULL,   -- its columns on target
    parent_columns text[]   NOT NULL,   -- the referenced columns of parent
    PRIMARY KEY (kind, target, foreign_key),
    FOREIGN KEY (kind, target) REFERENCES retention.subject_tables (kind, target) ON DELETE CASCADE
);
SELECT pg_catalog.pg_extension_config_dump('retention.subject_paths', '');
REVOKE ALL ON retention.subject_paths FROM PUBLIC;
GRANT SELECT ON retention.subject_paths TO retention_admin, retention_auditor;
-- Access and portability requests share the erasure requests' table.
ALTER TABLE retention.erasure_requests
    ADD COLUMN request_type text NOT NULL DEFAULT 'erasure' CHECK (request_type IN ('erasure', 'access')),
    ADD COLUMN sweep jsonb;
-- Erasure's final sweep for the subject's identifiers.
ALTER TABLE retention.subject_kinds ADD COLUMN sweep boolean NOT NULL DEFAULT false;

CREATE FUNCTION retention.erasure_requests_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('retention.request_write', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'erasure requests are changed by pg_retention''s functions only' USING ERRCODE = 'insufficient_privilege',
            HINT = 'Use retention.extend_request, retention.refuse_request or retention.process_erasures.';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION retention.erasure_requests_guard() IS
    'Trigger function refusing UPDATE, DELETE and TRUNCATE on retention.erasure_requests except by pg_retention''s own functions.';
CREATE TRIGGER erasure_requests_guard BEFORE UPDATE OR DELETE ON retention.erasure_requests
    FOR EACH ROW EXECUTE FUNCTION retention.erasure_requests_guard();
CREATE TRIGGER erasure_requests_no_truncate BEFORE TRUNCATE ON retention.erasure_requests
    FOR EACH STATEMENT EXECUTE FUNCTION retention.erasure_requests_guard();

-- 2. What 0.2.0 no longer has, or defines differently ------------------------

DROP FUNCTION retention._request_from_trigger(text, text, text);
DROP FUNCTION retention._stage_active();
-- Gained an argument (mask_policy) or lost a default: replaced, not overloaded.
DROP FUNCTION retention.set_subject_table(text, regclass, text, interval, text, text);
DROP FUNCTION retention._set_subject_table(text, oid, text, interval, text, text);
DROP FUNCTION retention.verify_audit();
DROP FUNCTION retention._verify_audit();
-- Gained arguments (batch_target, vacuum_after) or result columns.
DROP FUNCTION retention.create_policy(text, regclass, text, interval, text, integer, interval, boolean, text, text, interval, interval, interval, integer, boolean, text, interval, text);
DROP FUNCTION retention._create_policy(text, oid, text, interval, text, integer, interval, boolean, text, text, interval, interval, interval, integer, boolean, text, interval, text);
DROP FUNCTION retention.alter_policy(text, text, text, interval, text, boolean, integer, interval, boolean, text, text, interval, interval, interval, integer, boolean, boolean, boolean, text, boolean);
DROP FUNCTION retention._alter_policy(text, text, text, interval, text, boolean, integer, interval, boolean, text, text, interval, interval, interval, integer, boolean, boolean, boolean, text, boolean);
DROP VIEW retention.status;
DROP FUNCTION retention._status();

-- 3. Every function, procedure and view as 0.2.0 creates them -----------------
-- (scripts/upgrade-draft.sh)

-- pg_retention::erasure::access::_access_certificate
CREATE OR REPLACE FUNCTION "_access_certificate"(
	"request" bigint /* i64 */
) RETURNS jsonb /* JsonB */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'access_certificate_wrapper';

-- pg_retention::policy::_acknowledge
CREATE OR REPLACE FUNCTION "_acknowledge"(
	"name" TEXT /* & str */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'acknowledge_wrapper';

-- pg_retention::erasure::subjects::_add_owned_table
CREATE OR REPLACE FUNCTION "_add_owned_table"(
	"kind" TEXT, /* & str */
	"target" oid, /* pg_sys :: Oid */
	"via" oid, /* Option < pg_sys :: Oid > */
	"action" TEXT /* & str */
) RETURNS INT /* i32 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'add_owned_table_wrapper';

-- pg_retention::stage::_add_stage
CREATE OR REPLACE FUNCTION "_add_stage"(
	"policy_name" TEXT, /* & str */
	"after" interval, /* Option < Interval > */
	"action" TEXT, /* & str */
	"column_name" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'add_stage_wrapper';

-- pg_retention::erasure::subjects::_add_subject_path
CREATE OR REPLACE FUNCTION "_add_subject_path"(
	"kind" TEXT, /* & str */
	"target" oid, /* pg_sys :: Oid */
	"foreign_key" TEXT /* & str */
) RETURNS INT /* i32 */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'add_subject_path_wrapper';

-- pg_retention::erasure::subjects::_add_subject_table
CREATE OR REPLACE FUNCTION "_add_subject_table"(
	"kind" TEXT, /* & str */
	"target" oid, /* pg_sys :: Oid */
	"column_name" TEXT, /* & str */
	"matches" TEXT, /* Option < & str > */
	"action" TEXT /* & str */
) RETURNS INT /* i32 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'add_subject_table_wrapper';

-- pg_retention::policy::_alter_policy
CREATE OR REPLACE FUNCTION "_alter_policy"(
	"name" TEXT, /* & str */
	"new_name" TEXT, /* Option < & str > */
	"clock" TEXT, /* Option < & str > */
	"purge_after" interval, /* Option < Interval > */
	"filter" TEXT, /* Option < & str > */
	"drop_filter" bool, /* bool */
	"batch_size" INT, /* Option < i32 > */
	"batch_pause" interval, /* Option < Interval > */
	"skip_locked" bool, /* Option < bool > */
	"purpose" TEXT, /* Option < & str > */
	"legal_basis" TEXT, /* Option < & str > */
	"lock_timeout" interval, /* Option < Interval > */
	"statement_timeout" interval, /* Option < Interval > */
	"max_run_time" interval, /* Option < Interval > */
	"max_rows_per_second" INT, /* Option < i32 > */
	"no_max_run_time" bool, /* bool */
	"no_rate_limit" bool, /* bool */
	"drop_partitions" bool, /* Option < bool > */
	"archive_schema" TEXT, /* Option < & str > */
	"no_archive" bool, /* bool */
	"batch_target" interval, /* Option < Interval > */
	"no_batch_target" bool, /* bool */
	"vacuum_after" bool, /* Option < bool > */
	"max_due_fraction" real, /* Option < f32 > */
	"no_max_due_fraction" bool, /* bool */
	"min_retention" interval, /* Option < Interval > */
	"min_retention_ground" TEXT, /* Option < & str > */
	"no_min_retention" bool /* bool */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'alter_policy_wrapper';

-- pg_retention::audit::_audit_anchor
CREATE OR REPLACE FUNCTION "_audit_anchor"() RETURNS jsonb /* JsonB */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'audit_anchor_wrapper';

-- pg_retention::erasure::_blind
CREATE OR REPLACE FUNCTION "_blind"(
	"kind" TEXT, /* & str */
	"subject_id" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'blind_sql_wrapper';

-- pg_retention::policy::_create_policy
CREATE OR REPLACE FUNCTION "_create_policy"(
	"name" TEXT, /* & str */
	"target" oid, /* pg_sys :: Oid */
	"clock" TEXT, /* & str */
	"purge_after" interval, /* Option < Interval > */
	"filter" TEXT, /* Option < & str > */
	"batch_size" INT, /* i32 */
	"batch_pause" interval, /* Interval */
	"skip_locked" bool, /* bool */
	"purpose" TEXT, /* Option < & str > */
	"legal_basis" TEXT, /* Option < & str > */
	"lock_timeout" interval, /* Interval */
	"statement_timeout" interval, /* Interval */
	"max_run_time" interval, /* Option < Interval > */
	"max_rows_per_second" INT, /* Option < i32 > */
	"drop_partitions" bool, /* bool */
	"archive_schema" TEXT, /* Option < & str > */
	"min_retention" interval, /* Option < Interval > */
	"min_retention_ground" TEXT, /* Option < & str > */
	"batch_target" interval, /* Option < Interval > */
	"vacuum_after" bool, /* bool */
	"max_due_fraction" real /* Option < f32 > */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'create_policy_wrapper';

-- pg_retention::erasure::access::_deliver_access
CREATE OR REPLACE FUNCTION "_deliver_access"(
	"request" bigint /* i64 */
) RETURNS jsonb /* JsonB */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'deliver_access_wrapper';

-- pg_retention::discover::_discover
CREATE OR REPLACE FUNCTION "_discover"(
	"schema_filter" TEXT, /* Option < & str > */
	"sample_rows" INT /* i32 */
) RETURNS TABLE (
	"target" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"data_type" TEXT,  /* String */
	"category" TEXT,  /* String */
	"found_by" TEXT,  /* String */
	"share" real,  /* Option < f32 > */
	"confidence" TEXT,  /* String */
	"sampled" bigint  /* Option < i64 > */
)

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'discover_wrapper';

-- pg_retention::stage::masks::_drop_mask
CREATE OR REPLACE FUNCTION "_drop_mask"(
	"policy_name" TEXT, /* & str */
	"column_name" TEXT /* & str */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'drop_mask_wrapper';

-- pg_retention::policy::_drop_policy
CREATE OR REPLACE FUNCTION "_drop_policy"(
	"name" TEXT, /* & str */
	"if_exists" bool /* bool */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'drop_policy_wrapper';

-- pg_retention::stage::_drop_stage
CREATE OR REPLACE FUNCTION "_drop_stage"(
	"policy_name" TEXT, /* & str */
	"action" TEXT /* & str */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'drop_stage_wrapper';

-- pg_retention::erasure::subjects::_drop_subject
CREATE OR REPLACE FUNCTION "_drop_subject"(
	"kind" TEXT /* & str */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'drop_subject_wrapper';

-- pg_retention::erasure::erase::_erase_subject
CREATE OR REPLACE FUNCTION "_erase_subject"(
	"request" bigint /* i64 */
) RETURNS TEXT /* String */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'erase_subject_wrapper';

-- pg_retention::erasure::proof::_erasure_certificate
CREATE OR REPLACE FUNCTION "_erasure_certificate"(
	"request" bigint /* i64 */
) RETURNS jsonb /* JsonB */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'erasure_certificate_wrapper';

-- pg_retention::erasure::proof::_erasure_ledger
CREATE OR REPLACE FUNCTION "_erasure_ledger"(
	"since" timestamp with time zone /* Option < TimestampWithTimeZone > */
) RETURNS jsonb /* JsonB */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'erasure_ledger_wrapper';

-- pg_retention::config::_export_config
CREATE OR REPLACE FUNCTION "_export_config"() RETURNS jsonb /* JsonB */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'export_config_wrapper';

-- pg_retention::erasure::requests::_extend_request
CREATE OR REPLACE FUNCTION "_extend_request"(
	"id" bigint, /* i64 */
	"months" INT, /* i32 */
	"reason" TEXT /* & str */
) RETURNS timestamp with time zone /* TimestampWithTimeZone */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'extend_request_wrapper';

-- pg_retention::holds::_hold_filter
CREATE OR REPLACE FUNCTION "_hold_filter"(
	"target" oid, /* pg_sys :: Oid */
	"filter" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'hold_filter_wrapper';

-- pg_retention::upgrade::_library_version
CREATE OR REPLACE FUNCTION "_library_version"() RETURNS TEXT /* & '_ str */
IMMUTABLE STRICT PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'library_version_wrapper';

-- pg_retention::erasure::subjects::_link_suggestions
CREATE OR REPLACE FUNCTION "_link_suggestions"(
	"kind" TEXT /* & str */
) RETURNS TABLE (
	"target" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"found_by" TEXT,  /* String */
	"note" TEXT,  /* String */
	"suggestion" TEXT  /* Option < String > */
)
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'link_suggestions_wrapper';

-- pg_retention::discover::locate::_locate
CREATE OR REPLACE FUNCTION "_locate"(
	"kind" TEXT, /* & str */
	"subject_id" TEXT /* & str */
) RETURNS TABLE (
	"target" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"rows" bigint,  /* Option < i64 > */
	"in_map" bool,  /* bool */
	"note" TEXT  /* Option < String > */
)
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'locate_wrapper';

-- pg_retention::discover::locate::_locate_match
CREATE OR REPLACE FUNCTION "_locate_match"(
	"value" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'locate_match_wrapper';

-- pg_retention::holds::_place_hold
CREATE OR REPLACE FUNCTION "_place_hold"(
	"reason" TEXT, /* & str */
	"kind" TEXT, /* Option < & str > */
	"subject_id" TEXT, /* Option < & str > */
	"target" oid, /* Option < pg_sys :: Oid > */
	"filter" TEXT, /* Option < & str > */
	"until" timestamp with time zone /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'place_hold_wrapper';

-- pg_retention::preview::_preview
CREATE OR REPLACE FUNCTION "_preview"(
	"policy_name" TEXT /* Option < & str > */
) RETURNS TABLE (
	"policy" TEXT,  /* String */
	"target" TEXT,  /* String */
	"action" TEXT,  /* String */
	"cutoff" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"due_rows" bigint,  /* Option < i64 > */
	"clock_indexed" bool,  /* Option < bool > */
	"paused" bool,  /* bool */
	"note" TEXT  /* Option < String > */
)

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'preview_wrapper';

-- pg_retention::erasure::proof::_reapply_erasures
CREATE OR REPLACE FUNCTION "_reapply_erasures"(
	"since" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"ledger" jsonb /* Option < JsonB > */
) RETURNS TABLE (
	"kind" TEXT,  /* String */
	"subject_blind_index" TEXT,  /* String */
	"request" bigint,  /* Option < i64 > */
	"status" TEXT  /* String */
)

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'reapply_erasures_wrapper';

-- pg_retention::erasure::requests::_refuse_request
CREATE OR REPLACE FUNCTION "_refuse_request"(
	"id" bigint, /* i64 */
	"ground" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'refuse_request_wrapper';

-- pg_retention::erasure::subjects::_register_subject
CREATE OR REPLACE FUNCTION "_register_subject"(
	"kind" TEXT, /* & str */
	"root" oid, /* pg_sys :: Oid */
	"id_column" TEXT, /* & str */
	"follow_foreign_keys" bool /* bool */
) RETURNS INT /* i32 */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'register_subject_wrapper';

-- pg_retention::holds::_release_hold
CREATE OR REPLACE FUNCTION "_release_hold"(
	"id" bigint /* i64 */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'release_hold_wrapper';

-- pg_retention::erasure::requests::_request_access
CREATE OR REPLACE FUNCTION "_request_access"(
	"kind" TEXT, /* & str */
	"subject_id" TEXT, /* & str */
	"reference" TEXT, /* Option < & str > */
	"received_at" timestamp with time zone /* TimestampWithTimeZone */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'request_access_wrapper';

-- pg_retention::erasure::requests::_request_erasure
CREATE OR REPLACE FUNCTION "_request_erasure"(
	"kind" TEXT, /* & str */
	"subject_id" TEXT, /* & str */
	"reference" TEXT, /* Option < & str > */
	"received_at" timestamp with time zone /* TimestampWithTimeZone */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'request_erasure_wrapper';

-- pg_retention::stage::restrict::_restrict
CREATE OR REPLACE FUNCTION "_restrict"(
	"target" oid /* pg_sys :: Oid */
) RETURNS TEXT /* String */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'restrict_wrapper';

-- pg_retention::upgrade::_revalidate_declared
CREATE OR REPLACE FUNCTION "_revalidate_declared"() RETURNS bigint /* i64 */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'revalidate_declared_wrapper';

-- pg_retention::engine::_run_batch
CREATE OR REPLACE FUNCTION "_run_batch"(
	"item" bigint, /* i64 */
	"size" INT DEFAULT NULL /* Option < i32 > */
) RETURNS TABLE (
	"more" bool,  /* bool */
	"pause" double precision,  /* f64 */
	"rows" bigint,  /* i64 */
	"next_size" INT  /* Option < i32 > */
)

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'run_batch_wrapper';

-- pg_retention::engine::_run_close
CREATE OR REPLACE FUNCTION "_run_close"(
	"item" bigint /* i64 */
) RETURNS void
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'run_close_wrapper';

-- pg_retention::engine::_run_fail
CREATE OR REPLACE FUNCTION "_run_fail"(
	"item" bigint, /* i64 */
	"sqlstate" TEXT, /* & str */
	"message" TEXT, /* Option < & str > */
	"table" TEXT, /* Option < & str > */
	"constraint" TEXT, /* Option < & str > */
	"column" TEXT /* Option < & str > */
) RETURNS void

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'run_fail_wrapper';

-- pg_retention::engine::_run_open
CREATE OR REPLACE FUNCTION "_run_open"(
	"policy_name" TEXT, /* Option < & str > */
	"top_level" bool /* bool */
) RETURNS bigint[] /* Vec < i64 > */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'run_open_wrapper';

-- pg_retention::engine::_run_retry
CREATE OR REPLACE FUNCTION "_run_retry"(
	"item" bigint, /* i64 */
	"size" INT, /* Option < i32 > */
	"sqlstate" TEXT /* & str */
) RETURNS INT /* Option < i32 > */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'run_retry_wrapper';

-- pg_retention::schedule::_schedule
CREATE OR REPLACE FUNCTION "_schedule"(
	"cron" TEXT, /* & str */
	"policy_name" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'schedule_wrapper';

-- pg_retention::erasure::subjects::_set_erasure_sweep
CREATE OR REPLACE FUNCTION "_set_erasure_sweep"(
	"kind" TEXT, /* & str */
	"sweep" bool /* bool */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'set_erasure_sweep_wrapper';

-- pg_retention::stage::masks::_set_mask
CREATE OR REPLACE FUNCTION "_set_mask"(
	"policy_name" TEXT, /* & str */
	"column_name" TEXT, /* & str */
	"strategy" TEXT, /* & str */
	"options" jsonb /* Option < JsonB > */
) RETURNS void

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'set_mask_wrapper';

-- pg_retention::policy::_set_paused
CREATE OR REPLACE FUNCTION "_set_paused"(
	"name" TEXT, /* & str */
	"paused" bool /* bool */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'set_paused_wrapper';

-- requires:
--   policy::alter_policy
--   policy::create_policy
--   policy::acknowledge
--   policy::drop_policy
--   policy::set_paused

------------------------------------------------------------------------------
-- Policies
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.create_policy(
    name         text,
    target       regclass,
    clock        text,
    purge_after  interval,
    filter       text     DEFAULT NULL,
    batch_size   integer  DEFAULT 100000,
    batch_pause  interval DEFAULT interval '0',
    skip_locked  boolean  DEFAULT true,
    purpose      text     DEFAULT NULL,
    legal_basis  text     DEFAULT NULL,
    lock_timeout interval DEFAULT interval '2 seconds',
    statement_timeout interval DEFAULT interval '1 minute',
    max_run_time interval DEFAULT NULL,
    max_rows_per_second integer DEFAULT NULL,
    drop_partitions boolean DEFAULT true,
    archive_schema text DEFAULT NULL,
    min_retention interval DEFAULT NULL,
    min_retention_ground text DEFAULT NULL,
    batch_target interval DEFAULT interval '100 milliseconds',
    vacuum_after boolean  DEFAULT false,
    max_due_fraction real DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE
RETURN retention._create_policy("name" => $1, "target" => $2::oid, "clock" => $3, "purge_after" => $4, "filter" => $5, "batch_size" => $6, "batch_pause" => $7, "skip_locked" => $8, "purpose" => $9, "legal_basis" => $10, "lock_timeout" => $11, "statement_timeout" => $12, "max_run_time" => $13, "max_rows_per_second" => $14, "drop_partitions" => $15, "archive_schema" => $16, "min_retention" => $17, "min_retention_ground" => $18, "batch_target" => $19, "vacuum_after" => $20, "max_due_fraction" => $21);

COMMENT ON FUNCTION retention.create_policy(text, regclass, text, interval, text, integer, interval, boolean, text, text, interval, interval, interval, integer, boolean, text, interval, text, interval, boolean, real) IS
'Declares a retention policy: rows of TARGET (matching FILTER, if given) whose CLOCK is older than PURGE_AFTER are deleted by retention.run() (PURGE_AFTER NULL: no purge stage; add mark and anonymise stages with retention.add_stage). CLOCK is one column or expression of type timestamptz, timestamp or date; FILTER one boolean expression; both are validated now. Each batch is its own transaction, sized to take about BATCH_TARGET (from the time the previous batches took) and to change at most BATCH_SIZE rows (BATCH_TARGET NULL: every batch has BATCH_SIZE rows), with BATCH_PAUSE between batches; SKIP_LOCKED leaves rows locked by other sessions for a later run. PURPOSE and LEGAL_BASIS document the policy (GDPR Art. 30). The caller needs SELECT and DELETE (and UPDATE with SKIP_LOCKED) on the target and becomes the policy owner; these rights are checked again before every batch, and batches run as the tables owner (its triggers and row security run with the rights of the role that wrote them). CLOCK and FILTER may use only built-in functions, operators and types, and are stored in the canonical form the server prints. Limits, read before every batch: LOCK_TIMEOUT and STATEMENT_TIMEOUT per batch (a batch that hits one, a deadlock or a serialization failure is retried with half the rows, down to 10, then the policy is left for the next run), MAX_RUN_TIME per run, MAX_ROWS_PER_SECOND. On a table range-partitioned by the clock column (and without filter or referencing foreign keys), partitions entirely before the cutoff are dropped whole (DROP_PARTITIONS), or detached and moved into ARCHIVE_SCHEMA when given. MIN_RETENTION with MIN_RETENTION_GROUND records a statutory minimum (e.g. 10 years, HGB §257 / AO §147): a purge stage earlier than it is refused. VACUUM_AFTER => true has pg_cron vacuum the table once after every run that changed rows (the run log records when). MAX_DUE_FRACTION (e.g. 0.1) is a safety cap: a run that finds a larger share of the table due for purge or anonymisation changes nothing and stops the policy until retention.acknowledge(NAME). Rows under a legal hold (retention.place_hold) are never marked, anonymised or purged. Returns the policy id.';

CREATE OR REPLACE FUNCTION retention.alter_policy(
    name         text,
    new_name     text     DEFAULT NULL,
    clock        text     DEFAULT NULL,
    purge_after  interval DEFAULT NULL,
    filter       text     DEFAULT NULL,
    drop_filter  boolean  DEFAULT false,
    batch_size   integer  DEFAULT NULL,
    batch_pause  interval DEFAULT NULL,
    skip_locked  boolean  DEFAULT NULL,
    purpose      text     DEFAULT NULL,
    legal_basis  text     DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    statement_timeout interval DEFAULT NULL,
    max_run_time interval DEFAULT NULL,
    max_rows_per_second integer DEFAULT NULL,
    no_max_run_time boolean DEFAULT false,
    no_rate_limit boolean DEFAULT false,
    drop_partitions boolean DEFAULT NULL,
    archive_schema text DEFAULT NULL,
    no_archive boolean DEFAULT false,
    batch_target interval DEFAULT NULL,
    no_batch_target boolean DEFAULT false,
    vacuum_after boolean DEFAULT NULL,
    max_due_fraction real DEFAULT NULL,
    no_max_due_fraction boolean DEFAULT false,
    min_retention interval DEFAULT NULL,
    min_retention_ground text DEFAULT NULL,
    no_min_retention boolean DEFAULT false
) RETURNS bigint
LANGUAGE sql VOLATILE
RETURN retention._alter_policy("name" => $1, "new_name" => $2, "clock" => $3, "purge_after" => $4, "filter" => $5, "drop_filter" => $6, "batch_size" => $7, "batch_pause" => $8, "skip_locked" => $9, "purpose" => $10, "legal_basis" => $11, "lock_timeout" => $12, "statement_timeout" => $13, "max_run_time" => $14, "max_rows_per_second" => $15, "no_max_run_time" => $16, "no_rate_limit" => $17, "drop_partitions" => $18, "archive_schema" => $19, "no_archive" => $20, "batch_target" => $21, "no_batch_target" => $22, "vacuum_after" => $23, "max_due_fraction" => $24, "no_max_due_fraction" => $25, "min_retention" => $26, "min_retention_ground" => $27, "no_min_retention" => $28);

COMMENT ON FUNCTION retention.alter_policy(text, text, text, interval, text, boolean, integer, interval, boolean, text, text, interval, interval, interval, integer, boolean, boolean, boolean, text, boolean, interval, boolean, boolean, real, boolean, interval, text, boolean) IS
'Changes the settings of policy NAME; arguments left NULL keep their value, DROP_FILTER => true removes the filter, NO_MAX_RUN_TIME and NO_RATE_LIMIT remove those limits, NO_ARCHIVE => true drops partitions instead of archiving them, NO_BATCH_TARGET => true makes every batch BATCH_SIZE rows, NO_MAX_DUE_FRACTION => true removes the safety cap. MIN_RETENTION with MIN_RETENTION_GROUND changes the statutory minimum (checked against the purge stage; recorded in the audit log), NO_MIN_RETENTION => true removes it. New expressions are validated as in create_policy. Changes apply from the next batch of a run in progress. Only the owner (or a member of the owner role) may alter a policy. Returns the policy id.';

CREATE OR REPLACE FUNCTION retention.drop_policy(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._drop_policy("name" => $1, "if_exists" => $2);

COMMENT ON FUNCTION retention.drop_policy(text, boolean) IS
'Removes policy NAME; its run history stays in retention.runs. Returns true if a policy was dropped.';

CREATE OR REPLACE FUNCTION retention.acknowledge(policy text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._acknowledge("name" => $1);

COMMENT ON FUNCTION retention.acknowledge(text) IS
'Lets the next run of POLICY go ahead although its safety cap (max_due_fraction) stopped it: for when the share of due rows is intended. Recorded in the audit log. Only the owner (or a member of the owner role) may acknowledge. Returns false (with a NOTICE) when the policy is not stopped.';

CREATE OR REPLACE FUNCTION retention.pause_policy(name text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._set_paused("name" => $1, "paused" => true);

COMMENT ON FUNCTION retention.pause_policy(text) IS
'Pauses policy NAME: runs skip it (a run in progress stops before its next batch) until resume_policy. Returns true if the state changed.';

CREATE OR REPLACE FUNCTION retention.resume_policy(name text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._set_paused("name" => $1, "paused" => false);

COMMENT ON FUNCTION retention.resume_policy(text) IS
'Resumes a paused policy. Returns true if the state changed.';

-- pg_retention::erasure::subjects::_set_subject_table
CREATE OR REPLACE FUNCTION "_set_subject_table"(
	"kind" TEXT, /* & str */
	"target" oid, /* pg_sys :: Oid */
	"action" TEXT, /* Option < & str > */
	"min_retention" interval, /* Option < Interval > */
	"legal_ground" TEXT, /* Option < & str > */
	"clock" TEXT, /* Option < & str > */
	"mask_policy" TEXT /* Option < & str > */
) RETURNS bool /* bool */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'set_subject_table_wrapper';

-- pg_retention::mask::_stage_hash_random
CREATE OR REPLACE FUNCTION "_stage_hash_random"(
	"value" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'stage_hash_random_wrapper';

-- pg_retention::mask::_stage_pseudonym
CREATE OR REPLACE FUNCTION "_stage_pseudonym"(
	"value" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'stage_pseudonym_wrapper';

-- pg_retention::status::_status
CREATE OR REPLACE FUNCTION "_status"() RETURNS TABLE (
	"policy" TEXT,  /* String */
	"target" TEXT,  /* String */
	"state" TEXT,  /* String */
	"stages" TEXT,  /* String */
	"last_run_started" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"last_run_finished" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"last_status" TEXT,  /* Option < String > */
	"last_error" TEXT,  /* Option < String > */
	"last_success" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"schedule" TEXT,  /* Option < String > */
	"next_run" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"backlog_estimate" bigint,  /* Option < i64 > */
	"runs_total" bigint,  /* i64 */
	"runs_failed_total" bigint,  /* i64 */
	"rows_purged_total" bigint,  /* i64 */
	"rows_anonymised_total" bigint,  /* i64 */
	"rows_marked_total" bigint,  /* i64 */
	"due_left" bigint,  /* Option < i64 > */
	"oldest_due" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"lag" interval,  /* Option < Interval > */
	"became_due_per_day" double precision,  /* Option < f64 > */
	"removed_per_day" double precision,  /* Option < f64 > */
	"falling_behind" bool,  /* bool */
	"overdue_requests" bigint,  /* i64 */
	"dead_rows" bigint,  /* Option < i64 > */
	"last_vacuum" timestamp with time zone  /* Option < TimestampWithTimeZone > */
)
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'status_wrapper';

-- pg_retention::erasure::subjects::_subject_map
CREATE OR REPLACE FUNCTION "_subject_map"(
	"kind" TEXT /* & str */
) RETURNS TABLE (
	"target" TEXT,  /* String */
	"link" TEXT,  /* String */
	"depth" INT,  /* i32 */
	"path" TEXT,  /* String */
	"action" TEXT,  /* String */
	"min_retention" interval,  /* Option < Interval > */
	"legal_ground" TEXT,  /* Option < String > */
	"indexed" bool,  /* bool */
	"warning" TEXT  /* Option < String > */
)
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'subject_map_wrapper';

-- pg_retention::stage::restrict::_unrestrict
CREATE OR REPLACE FUNCTION "_unrestrict"(
	"target" oid /* pg_sys :: Oid */
) RETURNS bool /* bool */
STRICT 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'unrestrict_wrapper';

-- pg_retention::schedule::_unschedule
CREATE OR REPLACE FUNCTION "_unschedule"(
	"policy_name" TEXT /* Option < & str > */
) RETURNS bool /* bool */

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'unschedule_wrapper';

-- pg_retention::audit::_verify_audit
CREATE OR REPLACE FUNCTION "_verify_audit"(
	"anchor" jsonb DEFAULT NULL /* Option < JsonB > */
) RETURNS TABLE (
	"ok" bool,  /* bool */
	"entries" bigint,  /* i64 */
	"first_broken_id" bigint,  /* Option < i64 > */
	"problem" TEXT,  /* Option < String > */
	"head_hash" TEXT  /* Option < String > */
)

LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'verify_audit_wrapper';

-- pg_retention::mask::mask_email
CREATE OR REPLACE FUNCTION "mask_email"(
	"value" TEXT, /* & str */
	"keep_domain" bool DEFAULT true /* bool */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_email_wrapper';

-- pg_retention::mask::mask_generalise
CREATE OR REPLACE FUNCTION "mask_generalise"(
	"value" date, /* Date */
	"unit" TEXT DEFAULT 'year' /* & str */
) RETURNS date /* Date */
IMMUTABLE STRICT PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_generalise_date_wrapper';

-- pg_retention::mask::mask_generalise
CREATE OR REPLACE FUNCTION "mask_generalise"(
	"value" inet, /* Option < Inet > */
	"bits" INT DEFAULT NULL /* Option < i32 > */
) RETURNS inet /* Option < Inet > */
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_generalise_inet_wrapper';

-- pg_retention::mask::mask_generalise
CREATE OR REPLACE FUNCTION "mask_generalise"(
	"value" bigint, /* i64 */
	"width" bigint /* i64 */
) RETURNS bigint /* i64 */
IMMUTABLE STRICT PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_generalise_int_wrapper';

-- pg_retention::mask::mask_hash_random
CREATE OR REPLACE FUNCTION "mask_hash_random"(
	"value" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_hash_random_wrapper';

-- pg_retention::mask::mask_hmac
CREATE OR REPLACE FUNCTION "mask_hmac"(
	"value" TEXT, /* & str */
	"key" bytea /* & [u8] */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_hmac_wrapper';

-- pg_retention::mask::mask_jsonb_drop
CREATE OR REPLACE FUNCTION "mask_jsonb_drop"(
	"value" jsonb, /* JsonB */
	"keys" TEXT[] /* Vec < Option < String > > */
) RETURNS jsonb /* JsonB */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_jsonb_drop_wrapper';

-- pg_retention::mask::mask_noise
CREATE OR REPLACE FUNCTION "mask_noise"(
	"value" date, /* Date */
	"days" INT /* i32 */
) RETURNS date /* Date */
STRICT VOLATILE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_noise_date_wrapper';

-- pg_retention::mask::mask_noise
CREATE OR REPLACE FUNCTION "mask_noise"(
	"value" double precision, /* f64 */
	"amount" double precision /* f64 */
) RETURNS double precision /* f64 */
STRICT VOLATILE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_noise_float_wrapper';

-- pg_retention::mask::mask_noise
CREATE OR REPLACE FUNCTION "mask_noise"(
	"value" bigint, /* i64 */
	"amount" bigint /* i64 */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_noise_int_wrapper';

-- pg_retention::mask::mask_partial
CREATE OR REPLACE FUNCTION "mask_partial"(
	"value" TEXT, /* & str */
	"keep_start" INT DEFAULT 1, /* i32 */
	"keep_end" INT DEFAULT 0, /* i32 */
	"fill" TEXT DEFAULT '*' /* & str */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'mask_partial_wrapper';

-- pg_retention::mask::pseudonym
CREATE OR REPLACE FUNCTION "pseudonym"(
	"value" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'pseudonym_wrapper';

-- pg_retention::mask::rotate_pseudonym_key
CREATE OR REPLACE FUNCTION "rotate_pseudonym_key"() RETURNS timestamp with time zone /* pgrx :: datum :: TimestampWithTimeZone */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'pg_retention-0.2.0', 'rotate_pseudonym_key_wrapper';

-- pg_retention::triggers::refuse_restricted_update
CREATE OR REPLACE FUNCTION retention.refuse_restricted_update() RETURNS trigger LANGUAGE c AS 'pg_retention-0.2.0', 'refuse_restricted_update_wrapper';

-- requires:
--   api_policies
--   stage::add_stage
--   stage::drop_stage
--   stage::masks::drop_mask
--   stage::masks::set_mask
--   stage::restrict::restrict
--   stage::restrict::unrestrict
--   triggers::refuse_restricted_update

------------------------------------------------------------------------------
-- Lifecycle stages and masks
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.add_stage(
    policy       text,
    after        interval,
    action       text,
    column_name  text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE
RETURN retention._add_stage("policy_name" => $1, "after" => $2, "action" => $3, "column_name" => $4);

COMMENT ON FUNCTION retention.add_stage(text, interval, text, text) IS
'Adds a stage to policy POLICY, applied to rows whose clock is older than AFTER. ACTION is ''mark'' (restrict, GDPR Art. 18: sets COLUMN_NAME, a timestamptz or boolean column, to now()/true), ''anonymise'' or ''anonymize'' (applies the masks of retention.set_mask once and records it in COLUMN_NAME) or ''purge'' (deletes; the same as create_policy''s purge_after). One stage per action; ages must increase mark < anonymise < purge. The policy owner needs UPDATE (mark, anonymise) or DELETE (purge) on the table. Returns the policy id.';

CREATE OR REPLACE FUNCTION retention.drop_stage(policy text, action text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._drop_stage("policy_name" => $1, "action" => $2);

COMMENT ON FUNCTION retention.drop_stage(text, text) IS
'Removes the stage ACTION (mark, anonymise, purge) from policy POLICY. Rows already marked or anonymised keep their state. Returns true if there was such a stage.';

CREATE OR REPLACE FUNCTION retention.set_mask(
    policy       text,
    column_name  text,
    strategy     text,
    options      jsonb DEFAULT '{}'
) RETURNS void
LANGUAGE sql VOLATILE
RETURN retention._set_mask("policy_name" => $1, "column_name" => $2, "strategy" => $3, "options" => $4);

COMMENT ON FUNCTION retention.set_mask(text, text, text, jsonb) IS
'Declares how the anonymise stage of policy POLICY masks COLUMN_NAME: STRATEGY is one of retention.mask_strategies, OPTIONS its settings, e.g. set_mask(''orders_lifecycle'', ''email'', ''email'', ''{"keep_domain": false}''). Validated now against the column''s type. Replaces an earlier mask of the same column.';

CREATE OR REPLACE FUNCTION retention.drop_mask(policy text, column_name text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._drop_mask("policy_name" => $1, "column_name" => $2);

COMMENT ON FUNCTION retention.drop_mask(text, text) IS
'Removes the mask of COLUMN_NAME from policy POLICY. Returns true if there was one.';

CREATE OR REPLACE FUNCTION retention.restrict(target regclass)
RETURNS text
LANGUAGE sql VOLATILE
RETURN retention._restrict("target" => $1::oid);

COMMENT ON FUNCTION retention.restrict(regclass) IS
'Makes marked rows of TARGET restricted in practice (GDPR Art. 18): a restrictive row-security policy hides them from every role except the table owner, superusers, roles with BYPASSRLS and members of retention_admin, and a trigger refuses UPDATEs of them by anyone except pg_retention''s own stages. Needs a policy with a mark stage on TARGET; the caller must own the table.';

CREATE OR REPLACE FUNCTION retention.unrestrict(target regclass)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._unrestrict("target" => $1::oid);

COMMENT ON FUNCTION retention.unrestrict(regclass) IS
'Removes what retention.restrict installed on TARGET. Returns true if the table was restricted.';

COMMENT ON FUNCTION retention.refuse_restricted_update() IS
'Trigger function installed by retention.restrict: refuses UPDATEs of rows whose marker column (the trigger argument) is set, except by pg_retention''s stages.';

CREATE OR REPLACE FUNCTION retention.touch()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col text;
    ty  regtype;
BEGIN
    IF TG_NARGS <> 1 OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'BEFORE' OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RAISE EXCEPTION 'retention.touch() must be a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger with the clock column as its argument'
            USING ERRCODE = 'trigger_protocol_violated',
                  HINT = 'CREATE TRIGGER ... BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION retention.touch(''last_activity_at'')';
    END IF;
    -- pg_retention's own stage writes (mark, anonymise) never restart a
    -- row's retention period.
    IF pg_catalog.current_setting('retention.stage_write', true) = 'on' THEN
        RETURN NEW;
    END IF;
    col := TG_ARGV[0];
    SELECT a.atttypid::regtype INTO ty
      FROM pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF ty IS NULL THEN
        RAISE EXCEPTION 'column "%" of %.% does not exist', col, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'undefined_column', HINT = 'Give retention.touch() the name of the clock column.';
    END IF;
    IF ty NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'column "%" of %.% is of type %, not timestamptz, timestamp or date', col, TG_TABLE_SCHEMA, TG_TABLE_NAME, ty
            USING ERRCODE = 'datatype_mismatch', HINT = 'retention.touch() resets a clock column to the current time.';
    END IF;
    NEW := jsonb_populate_record(NEW, jsonb_build_object(col,
        CASE ty WHEN 'date'::regtype THEN to_jsonb(current_date)
                WHEN 'timestamp'::regtype THEN to_jsonb(localtimestamp)
                ELSE to_jsonb(now()) END));
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION retention.touch() IS
'Trigger function for applications: resets the clock column given as argument to the current time on INSERT and UPDATE, e.g. CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION retention.touch(''last_activity_at''), so that activity restarts a row''s retention period.';

-- requires:
--   api_stages
--   engine::run_batch
--   engine::run_close
--   engine::run_fail
--   engine::run_open
--   engine::run_retry
--   preview::preview
--   schedule::schedule
--   schedule::unschedule

------------------------------------------------------------------------------
-- Preview and run
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.preview(policy text DEFAULT NULL)
RETURNS TABLE (
    policy        text,
    target        text,
    action        text,
    cutoff        timestamptz,
    due_rows      bigint,
    clock_indexed boolean,
    paused        boolean,
    note          text
)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._preview("policy_name" => $1); END;

COMMENT ON FUNCTION retention.preview(text) IS
'Shows, per policy (or for the one named) and stage, what a run would do now: the cutoff, how many rows are due for that stage (rows due for an older stage are counted there), whether an index serves the clock, and notes. Changes nothing. Counting runs as the table''s owner.';

CREATE OR REPLACE PROCEDURE retention.run(policy text DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
-- No SET clause here: a procedure with one cannot COMMIT. Every name is
-- schema-qualified instead.
DECLARE
    items        bigint[];
    item         bigint;
    i            integer;
    more         boolean;
    pause        float8;
    size         integer;
    next_size    integer;
    failed       boolean;
    aborted      boolean;
    retryable    boolean;
    cancelled    boolean := false;
    e_state      text;
    e_msg        text;
    e_table      text;
    e_constraint text;
    e_column     text;
    isolation    text;
    path         text;
BEGIN
    items := retention._run_open("policy_name" => policy, "top_level" => true);
    -- Every batch commits on its own and re-reads the rows it changes:
    -- the run's transactions are READ COMMITTED whatever the session's
    -- default (restored at the end).
    isolation := pg_catalog.current_setting('default_transaction_isolation');
    PERFORM pg_catalog.set_config('default_transaction_isolation', 'read committed', false);
    -- Names and operators in this body resolve in pg_catalog only, whatever
    -- the caller's search_path (a SET clause would forbid COMMIT).
    path := pg_catalog.current_setting('search_path');
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
    COMMIT;
    FOR i IN 1 .. coalesce(pg_catalog.array_length(items, 1), 0) LOOP
        item := items[i];
        IF cancelled THEN
            PERFORM retention._run_fail("item" => item, "sqlstate" => '57014', "message" => 'run cancelled before this policy was processed', "table" => NULL, "constraint" => NULL, "column" => NULL);
            COMMIT;
            CONTINUE;
        END IF;
        failed := false;
        aborted := false;
        size := NULL;
        LOOP
            retryable := false;
            BEGIN
                SELECT b.more, b.pause, b.next_size INTO more, pause, next_size
                  FROM retention._run_batch("item" => item, "size" => size) AS b;
            EXCEPTION
                WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
                    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
                    retryable := true;
                WHEN query_canceled THEN
                    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
                    IF e_msg LIKE '%statement timeout%' THEN
                        retryable := true;
                    ELSE
                        failed := true;
                        cancelled := true;
                        e_msg := 'run cancelled';
                        e_table := NULL; e_constraint := NULL; e_column := NULL;
                    END IF;
                WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS
                        e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_table = TABLE_NAME,
                        e_constraint = CONSTRAINT_NAME, e_column = COLUMN_NAME;
                    failed := true;
                    aborted := true;
            END;
            IF retryable THEN
                -- The failed batch was rolled back; retry it with half the rows
                -- (-1: the caller's own statement_timeout expired: stop).
                size := retention._run_retry("item" => item, "size" => size, "sqlstate" => e_state);
                IF size OPERATOR(pg_catalog.=) -1 THEN
                    size := NULL;
                    failed := true;
                    cancelled := true;
                    e_msg := 'run cancelled: the statement_timeout of the calling session expired';
                    e_table := NULL; e_constraint := NULL; e_column := NULL;
                ELSIF size IS NULL THEN
                    failed := true;
                    e_table := NULL; e_constraint := NULL; e_column := NULL;
                ELSE
                    COMMIT;
                    CONTINUE;
                END IF;
            END IF;
            EXIT WHEN failed;
            COMMIT;
            EXIT WHEN NOT more;
            size := next_size;
            IF pause > 0 THEN
                BEGIN
                    PERFORM pg_catalog.pg_sleep(pause);
                EXCEPTION WHEN query_canceled THEN
                    failed := true;
                    cancelled := true;
                    e_state := '57014';
                    e_msg := 'run cancelled';
                    e_table := NULL; e_constraint := NULL; e_column := NULL;
                END;
                EXIT WHEN failed;
            END IF;
        END LOOP;
        IF failed THEN
            -- The failed batch's subtransaction is rolled back, but its
            -- transaction may not commit: a distributed table's batch that
            -- lost a node (Citus) leaves the transaction unable to. The
            -- failure is recorded in a transaction of its own.
            IF aborted THEN
                ROLLBACK;
            END IF;
            PERFORM retention._run_fail("item" => item, "sqlstate" => e_state, "message" => e_msg, "table" => e_table, "constraint" => e_constraint, "column" => e_column);
        ELSE
            PERFORM retention._run_close("item" => item);
        END IF;
        COMMIT;
    END LOOP;
    -- Pending erasure requests are processed by every full run.
    IF policy IS NULL AND NOT cancelled THEN
        CALL retention.process_erasures();
    END IF;
    PERFORM pg_catalog.set_config('default_transaction_isolation', isolation, false);
    PERFORM pg_catalog.set_config('search_path', path, false);
    IF cancelled THEN
        RAISE EXCEPTION 'retention.run() was cancelled' USING ERRCODE = 'query_canceled',
            HINT = 'Committed batches are kept; the next run continues where this one stopped.';
    END IF;
END
$proc$;

COMMENT ON PROCEDURE retention.run(text) IS
'Runs the due work of every active policy (or of the one named): applies the purge, anonymise and mark stages (oldest first) in batches, committing after each, with one cutoff per policy fixed at the start. Logs one row per policy in retention.runs. Call it at top level (CALL retention.run()), e.g. from pg_cron; a failing policy is logged and the run goes on with the next.';

CREATE OR REPLACE FUNCTION retention.schedule(cron text DEFAULT '0 3 * * *', policy text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
RETURN retention._schedule("cron" => $1, "policy_name" => $2);

COMMENT ON FUNCTION retention.schedule(text, text) IS
'Creates (or replaces) the pg_cron job that runs CALL retention.run() in this database on schedule CRON (pg_cron syntax, default 03:00 daily), as the calling role; with POLICY, a job for that policy alone. Needs pg_cron preloaded and installed in this database (cron.database_name). Returns the pg_cron job id.';

CREATE OR REPLACE FUNCTION retention.unschedule(policy text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._unschedule("policy_name" => $1);

COMMENT ON FUNCTION retention.unschedule(text) IS
'Removes the pg_cron job created by retention.schedule (for POLICY, if given). Returns true if there was one.';

-- pg_retention::triggers::request_erasure_trigger
CREATE OR REPLACE FUNCTION retention.request_erasure_trigger() RETURNS trigger LANGUAGE c AS 'pg_retention-0.2.0', 'request_erasure_trigger_wrapper';

-- requires:
--   api_run
--   audit::audit_anchor
--   audit::verify_audit
--   erasure::access::access_certificate
--   erasure::access::deliver_access
--   erasure::erase::erase_subject
--   erasure::proof::erasure_certificate
--   erasure::proof::erasure_ledger
--   erasure::proof::reapply_erasures
--   erasure::requests::extend_request
--   erasure::requests::refuse_request
--   erasure::requests::request_access
--   erasure::requests::request_erasure
--   erasure::subjects::add_owned_table
--   erasure::subjects::add_subject_path
--   erasure::subjects::set_erasure_sweep
--   erasure::subjects::add_subject_table
--   erasure::subjects::drop_subject
--   erasure::subjects::register_subject
--   erasure::subjects::set_subject_table
--   erasure::subjects::subject_map
--   erasure::subjects::link_suggestions
--   holds::place_hold
--   holds::release_hold
--   triggers::request_erasure_trigger

------------------------------------------------------------------------------
-- Right to erasure: subjects, requests, holds, proof
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.register_subject(kind text, root regclass, id_column text,
                                           follow_foreign_keys boolean DEFAULT true)
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._register_subject("kind" => $1, "root" => $2::oid, "id_column" => $3, "follow_foreign_keys" => $4);
COMMENT ON FUNCTION retention.register_subject(text, regclass, text, boolean) IS
'Declares a kind of data subject (e.g. customer): ROOT is the table with one row per subject, ID_COLUMN its id. Tables referencing the root by foreign key are found at any depth (FOLLOW_FOREIGN_KEYS); a cycle is refused. Each found table is purged on erasure unless changed with set_subject_table. Returns the number of tables in the map.';

CREATE OR REPLACE FUNCTION retention.add_subject_table(kind text, target regclass, column_name text,
                                            matches text DEFAULT NULL, action text DEFAULT 'purge')
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._add_subject_table("kind" => $1, "target" => $2::oid, "column_name" => $3, "matches" => $4, "action" => $5);
COMMENT ON FUNCTION retention.add_subject_table(text, regclass, text, text, text) IS
'Adds a table linked to the subject by value: rows whose COLUMN_NAME equals the root row''s MATCHES column (e.g. the e-mail address), or the subject id itself when MATCHES is NULL. ACTION is purge or anonymise.';

CREATE OR REPLACE FUNCTION retention.add_owned_table(kind text, target regclass, via regclass DEFAULT NULL,
                                          action text DEFAULT 'purge')
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._add_owned_table("kind" => $1, "target" => $2::oid, "via" => $3::oid, "action" => $4);
COMMENT ON FUNCTION retention.add_owned_table(text, regclass, regclass, text) IS
'Adds a table whose rows the subject''s rows reference and own (a customer''s address, a profile): found through the foreign key of a mapped table (VIA, or the one mapped table that references TARGET). On erasure such a row is erased (ACTION purge or anonymise) once no other row references it; a row that rows outside the subject''s erased data still reference is kept and counted, with the tables referencing it. Holds on the subject keep its owned rows out of every policy, as for the other tables of the map.';

CREATE OR REPLACE FUNCTION retention.add_subject_path(kind text, target regclass, foreign_key text)
RETURNS integer LANGUAGE sql VOLATILE
RETURN retention._add_subject_path("kind" => $1, "target" => $2::oid, "foreign_key" => $3);
COMMENT ON FUNCTION retention.add_subject_path(text, regclass, text) IS
'Makes the map of KIND also follow FOREIGN_KEY, a further foreign key of TARGET (a table the map reaches by a foreign key) to a table of the map: a message''s recipient next to its sender. Rows reached through any of the paths are the subject''s: erased, held and exported with it. A key that would lead back to TARGET is refused.';

CREATE OR REPLACE FUNCTION retention.set_erasure_sweep(kind text, sweep boolean)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._set_erasure_sweep("kind" => $1, "sweep" => $2);
COMMENT ON FUNCTION retention.set_erasure_sweep(text, boolean) IS
'With SWEEP, every erasure of KIND ends with a search for the subject''s identifiers (the root row''s columns named like an e-mail address, phone number, IBAN, card number or national id) in every text and json column of every table the kind''s owner may read, as retention.locate searches; the certificate states where they were still found (tables, columns, row counts, no values), and copies outside the map leave the request partially completed. One scan of every such table per request. Returns the previous setting.';

CREATE OR REPLACE FUNCTION retention.set_subject_table(kind text, target regclass, action text DEFAULT NULL,
                                            min_retention interval DEFAULT NULL, legal_ground text DEFAULT NULL,
                                            clock text DEFAULT NULL, mask_policy text DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._set_subject_table("kind" => $1, "target" => $2::oid, "action" => $3, "min_retention" => $4, "legal_ground" => $5, "clock" => $6, "mask_policy" => $7);
COMMENT ON FUNCTION retention.set_subject_table(text, regclass, text, interval, text, text, text) IS
'Sets the erasure ACTION of a table in the subject map (purge, or anonymise) and a statutory minimum: rows whose CLOCK is younger than MIN_RETENTION are kept, restricted and minimised instead of erased, naming LEGAL_GROUND (e.g. HGB §257, AO §147). Anonymising uses the masks of MASK_POLICY, a policy on the table that the caller controls; without it, the one such policy with masks (an error if there are several). The choice is recorded: masks of policies other roles declare are never used.';

CREATE OR REPLACE FUNCTION retention.drop_subject(kind text)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._drop_subject("kind" => $1);
COMMENT ON FUNCTION retention.drop_subject(text) IS 'Removes a subject kind and its map (requests and the audit log stay).';

CREATE OR REPLACE FUNCTION retention.subject_map(kind text)
RETURNS TABLE (target text, link text, depth integer, path text, action text, min_retention interval,
               legal_ground text, indexed boolean, warning text)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._subject_map("kind" => $1); END;
COMMENT ON FUNCTION retention.subject_map(text) IS
'The tables where a kind of subject''s data lives: how each is linked (root, foreign key path, value), the erasure action, statutory minimum, and a warning where the subject column has no index.';

CREATE OR REPLACE FUNCTION retention.link_suggestions(kind text)
RETURNS TABLE (target text, column_name text, found_by text, note text, suggestion text)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._link_suggestions("kind" => $1); END;
COMMENT ON FUNCTION retention.link_suggestions(text) IS
'Tables that may hold subjects of KIND without being in its map, for review: columns named and typed like the root id with no foreign key (found_by ''column name and type''), partitioned tables whose partitions declare a foreign key to the root or a mapped table that the table itself does not (''foreign key on partitions''), and mapped tables with a second foreign key to a mapped table that the map does not follow (''second foreign key''). SUGGESTION is the add_subject_table call that maps the table, where one does; nothing is changed.';

CREATE OR REPLACE FUNCTION retention.request_erasure(kind text, subject_id text, reference text DEFAULT NULL,
                                          received_at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE sql VOLATILE
RETURN retention._request_erasure("kind" => $1, "subject_id" => $2, "reference" => $3, "received_at" => $4);
COMMENT ON FUNCTION retention.request_erasure(text, text, text, timestamptz) IS
'Records an erasure request (GDPR Art. 17) for the subject SUBJECT_ID of KIND, due one month after RECEIVED_AT (Art. 12(3)). The id is kept only until the request is processed; the audit log only ever sees its blind index. Returns the request id.';

CREATE OR REPLACE FUNCTION retention.request_access(kind text, subject_id text, reference text DEFAULT NULL,
                                         received_at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE sql VOLATILE
RETURN retention._request_access("kind" => $1, "subject_id" => $2, "reference" => $3, "received_at" => $4);
COMMENT ON FUNCTION retention.request_access(text, text, text, timestamptz) IS
'Records a request of access and portability (GDPR Art. 15 and 20) by the subject SUBJECT_ID of KIND, due one month after RECEIVED_AT (Art. 12(3)), extended and refused like an erasure request (refusal grounds Art. 12(5) and 15(4)). The id is kept only until the request is delivered (retention.deliver_access); the audit log only ever sees its blind index. Returns the request id.';

CREATE OR REPLACE FUNCTION retention.deliver_access(request bigint)
RETURNS jsonb LANGUAGE sql VOLATILE
RETURN retention._deliver_access("request" => $1);
COMMENT ON FUNCTION retention.deliver_access(bigint) IS
'Produces the answer to access request REQUEST, once: one JSON document with the subject''s rows from every table of the kind''s map (each row marked restricted or anonymised where a stage applies, each table with the masked columns, the purposes, legal bases, retention periods, statutory minimums and holds), read as each table''s owner from the tables both the kind''s owner and the caller may read. The document is returned and never stored; the request is completed, its subject id forgotten, and the audit log records the rows delivered per table under the blind index. A second call is refused: a new copy needs a new request.';

CREATE OR REPLACE FUNCTION retention.access_certificate(request bigint)
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._access_certificate("request" => $1);
COMMENT ON FUNCTION retention.access_certificate(bigint) IS
'The proof that access request REQUEST was answered: receipt, due date, extensions, delivery (or refusal) and whether it was on time, the rows delivered per table, and whether all of it is what the audit chain recorded. No personal data.';

CREATE OR REPLACE FUNCTION retention.extend_request(request bigint, months integer, reason text)
RETURNS timestamptz LANGUAGE sql VOLATILE
RETURN retention._extend_request("id" => $1, "months" => $2, "reason" => $3);
COMMENT ON FUNCTION retention.extend_request(bigint, integer, text) IS
'Extends a pending request''s deadline by MONTHS (at most two in all), within the first month, with the REASON given to the subject (GDPR Art. 12(3)). Returns the new due date.';

CREATE OR REPLACE FUNCTION retention.refuse_request(request bigint, ground text)
RETURNS text LANGUAGE sql VOLATILE
RETURN retention._refuse_request("id" => $1, "ground" => $2);
COMMENT ON FUNCTION retention.refuse_request(bigint, text) IS
'Refuses a pending request: an erasure request on a ground of GDPR Art. 17(3) (''17(3)(a)'' … ''17(3)(e)''), an access request on Art. 12(5) (manifestly unfounded or excessive) or 15(4) (the rights of others). Returns the ground as recorded.';

CREATE OR REPLACE FUNCTION retention.place_hold(reason text, kind text DEFAULT NULL, subject_id text DEFAULT NULL,
                                     target regclass DEFAULT NULL, filter text DEFAULT NULL,
                                     until timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE
RETURN retention._place_hold("reason" => $1, "kind" => $2, "subject_id" => $3, "target" => $4::oid, "filter" => $5, "until" => $6);
COMMENT ON FUNCTION retention.place_hold(text, text, text, regclass, text, timestamptz) IS
'Places a legal hold (a tax audit, a lawsuit) on a subject (KIND, SUBJECT_ID; stored as blind index only), a whole table (TARGET) or part of one (TARGET, FILTER), optionally UNTIL a date. Held rows are never marked, anonymised, purged or erased; runs and certificates count and name the hold. Returns the hold id.';

CREATE OR REPLACE FUNCTION retention.release_hold(hold bigint)
RETURNS boolean LANGUAGE sql VOLATILE
RETURN retention._release_hold("id" => $1);
COMMENT ON FUNCTION retention.release_hold(bigint) IS 'Releases a legal hold. Returns true if it was active.';

CREATE OR REPLACE PROCEDURE retention.process_erasures()
LANGUAGE plpgsql
AS $proc$
-- Erases each pending subject in its own transaction (atomically per
-- subject), oldest deadline first.
DECLARE
    req       bigint;
    e_state   text;
    isolation text := pg_catalog.current_setting('default_transaction_isolation');
    path      text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
    -- One READ COMMITTED transaction per subject, whatever the session's
    -- default (restored at the end).
    PERFORM pg_catalog.set_config('default_transaction_isolation', 'read committed', false);
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        COMMIT;
    END IF;
    FOR req IN SELECT r.id FROM retention.requests r
                WHERE r.status OPERATOR(pg_catalog.=) 'received' AND r.request_type OPERATOR(pg_catalog.=) 'erasure'
                ORDER BY r.due_at, r.id LOOP
        BEGIN
            PERFORM retention._erase_subject("request" => req);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE;
            RAISE WARNING 'erasure request % failed with SQLSTATE %; it stays pending', req, e_state;
        END;
        COMMIT;
    END LOOP;
    PERFORM pg_catalog.set_config('default_transaction_isolation', isolation, false);
    PERFORM pg_catalog.set_config('search_path', path, false);
END
$proc$;
COMMENT ON PROCEDURE retention.process_erasures() IS
'Processes every pending erasure request: erases the subject across its tables in foreign-key-safe order (deepest first) in one transaction per subject, keeping rows under a hold or a statutory minimum. Also run at the end of CALL retention.run().';

COMMENT ON FUNCTION retention.request_erasure_trigger() IS
'Trigger function for applications: files an erasure request for the row''s subject (arguments: kind, id column), e.g. when an account is flagged for deletion; a subject with a pending request is not filed twice. Runs with the rights of the role whose change fires it, which must be a member of the kind''s owner or hold DELETE on the kind''s root table.';

CREATE OR REPLACE FUNCTION retention.verify_audit(anchor jsonb DEFAULT NULL)
RETURNS TABLE (ok boolean, entries bigint, first_broken_id bigint, problem text, head_hash text)
LANGUAGE sql STABLE
BEGIN ATOMIC SELECT * FROM retention._verify_audit("anchor" => $1); END;
COMMENT ON FUNCTION retention.verify_audit(jsonb) IS
'Recomputes the audit log''s hash chain; names the first entry that was altered, removed or reordered. With ANCHOR (a value of retention.audit_anchor() kept outside the database) it also checks that the entry the anchor names is still there, unchanged, and that the chain has not shrunk: removing entries from the end of the chain is found only this way.';

CREATE OR REPLACE FUNCTION retention.audit_anchor()
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._audit_anchor();
COMMENT ON FUNCTION retention.audit_anchor() IS
'The audit chain''s anchor: its number of entries and its newest entry''s id and hash. Keep it outside the database (retention.erasure_ledger() includes one) and pass it to retention.verify_audit(anchor) later: entries removed from the end of the chain are found that way.';

CREATE OR REPLACE FUNCTION retention.erasure_certificate(request bigint)
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._erasure_certificate("request" => $1);
COMMENT ON FUNCTION retention.erasure_certificate(bigint) IS
'The proof of an erasure request: reference, blind index, received / due / completed times, per table the rows purged, anonymised, retained (with the legal ground) and held (with the hold), whether a VACUUM has finished since (vacuumed_at, row_versions: until one does, old versions of the erased rows may remain in the table''s files), and the audit-chain hash at completion. Holds no subject id.';

CREATE OR REPLACE FUNCTION retention.erasure_certificate_text(request bigint)
RETURNS text LANGUAGE sql STABLE
BEGIN ATOMIC
SELECT concat_ws(E'\n',
    'Erasure certificate for request ' || (c ->> 'request') || coalesce(' (reference ' || (c ->> 'reference') || ')', ''),
    'Subject: ' || (c ->> 'kind') || ', blind index ' || (c ->> 'subject_blind_index'),
    'Received: ' || (c ->> 'received_at') || '   due: ' || (c ->> 'due_at') ||
        CASE WHEN (c ->> 'extended_months')::int > 0 THEN ' (extended by ' || (c ->> 'extended_months') || ' months)' ELSE '' END,
    'Status: ' || (c ->> 'status') || coalesce(' at ' || (c ->> 'completed_at'), '') ||
        CASE WHEN (c ->> 'on_time')::boolean THEN ', within the deadline' WHEN (c ->> 'on_time')::boolean IS FALSE THEN ', AFTER the deadline' ELSE '' END,
    CASE WHEN c ->> 'refusal_ground' IS NOT NULL THEN 'Refused: ' || (c ->> 'refusal_ground') END,
    (SELECT string_agg(format('  %s: %s purged, %s anonymised, %s retained%s, %s held%s%s',
                              t ->> 'table', t ->> 'purged', t ->> 'anonymised', t ->> 'retained',
                              coalesce(' (' || (t ->> 'retained_ground') || ')', ''), t ->> 'held',
                              coalesce(' (' || (SELECT string_agg('hold ' || (h ->> 'hold') || ': ' || (h ->> 'reason'), '; ')
                                                  FROM jsonb_array_elements(t -> 'holds') h) || ')', ''),
                              coalesce(', ' || (t ->> 'kept_referenced') || ' kept: rows kept elsewhere still reference them', '') ||
                              coalesce(', ' || (t ->> 'remaining') || ' REMAINING: ' || coalesce(t ->> 'problem', 'not erased'), '') ||
                              CASE WHEN NOT t ? 'row_versions' THEN ''
                                   WHEN t ->> 'vacuumed_at' IS NOT NULL THEN '; vacuumed at ' || (t ->> 'vacuumed_at')
                                   ELSE '; not vacuumed since: old row versions may remain in the table''s files' END), E'\n')
       FROM jsonb_array_elements(c -> 'tables') t),
    CASE WHEN c -> 'sweep' IS NOT NULL AND c -> 'sweep' <> 'null' THEN
        'Final sweep for the subject''s identifiers after the erasure: ' ||
        coalesce((SELECT string_agg(CASE WHEN s ->> 'rows' IS NULL
                                         THEN coalesce(s ->> 'table' || ': ', '') || (s ->> 'note')
                                         ELSE format('%s.%s: %s rows%s', s ->> 'table', s ->> 'column', s ->> 'rows',
                                                     CASE WHEN (s ->> 'in_map')::boolean THEN ' (in the map)' ELSE ' (OUTSIDE THE MAP)' END) END, '; ')
                    FROM jsonb_array_elements(c -> 'sweep') s), 'found nowhere') END,
    'Audit chain: ' || coalesce(c ->> 'audit_hash', '-') ||
        CASE WHEN (c ->> 'audit_chain_verified')::boolean THEN ' (chain verified)' ELSE ' (CHAIN BROKEN)' END ||
        CASE WHEN NOT (c ->> 'audit_entry_found')::boolean AND c ->> 'status' <> 'received'
             THEN '; ITS COMPLETION ENTRY IS MISSING FROM THE CHAIN' ELSE '' END ||
        CASE WHEN (c ->> 'audit_record_matches')::boolean THEN '; the request record matches its audit entries'
             ELSE '; THE REQUEST RECORD DIFFERS FROM ITS AUDIT ENTRIES' END)
FROM (SELECT retention.erasure_certificate($1) AS c) s;
END;
COMMENT ON FUNCTION retention.erasure_certificate_text(bigint) IS 'The erasure certificate as text an auditor can read.';

CREATE OR REPLACE FUNCTION retention.erasure_ledger(since timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE
RETURN retention._erasure_ledger("since" => $1);
COMMENT ON FUNCTION retention.erasure_ledger(timestamptz) IS
'The completed erasures as a JSON array of request, kind, blind index and completion time: no personal data. Keep a copy outside the database; after restoring a backup, pass it to retention.reapply_erasures.';

CREATE OR REPLACE FUNCTION retention.reapply_erasures(since timestamptz DEFAULT NULL, ledger jsonb DEFAULT NULL)
RETURNS TABLE (kind text, subject_blind_index text, request bigint, status text)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM retention._reapply_erasures("since" => $1, "ledger" => $2); END;
COMMENT ON FUNCTION retention.reapply_erasures(timestamptz, jsonb) IS
'Erases again every subject of the erasure LEDGER (default: this database''s own, completed since SINCE) that is present, matching root rows by blind index: run it after every restore so that erased people do not come back from a backup.';

-- requires:
--   api_erasure
--   status::status
--   upgrade::library_version
--   config::export_config

------------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW retention.requests AS
SELECT r.id, r.kind, r.subject_blind, r.reference, r.received_at, r.due_at, r.extended_months,
       r.extension_reason, r.status, r.refusal_ground, r.completed_at,
       CASE WHEN r.status = 'received' THEN pg_catalog.date_part('day', r.due_at - pg_catalog.now())::int END AS days_left,
       (r.status = 'received' AND r.due_at < pg_catalog.now()) AS overdue,
       r.audit_hash, r.request_type
  FROM retention.erasure_requests r;
COMMENT ON VIEW retention.requests IS
'Requests of data subjects without their ids: erasure (request_type erasure) and access (access): deadlines, days left, overdue ones (status received and past due), outcome and the audit hash at completion.';

CREATE OR REPLACE VIEW retention.runs AS
SELECT l.id,
       l.run_id,
       l.policy_id,
       l.policy,
       l.target,
       CASE
           WHEN l.status = 'running' AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_locks k
                 WHERE k.locktype = 'advisory' AND k.granted
                   AND k.classid = 1380275249::oid AND k.objid = l.policy_id::oid
                   AND k.objsubid = 2 AND k.pid = l.backend_pid)
           THEN 'interrupted'
           ELSE l.status
       END AS status,
       l.started_at,
       l.finished_at,
       coalesce(l.finished_at, pg_catalog.clock_timestamp()) - l.started_at AS duration,
       l.cutoff,
       l.rows_purged,
       l.rows_anonymised,
       l.rows_marked,
       l.batches,
       l.retries,
       round(l.max_batch_ms::numeric, 1) AS max_batch_ms,
       l.rows_blocked,
       l.rows_held,
       l.partitions_dropped,
       l.error_code,
       l.error,
       l.note,
       l.run_by,
       l.backend_pid,
       round(l.throttled_ms::numeric, 1) AS throttled_ms,
       l.due_left,
       l.oldest_due,
       l.vacuum_job,
       l.vacuumed_at
  FROM retention.run_log l;

CREATE OR REPLACE VIEW retention.status AS SELECT * FROM retention._status();

COMMENT ON VIEW retention.status IS
'One row per policy: state (active, paused, running, or stopped by max_due_fraction until retention.acknowledge), stages, the last run and its result, the last success, the pg_cron schedule and next run (UTC schedules, when pg_cron is installed here), a planner estimate of the due rows (backlog_estimate) and totals. Keeping up: due_left and oldest_due are the due rows of the last stage (purge, else anonymise, else mark) that the last run left, not counting rows kept by holds or references, and the clock of the oldest of them (the watermark); lag is how long that row has been due; became_due_per_day and removed_per_day compare, over the last eight counted runs, the rows that became due between runs with the rows the runs removed; falling_behind is true when what the runs left grew over the last three; overdue_requests counts erasure requests past their deadline whose kind maps this table; dead_rows and last_vacuum come from the statistics. Numeric columns with policy/target labels, ready for a postgres_exporter custom query (monitoring/postgres_exporter.yml).';

COMMENT ON VIEW retention.runs IS
'One row per policy per run: when, by whom, the purge cutoff, rows purged, anonymised and marked, batches committed so far (updated after every batch) and the outcome: running, succeeded, failed (with SQLSTATE and a message free of row data), skipped, or interrupted (the session ended mid-run; committed batches are kept). due_left and oldest_due: the due rows of the last stage the run left (NULL: not counted); vacuum_job: the pg_cron job vacuum_after scheduled; vacuumed_at: when a VACUUM of the table was first seen to have finished after the run.';

------------------------------------------------------------------------------
-- The record of processing activities (GDPR Art. 30(1)(f))
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.processing_record() RETURNS jsonb
LANGUAGE sql STABLE
-- Periods read the same whatever the caller's IntervalStyle.
SET IntervalStyle = 'postgres'
BEGIN ATOMIC
WITH tables AS (
    -- Named with their schema, whatever the caller's search_path.
    SELECT u.target, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
      FROM (SELECT p.target FROM retention.policies p
            UNION
            SELECT t.target FROM retention.subject_tables t) u
      JOIN pg_catalog.pg_class c ON c.oid = u.target
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
),
policy_entries AS (
    SELECT p.target,
           pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'policy', p.name,
               'purpose', p.purpose,
               'legal_basis', p.legal_basis,
               'clock', p.clock,
               'rows_governed', coalesce(p.filter, 'every row'),
               'stages', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('stage', s.stage, 'after', s.after::text) ORDER BY s.ord), '[]'::jsonb)
                            FROM (VALUES (1, 'mark', p.mark_after), (2, 'anonymise', p.anonymise_after), (3, 'purge', p.purge_after)) s(ord, stage, after)
                           WHERE s.after IS NOT NULL),
               'statutory_minimum', CASE WHEN p.min_retention IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('period', p.min_retention::text, 'ground', p.min_retention_ground) END,
               'masked_columns', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('column', m.column_name, 'mask', m.strategy) ORDER BY m.column_name), '[]'::jsonb)
                                    FROM retention.masks m WHERE m.policy_id = p.id),
               'paused', p.paused,
               'last_successful_run', (SELECT max(r.finished_at) FROM retention.run_log r WHERE r.policy_id = p.id AND r.status = 'succeeded')
           ) ORDER BY p.name) AS entries
      FROM retention.policies p
     GROUP BY p.target
),
subject_entries AS (
    SELECT t.target,
           pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'kind', t.kind,
               'path', t.path,
               'on_erasure', t.action,
               'statutory_minimum', CASE WHEN t.min_retention IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('period', t.min_retention::text, 'ground', t.legal_ground, 'clock', t.clock) END
           ) ORDER BY t.kind) AS entries
      FROM retention.subject_tables t
     GROUP BY t.target
),
holds_in_force AS (
    SELECT h.id, h.reason, h.kind, h.target, h.subject_blind IS NOT NULL AS on_subject
      FROM retention.holds h
     WHERE h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now())
),
table_holds AS (
    SELECT x.target, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('reason', x.reason, 'holds', x.n, 'on', x.scope) ORDER BY x.scope, x.reason) AS entries
      FROM (SELECT h.target, h.reason, 'the table' AS scope, count(*) AS n
              FROM holds_in_force h WHERE h.target IS NOT NULL GROUP BY h.target, h.reason
            UNION ALL
            SELECT t.target, h.reason, 'data subjects (' || h.kind || ')', count(*)
              FROM holds_in_force h JOIN retention.subject_tables t ON t.kind = h.kind
             WHERE h.on_subject GROUP BY t.target, h.kind, h.reason) x
     GROUP BY x.target
)
SELECT pg_catalog.jsonb_build_object(
    'format', 'pg_retention processing record 1',
    'database', pg_catalog.current_database(),
    'generated_at', pg_catalog.now(),
    'tables', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'table', t.name,
                   'retention_policies', coalesce(pe.entries, '[]'::jsonb),
                   'erasure', coalesce(se.entries, '[]'::jsonb),
                   'holds_in_force', coalesce(th.entries, '[]'::jsonb),
                   'gaps', (SELECT coalesce(pg_catalog.jsonb_agg(g.gap), '[]'::jsonb) FROM (
                                SELECT 'mapped for erasure, no retention period' AS gap WHERE pe.entries IS NULL
                                UNION ALL
                                SELECT 'no purpose or legal basis recorded' WHERE EXISTS (
                                    SELECT 1 FROM retention.policies p WHERE p.target = t.target AND (p.purpose IS NULL OR p.legal_basis IS NULL))) g)
               ) ORDER BY t.name), '[]'::jsonb)
                 FROM tables t
                 LEFT JOIN policy_entries pe ON pe.target = t.target
                 LEFT JOIN subject_entries se ON se.target = t.target
                 LEFT JOIN table_holds th ON th.target = t.target),
    'erasure_requests', (SELECT pg_catalog.jsonb_build_object(
                   'received', count(*),
                   'completed', count(*) FILTER (WHERE r.status = 'completed'),
                   'partially_completed', count(*) FILTER (WHERE r.status = 'partially completed'),
                   'refused', count(*) FILTER (WHERE r.status = 'refused'),
                   'completed_on_time', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at <= r.due_at),
                   'completed_late', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at > r.due_at),
                   'pending', count(*) FILTER (WHERE r.status = 'received'),
                   'overdue', count(*) FILTER (WHERE r.overdue))
                 FROM retention.requests r WHERE r.request_type = 'erasure'),
    'access_requests', (SELECT pg_catalog.jsonb_build_object(
                   'received', count(*),
                   'delivered', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed')),
                   'refused', count(*) FILTER (WHERE r.status = 'refused'),
                   'answered_on_time', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at <= r.due_at),
                   'answered_late', count(*) FILTER (WHERE r.status IN ('completed', 'partially completed', 'refused') AND r.completed_at > r.due_at),
                   'pending', count(*) FILTER (WHERE r.status = 'received'),
                   'overdue', count(*) FILTER (WHERE r.overdue))
                 FROM retention.requests r WHERE r.request_type = 'access'),
    'holds_in_force', (SELECT pg_catalog.jsonb_build_object(
                   'total', count(*),
                   'on_data_subjects', count(*) FILTER (WHERE h.on_subject),
                   'on_tables', count(*) FILTER (WHERE NOT h.on_subject))
                 FROM holds_in_force h)
);
END;

COMMENT ON FUNCTION retention.processing_record() IS
'The retention part of the record of processing activities (GDPR Art. 30(1)(f)) as JSON: per table governed by a policy or mapped for erasure, the policies with purpose, legal basis, stages and their periods, statutory minimums with their grounds and masked columns; the kinds of data subject whose erasure reaches it; the holds in force (counts and reasons, never subjects); gaps (mapped for erasure without a retention period, no purpose or legal basis); then the erasure requests (received, completed on time or late, pending, overdue) and the last successful run of each policy. No personal data.';

CREATE OR REPLACE FUNCTION retention.processing_record_text() RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
SELECT pg_catalog.concat_ws(E'\n',
    '# Retention and erasure: record of processing activities (Art. 30(1)(f) GDPR)',
    '',
    'Database `' || (r ->> 'database') || '`, generated ' || (r ->> 'generated_at') || '.',
    '',
    (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(E'\n',
         '## `' || (t ->> 'table') || '`',
         (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(E'\n',
              '- Policy **' || (p ->> 'policy') || '**: ' || coalesce(p ->> 'purpose', '(purpose not recorded)') ||
                  '; legal basis: ' || coalesce(p ->> 'legal_basis', '(not recorded)'),
              '  - Rows: ' || (p ->> 'rows_governed') || '; the period runs from `' || (p ->> 'clock') || '`',
              '  - ' || coalesce((SELECT pg_catalog.string_agg((s ->> 'stage') || ' after ' || (s ->> 'after'), ', ') FROM pg_catalog.jsonb_array_elements(p -> 'stages') s), 'no stages'),
              CASE WHEN p -> 'statutory_minimum' <> 'null'::jsonb THEN '  - Statutory minimum: ' || (p -> 'statutory_minimum' ->> 'period') || ' (' || coalesce(p -> 'statutory_minimum' ->> 'ground', '') || ')' END,
              CASE WHEN pg_catalog.jsonb_array_length(p -> 'masked_columns') > 0 THEN '  - Anonymised columns: ' ||
                  (SELECT pg_catalog.string_agg((m ->> 'column') || ' (' || (m ->> 'mask') || ')', ', ') FROM pg_catalog.jsonb_array_elements(p -> 'masked_columns') m) END,
              '  - Last successful run: ' || coalesce(p ->> 'last_successful_run', 'none yet')), E'\n')
            FROM pg_catalog.jsonb_array_elements(t -> 'retention_policies') p),
         (SELECT pg_catalog.string_agg('- Erasure of **' || (e ->> 'kind') || '** reaches it (' || (e ->> 'on_erasure') || ')' ||
              coalesce('; kept ' || (e -> 'statutory_minimum' ->> 'period') || ' from `' || (e -> 'statutory_minimum' ->> 'clock') || '` (' || (e -> 'statutory_minimum' ->> 'ground') || ')', ''), E'\n')
            FROM pg_catalog.jsonb_array_elements(t -> 'erasure') e),
         (SELECT pg_catalog.string_agg('- Hold in force on ' || (h ->> 'on') || ': ' || (h ->> 'reason') || ' (' || (h ->> 'holds') || ')', E'\n')
            FROM pg_catalog.jsonb_array_elements(t -> 'holds_in_force') h),
         (SELECT pg_catalog.string_agg('- **Gap:** ' || (g #>> '{}'), E'\n') FROM pg_catalog.jsonb_array_elements(t -> 'gaps') g),
         ''), E'\n')
       FROM pg_catalog.jsonb_array_elements(r -> 'tables') t),
    '## Erasure requests',
    '',
    '- Received: ' || (r -> 'erasure_requests' ->> 'received') || '; completed: ' || (r -> 'erasure_requests' ->> 'completed') ||
        ', partially completed: ' || (r -> 'erasure_requests' ->> 'partially_completed') || ', refused: ' || (r -> 'erasure_requests' ->> 'refused'),
    '- Answered on time: ' || (r -> 'erasure_requests' ->> 'completed_on_time') || '; late: ' || (r -> 'erasure_requests' ->> 'completed_late'),
    '- Pending: ' || (r -> 'erasure_requests' ->> 'pending') || '; overdue: ' || (r -> 'erasure_requests' ->> 'overdue'),
    '- Legal holds in force: ' || (r -> 'holds_in_force' ->> 'total') || ' (' || (r -> 'holds_in_force' ->> 'on_data_subjects') || ' on data subjects, ' ||
        (r -> 'holds_in_force' ->> 'on_tables') || ' on tables)',
    '',
    '## Access requests (Art. 15, 20)',
    '',
    '- Received: ' || (r -> 'access_requests' ->> 'received') || '; delivered: ' || (r -> 'access_requests' ->> 'delivered') ||
        ', refused: ' || (r -> 'access_requests' ->> 'refused'),
    '- Answered on time: ' || (r -> 'access_requests' ->> 'answered_on_time') || '; late: ' || (r -> 'access_requests' ->> 'answered_late'),
    '- Pending: ' || (r -> 'access_requests' ->> 'pending') || '; overdue: ' || (r -> 'access_requests' ->> 'overdue'))
  FROM (SELECT retention.processing_record() AS r) s;
END;

COMMENT ON FUNCTION retention.processing_record_text() IS
'retention.processing_record() as Markdown text a data-protection officer can paste into the record of processing activities.';

CREATE OR REPLACE FUNCTION retention.export_config() RETURNS jsonb
LANGUAGE sql STABLE
RETURN retention._export_config();

COMMENT ON FUNCTION retention.export_config() IS
'The whole configuration as one canonical JSON document (format "pg_retention config", version 1, described by config/pg_retention-config-1.schema.json): policies with stages, masks, batch settings, limits, partitions, statutory minimum and pg_cron schedule; kinds of data subject with their maps; legal holds in force (subjects by blind index only). Periods are ISO 8601 durations, tables schema-qualified. Exporting the same configuration twice gives the same document; jsonb_pretty() of it diffs cleanly.';

CREATE OR REPLACE FUNCTION retention.version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN retention._library_version();

COMMENT ON FUNCTION retention.version() IS
'The version of pg_retention''s library that this database''s functions call.';

CREATE OR REPLACE VIEW retention.installation AS
SELECT e.extversion AS installed_version,
       retention._library_version() AS library_version,
       a.default_version AS available_version,
       e.extversion = retention._library_version() AS library_matches,
       a.default_version IS DISTINCT FROM e.extversion AS update_available
  FROM pg_catalog.pg_extension e
  LEFT JOIN pg_catalog.pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'pg_retention';

COMMENT ON VIEW retention.installation IS
'The installed version of pg_retention''s SQL, the version of the library it calls (library_matches is false only when the library file was replaced by another build), and the version the server''s installed files offer (update_available: run ALTER EXTENSION pg_retention UPDATE).';

-- requires:
--   api_views
--   mask::mask_email
--   mask::mask_generalise_date
--   mask::mask_generalise_inet
--   mask::mask_generalise_int
--   mask::mask_hash_random
--   mask::mask_hmac
--   mask::mask_jsonb_drop
--   mask::mask_noise_date
--   mask::mask_noise_float
--   mask::mask_noise_int
--   mask::mask_partial
--   mask::pseudonym
--   mask::rotate_pseudonym_key

------------------------------------------------------------------------------
-- Masking library
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW retention.mask_strategies (strategy, kind, column_types, sql_function, options, description) AS
VALUES
    ('null',        'anonymising',     'any nullable column',        NULL,
     NULL,                                         'Overwrites the value with NULL.'),
    ('constant',    'anonymising',     'any',                        NULL,
     'value',                                      'Overwrites the value with one constant of the column''s type.'),
    ('default',     'anonymising',     'any',                        NULL,
     NULL,                                         'Overwrites the value with the column default.'),
    ('partial',     'anonymising',     'text, varchar',              'retention.mask_partial(text, integer, integer, text)',
     'keep_start, keep_end, fill',                 'Keeps a few leading/trailing characters, replaces the rest; values too short to hide anything are masked entirely. Anonymising only if the kept characters do not identify the person.'),
    ('email',       'anonymising',     'text, varchar',              'retention.mask_email(text, boolean)',
     'keep_domain',                                'Keeps the first character of the local part and, optionally, the domain. Anonymising only if the domain does not identify the person (a company domain may).'),
    ('pseudonym',   'pseudonymising',  'text, varchar',              'retention.mask_hmac(text, bytea) with the database key',
     NULL,                                         'HMAC-SHA-256 under the database''s pseudonym key: equal inputs give equal outputs, so joins and counts survive. Whoever holds the key can test guesses: the result is still personal data (GDPR Recital 26).'),
    ('hash_random', 'anonymising',     'text, varchar',              'retention.mask_hash_random(text)',
     NULL,                                         'HMAC-SHA-256 under a random key that is never stored: no way back, and no joins.'),
    ('generalise',  'anonymising',     'date; bigint/integer; inet; text (prefix via partial)', 'retention.mask_generalise(date, text), (bigint, bigint), (inet, integer)',
     'unit (month, year) | width | bits',           'Coarsens a value: a date to its month or year, a number to the lower bound of its bucket, an IP address to its network.'),
    ('noise',       'anonymising',     'double precision, bigint, date', 'retention.mask_noise(value, amount)',
     'amount',                                     'Moves a value by a random amount within ±amount. Protects single values; aggregates over many rows stay close.'),
    ('jsonb_drop',  'anonymising',     'jsonb',                      'retention.mask_jsonb_drop(jsonb, text[])',
     'keys',                                       'Removes the given top-level keys from a jsonb document.');

COMMENT ON VIEW retention.mask_strategies IS
'The masking strategies of pg_retention and whether each anonymises (no way back) or only pseudonymises (still personal data under GDPR Recital 26).';

COMMENT ON FUNCTION retention.mask_partial(text, integer, integer, text) IS
'Keeps KEEP_START leading and KEEP_END trailing characters and replaces each other character with FILL; a value too short to hide anything is masked entirely.';
COMMENT ON FUNCTION retention.mask_email(text, boolean) IS
'Masks an e-mail address to its first character plus ***, keeping the domain (or only the top-level domain when KEEP_DOMAIN is false); text that is not an address is masked entirely.';
COMMENT ON FUNCTION retention.mask_hmac(text, bytea) IS
'HMAC-SHA-256 of VALUE under KEY (at least 16 bytes) as 64 hex digits. Pseudonymising while the key exists.';
COMMENT ON FUNCTION retention.pseudonym(text) IS
'HMAC-SHA-256 of VALUE under the database''s pseudonym key (created on first use, never shown). Pseudonymising: the result is still personal data.';
COMMENT ON FUNCTION retention.rotate_pseudonym_key() IS
'Replaces the database''s pseudonym key with a new random key. Pseudonyms made before no longer match new ones; with the old key gone, the old pseudonyms can no longer be linked to a person by anyone.';
COMMENT ON FUNCTION retention.mask_hash_random(text) IS
'HMAC-SHA-256 under a random key that is thrown away at once: irreversible, and equal inputs do not give equal outputs.';
COMMENT ON FUNCTION retention.mask_generalise(date, text) IS
'The first day of the date''s month or year (UNIT ''month'' or ''year'').';
COMMENT ON FUNCTION retention.mask_generalise(bigint, bigint) IS
'The lower bound of the value''s bucket of WIDTH (37, 10 -> 30; -3, 10 -> -10).';
COMMENT ON FUNCTION retention.mask_generalise(inet, integer) IS
'The network of an IP address: the first BITS bits (default 24 for IPv4, 48 for IPv6), the rest zero.';
COMMENT ON FUNCTION retention.mask_noise(double precision, double precision) IS
'VALUE moved by a random amount within plus or minus AMOUNT.';
COMMENT ON FUNCTION retention.mask_noise(bigint, bigint) IS
'VALUE moved by a random whole amount within plus or minus AMOUNT.';
COMMENT ON FUNCTION retention.mask_noise(date, integer) IS
'VALUE moved by a random number of days within plus or minus DAYS.';
COMMENT ON FUNCTION retention.mask_jsonb_drop(jsonb, text[]) IS
'The document without the given top-level KEYS.';

-- requires:
--   api_masks
--   discover::discover
--   discover::locate::locate

------------------------------------------------------------------------------
-- The data map: where personal data is, and what covers it
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.discover(schema_filter text DEFAULT NULL, sample_rows integer DEFAULT 1000)
RETURNS TABLE (target text, column_name text, data_type text, category text, found_by text,
               share real, confidence text, sampled bigint)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM retention._discover("schema_filter" => $1, "sample_rows" => $2); END;
COMMENT ON FUNCTION retention.discover(text, integer) IS
'Finds columns that look like personal data in the tables of the schemas matching SCHEMA_FILTER (a LIKE pattern; all but the system''s and pg_retention''s when NULL): per column, the CATEGORY (e-mail, phone, IBAN, credit card, IP address, birth date, name, street address, postcode, national id, free text), how it was recognised (FOUND_BY: the column''s name in English or German, the share of sampled values of that shape, or free text containing such values), and a CONFIDENCE (high, medium, low). Reads at most SAMPLE_ROWS rows per table (TABLESAMPLE SYSTEM on larger tables), only of tables the caller may SELECT, as the table''s owner, only columns of built-in types, at most 10 s per table. Never returns a sampled value.';

CREATE OR REPLACE FUNCTION retention.coverage(schema_filter text DEFAULT NULL, sample_rows integer DEFAULT 1000)
RETURNS TABLE (target text, personal_data text[], policies text[], stages text, subject_kinds text[],
               missing text, suggestion text)
LANGUAGE sql VOLATILE
BEGIN ATOMIC
WITH found AS (
    SELECT d.target, pg_catalog.array_agg(d.column_name || ' (' || d.category || ')' ORDER BY d.column_name) AS personal
      FROM retention.discover(schema_filter, sample_rows) d
     WHERE d.confidence <> 'low'
     GROUP BY d.target),
named AS (
    SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS target, c.relname::text AS relname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE schema_filter IS NULL OR n.nspname LIKE schema_filter),
pol AS (
    SELECT t.target, pg_catalog.array_agg(p.name ORDER BY p.name) AS policies,
           pg_catalog.string_agg(p.name || ': ' || coalesce(nullif(pg_catalog.concat_ws(', ',
               'mark after ' || p.mark_after::text, 'anonymise after ' || p.anonymise_after::text,
               'purge after ' || p.purge_after::text), ''), 'no stages'), '; ' ORDER BY p.name) AS stages
      FROM retention.policies p JOIN named t ON t.oid = p.target
     GROUP BY t.target),
kinds AS (
    SELECT t.target, pg_catalog.array_agg(DISTINCT st.kind) AS kinds
      FROM retention.subject_tables st JOIN named t ON t.oid = st.target
     GROUP BY t.target),
tables AS (
    SELECT found.target FROM found UNION SELECT pol.target FROM pol UNION SELECT kinds.target FROM kinds),
-- The column a new policy's period would most likely run from: a date or
-- timestamp named like a creation or event time, else the first one.
clocks AS (
    SELECT DISTINCT ON (t.target) t.target, a.attname::text AS clock
      FROM tables t JOIN named nm ON nm.target = t.target
      JOIN pg_catalog.pg_attribute a ON a.attrelid = nm.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
     ORDER BY t.target, (a.attname ~ '(created|inserted|placed|signed|registered|date|_at$|_on$)') DESC, a.attnum)
SELECT t.target, f.personal, p.policies, p.stages, k.kinds,
       CASE WHEN p.policies IS NULL AND f.personal IS NOT NULL THEN 'personal data, no retention policy'
            WHEN p.policies IS NULL THEN 'mapped for erasure, no retention period'
            WHEN k.kinds IS NULL AND f.personal IS NOT NULL AND EXISTS (SELECT 1 FROM retention.subject_kinds)
                 THEN 'personal data in no subject map: erasure does not reach it' END,
       CASE WHEN p.policies IS NULL THEN
                 -- A policy without stages changes nothing: it records the
                 -- table as governed; the stages follow after review.
                 pg_catalog.format('SELECT retention.create_policy(%L, %L, %L, NULL, purpose => %L, legal_basis => %L); '
                                   '-- then, after review: SELECT retention.add_stage(%L, interval ''<period>'', ''purge'');',
                                   nm.relname, t.target, coalesce(pg_catalog.quote_ident(c.clock), '<clock column>'), '<purpose>', '<legal basis>',
                                   nm.relname)
            WHEN k.kinds IS NULL AND f.personal IS NOT NULL AND EXISTS (SELECT 1 FROM retention.subject_kinds)
                 THEN (SELECT pg_catalog.string_agg(pg_catalog.format('SELECT * FROM retention.link_suggestions(%L);', sk.kind), ' ' ORDER BY sk.kind)
                         FROM retention.subject_kinds sk) END
  FROM tables t
  JOIN named nm ON nm.target = t.target
  LEFT JOIN found f ON f.target = t.target
  LEFT JOIN pol p ON p.target = t.target
  LEFT JOIN kinds k ON k.target = t.target
  LEFT JOIN clocks c ON c.target = t.target
 ORDER BY t.target;
END;
COMMENT ON FUNCTION retention.coverage(text, integer) IS
'Per table of the schemas matching SCHEMA_FILTER that holds personal data (as retention.discover finds it, confidence medium or high) or is governed by a policy or a subject map: the personal-data columns, the policies and their stages, the subject kinds that map it, and what is MISSING ("personal data, no retention policy"; "mapped for erasure, no retention period"; "personal data in no subject map: erasure does not reach it"), with a SUGGESTION of SQL to run after review (a policy declared without stages changes nothing until a stage is added).';

CREATE OR REPLACE FUNCTION retention.locate(kind text, subject_id text)
RETURNS TABLE (target text, column_name text, "rows" bigint, in_map boolean, note text)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM retention._locate("kind" => $1, "subject_id" => $2); END;
COMMENT ON FUNCTION retention.locate(text, text) IS
'Where else does the subject SUBJECT_ID of KIND appear? Takes the subject''s identifiers from the root row (the columns named like an e-mail address, phone number, IBAN, card number or national id) and counts, in every text and json column of every table the caller may read, the rows containing one of them (case-insensitive). Returns table, column and row count, never values; IN_MAP is false, with a note, for tables the kind''s map does not reach. Each table is read as its owner, in one scan, at most 30 s. The identifiers stay in the backend''s memory: they are never a statement''s text or parameter.';

-- requires:
--   api_datamap

------------------------------------------------------------------------------
-- Policy-as-code: applying a configuration document
------------------------------------------------------------------------------
-- retention.apply_config(doc, dry_run) makes the database match a document
-- in the format of retention.export_config(). It changes nothing by itself:
-- every change goes through the public functions (create_policy,
-- alter_policy, add_stage, set_mask, register_subject, place_hold, ...), so
-- the same checks, rights and SQLSTATEs apply as when a DBA calls them. All
-- of it happens in one subtransaction: an error anywhere undoes everything,
-- and a dry run undoes everything on purpose once the plan is known.

CREATE OR REPLACE FUNCTION retention.apply_config(doc jsonb, dry_run boolean DEFAULT true)
RETURNS TABLE (change text, object text, name text, detail text, due_rows bigint, due_rows_before bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    before      jsonb;
    after       jsonb;
    due_before  jsonb;
    plan        jsonb := '[]';
    cur_policy  jsonb;
    p           record;
    k           record;
    t           record;
    h           record;
    m           record;
    bad         text;
    obj         text;  -- the object being applied, named in errors
    pname       text;
    pol         jsonb;
    st          jsonb;
    cur_st      jsonb;
    act         text;
    cur_kind    jsonb;
    rebuild     boolean;
    hold_id     bigint;
    wanted      bigint[] := '{}';
    canon       text;
    release_unlisted boolean;
    e_state     text;
    e_msg       text;
    e_detail    text;
    e_hint      text;
    undone      boolean := false;
BEGIN
    -- The document's shape, before anything is touched.
    IF doc IS NULL OR pg_catalog.jsonb_typeof(doc) <> 'object'
       OR (doc ->> 'format') IS DISTINCT FROM 'pg_retention config' THEN
        RAISE EXCEPTION 'the document is not a pg_retention configuration'
            USING ERRCODE = '22023', HINT = 'Start from retention.export_config(): an object with "format": "pg_retention config".';
    END IF;
    IF (doc -> 'version') IS DISTINCT FROM '1'::jsonb THEN
        RAISE EXCEPTION 'configuration version % is not supported', coalesce(doc ->> 'version', 'null')
            USING ERRCODE = '22023', HINT = 'This version of pg_retention reads version 1 (config/pg_retention-config-1.schema.json).';
    END IF;
    SELECT key INTO bad FROM pg_catalog.jsonb_object_keys(doc) key
     WHERE key <> ALL (ARRAY['format', 'version', 'policies', 'subject_kinds', 'holds', 'schedule', 'release_unlisted_holds'])
     ORDER BY 1 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown key "%" in the configuration', bad
            USING ERRCODE = '22023', HINT = 'Keys: format, version, policies, subject_kinds, holds, schedule, release_unlisted_holds.';
    END IF;
    IF pg_catalog.jsonb_typeof(doc -> 'policies') IS DISTINCT FROM 'object'
       OR pg_catalog.jsonb_typeof(doc -> 'subject_kinds') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'the configuration needs "policies" and "subject_kinds" objects'
            USING ERRCODE = '22023', HINT = 'Give {} for none: what the document leaves out is dropped.';
    END IF;
    IF (doc ? 'holds') AND pg_catalog.jsonb_typeof(doc -> 'holds') <> 'array' THEN
        RAISE EXCEPTION '"holds" must be an array' USING ERRCODE = '22023';
    END IF;
    release_unlisted := coalesce((doc ->> 'release_unlisted_holds')::boolean, false);
    FOR p IN SELECT e.key AS pname, e.value AS pol FROM pg_catalog.jsonb_each(doc -> 'policies') e ORDER BY 1 LOOP
        IF pg_catalog.jsonb_typeof(p.pol) <> 'object' THEN
            RAISE EXCEPTION 'policy "%" must be an object', p.pname USING ERRCODE = '22023';
        END IF;
        SELECT s.path INTO bad FROM (
            SELECT key AS path FROM pg_catalog.jsonb_object_keys(p.pol) key
             WHERE key <> ALL (ARRAY['table', 'clock', 'filter', 'purpose', 'legal_basis', 'stages', 'masks', 'statutory_minimum',
                                     'batches', 'limits', 'partitions', 'vacuum_after', 'paused', 'schedule'])
            UNION ALL
            SELECT 'stages.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'stages', '{}')) key
             WHERE key <> ALL (ARRAY['mark', 'anonymise', 'purge'])
            UNION ALL
            SELECT 'batches.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'batches', '{}')) key
             WHERE key <> ALL (ARRAY['size', 'target', 'pause', 'skip_locked'])
            UNION ALL
            SELECT 'limits.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'limits', '{}')) key
             WHERE key <> ALL (ARRAY['lock_timeout', 'statement_timeout', 'max_run_time', 'max_rows_per_second', 'max_due_fraction'])
            UNION ALL
            SELECT 'partitions.' || key FROM pg_catalog.jsonb_object_keys(coalesce(p.pol -> 'partitions', '{}')) key
             WHERE key <> ALL (ARRAY['drop', 'archive_schema'])
            UNION ALL
            SELECT 'statutory_minimum.' || key FROM pg_catalog.jsonb_object_keys(coalesce(nullif(p.pol -> 'statutory_minimum', 'null'), '{}')) key
             WHERE key <> ALL (ARRAY['period', 'ground'])) s
         ORDER BY 1 LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'unknown key "%" in policy "%"', bad, p.pname
                USING ERRCODE = '22023', HINT = 'retention.export_config() shows every key a policy has.';
        END IF;
        IF (p.pol ->> 'table') IS NULL OR (p.pol ->> 'clock') IS NULL THEN
            RAISE EXCEPTION 'policy "%" needs "table" and "clock"', p.pname USING ERRCODE = '22023';
        END IF;
    END LOOP;
    FOR k IN SELECT e.key AS kind, e.value AS def FROM pg_catalog.jsonb_each(doc -> 'subject_kinds') e ORDER BY 1 LOOP
        SELECT s.path INTO bad FROM (
            SELECT key AS path FROM pg_catalog.jsonb_object_keys(k.def) key
             WHERE key <> ALL (ARRAY['root', 'id_column', 'tables', 'sweep'])
            UNION ALL
            SELECT 'tables[].' || key FROM pg_catalog.jsonb_array_elements(coalesce(k.def -> 'tables', '[]')) t,
                   pg_catalog.jsonb_object_keys(t) key
             WHERE key <> ALL (ARRAY['table', 'link', 'columns', 'parent', 'parent_columns', 'matches', 'action',
                                     'statutory_minimum', 'mask_policy', 'also'])) s
         ORDER BY 1 LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'unknown key "%" in subject kind "%"', bad, k.kind
                USING ERRCODE = '22023', HINT = 'retention.export_config() shows every key a subject kind has.';
        END IF;
        IF (k.def ->> 'root') IS NULL OR (k.def ->> 'id_column') IS NULL THEN
            RAISE EXCEPTION 'subject kind "%" needs "root" and "id_column"', k.kind USING ERRCODE = '22023';
        END IF;
    END LOOP;

    before := retention.export_config();
    -- What every policy would do now, to show what each change makes due.
    SELECT coalesce(pg_catalog.jsonb_object_agg(v.policy || '/' || v.action, v.due_rows), '{}')
      INTO due_before FROM retention.preview() v;

    BEGIN
        -- 1. Policies: created, or changed to match.
        FOR p IN SELECT e.key AS pname, e.value AS pol FROM pg_catalog.jsonb_each(doc -> 'policies') e ORDER BY 1 LOOP
            obj := pg_catalog.format('policy "%s"', p.pname);
            pname := p.pname;
            pol := p.pol;
            cur_policy := before -> 'policies' -> pname;
                IF cur_policy IS NOT NULL AND (cur_policy ->> 'table') IS DISTINCT FROM
                   (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = (pol ->> 'table')::regclass) THEN
                    -- Another table: another policy under the same name.
                    IF (cur_policy ->> 'schedule') IS NOT NULL THEN
                        PERFORM retention.unschedule(pname);
                    END IF;
                    PERFORM retention.drop_policy(pname);
                    cur_policy := NULL;
                END IF;
                IF cur_policy IS NULL THEN
                    PERFORM retention.create_policy(
                        name => pname,
                        target => (pol ->> 'table')::regclass,
                        clock => pol ->> 'clock',
                        purge_after => (pol -> 'stages' -> 'purge' ->> 'after')::interval,
                        filter => pol ->> 'filter',
                        batch_size => coalesce((pol -> 'batches' ->> 'size')::integer, 100000),
                        batch_pause => coalesce((pol -> 'batches' ->> 'pause')::interval, interval '0'),
                        skip_locked => coalesce((pol -> 'batches' ->> 'skip_locked')::boolean, true),
                        purpose => pol ->> 'purpose',
                        legal_basis => pol ->> 'legal_basis',
                        lock_timeout => coalesce((pol -> 'limits' ->> 'lock_timeout')::interval, interval '2 seconds'),
                        statement_timeout => coalesce((pol -> 'limits' ->> 'statement_timeout')::interval, interval '1 minute'),
                        max_run_time => (pol -> 'limits' ->> 'max_run_time')::interval,
                        max_rows_per_second => (pol -> 'limits' ->> 'max_rows_per_second')::integer,
                        drop_partitions => coalesce((pol -> 'partitions' ->> 'drop')::boolean, true),
                        archive_schema => pol -> 'partitions' ->> 'archive_schema',
                        min_retention => (pol -> 'statutory_minimum' ->> 'period')::interval,
                        min_retention_ground => pol -> 'statutory_minimum' ->> 'ground',
                        batch_target => CASE WHEN (pol -> 'batches') ? 'target'
                                             THEN (pol -> 'batches' ->> 'target')::interval
                                             ELSE interval '100 milliseconds' END,
                        vacuum_after => coalesce((pol ->> 'vacuum_after')::boolean, false),
                        max_due_fraction => (pol -> 'limits' ->> 'max_due_fraction')::real);
                    cur_st := pg_catalog.jsonb_build_object('purge', pol -> 'stages' -> 'purge');
                ELSE
                    cur_st := coalesce(cur_policy -> 'stages', '{}');
                    -- Stages that change or go are dropped first, so that
                    -- the order of the stages holds at every step.
                    FOREACH act IN ARRAY ARRAY['mark', 'anonymise'] LOOP
                        -- As text: interval '1 mon' equals interval '30 days'.
                        IF ((cur_st -> act ->> 'after')::interval::text, cur_st -> act ->> 'column') IS DISTINCT FROM
                           ((pol -> 'stages' -> act ->> 'after')::interval::text, pol -> 'stages' -> act ->> 'column') THEN
                            PERFORM retention.drop_stage(pname, act);
                            cur_st := cur_st - act;
                        END IF;
                    END LOOP;
                    IF (cur_st ? 'purge') AND NOT coalesce(pol -> 'stages' ? 'purge', false) THEN
                        PERFORM retention.drop_stage(pname, 'purge');
                        cur_st := cur_st - 'purge';
                    END IF;
                    -- Only a policy whose settings differ is altered (and
                    -- so only then are the rights to alter it needed).
                    IF (SELECT pg_catalog.count(DISTINCT ROW(
                            j ->> 'clock', j ->> 'filter', j ->> 'purpose', j ->> 'legal_basis',
                            (j -> 'stages' -> 'purge' ->> 'after')::interval,
                            coalesce((j -> 'batches' ->> 'size')::integer, 100000),
                            coalesce((j -> 'batches' ->> 'pause')::interval, interval '0'),
                            coalesce((j -> 'batches' ->> 'skip_locked')::boolean, true),
                            CASE WHEN coalesce((j -> 'batches') ? 'target', false) THEN (j -> 'batches' ->> 'target')::interval
                                 ELSE interval '100 milliseconds' END,
                            coalesce((j -> 'limits' ->> 'lock_timeout')::interval, interval '2 seconds'),
                            coalesce((j -> 'limits' ->> 'statement_timeout')::interval, interval '1 minute'),
                            (j -> 'limits' ->> 'max_run_time')::interval,
                            (j -> 'limits' ->> 'max_rows_per_second')::integer,
                            (j -> 'limits' ->> 'max_due_fraction')::real,
                            coalesce((j -> 'partitions' ->> 'drop')::boolean, true),
                            j -> 'partitions' ->> 'archive_schema',
                            coalesce((j ->> 'vacuum_after')::boolean, false),
                            (j -> 'statutory_minimum' ->> 'period')::interval,
                            j -> 'statutory_minimum' ->> 'ground')::text)
                          FROM (VALUES (cur_policy), (pol)) v(j)) > 1 THEN
                    PERFORM retention.alter_policy(
                        name => pname,
                        clock => pol ->> 'clock',
                        purge_after => CASE WHEN cur_st ? 'purge' THEN (pol -> 'stages' -> 'purge' ->> 'after')::interval END,
                        filter => pol ->> 'filter',
                        drop_filter => (pol ->> 'filter') IS NULL,
                        batch_size => coalesce((pol -> 'batches' ->> 'size')::integer, 100000),
                        batch_pause => coalesce((pol -> 'batches' ->> 'pause')::interval, interval '0'),
                        skip_locked => coalesce((pol -> 'batches' ->> 'skip_locked')::boolean, true),
                        purpose => pol ->> 'purpose',
                        legal_basis => pol ->> 'legal_basis',
                        lock_timeout => coalesce((pol -> 'limits' ->> 'lock_timeout')::interval, interval '2 seconds'),
                        statement_timeout => coalesce((pol -> 'limits' ->> 'statement_timeout')::interval, interval '1 minute'),
                        max_run_time => (pol -> 'limits' ->> 'max_run_time')::interval,
                        no_max_run_time => (pol -> 'limits' ->> 'max_run_time') IS NULL,
                        max_rows_per_second => (pol -> 'limits' ->> 'max_rows_per_second')::integer,
                        no_rate_limit => (pol -> 'limits' ->> 'max_rows_per_second') IS NULL,
                        drop_partitions => coalesce((pol -> 'partitions' ->> 'drop')::boolean, true),
                        archive_schema => pol -> 'partitions' ->> 'archive_schema',
                        no_archive => (pol -> 'partitions' ->> 'archive_schema') IS NULL,
                        batch_target => CASE WHEN NOT coalesce((pol -> 'batches') ? 'target', false) THEN interval '100 milliseconds'
                                             ELSE (pol -> 'batches' ->> 'target')::interval END,
                        no_batch_target => coalesce((pol -> 'batches') ? 'target', false) AND (pol -> 'batches' ->> 'target') IS NULL,
                        vacuum_after => coalesce((pol ->> 'vacuum_after')::boolean, false),
                        max_due_fraction => (pol -> 'limits' ->> 'max_due_fraction')::real,
                        no_max_due_fraction => (pol -> 'limits' ->> 'max_due_fraction') IS NULL,
                        min_retention => (pol -> 'statutory_minimum' ->> 'period')::interval,
                        min_retention_ground => pol -> 'statutory_minimum' ->> 'ground',
                        no_min_retention => (pol -> 'statutory_minimum' ->> 'period') IS NULL);
                    END IF;
                    IF (cur_policy ->> 'purpose') IS NOT NULL AND (pol ->> 'purpose') IS NULL
                       OR (cur_policy ->> 'legal_basis') IS NOT NULL AND (pol ->> 'legal_basis') IS NULL THEN
                        RAISE EXCEPTION 'the purpose and legal basis of a policy cannot be removed'
                            USING ERRCODE = '0A000', HINT = 'They document the policy for the record of processing activities: give new ones.';
                    END IF;
                END IF;
                -- Stages the policy does not have yet, in lifecycle order
                -- (purge first: the others are checked against it).
                IF NOT (cur_st ? 'purge') AND (pol -> 'stages' ? 'purge') THEN
                    PERFORM retention.add_stage(pname, (pol -> 'stages' -> 'purge' ->> 'after')::interval, 'purge');
                END IF;
                FOREACH act IN ARRAY ARRAY['anonymise', 'mark'] LOOP
                    st := pol -> 'stages' -> act;
                    IF st IS NOT NULL AND st <> 'null' AND NOT (cur_st ? act) THEN
                        PERFORM retention.add_stage(pname, (st ->> 'after')::interval, act, st ->> 'column');
                    END IF;
                END LOOP;
                -- Masks.
                FOR m IN SELECT e.key AS col, e.value AS def FROM pg_catalog.jsonb_each(coalesce(pol -> 'masks', '{}')) e ORDER BY 1 LOOP
                    IF (cur_policy -> 'masks' -> m.col) IS DISTINCT FROM
                       pg_catalog.jsonb_build_object('strategy', m.def ->> 'strategy', 'options', coalesce(m.def -> 'options', '{}')) THEN
                        PERFORM retention.set_mask(pname, m.col, m.def ->> 'strategy', coalesce(m.def -> 'options', '{}'));
                    END IF;
                END LOOP;
                FOR m IN SELECT e.key AS col FROM pg_catalog.jsonb_each(coalesce(cur_policy -> 'masks', '{}')) e
                          WHERE NOT coalesce(pol -> 'masks' ? e.key, false) ORDER BY 1 LOOP
                    PERFORM retention.drop_mask(pname, m.col);
                END LOOP;
                IF coalesce((pol ->> 'paused')::boolean, false) IS DISTINCT FROM coalesce((cur_policy ->> 'paused')::boolean, false) THEN
                    IF coalesce((pol ->> 'paused')::boolean, false) THEN
                        PERFORM retention.pause_policy(pname);
                    ELSE
                        PERFORM retention.resume_policy(pname);
                    END IF;
                END IF;
                IF (pol ->> 'schedule') IS DISTINCT FROM (cur_policy ->> 'schedule') THEN
                    IF (pol ->> 'schedule') IS NULL THEN
                        PERFORM retention.unschedule(pname);
                    ELSE
                        PERFORM retention.schedule(pol ->> 'schedule', pname);
                    END IF;
                END IF;
        END LOOP;

        -- 2. Kinds of data subject: rebuilt when their map differs in
        -- shape (or loses a statutory minimum), else changed per table.
        FOR k IN SELECT e.key AS kind, e.value AS def FROM pg_catalog.jsonb_each(doc -> 'subject_kinds') e ORDER BY 1 LOOP
            obj := pg_catalog.format('subject kind "%s"', k.kind);
            cur_kind := before -> 'subject_kinds' -> k.kind;
                rebuild := cur_kind IS NULL
                    OR (SELECT (cur_kind ->> 'root')::regclass) <> (k.def ->> 'root')::regclass
                    OR (cur_kind ->> 'id_column') <> (k.def ->> 'id_column')
                    OR (SELECT pg_catalog.array_agg(x ORDER BY x) FROM (
                            SELECT pg_catalog.jsonb_build_array((e ->> 'table')::regclass::oid, e -> 'link', e -> 'columns', e -> 'matches',
                                                                coalesce(e -> 'also', '[]'))::text AS x
                              FROM pg_catalog.jsonb_array_elements(cur_kind -> 'tables') e) s)
                       IS DISTINCT FROM
                       (SELECT pg_catalog.array_agg(x ORDER BY x) FROM (
                            SELECT pg_catalog.jsonb_build_array((e ->> 'table')::regclass::oid, e -> 'link', e -> 'columns', e -> 'matches',
                                                                coalesce(e -> 'also', '[]'))::text AS x
                              FROM pg_catalog.jsonb_array_elements(coalesce(k.def -> 'tables', '[]')) e) s)
                    OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(cur_kind -> 'tables') c
                                 JOIN pg_catalog.jsonb_array_elements(k.def -> 'tables') d
                                   ON (c ->> 'table')::regclass = (d ->> 'table')::regclass
                                WHERE coalesce(c -> 'statutory_minimum', 'null') <> 'null'
                                  AND coalesce(d -> 'statutory_minimum', 'null') = 'null');
                IF rebuild THEN
                    IF cur_kind IS NOT NULL THEN
                        PERFORM retention.drop_subject(k.kind);
                    END IF;
                    PERFORM retention.register_subject(k.kind, (k.def ->> 'root')::regclass, k.def ->> 'id_column',
                        follow_foreign_keys => EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                                                        WHERE e ->> 'link' = 'foreign key'));
                    FOR t IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                              WHERE e ->> 'link' = 'value' LOOP
                        PERFORM retention.add_subject_table(k.kind, (t.def ->> 'table')::regclass, t.def -> 'columns' ->> 0,
                                                            matches => t.def ->> 'matches');
                    END LOOP;
                    -- Further foreign keys, then owned tables after the tables
                    -- that reference them.
                    FOR t IN SELECT e AS def, a AS path
                               FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e,
                                    pg_catalog.jsonb_array_elements(coalesce(e -> 'also', '[]')) a LOOP
                        PERFORM retention.add_subject_path(k.kind, (t.def ->> 'table')::regclass, t.path ->> 'foreign_key');
                    END LOOP;
                    FOR t IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') WITH ORDINALITY AS x(e, n)
                              WHERE e ->> 'link' = 'owned' ORDER BY x.n LOOP
                        PERFORM retention.add_owned_table(k.kind, (t.def ->> 'table')::regclass,
                                                          via => (t.def ->> 'parent')::regclass);
                    END LOOP;
                    -- The foreign keys of this database must give the map
                    -- the document describes.
                    SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO bad FROM (
                        SELECT (e ->> 'table') || ' (' || (e ->> 'link') || '), not found' AS x
                          FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                         WHERE NOT EXISTS (SELECT 1 FROM retention.subject_tables st2
                                            WHERE st2.kind = k.kind AND st2.target = (e ->> 'table')::regclass
                                              AND st2.link = (e ->> 'link'))
                        UNION ALL
                        SELECT pg_catalog.format('%s (%s), not in the document', st2.target::regclass::text, st2.link)
                          FROM retention.subject_tables st2
                         WHERE st2.kind = k.kind
                           AND NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e
                                            WHERE (e ->> 'table')::regclass = st2.target)) s;
                    IF bad IS NOT NULL THEN
                        RAISE EXCEPTION 'the foreign keys of this database give a different map than the document'
                            USING ERRCODE = '22023', DETAIL = 'Differs: ' || bad || '.',
                                  HINT = 'retention.subject_map(kind) shows the map the foreign keys give; change the document or the schema.';
                    END IF;
                    cur_kind := NULL;
                END IF;
                -- The final sweep.
                IF coalesce((k.def ->> 'sweep')::boolean, false)
                   IS DISTINCT FROM coalesce((cur_kind ->> 'sweep')::boolean, false) THEN
                    PERFORM retention.set_erasure_sweep(k.kind, coalesce((k.def ->> 'sweep')::boolean, false));
                END IF;
                -- Actions, statutory minimums and masks per table.
                FOR t IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(k.def -> 'tables') e LOOP
                    IF (coalesce(t.def ->> 'action', 'purge'), t.def -> 'statutory_minimum', t.def ->> 'mask_policy') IS DISTINCT FROM
                       (SELECT (coalesce(c ->> 'action', 'purge'), c -> 'statutory_minimum', c ->> 'mask_policy')
                          FROM pg_catalog.jsonb_array_elements(cur_kind -> 'tables') c
                         WHERE (c ->> 'table')::regclass = (t.def ->> 'table')::regclass)
                       AND NOT (cur_kind IS NULL AND coalesce(t.def ->> 'action', 'purge') = 'purge'
                                AND coalesce(t.def -> 'statutory_minimum', 'null') = 'null') THEN
                        PERFORM retention.set_subject_table(k.kind, (t.def ->> 'table')::regclass,
                            action => coalesce(t.def ->> 'action', 'purge'),
                            min_retention => (t.def -> 'statutory_minimum' ->> 'period')::interval,
                            legal_ground => t.def -> 'statutory_minimum' ->> 'ground',
                            clock => t.def -> 'statutory_minimum' ->> 'clock',
                            mask_policy => t.def ->> 'mask_policy');
                    END IF;
                END LOOP;
        END LOOP;
        FOR k IN SELECT e.key AS kind FROM pg_catalog.jsonb_each(before -> 'subject_kinds') e
                  WHERE NOT (doc -> 'subject_kinds' ? e.key) ORDER BY 1 LOOP
            obj := pg_catalog.format('subject kind "%s"', k.kind);
            PERFORM retention.drop_subject(k.kind);
        END LOOP;

        -- 3. Policies the document leaves out.
        FOR p IN SELECT e.key AS pname, e.value AS pol FROM pg_catalog.jsonb_each(before -> 'policies') e
                  WHERE NOT (doc -> 'policies' ? e.key) ORDER BY 1 LOOP
            obj := pg_catalog.format('policy "%s"', p.pname);
            IF (p.pol ->> 'schedule') IS NOT NULL THEN
                PERFORM retention.unschedule(p.pname);
            END IF;
            PERFORM retention.drop_policy(p.pname);
        END LOOP;

        -- 4. Legal holds: placed when the document has one the database
        -- has not (filters compared in the form holds store them); released
        -- only when the document says so.
        IF doc ? 'holds' THEN
            FOR h IN SELECT e AS def FROM pg_catalog.jsonb_array_elements(doc -> 'holds') e LOOP
                obj := pg_catalog.format('hold "%s"', h.def ->> 'reason');
                IF (h.def ->> 'kind') IS NOT NULL AND (h.def ->> 'subject_blind_index') IS NULL THEN
                    RAISE EXCEPTION 'a hold on a kind of data subject needs its subject_blind_index'
                        USING ERRCODE = '22023', HINT = 'A hold on a whole table names only "table" (and "filter").';
                END IF;
                canon := CASE WHEN (h.def ->> 'filter') IS NOT NULL AND (h.def ->> 'table') IS NOT NULL
                              THEN retention._hold_filter((h.def ->> 'table')::regclass, h.def ->> 'filter') END;
                SELECT hl.id INTO hold_id FROM retention.holds hl
                 WHERE hl.released_at IS NULL AND (hl.until IS NULL OR hl.until > pg_catalog.now())
                   AND (h.def ->> 'reason') = hl.reason
                   AND (h.def ->> 'kind') IS NOT DISTINCT FROM hl.kind
                   AND (h.def ->> 'subject_blind_index') IS NOT DISTINCT FROM hl.subject_blind
                   AND (h.def ->> 'table')::regclass IS NOT DISTINCT FROM hl.target
                   AND canon IS NOT DISTINCT FROM hl.filter
                   AND (h.def ->> 'until')::timestamptz IS NOT DISTINCT FROM hl.until
                   AND hl.id <> ALL (wanted)
                 ORDER BY hl.id LIMIT 1;
                IF hold_id IS NULL THEN
                    IF (h.def ->> 'subject_blind_index') IS NOT NULL THEN
                        RAISE EXCEPTION 'a hold on a data subject cannot be placed from its blind index'
                            USING ERRCODE = '22023',
                                  HINT = 'Place it with retention.place_hold(reason, kind, subject_id); the document lists it once it is in force.';
                    END IF;
                    hold_id := retention.place_hold(h.def ->> 'reason', target => (h.def ->> 'table')::regclass,
                                                    filter => h.def ->> 'filter', until => (h.def ->> 'until')::timestamptz);
                END IF;
                wanted := wanted || hold_id;
            END LOOP;
            obj := NULL;
            IF release_unlisted THEN
                FOR h IN SELECT hl.id FROM retention.holds hl
                          WHERE hl.released_at IS NULL AND (hl.until IS NULL OR hl.until > pg_catalog.now())
                            AND hl.id <> ALL (wanted)
                          ORDER BY hl.id LOOP
                    PERFORM retention.release_hold(h.id);
                END LOOP;
            END IF;
        END IF;

        -- 5. The schedule of runs of all policies.
        obj := 'schedule';
        IF (doc ? 'schedule') AND (doc ->> 'schedule') IS DISTINCT FROM (before ->> 'schedule') THEN
            IF (doc ->> 'schedule') IS NULL THEN
                PERFORM retention.unschedule();
            ELSE
                PERFORM retention.schedule(doc ->> 'schedule');
            END IF;
        END IF;

        obj := NULL;
        -- The plan: what differs between the configuration before and
        -- after, and what each created or changed policy finds due now.
        after := retention.export_config();
        WITH RECURSIVE
        leaves(root, name, path, v) AS (
            SELECT 'policy', e.key, ARRAY[]::text[], e.value FROM pg_catalog.jsonb_each(before -> 'policies') e
            UNION ALL
            SELECT 'policy', e.key, ARRAY[]::text[], e.value FROM pg_catalog.jsonb_each(after -> 'policies') e
            UNION ALL
            SELECT l.root, l.name, l.path || c.key, c.value
              FROM leaves l, pg_catalog.jsonb_each(l.v) c WHERE pg_catalog.jsonb_typeof(l.v) = 'object'),
        diff AS (
            SELECT pol.name, pg_catalog.string_agg(pg_catalog.format('%s: %s → %s', pg_catalog.array_to_string(pol.path, '.'),
                       coalesce(b.v::text, 'none'), coalesce(a.v::text, 'none')), '; ' ORDER BY pol.path) AS detail
              FROM (SELECT DISTINCT l.name, l.path FROM leaves l
                     WHERE pg_catalog.jsonb_typeof(l.v) <> 'object' OR l.v = '{}') pol
              LEFT JOIN LATERAL (SELECT before -> 'policies' -> pol.name #> pol.path AS v) b ON true
              LEFT JOIN LATERAL (SELECT after -> 'policies' -> pol.name #> pol.path AS v) a ON true
             WHERE (before -> 'policies') ? pol.name AND (after -> 'policies') ? pol.name
               AND b.v IS DISTINCT FROM a.v
               -- An object that appears or goes shows as its values.
               AND NOT coalesce(pg_catalog.jsonb_typeof(b.v) = 'object' AND b.v <> '{}', false)
               AND NOT coalesce(pg_catalog.jsonb_typeof(a.v) = 'object' AND a.v <> '{}', false)
             GROUP BY pol.name)
        SELECT coalesce(pg_catalog.jsonb_agg(x ORDER BY pg_catalog.array_position(ARRAY['policy', 'policy stage', 'subject kind', 'hold', 'schedule'], x ->> 'o'),
                                                       x ->> 'n', x ->> 'c'), '[]') INTO plan FROM (
            SELECT pg_catalog.jsonb_build_object('c', 'create', 'o', 'policy', 'n', e.key,
                       'd', 'on ' || (e.value ->> 'table')) AS x
              FROM pg_catalog.jsonb_each(after -> 'policies') e WHERE NOT (before -> 'policies' ? e.key)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'drop', 'o', 'policy', 'n', e.key, 'd', 'on ' || (e.value ->> 'table'))
              FROM pg_catalog.jsonb_each(before -> 'policies') e WHERE NOT (after -> 'policies' ? e.key)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'change', 'o', 'policy', 'n', d.name, 'd', d.detail) FROM diff d
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'due now', 'o', 'policy stage', 'n', v.policy || ' ' || v.action,
                       'd', 'cutoff ' || coalesce(pg_catalog.to_char(v.cutoff AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC', 'none')
                            || coalesce('; ' || v.note, ''),
                       'due', v.due_rows, 'due_before', due_before -> (v.policy || '/' || v.action))
              FROM retention.preview() v
             WHERE NOT (before -> 'policies' ? v.policy)
                OR EXISTS (SELECT 1 FROM diff d WHERE d.name = v.policy)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', CASE WHEN NOT (before -> 'subject_kinds' ? e.key) THEN 'create' ELSE 'change' END,
                       'o', 'subject kind', 'n', e.key,
                       'd', (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(e.value -> 'tables')) || ' tables')
              FROM pg_catalog.jsonb_each(after -> 'subject_kinds') e
             WHERE (before -> 'subject_kinds' -> e.key) IS DISTINCT FROM e.value
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'drop', 'o', 'subject kind', 'n', e.key, 'd', NULL)
              FROM pg_catalog.jsonb_each(before -> 'subject_kinds') e WHERE NOT (after -> 'subject_kinds' ? e.key)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'place', 'o', 'hold', 'n', a ->> 'reason', 'd', coalesce(a ->> 'table', a ->> 'kind'))
              FROM pg_catalog.jsonb_array_elements(after -> 'holds') a WHERE NOT (before -> 'holds') @> pg_catalog.jsonb_build_array(a)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'release', 'o', 'hold', 'n', b ->> 'reason', 'd', coalesce(b ->> 'table', b ->> 'kind'))
              FROM pg_catalog.jsonb_array_elements(before -> 'holds') b WHERE NOT (after -> 'holds') @> pg_catalog.jsonb_build_array(b)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'keep', 'o', 'hold', 'n', hl.reason,
                       'd', coalesce(hl.target::regclass::text, hl.kind) || '; not in the document, kept ("release_unlisted_holds": true releases it)')
              FROM retention.holds hl
             WHERE (doc ? 'holds') AND hl.released_at IS NULL AND (hl.until IS NULL OR hl.until > pg_catalog.now())
               AND hl.id <> ALL (wanted)
            UNION ALL
            SELECT pg_catalog.jsonb_build_object('c', 'change', 'o', 'schedule', 'n', 'all policies',
                       'd', coalesce(before ->> 'schedule', 'none') || ' → ' || coalesce(after ->> 'schedule', 'none'))
             WHERE (before -> 'schedule') IS DISTINCT FROM (after -> 'schedule')) s;

        -- A dry run unless dry_run is false (NULL is not a yes).
        IF dry_run IS NOT FALSE THEN
            undone := true;
            RAISE EXCEPTION 'dry run' USING ERRCODE = 'RT001';
        END IF;
    EXCEPTION
        WHEN SQLSTATE 'RT001' THEN
            IF NOT undone THEN
                RAISE;
            END IF;
        WHEN OTHERS THEN
            -- Everything is undone; the error names the object it came from.
            IF obj IS NULL THEN
                RAISE;
            END IF;
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
            IF e_state = '42P01' THEN
                e_hint := 'Tables in the document are schema-qualified, e.g. public.orders.';
            END IF;
            IF e_detail = '' AND e_hint = '' THEN
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state;
            ELSIF e_detail = '' THEN
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state, HINT = e_hint;
            ELSIF e_hint = '' THEN
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state, DETAIL = e_detail;
            ELSE
                RAISE EXCEPTION '%: %', obj, e_msg USING ERRCODE = e_state, DETAIL = e_detail, HINT = e_hint;
            END IF;
    END;

    RETURN QUERY
    SELECT x ->> 'c', x ->> 'o', x ->> 'n', x ->> 'd', (x ->> 'due')::bigint, (x ->> 'due_before')::bigint
      FROM pg_catalog.jsonb_array_elements(plan) x;
END
$fn$;

COMMENT ON FUNCTION retention.apply_config(jsonb, boolean) IS
'Makes the configuration match DOC, a document in the format of retention.export_config(): policies and subject kinds it lists are created or changed, those it leaves out are dropped; holds it lists are placed (holds on subjects only by retention.place_hold), holds it leaves out are kept unless "release_unlisted_holds": true. Every change goes through the public functions, with their checks, rights and SQLSTATEs, in one transaction: an error anywhere changes nothing. Returns the plan, one row per change, and for every created or changed policy the rows each stage finds due now (due_rows) and found due before (due_rows_before). DRY_RUN (the default) returns the plan and changes nothing.';

-- finalize
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

-- 4. Declared expressions under 0.2.0's rules --------------------------------

SELECT retention._revalidate_declared();
