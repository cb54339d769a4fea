//! The run log (`retention.run_log`, shown by the view `retention.runs`):
//! one row per policy per run, written only here.
//!
//! Invariants: every write is a fixed statement run as the extension owner;
//! an item is closed once (only while `running`), and closing it writes its
//! summary to the audit chain, releases the policy's run lock and forgets
//! the item's state and the held subjects' keys listed for it.

use super::state;
use crate::error::OrRaise;
use crate::model::hold;
use crate::model::policy::{stage_name, Policy, Stage};
use crate::pg::{locks, security};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

/// A run-log row as a batch needs it.
pub struct Item {
    pub policy_id: i64,
    pub status: String,
    /// The stage being worked on; None when the item is done.
    pub stage: Option<Stage>,
    /// Cutoffs of the stages, by [`Stage::index`].
    pub cutoffs: [Option<TimestampWithTimeZone>; 3],
    /// Seconds since the item's first batch (or since the run opened).
    pub elapsed: f64,
    pub partitions_checked: bool,
    /// Milliseconds the item waited for replicas and slots so far.
    pub throttled_ms: f64,
}

impl Item {
    pub fn running(&self) -> bool {
        self.status == "running"
    }

    pub fn cutoff(&self, stage: Stage) -> Option<TimestampWithTimeZone> {
        self.cutoffs[stage.index()]
    }
}

pub fn load(item: i64) -> Option<Item> {
    Spi::connect(|c| {
        crate::pg::plans::select(
            c,
            "SELECT policy_id, status, stage, cutoff AS purge_cutoff, anonymise_cutoff, mark_cutoff,
                    extract(epoch FROM pg_catalog.clock_timestamp() - started_at)::float8 AS elapsed,
                    partitions_checked, throttled_ms
               FROM retention.run_log WHERE id = $1",
            &[item.into()],
        )
        .or_raise("reading the run log")
        .next()
        .map(|r| {
            let e = "reading the run log";
            let cut = |name: &str| r.get_by_name::<TimestampWithTimeZone, _>(name).or_raise(e);
            Item {
                policy_id: r.get_by_name::<i64, _>("policy_id").or_raise(e).unwrap_or_default(),
                status: r.get_by_name::<String, _>("status").or_raise(e).unwrap_or_default(),
                stage: r
                    .get_by_name::<String, _>("stage")
                    .or_raise(e)
                    .and_then(|s| Stage::parse(&s)),
                cutoffs: [cut("purge_cutoff"), cut("anonymise_cutoff"), cut("mark_cutoff")],
                elapsed: r.get_by_name::<f64, _>("elapsed").or_raise(e).unwrap_or(0.0),
                partitions_checked: r
                    .get_by_name::<bool, _>("partitions_checked")
                    .or_raise(e)
                    .unwrap_or(false),
                throttled_ms: r
                    .get_by_name::<f64, _>("throttled_ms")
                    .or_raise(e)
                    .unwrap_or(0.0),
            }
        })
    })
}

/// Deletes finished runs older than `days` days.
pub fn prune(days: i32) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM retention.run_log
              WHERE status <> 'running' AND finished_at < pg_catalog.now() - $1 * interval '1 day'",
            &[days.into()],
        )
        .or_raise("pruning old run history")
    });
}

/// A number for a new run.
pub fn next_run_id() -> i64 {
    security::as_extension_owner(|| {
        Spi::get_one::<i64>("SELECT pg_catalog.nextval('retention.run_id_seq')")
            .or_raise("numbering the run")
            .unwrap_or_default()
    })
}

/// Logs a policy skipped because another session runs it.
pub fn log_busy(run_id: i64, p: &Policy, target: &str, run_by: &str) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO retention.run_log (run_id, policy_id, policy, target, run_by, backend_pid,
                                            started_at, finished_at, status, error)
             VALUES ($1, $2, $3, $4, $5, pg_catalog.pg_backend_pid(), pg_catalog.now(), pg_catalog.clock_timestamp(),
                     'skipped', 'already running in another session')",
            &[run_id.into(), p.id.into(), p.name.as_str().into(), target.into(), run_by.into()],
        )
        .or_raise("logging a skipped policy")
    });
}

/// Opens the item of a policy whose run lock this session holds, with the
/// stages' cutoffs fixed now; returns its id. Earlier items of the policy
/// still marked running were interrupted (holding the lock proves no other
/// session runs it).
pub fn open(run_id: i64, p: &Policy, target: &str, run_by: &str) -> i64 {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET status = 'interrupted', finished_at = pg_catalog.clock_timestamp(),
                    error = coalesce(error, 'the session ended before the policy finished: its backend was terminated, or a batch''s transaction could not commit (on a distributed table: a node was lost while it committed); that session received the error')
              WHERE policy_id = $1 AND status = 'running'",
            &[p.id.into()],
        )
        .or_raise("closing interrupted runs");
        Spi::get_one_with_args::<i64>(
            "INSERT INTO retention.run_log (run_id, policy_id, policy, target, run_by, backend_pid, started_at,
                                            cutoff, anonymise_cutoff, mark_cutoff, stage)
             SELECT $1, p.id, p.name, $3, $4, pg_catalog.pg_backend_pid(), pg_catalog.now(),
                    pg_catalog.now() - p.purge_after, pg_catalog.now() - p.anonymise_after,
                    pg_catalog.now() - p.mark_after,
                    CASE WHEN p.purge_after IS NOT NULL THEN 'purge'
                         WHEN p.anonymise_after IS NOT NULL THEN 'anonymise'
                         WHEN p.mark_after IS NOT NULL THEN 'mark'
                         ELSE 'done' END
               FROM retention.policies p WHERE p.id = $2
             RETURNING id",
            &[run_id.into(), p.id.into(), target.into(), run_by.into()],
        )
        .or_raise("opening the run")
        .unwrap_or_default()
    })
}

/// How an item ends.
pub struct Outcome<'a> {
    pub status: &'a str,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub note: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    pub fn succeeded() -> Self {
        Self {
            status: "succeeded",
            code: None,
            error: None,
            note: None,
        }
    }

    pub fn failed(code: &'a str, error: &'a str) -> Self {
        Self {
            status: "failed",
            code: Some(code),
            error: Some(error),
            note: None,
        }
    }

    /// Skipped for a reason that is not an error (kept in the note).
    pub fn skipped_noting(note: &'a str) -> Self {
        Self {
            status: "skipped",
            code: None,
            error: None,
            note: Some(note),
        }
    }

    /// Skipped, with the reason in the error column.
    pub fn skipped(why: &'a str) -> Self {
        Self {
            status: "skipped",
            code: None,
            error: Some(why),
            note: None,
        }
    }

    /// With a note (the reason of a skip that is not an error, or why a
    /// successful run stopped early).
    pub fn noting(mut self, note: &'a str) -> Self {
        self.note = Some(note);
        self
    }
}

/// Closes a running item (see the module's invariants).
pub fn finish(item: i64, policy_id: i64, o: Outcome) {
    // Held subjects' keys listed for this item are not kept past it.
    hold::forget_held_keys();
    let summary = security::as_extension_owner(|| {
        Spi::get_one_with_args::<pgrx::datum::JsonB>(
            "WITH u AS (
                UPDATE retention.run_log
                   SET status = $2, finished_at = pg_catalog.clock_timestamp(), error_code = $3, error = $4,
                       note = CASE WHEN $5 IS NULL THEN note ELSE coalesce(note || '; ', '') || $5 END
                 WHERE id = $1 AND status = 'running'
             RETURNING run_id, policy, target, status, rows_purged, rows_anonymised, rows_marked,
                       rows_blocked, rows_held, partitions_dropped, batches, error_code)
             SELECT (SELECT jsonb_build_object('run', run_id, 'policy', policy, 'table', target, 'status', status,
                        'purged', rows_purged, 'anonymised', rows_anonymised, 'marked', rows_marked,
                        'blocked', rows_blocked, 'held', rows_held, 'partitions_dropped', partitions_dropped,
                        'batches', batches, 'error_code', error_code) FROM u)",
            &[item.into(), o.status.into(), o.code.into(), o.error.into(), o.note.into()],
        )
        .or_raise("closing the run")
    });
    // Every policy run is in the audit log: names and counts only.
    if let Some(s) = summary {
        crate::audit::append("policy run", s.0);
    }
    locks::release_run_lock(policy_id);
    state::forget();
}

/// Moves the item to a stage (None: done).
pub fn set_stage(item: i64, stage: Option<Stage>) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET stage = $2 WHERE id = $1",
            &[item.into(), stage_name(stage).into()],
        )
        .or_raise("advancing the stage")
    });
}

/// Appends to the item's note.
pub fn note(item: i64, text: &str) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET note = coalesce(note || '; ', '') || $2 WHERE id = $1",
            &[item.into(), text.into()],
        )
        .or_raise("noting the run")
    });
}

/// Records the whole partitions removed by the purge stage (a batch of its
/// own, counted in max_batch_ms when it removed any).
pub fn count_partitions(
    item: i64,
    removed: i32,
    rows: i64,
    started: Option<TimestampWithTimeZone>,
) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log
                SET partitions_checked = true, partitions_dropped = partitions_dropped + $2,
                    rows_purged = rows_purged + $3,
                    max_batch_ms = CASE WHEN $2 > 0
                        THEN greatest(max_batch_ms, extract(epoch FROM pg_catalog.clock_timestamp() - $4) * 1000)
                        ELSE max_batch_ms END,
                    note = CASE WHEN $2 > 0 THEN coalesce(note || '; ', '') || 'rows of removed partitions are taken from statistics when the partition was analysed' ELSE note END
              WHERE id = $1",
            &[item.into(), removed.into(), rows.into(), started.into()],
        )
        .or_raise("counting removed partitions")
    });
}

/// The item's totals after a batch.
pub struct Totals {
    pub purged: i64,
    pub anonymised: i64,
    pub marked: i64,
    pub batches: i32,
    /// This batch's time, in seconds.
    pub batch_secs: f64,
    /// The item's time since its first batch, in seconds.
    pub run_secs: f64,
}

/// Counts a batch of `stage` that selected `selected` rows and changed
/// `changed`, started at `started`.
pub fn count_batch(
    item: i64,
    stage: Stage,
    changed: i64,
    selected: i64,
    started: Option<TimestampWithTimeZone>,
) -> Totals {
    let counter = stage.counter();
    security::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            let e = "counting the batch";
            // A policy's own time starts with its first batch, not when the
            // run (and its cutoffs) opened. Three fixed texts, one per
            // counter: kept plans.
            let row = crate::pg::plans::update(
                c,
                &format!(
                    "UPDATE retention.run_log
                        SET {counter} = {counter} + $2, batches = batches + CASE WHEN $3 > 0 THEN 1 ELSE 0 END,
                            max_batch_ms = greatest(max_batch_ms,
                                extract(epoch FROM pg_catalog.clock_timestamp() - $4) * 1000),
                            started_at = CASE WHEN batches = 0 AND rows_purged + rows_anonymised + rows_marked = 0
                                              THEN $4 ELSE started_at END
                      WHERE id = $1
                  RETURNING rows_purged, rows_anonymised, rows_marked, batches,
                            extract(epoch FROM pg_catalog.clock_timestamp() - $4)::float8 AS batch_secs,
                            extract(epoch FROM pg_catalog.clock_timestamp() - started_at)::float8 AS run_secs"
                ),
                &[item.into(), changed.into(), selected.into(), started.into()],
            )
            .or_raise(e)
            .first();
            Totals {
                purged: row
                    .get_by_name::<i64, _>("rows_purged")
                    .or_raise(e)
                    .unwrap_or(0),
                anonymised: row
                    .get_by_name::<i64, _>("rows_anonymised")
                    .or_raise(e)
                    .unwrap_or(0),
                marked: row
                    .get_by_name::<i64, _>("rows_marked")
                    .or_raise(e)
                    .unwrap_or(0),
                batches: row
                    .get_by_name::<i32, _>("batches")
                    .or_raise(e)
                    .unwrap_or(0),
                batch_secs: row
                    .get_by_name::<f64, _>("batch_secs")
                    .or_raise(e)
                    .unwrap_or(0.0),
                run_secs: row
                    .get_by_name::<f64, _>("run_secs")
                    .or_raise(e)
                    .unwrap_or(0.0),
            }
        })
    })
}

/// Records the due rows the purge stage kept because other rows still
/// reference them.
pub fn set_blocked(item: i64, blocked: i64) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET rows_blocked = $2 WHERE id = $1",
            &[item.into(), blocked.into()],
        )
        .or_raise("counting blocked rows")
    });
}

/// Records the due rows legal holds kept, naming the holds.
pub fn set_held(item: i64, held: i64, hold_ids: &str) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET rows_held = $2,
                    note = CASE WHEN $2 > 0 THEN coalesce(note || '; ', '') || 'due rows kept by legal holds ' || $3 ELSE note END
              WHERE id = $1",
            &[item.into(), held.into(), hold_ids.into()],
        )
        .or_raise("counting held rows")
    });
}

/// Records the due rows of the last stage a run left, and the oldest
/// clock among them (see `backlog`).
pub fn set_left(item: i64, left: Option<i64>, oldest: Option<TimestampWithTimeZone>) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET due_left = $2, oldest_due = $3 WHERE id = $1",
            &[item.into(), left.into(), oldest.into()],
        )
        .or_raise("recording the due rows left")
    });
}

/// Counts time spent waiting for replicas and slots.
pub fn add_throttled(item: i64, ms: f64) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET throttled_ms = throttled_ms + $2 WHERE id = $1",
            &[item.into(), ms.into()],
        )
        .or_raise("counting the wait for replicas")
    });
}

/// Counts a batch retried smaller.
pub fn count_retry(item: i64) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET retries = retries + 1 WHERE id = $1",
            &[item.into()],
        )
        .or_raise("counting a retry")
    });
}
