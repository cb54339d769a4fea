//! Lifecycle stages (mark → anonymise → purge): declaring and dropping them,
//! and the SQL that records a row's stage.
//!
//! A policy's stages are columns of `retention.policies` (one stage per
//! action), validated here against the target table when declared. The
//! masks of the anonymise stage are in `masks`; restriction (GDPR Art. 18)
//! of marked rows is in `restrict`.

mod masks;
mod restrict;

pub use masks::{mask_plan, stage_keys};

use crate::error::{raise, OrRaise};
use crate::model::policy::{Stage, StateColumn};
use crate::pg::ident;
use crate::pg::security;
use crate::policy;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::Cell;

thread_local! {
    /// Set while the engine's own mark or anonymise statement runs, so that
    /// the restriction trigger lets it through.
    static STAGE_ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as a stage statement (see `STAGE_ACTIVE`), with the setting
/// `retention.stage_write` on, so that triggers can tell pg_retention's own
/// writes from the application's (`retention.touch()` does: the extension's
/// stages never move a clock).
pub fn as_stage<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STAGE_ACTIVE.with(|s| s.set(false));
        }
    }
    STAGE_ACTIVE.with(|s| s.set(true));
    let _reset = Reset;
    security::with_settings_as(
        pg_sys::GucContext::PGC_INTERNAL,
        &[("retention.stage_write", "on")],
        f,
    )
}

/// Whether a pg_retention stage statement is running in this backend.
pub fn stage_is_active() -> bool {
    STAGE_ACTIVE.with(|s| s.get())
}

/// The stage an action names; `anonymize` is accepted for `anonymise`.
pub fn action_name(action: &str) -> Stage {
    match Stage::parse(action.trim().to_ascii_lowercase().as_str()) {
        Some(stage) => stage,
        None => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "unknown stage action \"{}\"",
                action.chars().take(40).collect::<String>()
            ),
            "The actions are 'mark', 'anonymise' (or 'anonymize') and 'purge'.",
        ),
    }
}

/// Checks that the policy's stage ages increase mark < anonymise < purge
/// once `action` gets `age`.
pub fn check_order(policy_id: i64, stage: Stage, age: Interval) {
    let action = stage.as_str();
    let ok = Spi::get_one_with_args::<bool>(
        "SELECT (m IS NULL OR a IS NULL OR m < a) AND (a IS NULL OR pu IS NULL OR a < pu)
                AND (m IS NULL OR pu IS NULL OR m < pu)
           FROM (SELECT CASE WHEN $2 = 'mark' THEN $3 ELSE mark_after END AS m,
                        CASE WHEN $2 = 'anonymise' THEN $3 ELSE anonymise_after END AS a,
                        CASE WHEN $2 = 'purge' THEN $3 ELSE purge_after END AS pu
                   FROM retention.policies WHERE id = $1) s",
        &[policy_id.into(), action.into(), age.into()],
    )
    .or_raise("checking stage order")
    .unwrap_or(false);
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the {action} stage at this age breaks the stage order"),
            "Stage ages must increase: mark < anonymise < purge (e.g. 30 days, 2 years, 10 years).",
        )
    }
}

/// A column of the target: its type and whether it may be NULL.
pub(super) struct Column {
    ty: pg_sys::Oid,
    typmod: i32,
    not_null: bool,
    type_name: String,
}

pub(super) fn column(target: pg_sys::Oid, table: &str, name: &str) -> Column {
    let row =
        Spi::connect(|c| {
            c.select(
            "SELECT atttypid, atttypmod, attnotnull, pg_catalog.format_type(atttypid, atttypmod)
               FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            None,
            &[target.into(), name.into()],
        )
        .or_raise("reading a column")
        .next()
        .map(|r| Column {
            ty: r.get::<pg_sys::Oid>(1).or_raise("reading a column").unwrap_or(pg_sys::InvalidOid),
            typmod: r.get::<i32>(2).or_raise("reading a column").unwrap_or(-1),
            not_null: r.get::<bool>(3).or_raise("reading a column").unwrap_or(false),
            type_name: r.get::<String>(4).or_raise("reading a column").unwrap_or_default(),
        })
        });
    row.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{name}\" of {table} does not exist"),
            "Name an existing column of the policy's target table.",
        )
    })
}

/// Checks a marker or tracking column: timestamptz (NULL = not yet) or
/// boolean (NULL/false = not yet).
fn check_state_column(target: pg_sys::Oid, table: &str, name: &str, what: &str) -> pg_sys::Oid {
    let col = column(target, table, name);
    if col.ty == pg_sys::TIMESTAMPTZOID {
        if col.not_null {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_COLUMN_DEFINITION,
                format!("{what} column \"{name}\" must allow NULL"),
                "NULL means the stage has not been applied yet: ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL.",
            )
        }
    } else if col.ty != pg_sys::BOOLOID {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "{what} column \"{name}\" must be of type timestamptz or boolean, not {}",
                col.type_name
            ),
            format!("Add one, e.g. ALTER TABLE {table} ADD COLUMN {name} timestamptz."),
        )
    }
    col.ty
}

#[pg_extern(name = "_add_stage")]
fn add_stage(
    policy_name: &str,
    after: Option<Interval>,
    action: &str,
    column_name: Option<&str>,
) -> i64 {
    let p = policy::load_one(policy_name);
    security::require_policy_control(policy_name, p.owner);
    let action = action_name(action);
    let Some(after) = after else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "after must not be NULL",
            "Give the age at which the stage applies, e.g. interval '30 days'.",
        )
    };
    let after = policy::check_age("after", after);
    let stage = action;
    let action = stage.as_str();
    if p.has(stage) {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("policy \"{policy_name}\" already has a {action} stage"),
            "A policy has one stage per action; drop it first with retention.drop_stage(policy, action).",
        )
    }
    check_order(p.id, stage, after);
    if stage == Stage::Purge {
        policy::check_stored_minimum(p.id, after);
    }
    let table = policy::check_target(p.target);
    let owner_check = |privilege: &str, why: &str| {
        let ok = Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.has_table_privilege($1::oid, $2::oid, $3)",
            &[p.owner.into(), p.target.into(), privilege.into()],
        )
        .or_raise("checking table privileges")
        .unwrap_or(false);
        if !ok {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied: the policy owner needs {privilege} on {table} {why}"),
                format!("Stages run with the policy owner's rights: GRANT {privilege} ON {table} TO {}.", security::role_name(p.owner)),
            )
        }
    };
    let (column, column_type) = match stage {
        Stage::Purge => {
            if column_name.is_some() {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    "the purge stage takes no column",
                    "Leave column_name out for 'purge'.",
                )
            }
            owner_check("DELETE", "for a purge stage");
            (None, None)
        }
        _ => {
            let what = if stage == Stage::Mark {
                "marker"
            } else {
                "anonymised"
            };
            let Some(col) = column_name else {
                raise(
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("the {action} stage needs a column"),
                    format!(
                        "Name a timestamptz or boolean column that records the {action} stage, e.g. column_name => '{}'.",
                        if stage == Stage::Mark { "restricted_at" } else { "anonymised_at" }
                    ),
                )
            };
            let ty = check_state_column(p.target, &table, col, what);
            if p.key_columns
                .as_ref()
                .is_some_and(|k| k.iter().any(|c| c == col))
            {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("column \"{col}\" is part of the table's key"),
                    "Use a separate column to record the stage.",
                )
            }
            owner_check("UPDATE", &format!("for a {action} stage"));
            if let Some(note) = clock_trigger_note(p.target, &table) {
                pgrx::notice!("policy \"{policy_name}\": {note}");
            }
            (Some(col.to_string()), Some(ty))
        }
    };
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET
                 mark_after        = CASE WHEN $2 = 'mark' THEN $3 ELSE mark_after END,
                 marker_column     = CASE WHEN $2 = 'mark' THEN $4 ELSE marker_column END,
                 marker_type       = CASE WHEN $2 = 'mark' THEN $5::oid::regtype ELSE marker_type END,
                 anonymise_after   = CASE WHEN $2 = 'anonymise' THEN $3 ELSE anonymise_after END,
                 anonymised_column = CASE WHEN $2 = 'anonymise' THEN $4 ELSE anonymised_column END,
                 anonymised_type   = CASE WHEN $2 = 'anonymise' THEN $5::oid::regtype ELSE anonymised_type END,
                 purge_after       = CASE WHEN $2 = 'purge' THEN $3 ELSE purge_after END,
                 updated_at        = pg_catalog.now()
             WHERE id = $1",
            &[p.id.into(), action.into(), after.into(), column.into(), column_type.into()],
        )
        .or_raise("adding the stage")
    });
    p.id
}

#[pg_extern(name = "_drop_stage")]
fn drop_stage(policy_name: &str, action: &str) -> bool {
    let p = policy::load_one(policy_name);
    security::require_policy_control(policy_name, p.owner);
    let stage = action_name(action);
    let action = stage.as_str();
    if !p.has(stage) {
        return false;
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET
                 mark_after        = CASE WHEN $2 = 'mark' THEN NULL ELSE mark_after END,
                 marker_column     = CASE WHEN $2 = 'mark' THEN NULL ELSE marker_column END,
                 marker_type       = CASE WHEN $2 = 'mark' THEN NULL ELSE marker_type END,
                 anonymise_after   = CASE WHEN $2 = 'anonymise' THEN NULL ELSE anonymise_after END,
                 anonymised_column = CASE WHEN $2 = 'anonymise' THEN NULL ELSE anonymised_column END,
                 anonymised_type   = CASE WHEN $2 = 'anonymise' THEN NULL ELSE anonymised_type END,
                 purge_after       = CASE WHEN $2 = 'purge' THEN NULL ELSE purge_after END,
                 updated_at        = pg_catalog.now()
             WHERE id = $1",
            &[p.id.into(), action.into()],
        )
        .or_raise("dropping the stage")
    });
    true
}

/// The application's own row-level BEFORE UPDATE triggers on `target` that
/// do not tell pg_retention's stage writes apart (their definition does not
/// mention `retention.stage_write`): if one of them resets the clock column
/// (a `last_update` maintained by the application), every mark or anonymise
/// stage restarts the row's retention period and the purge stage never
/// comes. Returns a note naming them, or None.
pub fn clock_trigger_note(target: pg_sys::Oid, table: &str) -> Option<String> {
    let names: Vec<String> = Spi::connect(|c| {
        c.select(
            "SELECT t.tgname::text FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D'
                AND (t.tgtype::int & 19) = 19
                AND t.tgfoid NOT IN ('retention.touch()'::pg_catalog.regprocedure,
                                     'retention.refuse_restricted_update()'::pg_catalog.regprocedure)
                AND pg_catalog.strpos(pg_catalog.pg_get_triggerdef(t.oid), 'retention.stage_write') = 0
              ORDER BY 1",
            None,
            &[target.into()],
        )
        .or_raise("reading triggers")
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
    });
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "BEFORE UPDATE trigger(s) {} on {table} also fire for the mark and anonymise stages' updates; if one sets the clock column, those stages restart the retention period and the purge stage never comes: add WHEN (current_setting('retention.stage_write', true) IS DISTINCT FROM 'on') to it",
        names.iter().map(|n| ident::quote(n)).collect::<Vec<_>>().join(", ")
    ))
}

/// `marker IS NULL` / `marker IS NOT TRUE`: the row is not restricted.
pub(super) fn not_marked(col: &str, ty: pg_sys::Oid) -> String {
    if ty == pg_sys::BOOLOID {
        format!("{} IS NOT TRUE", ident::quote(col))
    } else {
        format!("{} IS NULL", ident::quote(col))
    }
}

/// The due condition of a stage without its cutoff: rows not yet in the
/// stage's state.
pub fn pending_condition(state: &StateColumn) -> String {
    not_marked(&state.column, state.ty)
}

/// The value that records a stage on a row.
pub fn state_value(state: &StateColumn) -> String {
    if state.ty == pg_sys::BOOLOID {
        format!("{} = true", ident::quote(&state.column))
    } else {
        format!("{} = pg_catalog.now()", ident::quote(&state.column))
    }
}
