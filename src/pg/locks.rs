//! Advisory locks: one lock class for the whole extension, and the run
//! locks this session holds.
//!
//! Keys are `(CLASS, n)` with the two-integer form of the advisory-lock
//! functions (`objsubid = 2` in `pg_locks`):
//! - `(CLASS, policy id)`, session level: a run of that policy is in
//!   progress (policy ids start at 1);
//! - `(CLASS, AUDIT_KEY)`, transaction level: appends to the audit chain are
//!   serialised.
//!
//! The view `retention.runs` (sql/api.sql) reads the run locks from
//! `pg_locks` with the class as a number; a unit test keeps the two equal.

use crate::error::{raise, OrRaise};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// The class ("RET1") of every advisory lock pg_retention takes.
pub const CLASS: i32 = 0x5245_5431;

/// Second key of the audit chain's lock (no policy has id 0).
pub const AUDIT_KEY: i32 = 0;

thread_local! {
    /// Policies whose run lock this backend holds.
    static HELD: RefCell<BTreeSet<i64>> = const { RefCell::new(BTreeSet::new()) };
}

/// Takes the run lock of a policy without waiting; false when another
/// session holds it.
pub fn try_run_lock(policy_id: i64) -> bool {
    let got = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_lock($1, $2::int4)",
        &[CLASS.into(), policy_id.into()],
    )
    .or_raise("taking the policy's run lock")
    .unwrap_or(false);
    if got {
        HELD.with(|h| h.borrow_mut().insert(policy_id));
    }
    got
}

/// Releases the run lock of a policy, if this session holds it.
pub fn release_run_lock(policy_id: i64) {
    if holds_run_lock(policy_id) {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_advisory_unlock($1, $2::int4)",
            &[CLASS.into(), policy_id.into()],
        )
        .or_raise("releasing the policy's run lock");
        // Forget the lock only once it is really released.
        HELD.with(|h| h.borrow_mut().remove(&policy_id));
    }
}

pub fn holds_run_lock(policy_id: i64) -> bool {
    HELD.with(|h| h.borrow().contains(&policy_id))
}

/// Releases run locks left behind by an earlier run of this session that
/// ended without closing its policies (e.g. after an error outside a batch).
pub fn release_stale_run_locks() {
    let held: Vec<i64> = HELD.with(|h| h.borrow().iter().copied().collect());
    for id in held {
        release_run_lock(id);
    }
}

/// Waits for the audit chain's lock, held until the transaction ends.
pub fn lock_audit_chain() {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[CLASS.into(), AUDIT_KEY.into()],
    )
    .or_raise("locking the audit log");
}

/// Refuses work on a run-log item whose policy lock this session does not
/// hold: only the session that opened a run may advance or close it.
pub fn require_run_lock(policy_id: i64, item: i64) {
    if !holds_run_lock(policy_id) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("run-log entry {item} belongs to another session's run"),
            "Start runs with CALL retention.run(); internal functions are not an interface.",
        )
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// The runs view tells a live run from an interrupted one by this lock
    /// class: the number written in its definition is this module's.
    #[pg_test]
    fn the_runs_view_reads_the_run_lock_class() {
        let def =
            Spi::get_one::<String>("SELECT pg_catalog.pg_get_viewdef('retention.runs'::regclass)")
                .unwrap()
                .unwrap();
        assert!(
            def.contains(&format!("k.classid = ({})::oid", CLASS as u32)),
            "retention.runs does not read lock class {CLASS}: {def}"
        );
        assert!(def.contains("objsubid = 2"), "{def}");
    }

    #[pg_test]
    fn a_run_lock_is_taken_once_and_released() {
        assert!(try_run_lock(424242));
        assert!(holds_run_lock(424242));
        let others = Spi::get_one::<i64>(&format!(
            "SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND classid = {}::oid AND objid = 424242::oid AND objsubid = 2",
            CLASS as u32
        ))
        .unwrap()
        .unwrap();
        assert_eq!(others, 1);
        release_run_lock(424242);
        assert!(!holds_run_lock(424242));
    }
}
