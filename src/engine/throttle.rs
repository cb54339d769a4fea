//! Waiting for replicas and replication slots between batches.
//!
//! A run deletes as fast as the primary allows; a streaming standby or a
//! change-data-capture consumer may not keep up, and every batch adds WAL
//! they must read. Before each batch the engine asks [`behind`]; while a
//! standby has more than `retention.max_replica_lag` of WAL left to replay,
//! or a slot holds back more than `retention.max_slot_lag`, the batch is not
//! run: the procedure pauses and asks again, and the time is counted in the
//! run log (`throttled_ms`).

use crate::error::OrRaise;
use crate::pg::security;
use pgrx::prelude::*;

/// Seconds the procedure sleeps before asking again.
pub const RECHECK_SECS: f64 = 1.0;

/// The WAL insert position, when `retention.max_wal_rate` is set (the
/// WAL a batch writes is measured from it).
pub fn wal_position() -> Option<i64> {
    if crate::gucs::MAX_WAL_RATE.get() == 0 {
        return None;
    }
    Spi::get_one::<i64>(
        "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), '0/0')::int8",
    )
    .ok()
    .flatten()
}

/// The pause (seconds) that keeps a batch that started at WAL position
/// `from` and took `batch_secs` under `retention.max_wal_rate`.
pub fn wal_pause(from: Option<i64>, batch_secs: f64) -> f64 {
    let limit = f64::from(crate::gucs::MAX_WAL_RATE.get()) * 1024.0 * 1024.0;
    let (Some(from), true) = (from, limit > 0.0) else {
        return 0.0;
    };
    let Some(now) = wal_position() else {
        return 0.0;
    };
    ((now - from).max(0) as f64 / limit - batch_secs).max(0.0)
}

/// Why batches must wait now (which limit, by how much), or None.
pub fn behind() -> Option<String> {
    let replica_mb = i64::from(crate::gucs::MAX_REPLICA_LAG.get());
    let slot_mb = i64::from(crate::gucs::MAX_SLOT_LAG.get());
    if replica_mb == 0 && slot_mb == 0 {
        return None;
    }
    // The statistics views show every session's positions to the
    // extension owner only.
    let (replica, slot) = security::as_extension_owner(|| {
        Spi::get_two::<i64, i64>(
            "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE
                        (SELECT max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.replay_lsn))::int8
                           FROM pg_catalog.pg_stat_replication r WHERE r.replay_lsn IS NOT NULL) END,
                    CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE
                        (SELECT max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn))::int8
                           FROM pg_catalog.pg_replication_slots s
                          WHERE s.restart_lsn IS NOT NULL
                            AND (s.database IS NULL OR s.database = pg_catalog.current_database())) END",
        )
        .or_raise("reading replication positions")
    });
    let mb = |bytes: i64| bytes / (1024 * 1024);
    match (replica, slot) {
        (Some(r), _) if replica_mb > 0 && r > replica_mb * 1024 * 1024 => Some(format!(
            "a standby has {} MB of WAL left to replay (retention.max_replica_lag = {replica_mb} MB)",
            mb(r)
        )),
        (_, Some(s)) if slot_mb > 0 && s > slot_mb * 1024 * 1024 => Some(format!(
            "a replication slot holds back {} MB of WAL (retention.max_slot_lag = {slot_mb} MB)",
            mb(s)
        )),
        _ => None,
    }
}
