------------------------------------------------------------------------------
-- Preview and run
------------------------------------------------------------------------------

CREATE FUNCTION retention.preview(policy text DEFAULT NULL)
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

CREATE PROCEDURE retention.run(policy text DEFAULT NULL)
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

CREATE FUNCTION retention.schedule(cron text DEFAULT '0 3 * * *', policy text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
RETURN retention._schedule("cron" => $1, "policy_name" => $2);

COMMENT ON FUNCTION retention.schedule(text, text) IS
'Creates (or replaces) the pg_cron job that runs CALL retention.run() in this database on schedule CRON (pg_cron syntax, default 03:00 daily), as the calling role; with POLICY, a job for that policy alone. Needs pg_cron preloaded and installed in this database (cron.database_name). Returns the pg_cron job id.';

CREATE FUNCTION retention.unschedule(policy text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._unschedule("policy_name" => $1);

COMMENT ON FUNCTION retention.unschedule(text) IS
'Removes the pg_cron job created by retention.schedule (for POLICY, if given). Returns true if there was one.';
