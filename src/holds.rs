//! Placing and releasing legal holds (the rules of what a hold keeps are
//! in `model::hold`).

use crate::audit;
use crate::error::{raise, OrRaise};
use crate::model::subject::{blind, load_kind};
use crate::pg::security;
use crate::policy;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::json;

/// A hold's filter on table `table`, validated and in the canonical form
/// it is stored in.
fn canonical(filter: &str, table: &str) -> String {
    let checked = crate::expr::analyse(crate::expr::Role::Filter, filter, table);
    if checked.ty != pg_sys::BOOLOID {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            "the filter of a hold must be a boolean expression",
            "e.g. issued_on >= '2020-01-01'",
        )
    }
    checked.canonical
}

/// The form a hold's filter on `target` is stored in (validated as
/// place_hold validates it): retention.apply_config compares the holds of
/// a document with those in force by it.
#[pg_extern(name = "_hold_filter")]
fn hold_filter(target: pg_sys::Oid, filter: &str) -> String {
    security::require_admin("compare legal holds");
    let table = policy::check_target(target);
    canonical(filter, &table)
}

#[pg_extern(name = "_place_hold")]
fn place_hold(
    reason: &str,
    kind: Option<&str>,
    subject_id: Option<&str>,
    target: Option<pg_sys::Oid>,
    filter: Option<&str>,
    until: Option<TimestampWithTimeZone>,
) -> i64 {
    security::require_admin("place legal holds");
    if reason.trim().is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a hold needs a reason",
            "e.g. 'tax audit 2026' or 'lawsuit 12 O 345/26'.",
        )
    }
    let blind_value = match (kind, subject_id) {
        (Some(k), Some(s)) => {
            let kd = load_kind(k);
            // Holding a subject keeps its data everywhere in the kind's map:
            // the placing role must be able to see the subjects.
            if !security::has_table_privileges(security::current_role(), kd.root, "SELECT") {
                raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied to hold subjects of kind \"{k}\""),
                    "A hold on a subject needs SELECT on the kind's root table.",
                )
            }
            crate::erasure::check_canonical_id(&kd, s);
            Some(blind(k, s))
        }
        (None, None) => None,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a subject hold needs both kind and subject_id",
            "Or hold a table (target) or part of one (target and filter).",
        ),
    };
    let table = target.map(policy::check_target);
    if blind_value.is_none() && table.is_none() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a hold needs a subject (kind, subject_id) or a table (target)",
            "e.g. place_hold('tax audit', target => 'invoices', filter => 'issued_on >= ''2020-01-01''').",
        )
    }
    if let Some(t) = target {
        // A hold is a legal act on data the placing role can see.
        if !security::has_table_privileges(security::current_role(), t, "SELECT") {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to place a hold on {}",
                    table.clone().unwrap_or_default()
                ),
                "A hold on a table needs SELECT on it.",
            )
        }
    }
    let mut canonical_filter = None;
    if let (Some(f), Some(t)) = (filter, &table) {
        canonical_filter = Some(canonical(f, t));
    } else if filter.is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a filter needs a target table",
            "Give target => 'table' with the filter.",
        )
    }
    let me = security::current_role();
    let by = security::role_name(me);
    let filter = canonical_filter;
    let id = security::as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO retention.holds (kind, subject_blind, target, filter, reason, placed_by, placed_by_role, until)
             VALUES ($1, $2, $3::oid::regclass, $4, $5, $6, $7, $8) RETURNING id",
            &[kind.into(), blind_value.clone().into(), target.into(), filter.clone().into(), reason.into(), by.as_str().into(), me.into(), until.into()],
        )
        .or_raise("storing the hold")
        .unwrap_or_default()
    });
    audit::append(
        "hold placed",
        json!({"hold": id, "kind": kind, "subject": blind_value, "table": table, "filtered": filter.is_some()}),
    );
    id
}

#[pg_extern(name = "_release_hold")]
fn release_hold(id: i64) -> bool {
    security::require_admin("release legal holds");
    let by = security::role_name(security::current_role());
    // By role identity: a renamed role keeps its holds, and a hold whose
    // role was dropped can only be released by a superuser.
    let placed_by = security::as_extension_owner(|| {
        Spi::get_two_with_args::<bool, pg_sys::Oid>(
            "SELECT true, placed_by_role FROM retention.holds WHERE id = $1",
            &[id.into()],
        )
        .ok()
    });
    let Some((Some(true), placed_by)) = placed_by else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("hold {id} does not exist"),
            "SELECT id, reason FROM retention.holds lists the holds.",
        )
    };
    let me = security::current_role();
    let allowed = match placed_by {
        Some(owner) if security::role_exists(owner) => security::has_privs_of(me, owner),
        _ => unsafe { pg_sys::superuser_arg(me) },
    };
    if !allowed {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("hold {id} was placed by another role"),
            "A hold is released by the role that placed it, a member of that role or a superuser.",
        )
    }
    let released = security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH u AS (UPDATE retention.holds SET released_at = pg_catalog.now(), released_by = $2
                         WHERE id = $1 AND released_at IS NULL RETURNING 1)
             SELECT count(*) > 0 FROM u",
            &[id.into(), by.as_str().into()],
        )
        .or_raise("releasing the hold")
        .unwrap_or(false)
    });
    if released {
        audit::append("hold released", json!({"hold": id}));
    }
    released
}
