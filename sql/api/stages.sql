------------------------------------------------------------------------------
-- Lifecycle stages and masks
------------------------------------------------------------------------------

CREATE FUNCTION retention.add_stage(
    policy       text,
    after        interval,
    action       text,
    column_name  text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE
RETURN retention._add_stage("policy_name" => $1, "after" => $2, "action" => $3, "column_name" => $4);

COMMENT ON FUNCTION retention.add_stage(text, interval, text, text) IS
'Adds a stage to policy POLICY, applied to rows whose clock is older than AFTER. ACTION is ''mark'' (restrict, GDPR Art. 18: sets COLUMN_NAME, a timestamptz or boolean column, to now()/true), ''anonymise'' or ''anonymize'' (applies the masks of retention.set_mask once and records it in COLUMN_NAME) or ''purge'' (deletes; the same as create_policy''s purge_after). One stage per action; ages must increase mark < anonymise < purge. The policy owner needs UPDATE (mark, anonymise) or DELETE (purge) on the table. Returns the policy id.';

CREATE FUNCTION retention.drop_stage(policy text, action text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._drop_stage("policy_name" => $1, "action" => $2);

COMMENT ON FUNCTION retention.drop_stage(text, text) IS
'Removes the stage ACTION (mark, anonymise, purge) from policy POLICY. Rows already marked or anonymised keep their state. Returns true if there was such a stage.';

CREATE FUNCTION retention.set_mask(
    policy       text,
    column_name  text,
    strategy     text,
    options      jsonb DEFAULT '{}'
) RETURNS void
LANGUAGE sql VOLATILE
RETURN retention._set_mask("policy_name" => $1, "column_name" => $2, "strategy" => $3, "options" => $4);

COMMENT ON FUNCTION retention.set_mask(text, text, text, jsonb) IS
'Declares how the anonymise stage of policy POLICY masks COLUMN_NAME: STRATEGY is one of retention.mask_strategies, OPTIONS its settings, e.g. set_mask(''orders_lifecycle'', ''email'', ''email'', ''{"keep_domain": false}''). Validated now against the column''s type. Replaces an earlier mask of the same column.';

CREATE FUNCTION retention.drop_mask(policy text, column_name text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._drop_mask("policy_name" => $1, "column_name" => $2);

COMMENT ON FUNCTION retention.drop_mask(text, text) IS
'Removes the mask of COLUMN_NAME from policy POLICY. Returns true if there was one.';

CREATE FUNCTION retention.restrict(target regclass)
RETURNS text
LANGUAGE sql VOLATILE
RETURN retention._restrict("target" => $1::oid);

COMMENT ON FUNCTION retention.restrict(regclass) IS
'Makes marked rows of TARGET restricted in practice (GDPR Art. 18): a restrictive row-security policy hides them from every role except the table owner, superusers, roles with BYPASSRLS and members of retention_admin, and a trigger refuses UPDATEs of them by anyone except pg_retention''s own stages. Needs a policy with a mark stage on TARGET; the caller must own the table.';

CREATE FUNCTION retention.unrestrict(target regclass)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._unrestrict("target" => $1::oid);

COMMENT ON FUNCTION retention.unrestrict(regclass) IS
'Removes what retention.restrict installed on TARGET. Returns true if the table was restricted.';

COMMENT ON FUNCTION retention.refuse_restricted_update() IS
'Trigger function installed by retention.restrict: refuses UPDATEs of rows whose marker column (the trigger argument) is set, except by pg_retention''s stages.';

CREATE FUNCTION retention.touch()
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
