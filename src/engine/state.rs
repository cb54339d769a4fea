//! The state of the run item this backend is working on.
//!
//! A run works through its run-log items one at a time, one batch per call,
//! with a COMMIT between calls; what must survive from one batch to the next
//! without being stored lives here, in one place, for one item:
//! - the random key of the `hash_random` mask (never stored: gone when the
//!   item ends, so its hashes cannot be recomputed);
//! - the walk of the stage being worked on (see `walk`);
//! - the batch size learnt from the batches' times (see `sizing`);
//! - when progress was last reported.
//!
//! Invariant: the state belongs to exactly one item; asking for another item
//! starts afresh, and closing an item forgets it (see [`forget`]).

use super::sizing::Learnt;
use super::walk::Walk;
use std::cell::RefCell;
use std::time::Instant;

#[derive(Default)]
pub struct RunState {
    item: i64,
    pub run_key: Option<Vec<u8>>,
    pub walk: Option<Walk>,
    /// The stage whose batches by key met a locked row on a distributed
    /// table: it goes on in page ranges (see `walk`).
    pub walk_forced: Option<super::super::model::policy::Stage>,
    /// Pages of a distributed table's walk left for rows that other
    /// sessions held locked (see `batch`).
    pub skipped_parts: i64,
    /// The batch size learnt from the time batches took (see `sizing`).
    pub sizing: Option<Learnt>,
    /// A batch skipped locked rows or did not change every row it
    /// selected: the backlog is counted at the end (see `backlog`).
    pub maybe_left: bool,
    /// The safety cap was checked for this item (see `cap`).
    pub cap_checked: bool,
    pub last_progress: Option<Instant>,
}

thread_local! {
    static STATE: RefCell<Option<RunState>> = const { RefCell::new(None) };
}

/// Runs `f` with the state of `item` (a fresh one if the state held was
/// another item's).
pub fn with<R>(item: i64, f: impl FnOnce(&mut RunState) -> R) -> R {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_some_and(|st| st.item != item) {
            *s = None;
        }
        f(s.get_or_insert_with(|| RunState {
            item,
            ..Default::default()
        }))
    })
}

/// Forgets the state (the item ended).
pub fn forget() {
    STATE.with(|s| *s.borrow_mut() = None);
}

/// The random key of the `hash_random` mask for `item`, made on first use.
pub fn run_key(item: i64) -> Vec<u8> {
    with(item, |s| {
        s.run_key
            .get_or_insert_with(crate::pg::secrets::random_key)
            .clone()
    })
}
