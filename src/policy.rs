//! Retention policies: declaring, changing, pausing and dropping them.
//!
//! Everything a policy stores that later becomes SQL is validated here, when
//! it is declared: the target must be a table the declaring role may read and
//! delete from, the clock and filter must each be one expression of the right
//! type over that table. Nothing is written unless every check passed.

use crate::error::{raise, OrRaise};
use crate::expr::{self, Role};
use crate::pg::ident;
use crate::pg::security;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pub use crate::model::policy::{load, load_by_id, load_one, Policy};

fn check_name(name: &str) {
    let len = name.chars().count();
    if len == 0 || len > 63 || name.chars().any(|c| c.is_control()) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            "invalid policy name",
            "A policy name has 1 to 63 characters and no control characters.",
        )
    }
}

fn interval_positive(iv: Interval) -> bool {
    Spi::get_one_with_args::<bool>("SELECT $1 > interval '0'", &[iv.into()])
        .or_raise("comparing an interval")
        .unwrap_or(false)
}

fn interval_not_negative(iv: Interval) -> bool {
    Spi::get_one_with_args::<bool>("SELECT $1 >= interval '0'", &[iv.into()])
        .or_raise("comparing an interval")
        .unwrap_or(false)
}

/// Checks a stage age: positive, and leaving a representable cutoff.
pub fn check_age(word: &str, iv: Interval) -> Interval {
    match iv {
        iv if !interval_positive(iv) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{word} must be a positive interval"),
            "Give the age at which the stage applies, e.g. interval '2 years'.",
        ),
        iv => {
            // The cutoff now() - purge_after must be a valid timestamp
            // (raises "timestamp out of range" otherwise).
            Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.now() - $1 IS NOT NULL",
                &[iv.into()],
            )
            .or_raise("checking a stage age");
            iv
        }
    }
}

fn check_batch_size(n: i32) {
    if n <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "batch_size must be positive",
            "batch_size caps the rows of one batch (default 100000); batch_target sizes batches by time.",
        )
    }
}

fn check_batch_target(iv: Interval) {
    let ok = Spi::get_one_with_args::<bool>(
        "SELECT $1 BETWEEN interval '1 millisecond' AND interval '10 seconds'",
        &[iv.into()],
    )
    .or_raise("checking batch_target")
    .unwrap_or(false);
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "batch_target must lie between 1 millisecond and 10 seconds",
            "The default, interval '100 milliseconds', keeps each batch's locks and WAL small; give NULL (no_batch_target in alter_policy) for batches of batch_size rows.",
        )
    }
}

fn check_max_due_fraction(f: f32) {
    if !(f > 0.0 && f <= 1.0) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_due_fraction must lie above 0 and at most 1",
            "It is the largest share of the table one run may find due for purge or anonymisation, e.g. 0.1 for 10%.",
        )
    }
}

/// vacuum_after needs pg_cron in this database (checked when set; a run
/// that cannot schedule the VACUUM says why in the run log).
fn check_vacuum_after() {
    crate::schedule::require_pg_cron();
}

fn check_limits(
    lock_timeout: Option<Interval>,
    statement_timeout: Option<Interval>,
    max_run_time: Option<Interval>,
    max_rows_per_second: Option<i32>,
) {
    for (word, iv) in [
        ("lock_timeout", lock_timeout),
        ("statement_timeout", statement_timeout),
        ("max_run_time", max_run_time),
    ] {
        if let Some(iv) = iv {
            if !interval_positive(iv) {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("{word} must be a positive interval"),
                    "e.g. interval '2 seconds' for lock_timeout, interval '1 hour' for max_run_time.",
                )
            }
        }
    }
    if max_rows_per_second.is_some_and(|n| n <= 0) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_rows_per_second must be positive",
            "Leave it NULL for no rate limit.",
        )
    }
}

/// A purge stage may not come before the statutory minimum.
fn check_minimum(purge_after: Option<Interval>, min: Option<Interval>, ground: Option<&str>) {
    if min.is_some() && ground.map(|g| g.trim().is_empty()).unwrap_or(true) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a statutory minimum needs its legal ground",
            "e.g. min_retention => interval '10 years', min_retention_ground => 'HGB §257, AO §147'",
        )
    }
    if let (Some(purge), Some(min)) = (purge_after, min) {
        let early = Spi::get_one_with_args::<bool>("SELECT $1 < $2", &[purge.into(), min.into()])
            .or_raise("comparing intervals")
            .unwrap_or(false);
        if early {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("purge_after is shorter than the statutory minimum ({})", ground.unwrap_or("")),
                "Rows under a statutory minimum must not be deleted before it ends: purge at or after min_retention.",
            )
        }
    }
}

/// Checks a new purge age against a policy's stored minimum.
pub fn check_stored_minimum(policy_id: i64, purge_after: Interval) {
    let (min, ground) = Spi::get_two_with_args::<Interval, String>(
        "SELECT min_retention, min_retention_ground FROM retention.policies WHERE id = $1",
        &[policy_id.into()],
    )
    .or_raise("reading the statutory minimum");
    if min.is_some() {
        check_minimum(Some(purge_after), min, ground.as_deref());
    }
}

fn check_archive_schema(schema: &str) {
    let ok = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_schema_privilege(current_user, n.oid, 'CREATE')
           FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
        &[schema.into()],
    )
    .or_raise("checking the archive schema");
    match ok {
        None => raise(
            PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
            format!("schema \"{schema}\" does not exist"),
            "Create the archive schema first, e.g. CREATE SCHEMA archive.",
        ),
        Some(false) => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: CREATE on schema \"{schema}\" is required to archive partitions there"),
            "Detached partitions are moved into the archive schema with the policy owner's rights.",
        ),
        Some(true) => {}
    }
}

fn check_batch_pause(iv: Interval) {
    if !interval_not_negative(iv) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "batch_pause must not be negative",
            "Give the pause between two batches, e.g. interval '100 milliseconds', or interval '0'.",
        )
    }
}

/// Checks the target and returns its quoted, qualified name.
pub fn check_target(target: pg_sys::Oid) -> String {
    let Some(name) = ident::relation(target) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", target.to_u32()),
            "Name the target table, e.g. 'public.orders'.",
        )
    };
    match ident::relkind(target) {
        Some(b'r') | Some(b'p') => {}
        _ => raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{name} is not a table"),
            "A retention policy governs an ordinary or partitioned table, not a view, sequence or foreign table.",
        ),
    }
    let schema = Spi::get_one_with_args::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[target.into()],
    )
    .or_raise("reading the target's schema")
    .unwrap_or_default();
    if schema == "pg_catalog"
        || schema == "information_schema"
        || schema == "retention"
        || schema.starts_with("pg_toast")
    {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{name} is a system or pg_retention table"),
            "Retention policies govern application tables only.",
        )
    }
    name
}

/// Checks that the calling role holds `privilege` on the target.
pub fn check_privilege(target: pg_sys::Oid, name: &str, privilege: &str, why: &str) {
    let ok = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_table_privilege(current_user, $1::oid, $2)",
        &[target.into(), privilege.into()],
    )
    .or_raise("checking table privileges")
    .unwrap_or(false);
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: {privilege} on {name} is required {why}"),
            format!("The policy's actions run with its owner's rights: GRANT {privilege} ON {name} TO the declaring role."),
        )
    }
}

/// The key the engine batches by: the primary key, else the narrowest unique
/// index over NOT NULL columns without predicate or expressions; `None` when
/// the table has neither (batches then use physical row ids).
fn batch_key(target: pg_sys::Oid) -> Option<Vec<String>> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT (SELECT cols FROM (
             SELECT i.indisprimary, i.indnkeyatts, i.indexrelid,
                    array_agg(a.attname::text ORDER BY k.n) AS cols,
                    bool_and(a.attnotnull) AS not_null
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indimmediate
                AND i.indpred IS NULL AND i.indexprs IS NULL AND k.n <= i.indnkeyatts
              GROUP BY i.indisprimary, i.indnkeyatts, i.indexrelid) c
          WHERE indisprimary OR not_null
          ORDER BY indisprimary DESC, indnkeyatts, indexrelid
          LIMIT 1)",
        &[target.into()],
    )
    .or_raise("finding the target's key")
}

/// Validates a clock; returns its type and canonical text (see
/// `expr::analyse`: names outside pg_catalog must be schema-qualified).
pub fn check_clock(clock: &str, table: &str) -> (pg_sys::Oid, String) {
    let checked = expr::analyse(Role::Clock, clock, table);
    let ty = checked.ty;
    if !expr::is_clock_type(ty) {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("clock must be of type timestamptz, timestamp or date, not {}", type_name(ty)),
            "Cast it if it holds a point in time, e.g. to_timestamp(epoch_seconds), or name another column.",
        )
    }
    (ty, checked.canonical)
}

/// Validates a filter; returns its canonical text.
pub fn check_filter(filter: &str, table: &str) -> String {
    let checked = expr::analyse(Role::Filter, filter, table);
    if checked.ty != pg_sys::BOOLOID {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "filter must be a boolean expression, not {}",
                type_name(checked.ty)
            ),
            "Write a condition, e.g. status = 'closed'.",
        )
    }
    checked.canonical
}

pub fn type_name(ty: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT pg_catalog.format_type($1, NULL)", &[ty.into()])
        .or_raise("naming a type")
        .unwrap_or_else(|| "unknown".into())
}

/// A period as an ISO 8601 duration (`P10Y`), whatever the session's
/// IntervalStyle.
pub fn iso_period(iv: Interval) -> String {
    crate::gucs::with_local("IntervalStyle", "iso_8601", || {
        Spi::get_one_with_args::<String>("SELECT $1::text", &[iv.into()])
            .or_raise("formatting a period")
            .unwrap_or_default()
    })
}

fn name_taken(name: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM retention.policies WHERE name = $1)",
        &[name.into()],
    )
    .or_raise("checking policy names")
    .unwrap_or(false)
}

fn refuse_duplicate(name: &str) {
    if name_taken(name) {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("retention policy \"{name}\" already exists"),
            "Choose another name, or change the existing policy with retention.alter_policy.",
        )
    }
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(name = "_create_policy")]
fn create_policy(
    name: &str,
    target: pg_sys::Oid,
    clock: &str,
    purge_after: Option<Interval>,
    filter: Option<&str>,
    batch_size: i32,
    batch_pause: Interval,
    skip_locked: bool,
    purpose: Option<&str>,
    legal_basis: Option<&str>,
    lock_timeout: Interval,
    statement_timeout: Interval,
    max_run_time: Option<Interval>,
    max_rows_per_second: Option<i32>,
    drop_partitions: bool,
    archive_schema: Option<&str>,
    min_retention: Option<Interval>,
    min_retention_ground: Option<&str>,
    batch_target: Option<Interval>,
    vacuum_after: bool,
    max_due_fraction: Option<f32>,
) -> i64 {
    security::require_admin("declare retention policies");
    check_name(name);
    refuse_duplicate(name);
    let table = check_target(target);
    check_privilege(target, &table, "SELECT", "to declare a policy on it");
    if purge_after.is_some() {
        check_privilege(target, &table, "DELETE", "to declare a purge policy on it");
    }
    if skip_locked {
        check_privilege(
            target,
            &table,
            "UPDATE",
            "to skip rows locked by other sessions (FOR UPDATE SKIP LOCKED); declare the policy with skip_locked => false otherwise",
        );
    }
    let (clock_type, clock) = check_clock(clock, &table);
    let clock = clock.as_str();
    let filter = filter.map(|f| check_filter(f, &table));
    let filter = filter.as_deref();
    let purge_after = purge_after.map(|iv| check_age("purge_after", iv));
    check_minimum(purge_after, min_retention, min_retention_ground);
    check_batch_size(batch_size);
    check_batch_pause(batch_pause);
    if let Some(iv) = batch_target {
        check_batch_target(iv);
    }
    if vacuum_after {
        check_vacuum_after();
    }
    if let Some(f) = max_due_fraction {
        check_max_due_fraction(f);
    }
    check_limits(
        Some(lock_timeout),
        Some(statement_timeout),
        max_run_time,
        max_rows_per_second,
    );
    if let Some(schema) = archive_schema {
        check_archive_schema(schema);
    }
    // Without a key, batches find rows by partition and row id: every
    // partition must have row ids of its own (a foreign table's are not).
    let key = batch_key(target);
    if key.is_none() {
        let foreign = Spi::get_one_with_args::<String>(
            "SELECT (SELECT t.relid::regclass::text FROM pg_catalog.pg_partition_tree($1::oid::regclass) t
                       JOIN pg_catalog.pg_class c ON c.oid = t.relid
                      WHERE c.relkind = 'f' ORDER BY 1 LIMIT 1)",
            &[target.into()],
        )
        .or_raise("reading partitions");
        if let Some(f) = foreign {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{table} has no primary key and its partition {f} is a foreign table"),
                "Batches of a table without a key find rows by row id, which a foreign table does not have: add a primary key.",
            )
        }
    }
    let owner = security::current_role();
    crate::model::refs::notice_references(name, target);
    security::as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO retention.policies
                 (name, target, key_columns, clock, clock_type, filter, purge_after,
                  batch_size, batch_pause, skip_locked, purpose, legal_basis, owner,
                  lock_timeout, statement_timeout, max_run_time, max_rows_per_second,
                  drop_partitions, archive_schema, min_retention, min_retention_ground,
                  batch_target, vacuum_after, max_due_fraction)
             VALUES ($1, $2::oid::regclass, $3, $4, $5::oid::regtype, $6, $7, $8, $9, $10, $11, $12, $13::oid::regrole,
                     $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
             RETURNING id",
            &[
                name.into(),
                target.into(),
                key.into(),
                clock.into(),
                clock_type.into(),
                filter.into(),
                purge_after.into(),
                batch_size.into(),
                batch_pause.into(),
                skip_locked.into(),
                purpose.into(),
                legal_basis.into(),
                owner.into(),
                lock_timeout.into(),
                statement_timeout.into(),
                max_run_time.into(),
                max_rows_per_second.into(),
                drop_partitions.into(),
                archive_schema.into(),
                min_retention.into(),
                min_retention_ground.into(),
                batch_target.into(),
                vacuum_after.into(),
                max_due_fraction.into(),
            ],
        )
        .or_raise("storing the policy")
        .unwrap_or_default()
    })
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(name = "_alter_policy")]
fn alter_policy(
    name: &str,
    new_name: Option<&str>,
    clock: Option<&str>,
    purge_after: Option<Interval>,
    filter: Option<&str>,
    drop_filter: bool,
    batch_size: Option<i32>,
    batch_pause: Option<Interval>,
    skip_locked: Option<bool>,
    purpose: Option<&str>,
    legal_basis: Option<&str>,
    lock_timeout: Option<Interval>,
    statement_timeout: Option<Interval>,
    max_run_time: Option<Interval>,
    max_rows_per_second: Option<i32>,
    no_max_run_time: bool,
    no_rate_limit: bool,
    drop_partitions: Option<bool>,
    archive_schema: Option<&str>,
    no_archive: bool,
    batch_target: Option<Interval>,
    no_batch_target: bool,
    vacuum_after: Option<bool>,
    max_due_fraction: Option<f32>,
    no_max_due_fraction: bool,
    min_retention: Option<Interval>,
    min_retention_ground: Option<&str>,
    no_min_retention: bool,
) -> i64 {
    let p = load_one(name);
    security::require_policy_control(name, p.owner);
    if let Some(n) = new_name {
        check_name(n);
        if n != name {
            refuse_duplicate(n);
        }
    }
    if filter.is_some() && drop_filter {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "filter and drop_filter cannot be given together",
            "Give a new filter, or drop_filter => true to govern every row.",
        )
    }
    let table = check_target(p.target);
    let checked_clock = clock.map(|c| check_clock(c, &table));
    let clock_type = checked_clock.as_ref().map(|c| c.0);
    let clock = checked_clock.as_ref().map(|c| c.1.as_str());
    let filter = filter.map(|f| check_filter(f, &table));
    let filter = filter.as_deref();
    if let Some(iv) = purge_after {
        check_age("purge_after", iv);
        if !p.purge {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("policy \"{name}\" has no purge stage"),
                "Add one with retention.add_stage(policy, after, 'purge').",
            )
        }
        crate::stage::check_order(p.id, crate::model::policy::Stage::Purge, iv);
    }
    if (min_retention.is_some() || min_retention_ground.is_some()) && no_min_retention {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "min_retention and no_min_retention cannot be given together",
            "Give a min_retention (with its ground), or no_min_retention => true to remove the statutory minimum.",
        )
    }
    // The statutory minimum as it will be, checked against the purge age
    // as it will be.
    let (stored_purge, stored_min, stored_ground) =
        Spi::get_three_with_args::<Interval, Interval, String>(
            "SELECT purge_after, min_retention, min_retention_ground FROM retention.policies WHERE id = $1",
            &[p.id.into()],
        )
        .or_raise("reading the statutory minimum");
    let minimum_changes = (no_min_retention && stored_min.is_some())
        || min_retention.is_some_and(|m| Some(m) != stored_min)
        || min_retention_ground.is_some_and(|g| Some(g) != stored_ground.as_deref());
    let (new_min, new_ground) = if no_min_retention {
        (None, None)
    } else {
        (
            min_retention.or(stored_min),
            min_retention_ground
                .map(str::to_string)
                .or(stored_ground.clone()),
        )
    };
    if min_retention_ground.is_some() && new_min.is_none() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "min_retention_ground needs a min_retention",
            "Give the statutory minimum with its ground, e.g. min_retention => interval '10 years'.",
        )
    }
    if let Some(m) = min_retention {
        check_age("min_retention", m);
    }
    check_minimum(purge_after.or(stored_purge), new_min, new_ground.as_deref());
    if let Some(n) = batch_size {
        check_batch_size(n);
    }
    if let Some(iv) = batch_pause {
        check_batch_pause(iv);
    }
    if batch_target.is_some() && no_batch_target {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "batch_target and no_batch_target cannot be given together",
            "Give a batch_target, or no_batch_target => true for batches of batch_size rows.",
        )
    }
    if let Some(iv) = batch_target {
        check_batch_target(iv);
    }
    if vacuum_after == Some(true) {
        check_vacuum_after();
    }
    if max_due_fraction.is_some() && no_max_due_fraction {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_due_fraction and no_max_due_fraction cannot be given together",
            "Give a max_due_fraction, or no_max_due_fraction => true to remove the cap.",
        )
    }
    if let Some(f) = max_due_fraction {
        check_max_due_fraction(f);
    }
    check_limits(
        lock_timeout,
        statement_timeout,
        max_run_time,
        max_rows_per_second,
    );
    if let Some(schema) = archive_schema {
        check_archive_schema(schema);
    }
    if skip_locked == Some(true) && !p.skip_locked {
        check_privilege(
            p.target,
            &table,
            "UPDATE",
            "to skip rows locked by other sessions (FOR UPDATE SKIP LOCKED)",
        );
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET
                 name        = coalesce($2, name),
                 clock       = coalesce($3, clock),
                 clock_type  = coalesce($4::oid::regtype, clock_type),
                 purge_after = coalesce($5, purge_after),
                 filter      = CASE WHEN $7 THEN NULL ELSE coalesce($6, filter) END,
                 batch_size  = coalesce($8, batch_size),
                 batch_pause = coalesce($9, batch_pause),
                 skip_locked = coalesce($10, skip_locked),
                 purpose     = coalesce($11, purpose),
                 legal_basis = coalesce($12, legal_basis),
                 lock_timeout = coalesce($13, lock_timeout),
                 statement_timeout = coalesce($14, statement_timeout),
                 max_run_time = CASE WHEN $17 THEN NULL ELSE coalesce($15, max_run_time) END,
                 max_rows_per_second = CASE WHEN $18 THEN NULL ELSE coalesce($16, max_rows_per_second) END,
                 drop_partitions = coalesce($19, drop_partitions),
                 archive_schema = CASE WHEN $21 THEN NULL ELSE coalesce($20, archive_schema) END,
                 batch_target = CASE WHEN $23 THEN NULL ELSE coalesce($22, batch_target) END,
                 vacuum_after = coalesce($24, vacuum_after),
                 max_due_fraction = CASE WHEN $26 THEN NULL ELSE coalesce($25, max_due_fraction) END,
                 min_retention = $27,
                 min_retention_ground = $28,
                 updated_at  = pg_catalog.now()
             WHERE id = $1",
            &[
                p.id.into(),
                new_name.into(),
                clock.into(),
                clock_type.into(),
                purge_after.into(),
                filter.into(),
                drop_filter.into(),
                batch_size.into(),
                batch_pause.into(),
                skip_locked.into(),
                purpose.into(),
                legal_basis.into(),
                lock_timeout.into(),
                statement_timeout.into(),
                max_run_time.into(),
                max_rows_per_second.into(),
                no_max_run_time.into(),
                no_rate_limit.into(),
                drop_partitions.into(),
                archive_schema.into(),
                no_archive.into(),
                batch_target.into(),
                no_batch_target.into(),
                vacuum_after.into(),
                max_due_fraction.into(),
                no_max_due_fraction.into(),
                new_min.into(),
                new_ground.clone().into(),
            ],
        )
        .or_raise("changing the policy")
    });
    if minimum_changes {
        // A statutory minimum decides what may be deleted: every change of
        // it is on record.
        crate::audit::append(
            "policy minimum changed",
            serde_json::json!({
                "policy": new_name.unwrap_or(name),
                "min_retention": new_min.map(iso_period),
                "ground": new_ground,
            }),
        );
    }
    p.id
}

#[pg_extern(name = "_drop_policy")]
fn drop_policy(name: &str, if_exists: bool) -> bool {
    let Some(p) = load(Some(name)).into_iter().next() else {
        if if_exists {
            pgrx::notice!("retention policy \"{name}\" does not exist, skipping");
            return false;
        }
        load_one(name);
        return false;
    };
    security::require_policy_control(name, p.owner);
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM retention.policies WHERE id = $1",
            &[p.id.into()],
        )
        .or_raise("dropping the policy")
    });
    true
}

/// Lets the next run of a policy that its safety cap stopped go ahead.
#[pg_extern(name = "_acknowledge")]
fn acknowledge(name: &str) -> bool {
    let p = load_one(name);
    security::require_policy_control(name, p.owner);
    if !p.cap_stopped {
        pgrx::notice!("retention policy \"{name}\" is not stopped by max_due_fraction; nothing to acknowledge");
        return false;
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET cap_acknowledged_at = pg_catalog.clock_timestamp() WHERE id = $1",
            &[p.id.into()],
        )
        .or_raise("acknowledging the policy")
    });
    crate::audit::append(
        "policy cap acknowledged",
        serde_json::json!({"policy": name, "max_due_fraction": p.max_due_fraction}),
    );
    true
}

#[pg_extern(name = "_set_paused")]
fn set_paused(name: &str, paused: bool) -> bool {
    let p = load_one(name);
    security::require_policy_control(name, p.owner);
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET paused = $2, updated_at = pg_catalog.now() WHERE id = $1",
            &[p.id.into(), paused.into()],
        )
        .or_raise("pausing or resuming the policy")
    });
    p.paused != paused
}
