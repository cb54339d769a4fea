------------------------------------------------------------------------------
-- Policies
------------------------------------------------------------------------------

CREATE FUNCTION retention.create_policy(
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

CREATE FUNCTION retention.alter_policy(
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

CREATE FUNCTION retention.drop_policy(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._drop_policy("name" => $1, "if_exists" => $2);

COMMENT ON FUNCTION retention.drop_policy(text, boolean) IS
'Removes policy NAME; its run history stays in retention.runs. Returns true if a policy was dropped.';

CREATE FUNCTION retention.acknowledge(policy text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._acknowledge("name" => $1);

COMMENT ON FUNCTION retention.acknowledge(text) IS
'Lets the next run of POLICY go ahead although its safety cap (max_due_fraction) stopped it: for when the share of due rows is intended. Recorded in the audit log. Only the owner (or a member of the owner role) may acknowledge. Returns false (with a NOTICE) when the policy is not stopped.';

CREATE FUNCTION retention.pause_policy(name text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._set_paused("name" => $1, "paused" => true);

COMMENT ON FUNCTION retention.pause_policy(text) IS
'Pauses policy NAME: runs skip it (a run in progress stops before its next batch) until resume_policy. Returns true if the state changed.';

CREATE FUNCTION retention.resume_policy(name text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN retention._set_paused("name" => $1, "paused" => false);

COMMENT ON FUNCTION retention.resume_policy(text) IS
'Resumes a paused policy. Returns true if the state changed.';
