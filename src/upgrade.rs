//! Versions and updates.
//!
//! Each version's SQL binds to a library of its own name
//! (`$libdir/pg_retention-<version>`, see README "Upgrading"): the functions
//! of an installed version never call into another version's library, and
//! `ALTER EXTENSION pg_retention UPDATE` moves them to the new one in the
//! same transaction as the rest of the update.
//!
//! An update also re-validates the text users declared under an older
//! version (clocks, filters), which older versions stored as written: each
//! must pass today's rules (built-in code only, the right type) and is
//! stored in its canonical form, or the update stops with the object named
//! and nothing changed.

use crate::error::raise;
use crate::pg::ident;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The version of the library running this call.
#[pg_extern(name = "_library_version", immutable, parallel_safe)]
fn library_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Runs `check` for one stored expression; an ERROR is raised again naming
/// the object it belongs to.
fn checked(what: &str, hint: &str, check: impl FnOnce() -> String) -> String {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(check))
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                let detail = r.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                raise(
                    r.sql_error_code(),
                    format!(
                        "{what} does not pass this version's checks: {}{detail}",
                        r.message()
                    ),
                    hint,
                )
            }
            other => other.rethrow(),
        })
        .execute()
}

/// Re-validates every stored clock and filter (policies, holds, statutory
/// minimums of subject tables) and stores its canonical form. Returns how
/// many were checked. Called by the update scripts, as the superuser that
/// runs ALTER EXTENSION.
#[pg_extern(name = "_revalidate_declared")]
fn revalidate_declared() -> i64 {
    if !unsafe { pg_sys::superuser() } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "only a superuser re-validates declared expressions",
            "ALTER EXTENSION pg_retention UPDATE calls it.",
        )
    }
    let mut n = 0i64;
    let fix_policy =
        "Change it with retention.alter_policy under the installed version, then update again.";
    let policies: Vec<(i64, String, pg_sys::Oid, String, Option<String>)> = Spi::connect(|c| {
        c.select(
            "SELECT id, name, target::oid, clock, filter FROM retention.policies ORDER BY id",
            None,
            &[],
        )
        .map(|rows| {
            rows.map(|r| {
                (
                    r.get::<i64>(1).ok().flatten().unwrap_or_default(),
                    r.get::<String>(2).ok().flatten().unwrap_or_default(),
                    r.get::<pg_sys::Oid>(3)
                        .ok()
                        .flatten()
                        .unwrap_or(pg_sys::InvalidOid),
                    r.get::<String>(4).ok().flatten().unwrap_or_default(),
                    r.get::<String>(5).ok().flatten(),
                )
            })
            .collect()
        })
        .unwrap_or_default()
    });
    for (id, name, target, clock, filter) in policies {
        // A policy whose table is gone runs nothing; it is left as it is.
        let Some(table) = ident::relation(target) else {
            continue;
        };
        let what = format!("the clock of retention policy \"{name}\"");
        let (ty, clock) = {
            let mut ty = pg_sys::InvalidOid;
            let canonical = checked(&what, fix_policy, || {
                let (t, c) = crate::policy::check_clock(&clock, &table);
                ty = t;
                c
            });
            (ty, canonical)
        };
        let what = format!("the filter of retention policy \"{name}\"");
        let filter = filter.map(|f| {
            checked(&what, fix_policy, || {
                crate::policy::check_filter(&f, &table)
            })
        });
        n += 1 + i64::from(filter.is_some());
        Spi::run_with_args(
            "UPDATE retention.policies SET clock = $2, clock_type = $3::oid::regtype, filter = $4 WHERE id = $1",
            &[id.into(), clock.into(), ty.into(), filter.into()],
        )
        .unwrap_or_else(|_| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "storing a policy failed", "Retry."));
    }
    let holds: Vec<(i64, pg_sys::Oid, String)> = Spi::connect(|c| {
        c.select(
            "SELECT id, target::oid, filter FROM retention.holds WHERE filter IS NOT NULL ORDER BY id",
            None,
            &[],
        )
        .map(|rows| {
            rows.map(|r| {
                (
                    r.get::<i64>(1).ok().flatten().unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                    r.get::<String>(3).ok().flatten().unwrap_or_default(),
                )
            })
            .collect()
        })
        .unwrap_or_default()
    });
    for (id, target, filter) in holds {
        let Some(table) = ident::relation(target) else {
            continue;
        };
        let what = format!("the filter of legal hold {id}");
        let filter = checked(
            &what,
            "Place a hold with a filter of built-in functions and release this one under the installed version, then update again.",
            || crate::policy::check_filter(&filter, &table),
        );
        n += 1;
        Spi::run_with_args(
            "UPDATE retention.holds SET filter = $2 WHERE id = $1",
            &[id.into(), filter.into()],
        )
        .unwrap_or_else(|_| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "storing a hold failed",
                "Retry.",
            )
        });
    }
    let minimums: Vec<(String, pg_sys::Oid, String)> = Spi::connect(|c| {
        c.select(
            "SELECT kind, target::oid, clock FROM retention.subject_tables WHERE clock IS NOT NULL ORDER BY kind, target::oid",
            None,
            &[],
        )
        .map(|rows| {
            rows.map(|r| {
                (
                    r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                    r.get::<String>(3).ok().flatten().unwrap_or_default(),
                )
            })
            .collect()
        })
        .unwrap_or_default()
    });
    for (kind, target, clock) in minimums {
        let Some(table) = ident::relation(target) else {
            continue;
        };
        let what =
            format!("the clock of the statutory minimum of {table} for subject kind \"{kind}\"");
        let clock = checked(
            &what,
            "Change it with retention.set_subject_table under the installed version, then update again.",
            || crate::policy::check_clock(&clock, &table).1,
        );
        n += 1;
        Spi::run_with_args(
            "UPDATE retention.subject_tables SET clock = $3 WHERE kind = $1 AND target = $2::oid::regclass",
            &[kind.as_str().into(), target.into(), clock.into()],
        )
        .unwrap_or_else(|_| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "storing a subject table failed", "Retry."));
    }
    n
}
