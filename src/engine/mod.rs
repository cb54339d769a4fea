//! The engine: runs and their batches.
//!
//! `CALL retention.run()` (sql/api.sql) opens a run, then calls `_run_batch`
//! once per batch and COMMITs after each: PostgreSQL cannot commit from Rust,
//! so the loop lives in PL/pgSQL and each call here does one bounded unit of
//! work. The cutoff of every policy is fixed when the run opens; each batch
//! re-checks the due condition inside its DELETE, so a row whose clock moved
//! forward meanwhile survives. Rows locked by other sessions are skipped and
//! left for a later run.
//!
//! - this module: the `_run_*` entry points the procedure calls;
//! - `run_log`: every write to the run log;
//! - `batch`: a batch as SQL, and running it as the table's owner;
//! - `walk`: walking large tables in page ranges (the one walk decision);
//! - `sizing`: batch sizes from the policy's time budget;
//! - `backlog`: the due rows a run left, for `retention.status`;
//! - `cap`: the safety cap (max_due_fraction) checked before the first batch;
//! - `vacuum`: dead row versions after a run, and vacuum_after;
//! - `state`: what survives between the batches of one run item.
//!
//! Invariants: only the session that opened a run advances or closes it
//! (it holds the policy's run lock); before every batch the policy's owner
//! must still hold the privileges the stage needs; holds are asked of
//! `model::hold` before every batch, never cached across batches.

mod backlog;
mod cap;
pub use backlog::last_stage;
pub mod batch;
pub mod run_log;
mod sizing;
mod state;
mod throttle;
mod vacuum;
pub mod walk;

use crate::error::raise;
use crate::model::hold;
use crate::model::policy::{self, Policy, Stage};
use crate::model::refs;
use crate::pg::params::Params;
use crate::pg::{ident, locks, security};
use batch::{all_of, Action, BatchPlan};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use run_log::Outcome;

/// Opens a run: one run-log row per policy (or the one named), each with
/// its cutoff fixed now. Returns the run-log ids to work through.
#[pg_extern(name = "_run_open")]
fn run_open(policy_name: Option<&str>, top_level: bool) -> Vec<i64> {
    security::require_admin("run retention policies");
    // The calling procedure must be able to COMMIT: called by CALL at top
    // level, not inside BEGIN ... COMMIT, a function or an atomic procedure.
    if top_level && !unsafe { pg_sys::SPI_inside_nonatomic_context() } {
        raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "retention.run() cannot run inside a transaction block or a function",
            "CALL retention.run() on its own, at top level: it commits after every batch.",
        )
    }
    locks::release_stale_run_locks();
    hold::forget_held_keys();
    vacuum::reconcile();
    if !crate::gucs::ENABLED.get() {
        pgrx::notice!("retention.enabled is off; nothing done");
        return Vec::new();
    }
    let keep_days = crate::gucs::RUN_HISTORY_DAYS.get();
    if keep_days > 0 {
        run_log::prune(keep_days);
    }
    let policies = match policy_name {
        Some(n) => vec![policy::load_one(n)],
        // A table's policy runs before the policy of a table it references:
        // child rows purged first no longer block their parents.
        None => refs::children_first(policy::load(None), |p| p.target, &[]),
    };
    let run_id = run_log::next_run_id();
    let run_by = security::role_name(security::current_role());
    let mut items = Vec::new();
    for p in policies {
        if p.paused {
            if policy_name.is_some() {
                pgrx::notice!("retention policy \"{}\" is paused; nothing done", p.name);
            }
            continue;
        }
        let target = ident::relation(p.target)
            .unwrap_or_else(|| format!("(dropped table {})", p.target.to_u32()));
        if !locks::try_run_lock(p.id) {
            run_log::log_busy(run_id, &p, &target, &run_by);
            pgrx::notice!(
                "retention policy \"{}\" skipped: already running in another session",
                p.name
            );
            continue;
        }
        items.push(run_log::open(run_id, &p, &target, &run_by));
    }
    items
}

/// The rows legal holds keep from a policy's stages, as conditions over the
/// policy's table (see `model::hold`).
pub(crate) struct Kept {
    /// Table holds with a filter (a whole-table hold stops the policy).
    table: Vec<hold::Hold>,
    subject: Option<hold::SubjectHold>,
    /// For the purge stage: rows whose deletion would reach a row kept by
    /// a table hold.
    cascade: Option<String>,
    /// Whether a referencing table reached through cascading keys is in
    /// the map of a kind with a held subject (its keys are bound per
    /// batch, see [`Kept::not_cascading`]).
    cascade_subject: bool,
    target: pg_sys::Oid,
    table_name: String,
}

impl Kept {
    /// The holds that concern the policy's table now (a whole-table hold
    /// is among `table`; the caller looks for it first).
    fn of(p: &Policy, table: &str) -> Kept {
        Kept {
            table: hold::table_holds(p.target),
            // Holds on subjects (stored as blind indexes) protect the
            // subject's rows in every table of the kinds' maps.
            subject: hold::subject_hold(p.target, table),
            // Rows whose deletion would reach a held row through a cascading
            // foreign key (ON DELETE CASCADE, SET NULL, SET DEFAULT) are
            // kept by the purge stage and counted as held.
            cascade: hold::cascade_held(p.target, table, 0),
            cascade_subject: {
                let mut found = false;
                hold::cascade_held_keyed(p.target, table, 0, &mut |child, _| {
                    let held = hold::subject_hold(child, "held").is_some();
                    found |= held;
                    held.then(|| "true".to_string())
                });
                found
            },
            target: p.target,
            table_name: table.to_string(),
        }
    }

    fn any(&self) -> bool {
        !self.table.is_empty()
            || self.subject.is_some()
            || self.cascade.is_some()
            || self.cascade_subject
    }

    /// `NOT (held)` for every stage, binding the held subjects' keys.
    fn not_held(&self, item: i64, params: &mut Params) -> Option<String> {
        let table = (!self.table.is_empty())
            .then(|| format!("NOT ({})", hold::held_condition(&self.table)));
        let subject = self
            .subject
            .as_ref()
            .map(|sh| format!("NOT coalesce(({}), false)", sh.keys(item).bind(params)));
        all_of([table, subject])
    }

    /// For the purge stage: `NOT (a held row would be deleted or changed
    /// through a cascading key)`, binding held subjects' keys in `params`.
    pub(crate) fn not_cascading(&self, item: i64, params: &mut Params) -> Option<String> {
        let cascade = if self.cascade_subject {
            hold::cascade_held_keyed(self.target, &self.table_name, 0, &mut |child, alias| {
                hold::subject_held_as(child, alias, item, params)
            })
        } else {
            self.cascade.clone()
        };
        cascade.map(|c| format!("NOT coalesce(({c}), false)"))
    }

    fn hold_ids(&self) -> String {
        let mut ids: Vec<String> = self.table.iter().map(|h| h.id.to_string()).collect();
        if let Some(sh) = &self.subject {
            ids.extend(sh.hold_ids.iter().map(|i| i.to_string()));
        }
        ids.join(", ")
    }
}

/// Deletes at most one batch of due rows for one run-log item. Returns
/// whether more due rows may remain and how long to pause before the next
/// batch.
#[pg_extern(name = "_run_batch")]
#[allow(clippy::type_complexity)]
fn run_batch(
    item: i64,
    size: default!(Option<i32>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(more, bool),
        name!(pause, f64),
        name!(rows, i64),
        name!(next_size, Option<i32>),
    ),
> {
    security::require_admin("run retention policies");
    let done = |rows: i64| TableIterator::once((false, 0.0, rows, None));
    let Some(it) = run_log::load(item) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("run-log entry {item} does not exist"),
            "Start runs with CALL retention.run().",
        )
    };
    if !it.running() {
        return done(0);
    }
    locks::require_run_lock(it.policy_id, item);
    let Some(p) = policy::load_by_id(it.policy_id) else {
        run_log::finish(
            item,
            it.policy_id,
            Outcome::skipped("policy was dropped during the run"),
        );
        return done(0);
    };
    if p.paused {
        run_log::finish(
            item,
            p.id,
            Outcome::skipped("policy was paused during the run"),
        );
        return done(0);
    }
    let Some(table) = ident::relation(p.target) else {
        let msg = format!("target table of policy \"{}\" no longer exists", p.name);
        run_log::finish(item, p.id, Outcome::failed("42P01", &msg));
        return done(0);
    };
    if !crate::gucs::ENABLED.get() {
        run_log::finish(
            item,
            p.id,
            Outcome::skipped_noting("retention.enabled is off"),
        );
        return done(0);
    }
    if p.max_run_time_secs.is_some_and(|limit| it.elapsed > limit) {
        record_backlog(item, &it, &p, &table, &Kept::of(&p, &table));
        run_log::finish(
            item,
            p.id,
            Outcome::succeeded().noting(
                "stopped at max_run_time; the remaining due rows are left for the next run",
            ),
        );
        return done(0);
    }
    // Legal holds on the table: a whole-table hold stops the policy, a
    // filtered hold keeps its rows out of every stage.
    let kept = Kept::of(&p, &table);
    if let Some(h) = hold::whole_table_hold(&kept.table) {
        let why = format!("the whole table is under legal hold {}", h.id);
        run_log::finish(item, p.id, Outcome::skipped_noting(&why));
        return done(0);
    }
    // The first stage, from the item's, that the policy (still) has.
    let mut stage = it.stage;
    while let Some(s) = stage {
        if p.has(s) && it.cutoff(s).is_some() {
            break;
        }
        stage = s.next();
        run_log::set_stage(item, stage);
    }
    let Some(stage) = stage else {
        return done(0);
    };
    let Some(cutoff) = it.cutoff(stage) else {
        return done(0);
    };
    // The batch runs as the table's owner; the policy's owner must still
    // hold the rights the stage needs, checked before every batch.
    let mut needed = vec!["SELECT", stage.privilege()];
    if p.skip_locked {
        needed.push("UPDATE");
    }
    if let Some(missing) = security::missing_privilege(p.owner, p.target, &needed) {
        let msg = format!(
            "permission denied: the policy owner {} lacks {missing} on {table}",
            security::role_name(p.owner)
        );
        run_log::finish(item, p.id, Outcome::failed("42501", &msg));
        return done(0);
    }
    // The safety cap, before anything is changed.
    if !state::with(item, |s| std::mem::replace(&mut s.cap_checked, true)) {
        if let Some(why) = cap::check(item, &p, &table, &it) {
            pgrx::warning!("retention policy \"{}\" {why}", p.name);
            run_log::finish(item, p.id, Outcome::skipped_noting(&why));
            return done(0);
        }
    }
    // Replicas and replication slots that fall behind make the run wait
    // between batches, up to max_run_time (15 minutes without one).
    if let Some(why) = throttle::behind() {
        let limit = p.max_run_time_secs.unwrap_or(900.0);
        if it.throttled_ms / 1000.0 >= limit {
            record_backlog(item, &it, &p, &table, &kept);
            let note = format!("stopped after waiting {limit:.0} s: {why}; the remaining due rows are left for the next run");
            run_log::finish(item, p.id, Outcome::succeeded().noting(&note));
            return done(0);
        }
        if it.throttled_ms == 0.0 {
            pgrx::notice!("retention policy \"{}\" waits: {why}", p.name);
        }
        run_log::add_throttled(item, throttle::RECHECK_SECS * 1000.0);
        return TableIterator::once((true, throttle::RECHECK_SECS, 0, size));
    }
    if stage == Stage::Purge && p.drop_partitions && !it.partitions_checked && !kept.any() {
        // Whole partitions first; the boundary partition is left to batches.
        // The removal is a batch of its own and counts in max_batch_ms.
        let started = Some(pgrx::datum::clock_timestamp());
        let (removed, rows) = crate::partition::remove(&p, &table, cutoff);
        run_log::count_partitions(item, removed, rows, started);
        if removed > 0 {
            crate::cdc::emit(serde_json::json!({
                "action": "drop partitions", "policy": p.name, "table": table,
                "run_log_id": item, "partitions": removed, "rows_estimate": rows,
            }));
            return TableIterator::once((true, 0.0, rows, size));
        }
    }
    // Batches are sized to the policy's time budget (see `sizing`). A batch
    // that hit a lock or statement timeout is retried smaller (see
    // _run_retry); the procedure passes the reduced size back in.
    let sized = sizing::rows(item, stage, &p);
    let batch_size = size.map(|n| n.clamp(1, sized)).unwrap_or(sized);
    let mut params = Params::new();
    let cut = params.bind(cutoff);
    let limit = params.bind(batch_size as i64);
    let not_held = kept.not_held(item, &mut params);
    let mut keys = crate::mask::StageKeys::default();
    // Rows other tables still reference (RESTRICT / NO ACTION) are left out
    // of a purge instead of failing the batch; rows already in a mark or
    // anonymise stage's state are left out of it.
    let not_cascading = (stage == Stage::Purge)
        .then(|| kept.not_cascading(item, &mut params))
        .flatten();
    let pending = backlog::pending(stage, &p, &table, not_held.clone(), not_cascading.clone());
    let action = match stage {
        Stage::Purge => Action::Delete,
        Stage::Anonymise | Stage::Mark => {
            let state = p.state_column(stage).cloned().unwrap_or_default();
            let set = if stage == Stage::Anonymise {
                let sets = crate::stage::mask_plan(&p, &table, &mut params);
                if sets.is_empty() {
                    pgrx::notice!(
                        "retention policy \"{}\": the anonymise stage has no masks; skipped",
                        p.name
                    );
                    run_log::set_stage(item, stage.next());
                    return TableIterator::once((true, 0.0, 0, None));
                }
                keys = crate::stage::stage_keys(&sets, || state::run_key(item));
                format!("{sets}, {}", crate::stage::state_value(&state))
            } else {
                crate::stage::state_value(&state)
            };
            Action::Update(set)
        }
    };
    let due = all_of([Some(batch::due_condition(&p, cut)), pending]).unwrap_or_default();
    // The batch's time includes deciding on a walk (and counting for it).
    let batch_started = Some(pgrx::datum::clock_timestamp());
    // Large tables with many due rows are walked in ranges of pages, and
    // distributed tables in ranges of the pages of all shards at once.
    let spread = batch::distributed(&p);
    let window = if batch::by_row_id(&p) || spread {
        let start = walk::Start {
            first_rows: sized,
            cutoff,
        };
        walk::window(item, stage, &p, &table, &due, &params, start)
    } else {
        None
    };
    // A batch retried smaller covers proportionally fewer pages, or a
    // narrower window of the clock.
    let scale = f64::from(batch_size) / f64::from(sized.max(1));
    let window = window.map(|w| match w {
        walk::Win::Pages(from, to) => {
            let pages = to.saturating_sub(from).max(1);
            let scaled = (pages * i64::from(batch_size) / i64::from(sized.max(1))).clamp(1, pages);
            walk::Win::Pages(from, from + scaled)
        }
        walk::Win::Clock {
            lo,
            hi,
            start,
            end,
            min_width,
            pages,
        } if scale < 1.0 => {
            let from = if lo.is_finite() { lo } else { start };
            let to = if hi.is_finite() { hi } else { end };
            let narrower = from + ((to - from) * scale).max(min_width);
            walk::Win::Clock {
                lo,
                hi: if narrower < to { narrower } else { hi },
                start,
                end,
                min_width,
                pages,
            }
        }
        w => w,
    });
    let mut range = None;
    let mut span = None;
    match window {
        Some(walk::Win::Pages(from, to)) if spread => {
            span = Some(batch::Span {
                lo: None,
                hi: None,
                from: params.bind(format!("({from},0)")),
                to: params.bind(format!("({to},0)")),
                time: (f64::NEG_INFINITY, f64::INFINITY),
                pages: (from, to),
                pages_hint: from.max(to.min(walk::OPEN_END - 1)),
            })
        }
        Some(walk::Win::Pages(from, to)) => {
            range = Some((
                params.bind(format!("({from},0)")),
                params.bind(format!("({to},0)")),
            ))
        }
        Some(walk::Win::Clock { lo, hi, pages, .. }) => {
            span = Some(batch::Span {
                lo: Some(params.bind(lo)),
                hi: Some(params.bind(hi)),
                from: params.bind("(0,0)".to_string()),
                to: params.bind(format!("({},0)", walk::OPEN_END)),
                time: (lo, hi),
                pages: (0, walk::OPEN_END),
                pages_hint: pages,
            })
        }
        None => {}
    }
    let plan = BatchPlan {
        policy: &p,
        table: &table,
        due,
        action,
        limit,
        range,
        spread,
        span,
    };
    let wal_from = throttle::wal_position();
    let done = batch::execute(&plan, &params, keys);
    let (selected, changed) = (done.selected, done.changed);
    if done.walk_instead {
        // A batch by key of a distributed table met a locked row: the stage
        // goes on in page ranges or windows of the clock, which leave only
        // that row's position out. Where no walk can be planned (the stage
        // was forced once already), the stage ends here and its due rows
        // wait for the next run.
        let again = state::with(item, |s| {
            s.maybe_left = true;
            s.walk = None;
            s.walk_forced.replace(stage) == Some(stage)
        });
        if !again {
            return TableIterator::once((true, 0.0, 0, size));
        }
        run_log::note(
            item,
            &format!(
                "the {} stage stopped at a row locked by another session; its due rows are left for the next run",
                stage.as_str()
            ),
        );
    }
    // Rows this stage may have left: locked rows skipped, or rows selected
    // that the statement did not change (a trigger, row security).
    if done.skipping || changed < selected {
        state::with(item, |s| {
            s.maybe_left = true;
            s.skipped_parts += done.skipped_parts;
        });
    }
    let totals = run_log::count_batch(item, stage, changed, selected, batch_started);
    if changed > 0 {
        // Change-data capture: this batch's changes, explained in their
        // own transaction (no row data).
        crate::cdc::emit(serde_json::json!({
            "action": stage.as_str(), "policy": p.name, "table": table,
            "run_log_id": item, "rows": changed,
        }));
    }
    if selected > 0 {
        report_progress(item, &p.name, &totals);
    }
    // The next batch's size, from this one's time; a size reduced after a
    // timeout grows back towards it.
    sizing::learn(item, stage, &p, batch_size, selected, totals.batch_secs);
    let next_size = size
        .filter(|n| *n < sized)
        .map(|n| n.saturating_mul(2).min(sized));
    // Pause: the declared pause, or longer to stay under the rate limit
    // and the WAL rate (that wait counts as throttled).
    let mut pause = p.batch_pause_secs;
    if let Some(rate) = p.max_rows_per_second {
        pause = pause.max(changed as f64 / rate as f64 - totals.batch_secs);
    }
    let wal_pause = throttle::wal_pause(wal_from, totals.batch_secs);
    // Counted only when the procedure does sleep (more work follows).
    let wal_wait_ms = (wal_pause - pause).max(0.0) * 1000.0;
    let count_wait = |more: bool| {
        if more && wal_wait_ms > 0.0 {
            run_log::add_throttled(item, wal_wait_ms);
        }
    };
    pause = pause.max(wal_pause);
    // More may remain only if the batch was full and made progress: rows
    // that are selected but cannot be changed (a row-security policy, a
    // trigger returning NULL) must not make the run loop forever.
    // The walk's next state is stored only once everything this batch does
    // has been done: a batch retried after an error covers the same pages.
    let stepped = match window {
        Some(walk::Win::Pages(_, to)) => {
            walk::step(item, stage, to, selected, totals.batch_secs, &p)
        }
        Some(walk::Win::Clock { hi, .. }) => {
            walk::step_clock(item, stage, hi, selected, totals.batch_secs, &p)
        }
        None => None,
    };
    let more_here = match window {
        // A walked stage goes on until its last page range is done.
        Some(_) => stepped.as_ref().is_some_and(walk::Walk::goes_on),
        None => changed > 0 && selected >= batch_size as i64,
    };
    if more_here {
        walk::store(item, stepped);
        count_wait(true);
        return TableIterator::once((true, pause.max(0.0), changed, next_size));
    }
    if let Some(w) = &stepped {
        walk::note(item, w);
    }
    if stage == Stage::Purge {
        count_blocked(item, &p, &table, cutoff);
        // The due rows holds kept, with the batch's parameters.
        let not_held_purge = all_of([not_held, not_cascading]);
        if let Some(h) = &not_held_purge {
            let held = batch::count(
                &p,
                &table,
                &format!("{} AND NOT ({h})", batch::due_condition(&p, cut)),
                &params,
                "counting held rows",
            );
            run_log::set_held(item, held, &kept.hold_ids());
        }
    }
    if backlog::last_stage(&p) == Some(stage) {
        // A stage that ended without skipping a locked row and changed
        // every row it selected left nothing: no need to count.
        if state::with(item, |s| s.maybe_left) {
            backlog::record(item, &p, &table, &kept, cutoff);
        } else {
            run_log::set_left(item, Some(0), None);
        }
    }
    let next = stage.next();
    run_log::set_stage(item, next);
    walk::store(item, stepped);
    count_wait(next.is_some());
    TableIterator::once((next.is_some(), pause.max(0.0), changed, next_size))
}

/// Records the backlog of a run item that stops before its last stage
/// ended (max_run_time, replicas behind).
fn record_backlog(item: i64, it: &run_log::Item, p: &Policy, table: &str, kept: &Kept) {
    if let Some(cutoff) = backlog::last_stage(p).and_then(|s| it.cutoff(s)) {
        backlog::record(item, p, table, kept, cutoff);
    }
}

/// At the end of a purge stage: how many due rows were kept because other
/// rows still reference them.
fn count_blocked(item: i64, p: &Policy, table: &str, cutoff: pgrx::datum::TimestampWithTimeZone) {
    let blocking: Vec<String> = refs::references(p.target)
        .iter()
        .filter(|r| r.blocks())
        .map(|r| r.exists_sql(table))
        .collect();
    if blocking.is_empty() {
        return;
    }
    let mut params = Params::new();
    let cut = params.bind(cutoff);
    let cond = format!(
        "{} AND ({})",
        batch::due_condition(p, cut),
        blocking.join(" OR ")
    );
    let blocked = batch::count(p, table, &cond, &params, "counting blocked rows");
    run_log::set_blocked(item, blocked);
}

/// A NOTICE with the counts so far, at most every retention.progress_interval
/// seconds per policy.
fn report_progress(item: i64, policy: &str, t: &run_log::Totals) {
    let every = crate::gucs::PROGRESS_INTERVAL.get();
    if every < 0 {
        return;
    }
    let now = std::time::Instant::now();
    let due = state::with(item, |s| {
        let due = match s.last_progress {
            Some(at) => now.duration_since(at).as_secs_f64() >= every as f64,
            None => every == 0,
        };
        if due || s.last_progress.is_none() {
            s.last_progress = Some(now);
        }
        due
    });
    if due {
        let rate = if t.run_secs > 0.0 {
            (t.purged + t.anonymised + t.marked) as f64 / t.run_secs
        } else {
            0.0
        };
        pgrx::notice!(
            "retention policy \"{policy}\": {} purged, {} anonymised, {} marked in {} batches ({rate:.0} rows/s)",
            t.purged,
            t.anonymised,
            t.marked,
            t.batches
        );
    }
}

/// After a batch failed with a lock timeout, statement timeout, deadlock or
/// serialization failure: the size to retry with (half, down to a floor),
/// or NULL when the floor was reached and the policy should be left for the
/// next run. Counts the retry in the run log. Returns -1 for a statement
/// timeout that was the caller's own (see `timeout::last_timer_was_ours`):
/// the run must end.
#[pg_extern(name = "_run_retry")]
fn run_retry(item: i64, size: Option<i32>, sqlstate: &str) -> Option<i32> {
    security::require_admin("run retention policies");
    if sqlstate == "57014" && !crate::pg::timeout::last_timer_was_ours() {
        return Some(-1);
    }
    let it = run_log::load(item)?;
    locks::require_run_lock(it.policy_id, item);
    let p = policy::load_by_id(it.policy_id)?;
    let used = size
        .unwrap_or_else(|| sizing::last(item, &p))
        .clamp(1, p.batch_size);
    let floor = p.batch_size.min(10);
    if used <= floor {
        return None;
    }
    let next = (used / 2).max(floor);
    run_log::count_retry(item);
    let why = match sqlstate {
        "55P03" => "lock timeout",
        "57014" => "statement timeout",
        "40P01" => "deadlock",
        "40001" => "serialization failure",
        _ => "transient error",
    };
    pgrx::notice!(
        "retention policy \"{}\": a batch of {used} rows hit a {why}; retrying with {next}",
        p.name
    );
    Some(next)
}

/// Closes a run-log item that ran to its end.
#[pg_extern(name = "_run_close")]
fn run_close(item: i64) {
    security::require_admin("run retention policies");
    if let Some(it) = run_log::load(item) {
        if it.running() {
            locks::require_run_lock(it.policy_id, item);
        }
        run_log::finish(item, it.policy_id, Outcome::succeeded());
        vacuum::after_run(item);
    }
}

/// Closes a run-log item whose batch failed; records the error without
/// personal data.
#[pg_extern(name = "_run_fail")]
fn run_fail(
    item: i64,
    sqlstate: &str,
    message: Option<&str>,
    table: Option<&str>,
    constraint: Option<&str>,
    column: Option<&str>,
) {
    security::require_admin("run retention policies");
    let text = crate::error::sanitized_error(sqlstate, message, table, constraint, column);
    if let Some(it) = run_log::load(item) {
        if it.running() {
            locks::require_run_lock(it.policy_id, item);
        }
        run_log::finish(item, it.policy_id, Outcome::failed(sqlstate, &text));
        let name = policy::load_by_id(it.policy_id)
            .map(|p| p.name)
            .unwrap_or_else(|| it.policy_id.to_string());
        pgrx::warning!("retention policy \"{}\" failed: {}", name, text);
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// One complete run inside the test's transaction (no COMMIT), so that
    /// now() is the same for the data and the cutoff.
    fn run_in_transaction(policy: &str) -> i64 {
        let items = Spi::get_one_with_args::<Vec<i64>>(
            "SELECT retention._run_open($1, false)",
            &[policy.into()],
        )
        .unwrap()
        .unwrap_or_default();
        let mut total = 0;
        for item in items {
            loop {
                let (more, rows) = Spi::get_two_with_args::<bool, i64>(
                    "SELECT more, rows FROM retention._run_batch($1)",
                    &[item.into()],
                )
                .unwrap();
                total += rows.unwrap();
                if !more.unwrap() {
                    break;
                }
            }
            Spi::run_with_args("SELECT retention._run_close($1)", &[item.into()]).unwrap();
        }
        total
    }

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap_or(0)
    }

    fn ids(table: &str) -> String {
        Spi::get_one::<String>(&format!(
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM {table}"
        ))
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn only_rows_older_than_the_cutoff_and_inside_the_filter_go() {
        Spi::run(
            "CREATE TABLE t_cut (id int PRIMARY KEY, at timestamptz NOT NULL, kind text);
             INSERT INTO t_cut VALUES
                 (1, now() - interval '30 days', 'x'),                              -- exactly at the cutoff
                 (2, now() - interval '30 days' - interval '1 microsecond', 'x'),  -- just past it
                 (3, now() - interval '40 days', 'y'),                              -- outside the filter
                 (4, now() - interval '29 days', 'x'),                              -- too young
                 (5, now() - interval '5 years', NULL);                             -- filter is NULL
             SELECT retention.create_policy('cut', 't_cut', 'at', interval '30 days', filter => $$kind = 'x'$$);",
        )
        .unwrap();
        assert_eq!(run_in_transaction("cut"), 1);
        assert_eq!(ids("t_cut"), "1,3,4,5");
    }

    /// 40,000 rows of about 450 bytes: some 2,400 pages, above WALK_MIN_PAGES.
    fn wide_table(name: &str, due_every: i32) {
        Spi::run(&format!(
            "CREATE TABLE {name} (id int PRIMARY KEY, at timestamptz NOT NULL, kind text, pad text);
             INSERT INTO {name}
             SELECT g,
                    CASE WHEN g % {due_every} = 0 THEN now() - interval '400 days'
                         WHEN g % 1000 = 1 THEN now() - interval '30 days'   -- exactly at the cutoff
                         ELSE now() - interval '10 days' END,
                    CASE WHEN g % 21 = 0 THEN 'keep' WHEN g % 33 = 0 THEN NULL ELSE 'x' END,
                    repeat('p', 400)
               FROM generate_series(1, 40000) g;
             CREATE INDEX ON {name} (at);
             ANALYZE {name};"
        ))
        .unwrap();
    }

    fn run_note(policy: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT coalesce(note, '') FROM retention.runs WHERE policy = $1 ORDER BY id DESC LIMIT 1",
            &[policy.into()],
        )
        .unwrap()
        .unwrap_or_default()
    }

    #[pg_test]
    fn large_tables_with_many_due_rows_are_walked_in_page_ranges() {
        wide_table("t_walk", 7);
        let pages = count("SELECT pg_relation_size('t_walk') / 8192");
        assert!(pages >= walk::MIN_PAGES, "table has {pages} pages");
        let due_sql = "at < now() - interval '30 days' AND kind IS DISTINCT FROM 'keep'";
        let due = count(&format!("SELECT count(*) FROM t_walk WHERE {due_sql}"));
        let kept = Spi::get_one::<String>(&format!(
            "SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM t_walk WHERE NOT ({due_sql})"
        ))
        .unwrap();
        Spi::run(
            "SELECT retention.create_policy('walk', 't_walk', 'at', interval '30 days', batch_size => 500,
                                            filter => $$kind IS DISTINCT FROM 'keep'$$)",
        )
        .unwrap();
        let preview = Spi::get_one::<String>("SELECT note FROM retention.preview('walk')")
            .unwrap()
            .unwrap_or_default();
        assert!(preview.contains("walk it in ranges of pages"), "{preview}");
        assert_eq!(run_in_transaction("walk"), due);
        let after =
            Spi::get_one::<String>("SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM t_walk")
                .unwrap();
        assert_eq!(after, kept, "exactly the due rows are gone");
        assert!(
            run_note("walk").contains("purge stage walked"),
            "{}",
            run_note("walk")
        );
        let batches =
            Spi::get_one::<i32>("SELECT batches FROM retention.runs WHERE policy = 'walk'")
                .unwrap()
                .unwrap();
        assert!(
            batches as i64 >= due / 500,
            "{batches} batches for {due} rows"
        );
        // A second run finds nothing.
        assert_eq!(run_in_transaction("walk"), 0);
    }

    #[pg_test]
    fn walked_stages_mark_each_row_once_and_keep_referenced_rows() {
        wide_table("t_walk_mark", 5);
        Spi::run(
            "ALTER TABLE t_walk_mark ADD COLUMN restricted_at timestamptz;
             ANALYZE t_walk_mark;
             CREATE TABLE t_walk_ref (id int PRIMARY KEY, parent int REFERENCES t_walk_mark);
             INSERT INTO t_walk_ref SELECT g, g FROM generate_series(5, 500, 5) g;
             SELECT retention.create_policy('walk_mark', 't_walk_mark', 'at', interval '2 years', batch_size => 400);
             SELECT retention.add_stage('walk_mark', interval '30 days', 'mark', column_name => 'restricted_at');",
        )
        .unwrap();
        let due = count("SELECT count(*) FROM t_walk_mark WHERE at < now() - interval '30 days'");
        assert_eq!(run_in_transaction("walk_mark"), due);
        assert!(run_note("walk_mark").contains("mark stage walked"));
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM t_walk_mark WHERE (restricted_at IS NOT NULL) <> (at < now() - interval '30 days')")
                .unwrap(),
            Some(0)
        );
        assert_eq!(run_in_transaction("walk_mark"), 0, "marked once");
        // Purge after a year: rows other tables still reference are kept and counted.
        Spi::run("SELECT retention.alter_policy('walk_mark', purge_after => interval '1 year')")
            .unwrap();
        let purged = run_in_transaction("walk_mark");
        assert_eq!(purged, due - 100);
        assert_eq!(
            Spi::get_one::<i64>("SELECT rows_blocked FROM retention.runs WHERE policy = 'walk_mark' ORDER BY id DESC LIMIT 1")
                .unwrap(),
            Some(100)
        );
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM t_walk_mark WHERE at < now() - interval '1 year'"
            )
            .unwrap(),
            Some(100)
        );
    }

    #[pg_test]
    fn a_walk_stops_after_the_last_due_row() {
        // Append-only: the clock grows with the row order, the oldest tenth is due.
        Spi::run(
            "CREATE TABLE t_append (id int PRIMARY KEY, at timestamptz NOT NULL, pad text);
             INSERT INTO t_append SELECT g, now() - interval '100 days' + g * interval '2 minutes', repeat('a', 400)
               FROM generate_series(1, 40000) g;
             CREATE INDEX ON t_append (at);
             ANALYZE t_append;
             SELECT retention.create_policy('append', 't_append', 'at', interval '95 days', batch_size => 500);",
        )
        .unwrap();
        let due = count("SELECT count(*) FROM t_append WHERE at < now() - interval '95 days'");
        assert!(due > 3000, "{due} due");
        assert_eq!(run_in_transaction("append"), due);
        assert_eq!(
            Spi::get_one::<i64>("SELECT min(id) FROM t_append").unwrap(),
            Some(due + 1)
        );
        let note = run_note("append");
        let walked: Vec<i64> = note
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        // "walked N of the table's M pages": about a tenth, not all of it.
        assert!(walked.len() == 2 && walked[0] * 5 < walked[1], "{note}");
    }

    #[pg_test]
    fn subject_holds_keep_rows_deep_in_the_map_linked_by_value_and_of_several_kinds() {
        // person <- orders <- items (two foreign keys down), letters linked
        // by the person's e-mail address, and shops <- orders as a second
        // kind whose map holds orders and items too. The person id is a
        // domain, so its type must be named with its schema.
        Spi::run(
            "CREATE DOMAIN sh_person_id AS bigint;
             CREATE TABLE sh_people (id sh_person_id PRIMARY KEY, email text NOT NULL UNIQUE, left_at timestamptz NOT NULL);
             CREATE TABLE sh_shops (id int PRIMARY KEY);
             CREATE TABLE sh_orders (id int PRIMARY KEY, person sh_person_id NOT NULL REFERENCES sh_people,
                                     shop int NOT NULL REFERENCES sh_shops, at timestamptz NOT NULL);
             CREATE INDEX ON sh_orders (person);
             CREATE TABLE sh_items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES sh_orders, at timestamptz NOT NULL);
             CREATE TABLE sh_letters (id int PRIMARY KEY, email text NOT NULL, at timestamptz NOT NULL);
             -- Linked by a numeric code whose text differs between the two
             -- tables (1.50 against 1.5): keys compare as numbers.
             ALTER TABLE sh_orders ADD COLUMN code numeric UNIQUE;
             CREATE TABLE sh_notes (id int PRIMARY KEY, order_code numeric(10, 1) REFERENCES sh_orders (code),
                                    at timestamptz NOT NULL);
             INSERT INTO sh_people SELECT g, 'p' || g || '@example.org', now() FROM generate_series(1, 6) g;
             INSERT INTO sh_shops SELECT g FROM generate_series(1, 4) g;
             INSERT INTO sh_orders SELECT g, (g % 6) + 1, (g % 4) + 1, now() FROM generate_series(1, 12) g;
             INSERT INTO sh_items SELECT g, (g % 12) + 1, now() - interval '3 years' FROM generate_series(1, 48) g;
             UPDATE sh_orders SET code = id + 0.50;
             INSERT INTO sh_notes SELECT g, (g % 12) + 1.5, now() - interval '3 years' FROM generate_series(1, 24) g;
             INSERT INTO sh_letters SELECT g, 'p' || ((g % 6) + 1) || '@example.org', now() - interval '3 years'
               FROM generate_series(1, 30) g;
             SELECT retention.register_subject('sh_person', 'sh_people', 'id');
             SELECT retention.register_subject('sh_shop', 'sh_shops', 'id');
             SELECT retention.add_subject_table('sh_person', 'sh_letters', 'email', 'email');
             SELECT retention.create_policy('sh_items', 'sh_items', 'at', interval '1 year', batch_size => 7);
             SELECT retention.create_policy('sh_letters', 'sh_letters', 'at', interval '1 year');
             SELECT retention.create_policy('sh_notes', 'sh_notes', 'at', interval '1 year');",
        )
        .unwrap();
        let held_letters =
            "SELECT count(*) FROM sh_letters WHERE email IN ('p3@example.org', 'p5@example.org')";
        let held_items = |cond: &str| {
            count(&format!(
                "SELECT count(*) FROM sh_items i JOIN sh_orders o ON o.id = i.order_id WHERE {cond}"
            ))
        };
        // First one kind held: persons 3 and 5.
        Spi::run(
            "SELECT retention.place_hold('dispute', kind => 'sh_person', subject_id => '3');
             SELECT retention.place_hold('claim', kind => 'sh_person', subject_id => '5');
             INSERT INTO sh_items SELECT 100 + g, (g % 12) + 1, now() - interval '3 years' FROM generate_series(1, 48) g;",
        )
        .unwrap();
        let persons = "o.person IN (3, 5)";
        let (items_held, letters_held) = (held_items(persons), count(held_letters));
        assert!(items_held > 0 && items_held < 96 && letters_held > 0 && letters_held < 30);
        assert_eq!(run_in_transaction("sh_items"), 96 - items_held);
        assert_eq!(run_in_transaction("sh_letters"), 30 - letters_held);
        let held_notes = "SELECT count(*) FROM sh_notes n JOIN sh_orders o ON o.code = n.order_code WHERE o.person IN (3, 5)";
        let notes_held = count(held_notes);
        assert!(notes_held > 0 && notes_held < 24);
        assert_eq!(run_in_transaction("sh_notes"), 24 - notes_held);
        assert_eq!(count("SELECT count(*) FROM sh_notes"), notes_held);
        assert_eq!(count(held_notes), notes_held);
        // Exactly the held subjects' rows are left, and counted as held.
        assert_eq!(count("SELECT count(*) FROM sh_items"), items_held);
        assert_eq!(held_items(persons), items_held);
        assert_eq!(count("SELECT count(*) FROM sh_letters"), letters_held);
        assert_eq!(count(held_letters), letters_held);
        assert_eq!(
            count("SELECT rows_held FROM retention.runs WHERE policy = 'sh_items' ORDER BY id DESC LIMIT 1"),
            items_held
        );
        // Both kinds held: shop 2 as well. Items of either are kept.
        Spi::run(
            "SELECT retention.place_hold('inspection', kind => 'sh_shop', subject_id => '2');
             INSERT INTO sh_items SELECT 200 + g, (g % 12) + 1, now() - interval '3 years' FROM generate_series(1, 48) g;",
        )
        .unwrap();
        let either = "o.person IN (3, 5) OR o.shop = 2";
        let before = count("SELECT count(*) FROM sh_items");
        let kept = held_items(either);
        assert!(kept > held_items(persons) && kept > held_items("o.shop = 2"));
        assert_eq!(run_in_transaction("sh_items"), before - kept);
        assert_eq!(count("SELECT count(*) FROM sh_items"), kept);
        assert_eq!(held_items(either), kept);
        // Released, the holds keep nothing any more.
        Spi::run("SELECT retention.release_hold(id) FROM retention.holds WHERE kind LIKE 'sh\\_%'")
            .unwrap();
        assert_eq!(run_in_transaction("sh_items"), kept);
        assert_eq!(run_in_transaction("sh_letters"), letters_held);
    }

    #[pg_test]
    fn walked_stages_keep_held_rows_and_apply_masks() {
        wide_table("t_walk_hold", 4);
        Spi::run(
            "ALTER TABLE t_walk_hold ADD COLUMN anonymised_at timestamptz;
             ANALYZE t_walk_hold;
             SELECT retention.register_subject('walker', 't_walk_hold', 'id');
             SELECT retention.place_hold('dispute', kind => 'walker', subject_id => '400');
             SELECT retention.place_hold('audit', target => 't_walk_hold', filter => 'id BETWEEN 1000 AND 1100');
             SELECT retention.create_policy('walk_hold', 't_walk_hold', 'at', interval '3 years', batch_size => 300);
             SELECT retention.add_stage('walk_hold', interval '30 days', 'anonymise', column_name => 'anonymised_at');
             SELECT retention.set_mask('walk_hold', 'pad', 'partial', '{\"keep_start\": 2, \"keep_end\": 0}');",
        )
        .unwrap();
        let held = "id = 400 OR id BETWEEN 1000 AND 1100";
        let due = count(&format!(
            "SELECT count(*) FROM t_walk_hold WHERE at < now() - interval '30 days' AND NOT ({held})"
        ));
        assert_eq!(run_in_transaction("walk_hold"), due);
        assert!(
            run_note("walk_hold").contains("anonymise stage walked"),
            "{}",
            run_note("walk_hold")
        );
        // Held rows keep their data; every other due row is masked once.
        assert_eq!(
            Spi::get_one::<i64>(&format!(
                "SELECT count(*) FROM t_walk_hold WHERE ({held}) AND at < now() - interval '30 days'
                    AND (anonymised_at IS NOT NULL OR pad <> repeat('p', 400))"
            ))
            .unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>(&format!(
                "SELECT count(*) FROM t_walk_hold WHERE NOT ({held}) AND at < now() - interval '30 days'
                    AND (anonymised_at IS NULL OR pad <> 'pp' || repeat('*', 398))"
            ))
            .unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM t_walk_hold WHERE at >= now() - interval '30 days' AND anonymised_at IS NOT NULL")
                .unwrap(),
            Some(0)
        );
        assert_eq!(run_in_transaction("walk_hold"), 0, "masked once");
    }

    #[pg_test]
    fn tables_with_inheritance_children_are_not_walked() {
        wide_table("t_walk_parent", 5);
        Spi::run(
            "CREATE TABLE t_walk_child () INHERITS (t_walk_parent);
             INSERT INTO t_walk_child SELECT g + 100000, now() - interval '400 days', 'x', 'c' FROM generate_series(1, 500) g;
             ANALYZE t_walk_parent; ANALYZE t_walk_child;
             SELECT retention.create_policy('walk_parent', 't_walk_parent', 'at', interval '30 days', batch_size => 1000);",
        )
        .unwrap();
        let due = count("SELECT count(*) FROM t_walk_parent WHERE at < now() - interval '30 days'");
        assert_eq!(run_in_transaction("walk_parent"), due);
        let note = run_note("walk_parent");
        assert!(!note.contains("walked"), "not walked: {note}");
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM t_walk_child").unwrap(),
            Some(0),
            "the child's due rows are purged too"
        );
    }

    #[pg_test]
    fn small_tables_and_few_due_rows_are_batched_by_rows() {
        wide_table("t_few", 1000);
        Spi::run("SELECT retention.create_policy('few', 't_few', 'at', interval '30 days', batch_size => 7)")
            .unwrap();
        let preview =
            Spi::get_one::<String>("SELECT coalesce(note, '') FROM retention.preview('few')")
                .unwrap()
                .unwrap_or_default();
        assert!(!preview.contains("ranges of pages"), "{preview}");
        // 40 due rows of 40,000 (0.1%): found through the index, 7 per batch.
        assert_eq!(run_in_transaction("few"), 40);
        assert!(!run_note("few").contains("walked"));
        assert_eq!(
            Spi::get_one::<i32>("SELECT batches FROM retention.runs WHERE policy = 'few'").unwrap(),
            Some(6)
        );
    }

    #[pg_test]
    fn timestamp_and_date_clocks_and_tables_without_a_key() {
        Spi::run(
            "CREATE TABLE t_log (id int, at timestamp NOT NULL, day date NOT NULL);
             INSERT INTO t_log SELECT g, localtimestamp - g * interval '1 day', current_date - g FROM generate_series(1, 10) g;
             SELECT retention.create_policy('log_ts', 't_log', 'at', interval '7 days', batch_size => 1);",
        )
        .unwrap();
        // No key: batches by physical row id, one row per batch.
        assert_eq!(run_in_transaction("log_ts"), 3);
        assert_eq!(ids("t_log"), "1,2,3,4,5,6,7");
        Spi::run("SELECT retention.drop_policy('log_ts'); SELECT retention.create_policy('log_day', 't_log', 'day', interval '5 days');").unwrap();
        // The cutoff of a date clock is the cutoff's date: day 5 is not older.
        assert_eq!(run_in_transaction("log_day"), 2);
        assert_eq!(ids("t_log"), "1,2,3,4,5");
    }

    #[pg_test]
    fn the_run_log_counts_rows_and_batches() {
        Spi::run(
            "CREATE TABLE t_cnt (id int PRIMARY KEY, at timestamptz NOT NULL);
             INSERT INTO t_cnt SELECT g, now() - interval '1 year' FROM generate_series(1, 25) g;
             SELECT retention.create_policy('cnt', 't_cnt', 'at', interval '1 day', batch_size => 10);",
        )
        .unwrap();
        // The statement form above runs one batch per item; loop here.
        let item = Spi::get_one::<Vec<i64>>("SELECT retention._run_open('cnt', false)")
            .unwrap()
            .unwrap()[0];
        let mut rounds = 0;
        while Spi::get_one_with_args::<bool>(
            "SELECT more FROM retention._run_batch($1)",
            &[item.into()],
        )
        .unwrap()
        .unwrap()
        {
            rounds += 1;
            assert!(rounds < 10, "the batch loop does not end");
        }
        Spi::run_with_args("SELECT retention._run_close($1)", &[item.into()]).unwrap();
        let (purged, batches) = Spi::get_two::<i64, i32>(
            "SELECT rows_purged, batches FROM retention.run_log WHERE policy = 'cnt'",
        )
        .unwrap();
        assert_eq!(purged, Some(25));
        assert_eq!(batches, Some(3));
        assert_eq!(
            Spi::get_one::<String>("SELECT status FROM retention.runs WHERE policy = 'cnt'")
                .unwrap()
                .unwrap(),
            "succeeded"
        );
    }

    #[pg_test]
    fn a_paused_policy_opens_no_run() {
        Spi::run(
            "CREATE TABLE t_pause (id int PRIMARY KEY, at timestamptz NOT NULL);
             INSERT INTO t_pause VALUES (1, now() - interval '1 year');
             SELECT retention.create_policy('paused', 't_pause', 'at', interval '1 day');
             SELECT retention.pause_policy('paused');",
        )
        .unwrap();
        assert_eq!(run_in_transaction("paused"), 0);
        assert_eq!(ids("t_pause"), "1");
    }

    /// The extension's own stage writes never restart a retention period:
    /// retention.touch() skips them, and an application's own clock trigger
    /// can, with retention.stage_write in its WHEN clause; preview names a
    /// trigger that does not.
    #[pg_test]
    fn stage_writes_never_move_a_clock() {
        Spi::run(
            "CREATE TABLE public.tc_accounts (id int PRIMARY KEY, email text, last_update timestamptz NOT NULL,
                                              seen timestamptz NOT NULL, anonymised_at timestamptz);
             INSERT INTO public.tc_accounts
                  SELECT g, 'a' || g || '@x.example', now() - interval '3 years', now() - interval '3 years'
                    FROM generate_series(1, 4) g;
             CREATE FUNCTION public.tc_stamp() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN NEW.last_update := now(); RETURN NEW; END $$;
             CREATE TRIGGER stamp BEFORE UPDATE ON public.tc_accounts FOR EACH ROW
                 WHEN (current_setting('retention.stage_write', true) IS DISTINCT FROM 'on')
                 EXECUTE FUNCTION public.tc_stamp();
             CREATE TRIGGER touch BEFORE UPDATE ON public.tc_accounts FOR EACH ROW
                 EXECUTE FUNCTION retention.touch('seen');
             SELECT retention.create_policy('tc', 'public.tc_accounts', 'last_update', NULL);
             SELECT retention.add_stage('tc', interval '1 year', 'anonymise', column_name => 'anonymised_at');
             SELECT retention.set_mask('tc', 'email', 'null');",
        )
        .unwrap();
        let note =
            |sql: &str| -> String { Spi::get_one::<String>(sql).unwrap().unwrap_or_default() };
        let preview =
            "SELECT coalesce(note, '') FROM retention.preview('tc') WHERE action = 'anonymise'";
        assert!(!note(preview).contains("trigger"), "{}", note(preview));
        assert_eq!(run_in_transaction("tc"), 4);
        assert_eq!(count("SELECT count(*) FROM public.tc_accounts WHERE email IS NULL AND anonymised_at IS NOT NULL"), 4);
        // Neither clock moved.
        assert_eq!(count("SELECT count(*) FROM public.tc_accounts WHERE last_update > now() - interval '1 day' OR seen > now() - interval '1 day'"), 0);
        assert_eq!(
            Spi::get_one::<String>("SELECT current_setting('retention.stage_write')")
                .unwrap()
                .unwrap(),
            "off"
        );
        // The application's own updates still restart it.
        Spi::run("UPDATE public.tc_accounts SET email = 'b@x.example' WHERE id = 1").unwrap();
        assert_eq!(count("SELECT count(*) FROM public.tc_accounts WHERE last_update = now() AND seen = now()"), 1);
        // A clock trigger that cannot tell the stages apart is named.
        Spi::run(
            "CREATE TRIGGER stamp_too BEFORE UPDATE ON public.tc_accounts FOR EACH ROW EXECUTE FUNCTION public.tc_stamp()",
        )
        .unwrap();
        assert!(note(preview).contains("stamp_too"), "{}", note(preview));
    }
}
