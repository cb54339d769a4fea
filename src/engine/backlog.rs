//! What a run left behind: the due rows of the policy's last lifecycle
//! stage (purge, else anonymise, else mark) that are still there after the
//! run, and the clock of the oldest of them (the watermark). `retention.status`
//! reads them back to say whether a policy keeps up.
//!
//! A stage that ended without ever skipping a locked row, and whose
//! batches changed every row they selected, left nothing: it records 0
//! without counting (the count would read the index entries of every row
//! the run just removed). Runs that skipped rows, or stopped early, count.
//! One case escapes: a row that an UPDATE moves, during a walk, to a page
//! the walk already passed is left for the next run without being counted.
//!
//! Invariants: rows kept by legal holds, by references (RESTRICT / NO
//! ACTION) or by cascading holds are not "left": they are counted in
//! rows_held and rows_blocked. Counting is bounded (at most [`MAX_COUNT`]
//! rows, at most [`TIMEOUT_MS`]) and runs as the table's owner in a
//! subtransaction: a count that is too slow or fails leaves the values NULL
//! (unknown) and never fails the run.

use super::{batch, run_log, Kept};
use crate::expr;
use crate::model::policy::{Policy, Stage};
use crate::model::refs;
use crate::pg::params::Params;
use crate::pg::security;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

/// Counting stops at this many rows (the count then reads "at least").
pub const MAX_COUNT: i64 = 1_000_000;
/// Counting and finding the oldest row stop after this long.
const TIMEOUT_MS: i64 = 2000;

/// The stage whose due rows measure the backlog: the last one of a row's
/// life that the policy declares.
pub fn last_stage(p: &Policy) -> Option<Stage> {
    Stage::RUN_ORDER.into_iter().find(|s| p.has(*s))
}

/// The condition that selects rows `stage` would still change at `cutoff`
/// bound in `params`: past the cutoff, not yet in the stage's state, not
/// held and (purge) not kept by references. `not_held` is
/// [`Kept::not_held`] and `not_cascading` [`Kept::not_cascading`], over the
/// statement's parameters.
pub fn pending(
    stage: Stage,
    p: &Policy,
    table: &str,
    not_held: Option<String>,
    not_cascading: Option<String>,
) -> Option<String> {
    match stage {
        Stage::Purge => {
            let refs = refs::references(p.target);
            batch::all_of([
                refs::unblocked_condition(&refs, table),
                not_cascading,
                not_held,
            ])
        }
        Stage::Anonymise | Stage::Mark => {
            let state = p.state_column(stage).cloned().unwrap_or_default();
            batch::all_of([Some(crate::stage::pending_condition(&state)), not_held])
        }
    }
}

/// Counts what the run item left of the last stage's due rows and records
/// it with the oldest clock among them (NULLs when counting took too long).
pub fn record(item: i64, p: &Policy, table: &str, kept: &Kept, cutoff: TimestampWithTimeZone) {
    let Some(stage) = last_stage(p) else {
        return;
    };
    let mut params = Params::new();
    let cut = params.bind(cutoff);
    let not_held = kept.not_held(item, &mut params);
    let not_cascading = (stage == Stage::Purge)
        .then(|| kept.not_cascading(item, &mut params))
        .flatten();
    let due = batch::all_of([
        Some(batch::due_condition(p, cut)),
        pending(stage, p, table, not_held, not_cascading),
    ])
    .unwrap_or_default();
    let clock = expr::embed(&p.clock);
    let sql = format!(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {due} LIMIT {MAX_COUNT}) n),
                (SELECT c::timestamptz FROM (SELECT {clock} AS c FROM {table} WHERE {due} ORDER BY {clock} LIMIT 1) o)"
    );
    let found = {
        let _timer = crate::pg::timeout::StatementTimer::start(TIMEOUT_MS);
        crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
            security::as_table_owner(p.target, || {
                Spi::get_two_with_args::<i64, TimestampWithTimeZone>(&sql, params.args()).ok()
            })
        }))
    };
    match found {
        Ok(Some((n, oldest))) => run_log::set_left(item, n, oldest),
        _ => run_log::note(
            item,
            &format!("the due rows left were not counted (more than {TIMEOUT_MS} ms)"),
        ),
    }
}
