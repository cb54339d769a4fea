//! Batch sizes from a time budget.
//!
//! A policy's `batch_target` (100 ms by default) is how long one batch
//! should take; `batch_size` is the most rows it may change. The first
//! batch of a stage selects [`FIRST_ROWS`] rows (or fewer under a smaller
//! cap); every batch after it is sized from the rows per second the
//! previous one achieved, growing at most fourfold per batch and shrinking
//! at once. A policy without a target has batches of `batch_size` rows.
//!
//! Invariants: a size is always between 1 and the policy's `batch_size`;
//! sizes are kept per run item and stage in the item's state (see `state`)
//! and never stored: the next run starts small again.

use super::state;
use crate::model::policy::{Policy, Stage};

/// Rows of the first batch of a stage, before any batch was timed.
pub const FIRST_ROWS: i32 = 1000;
/// The most a size grows from one batch to the next.
const MAX_GROWTH: f64 = 4.0;

/// The size learnt so far for one stage of a run item.
#[derive(Clone, Copy)]
pub struct Learnt {
    stage: Stage,
    rows: i32,
}

/// The rows the next batch of `stage` may select.
pub fn rows(item: i64, stage: Stage, p: &Policy) -> i32 {
    let cap = p.batch_size.max(1);
    if p.batch_target_secs.is_none() {
        return cap;
    }
    let learnt = state::with(item, |s| s.sizing.filter(|l| l.stage == stage));
    learnt.map_or(FIRST_ROWS, |l| l.rows).clamp(1, cap)
}

/// The size the item's batches had last (any stage), for a retry after a
/// timeout; the policy's cap when nothing was learnt.
pub fn last(item: i64, p: &Policy) -> i32 {
    let cap = p.batch_size.max(1);
    if p.batch_target_secs.is_none() {
        return cap;
    }
    state::with(item, |s| s.sizing.map_or(FIRST_ROWS, |l| l.rows)).clamp(1, cap)
}

/// The next size, given that a batch selecting `rows` (out of `used` it
/// was allowed) took `secs`. Pure, so that it can be tested alone.
pub fn next(target_secs: f64, cap: i32, used: i32, rows: i64, secs: f64) -> i32 {
    let used = f64::from(used.max(1));
    let want = if rows <= 0 || secs <= 0.0 {
        // Nothing to learn the speed from: a batch that found no rows
        // (or took no measurable time) may grow as much as it is allowed.
        used * MAX_GROWTH
    } else {
        rows as f64 / secs * target_secs
    };
    // A batch that selected fewer rows than it could says little about a
    // larger one: grow from what it did select.
    let base = if rows > 0 {
        (rows as f64).min(used)
    } else {
        used
    };
    want.min(base * MAX_GROWTH)
        .clamp(1.0, f64::from(cap.max(1))) as i32
}

/// Learns from a batch of `stage` that selected `rows` of the `used` it
/// was allowed, in `secs`.
pub fn learn(item: i64, stage: Stage, p: &Policy, used: i32, rows: i64, secs: f64) {
    let Some(target) = p.batch_target_secs else {
        return;
    };
    let rows = next(target, p.batch_size, used, rows, secs);
    state::with(item, |s| s.sizing = Some(Learnt { stage, rows }));
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::next;
    use pgrx::prelude::*;

    #[pg_test]
    fn sizes_follow_the_time_budget_within_the_cap() {
        // 1000 rows in 10 ms at a 100 ms target: ten times as many would
        // fit, but a size grows at most fourfold per batch.
        assert_eq!(next(0.1, 100_000, 1000, 1000, 0.010), 4000);
        // 4000 rows in 80 ms: 5000 fit in 100 ms.
        assert_eq!(next(0.1, 100_000, 4000, 4000, 0.080), 5000);
        // A batch that took four times the budget shrinks at once.
        assert_eq!(next(0.1, 100_000, 8000, 8000, 0.400), 2000);
        // Never above the cap, never below one row.
        assert_eq!(next(0.1, 1500, 1000, 1000, 0.001), 1500);
        assert_eq!(next(0.1, 100_000, 10, 10, 50.0), 1);
        // A batch that found no rows grows fourfold; one that found few
        // grows from what it found.
        assert_eq!(next(0.1, 100_000, 1000, 0, 0.002), 4000);
        assert_eq!(next(0.1, 100_000, 1000, 10, 0.001), 40);
    }
}
