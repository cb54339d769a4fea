//! Restriction (GDPR Art. 18): marked rows hidden by a row-security policy
//! and refused changes by a trigger, installed and removed here.

use super::not_marked;
use crate::error::{raise, OrRaise};
use crate::pg::security;
use crate::policy;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The marker column of the policy with a mark stage on `target`.
fn marker_of(target: pg_sys::Oid, table: &str) -> (String, pg_sys::Oid) {
    let markers: Vec<(String, pg_sys::Oid)> = policy::load(None)
        .into_iter()
        .filter(|p| p.target == target)
        .filter_map(|p| p.mark)
        .map(|m| (m.column, m.ty))
        .collect();
    match markers.as_slice() {
        [] => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("no policy on {table} has a mark stage"),
            "Add one first: retention.add_stage(policy, interval '30 days', 'mark', column_name => 'restricted_at').",
        ),
        [one] => one.clone(),
        [first, rest @ ..] => {
            if rest.iter().all(|m| m.0 == first.0) {
                first.clone()
            } else {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("policies on {table} mark rows in different columns"),
                    "Use one marker column per table.",
                )
            }
        }
    }
}

#[pg_extern(name = "_restrict")]
fn restrict(target: pg_sys::Oid) -> String {
    security::require_admin("restrict tables");
    let table = policy::check_target(target);
    let (col, ty) = marker_of(target, &table);
    let rls_on = Spi::get_one_with_args::<bool>(
        "SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = $1",
        &[target.into()],
    )
    .or_raise("reading the table")
    .unwrap_or(false);
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = 'retention_restricted')",
        &[target.into()],
    )
    .or_raise("reading row security policies")
    .unwrap_or(false);
    if exists {
        return format!("{table} is already restricted on column {col}");
    }
    // Runs as the caller, who must own the table (ALTER TABLE, CREATE
    // POLICY and CREATE TRIGGER check that themselves).
    security::with_pinned_search_path(|| {
        if !rls_on {
            Spi::run(&format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
                .or_raise("enabling row security");
            // Without RLS before, every row was visible: keep that for
            // unmarked rows.
            Spi::run(&format!(
                "CREATE POLICY retention_visible ON {table} AS PERMISSIVE FOR ALL USING (true) WITH CHECK (true)"
            ))
            .or_raise("creating a row security policy");
        }
        Spi::run(&format!(
            "CREATE POLICY retention_restricted ON {table} AS RESTRICTIVE FOR SELECT
                 USING ({} OR pg_catalog.pg_has_role('retention_admin', 'USAGE'))",
            not_marked(&col, ty)
        ))
        .or_raise("creating the restriction policy");
        Spi::run_with_args(
            &format!(
                "CREATE TRIGGER retention_restricted BEFORE UPDATE ON {table} FOR EACH ROW
                 EXECUTE FUNCTION retention.refuse_restricted_update({})",
                pgrx::spi::quote_literal(&col)
            ),
            &[],
        )
        .or_raise("creating the restriction trigger");
    });
    format!(
        "{table} restricted: rows with {col} set are hidden from other roles and cannot be updated"
    )
}

#[pg_extern(name = "_unrestrict")]
fn unrestrict(target: pg_sys::Oid) -> bool {
    security::require_admin("lift table restrictions");
    let table = policy::check_target(target);
    let had = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = 'retention_restricted')",
        &[target.into()],
    )
    .or_raise("reading row security policies")
    .unwrap_or(false);
    security::with_pinned_search_path(|| {
        Spi::run(&format!(
            "DROP POLICY IF EXISTS retention_restricted ON {table}"
        ))
        .or_raise("dropping the policy");
        Spi::run(&format!(
            "DROP TRIGGER IF EXISTS retention_restricted ON {table}"
        ))
        .or_raise("dropping the trigger");
        let visible = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = 'retention_visible')",
            &[target.into()],
        )
        .or_raise("reading row security policies")
        .unwrap_or(false);
        if visible {
            Spi::run(&format!("DROP POLICY retention_visible ON {table}"))
                .or_raise("dropping the policy");
            let others = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1)",
                &[target.into()],
            )
            .or_raise("reading row security policies")
            .unwrap_or(true);
            if !others {
                Spi::run(&format!("ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
                    .or_raise("disabling row security");
            }
        }
    });
    had
}
