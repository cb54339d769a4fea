//! The engine: runs, batches and the preview.
//!
//! `CALL retention.run()` (sql/api.sql) opens a run, then calls `_run_batch`
//! once per batch and COMMITs after each: PostgreSQL cannot commit from Rust,
//! so the loop lives in PL/pgSQL and each call here does one bounded unit of
//! work. The cutoff of every policy is fixed when the run opens; each batch
//! re-checks the due condition inside its DELETE, so a row whose clock moved
//! forward meanwhile survives. Rows locked by other sessions are skipped and
//! left for a later run.

use crate::error::{raise, OrRaise};
use crate::expr;
use crate::ident;
use crate::policy::{self, Policy};
use crate::security;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// lock_timeout of the optimistic (non-locking) form of a batch, in ms.
const FAST_PATH_LOCK_TIMEOUT_MS: i64 = 100;

/// First key of the session advisory locks that keep two runs of one policy
/// apart; the second key is the policy id. ("RET1")
pub const LOCK_CLASS: i32 = 0x5245_5431;

thread_local! {
    /// Policies whose run lock this backend holds.
    static HELD: RefCell<BTreeSet<i64>> = const { RefCell::new(BTreeSet::new()) };
}

fn try_lock(policy_id: i64) -> bool {
    let got = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_lock($1, $2::int4)",
        &[LOCK_CLASS.into(), policy_id.into()],
    )
    .or_raise("taking the policy's run lock")
    .unwrap_or(false);
    if got {
        HELD.with(|h| h.borrow_mut().insert(policy_id));
    }
    got
}

fn unlock(policy_id: i64) {
    let held = HELD.with(|h| h.borrow().contains(&policy_id));
    if held {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_advisory_unlock($1, $2::int4)",
            &[LOCK_CLASS.into(), policy_id.into()],
        )
        .or_raise("releasing the policy's run lock");
        // Forget the lock only once it is really released.
        HELD.with(|h| h.borrow_mut().remove(&policy_id));
    }
}

/// Refuses work on a run-log item whose policy lock this session does not
/// hold: only the session that opened a run may advance or close it.
fn require_own_item(policy_id: i64, item: i64) {
    if !HELD.with(|h| h.borrow().contains(&policy_id)) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("run-log entry {item} belongs to another session's run"),
            "Start runs with CALL retention.run(); internal functions are not an interface.",
        )
    }
}

/// Releases run locks left behind by an earlier run of this session that
/// ended without closing its policies (e.g. after an error outside a batch).
fn release_stale_locks() {
    let held: Vec<i64> = HELD.with(|h| h.borrow().iter().copied().collect());
    for id in held {
        unlock(id);
    }
}

/// The SQL type name used to compare the cutoff with a clock of type `ty`.
fn clock_cast(ty: pg_sys::Oid) -> &'static str {
    if ty == pg_sys::DATEOID {
        "date"
    } else if ty == pg_sys::TIMESTAMPOID {
        "timestamp"
    } else {
        "timestamptz"
    }
}

/// `<clock> < $n::<type> [AND (<filter>)]`: the due condition of a stage
/// whose cutoff is parameter $n.
fn due_condition_at(p: &Policy, n: usize) -> String {
    let mut s = format!(
        "{} < ${n}::{}",
        expr::embed(&p.clock),
        clock_cast(p.clock_type)
    );
    if let Some(f) = &p.filter {
        s.push_str(" AND ");
        s.push_str(&expr::embed(f));
    }
    s
}

fn due_condition(p: &Policy) -> String {
    due_condition_at(p, 1)
}

/// Whether batches address rows by physical row id rather than by key.
///
/// On a plain local table this is the fast path: the row ids of a batch are
/// sorted by the TID scan, so the DELETE or UPDATE reads the heap in
/// physical order, without a join and without one index lookup per row.
/// Partitioned tables (row ids repeat across partitions) and Citus
/// distributed tables (no row ids across nodes) are batched by key.
fn batch_by_row_id(p: &Policy) -> bool {
    if p.key_columns.is_none() {
        return true;
    }
    if ident::relkind(p.target) != Some(b'r') {
        return false;
    }
    !is_distributed(p.target)
}

/// Whether Citus distributes the table (only asked when Citus is installed).
fn is_distributed(target: pg_sys::Oid) -> bool {
    let citus = unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) };
    if citus == pg_sys::InvalidOid {
        return false;
    }
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::oid::regclass)",
        &[target.into()],
    )
    .or_raise("asking Citus about the table")
    .unwrap_or(true)
}

/// What one batch does to the rows it selected.
enum Action {
    Delete,
    /// `UPDATE ... SET <list>`
    Update(String),
}

/// One batch: select up to $2 due rows (skipping locked ones), then delete or
/// update them while re-checking the due condition (and, for updates, that
/// the row is still pending). Returns (selected, changed). With `range`, the
/// batch covers the physical pages from $6 up to (not including) $7 instead
/// of a number of rows (see [`Walk`]).
fn batch_statement(
    p: &Policy,
    table: &str,
    pending: Option<&str>,
    action: &Action,
    range: bool,
) -> String {
    batch_statement_locking(p, table, pending, action, p.skip_locked, range)
}

fn batch_statement_locking(
    p: &Policy,
    table: &str,
    pending: Option<&str>,
    action: &Action,
    lock_rows: bool,
    range: bool,
) -> String {
    let mut due = due_condition(p);
    if let Some(cond) = pending {
        due.push_str(" AND ");
        due.push_str(cond);
    }
    let statement = |matches: &str, returning: &str| match action {
        Action::Delete => format!("DELETE FROM {table} WHERE {matches}{due}{returning}"),
        Action::Update(set) => {
            format!("UPDATE {table} SET {set} WHERE {matches}{due}{returning}")
        }
    };
    let change = |matches: &str| statement(matches, " RETURNING 1");
    if range {
        let pages = "ctid >= $6::pg_catalog.tid AND ctid < $7::pg_catalog.tid AND ";
        if !lock_rows {
            // One pass over the range's pages: the change finds its own rows.
            // No RETURNING: the rows changed are the statement's row count
            // (see single_pass), and collecting them would cost about a
            // quarter of the batch's time.
            return statement(pages, "");
        }
        return format!(
            "WITH due AS (SELECT ctid AS row_id FROM {table} WHERE {pages}{due} FOR UPDATE SKIP LOCKED),\n\
             changed AS ({})\n\
             SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM changed)",
            change("ctid = ANY (ARRAY(SELECT row_id FROM due)) AND ")
        );
    }
    let lock = if lock_rows {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let key = if batch_by_row_id(p) {
        None
    } else {
        p.key_columns.as_ref()
    };
    let (select_list, matches) = match key {
        Some(cols) => {
            let list = ident::columns(None, cols);
            (
                list.clone(),
                format!("({list}) IN (SELECT {list} FROM due) AND "),
            )
        }
        None => (
            "ctid AS row_id".to_string(),
            "ctid = ANY (ARRAY(SELECT row_id FROM due)) AND ".to_string(),
        ),
    };
    format!(
        "WITH due AS (SELECT {select_list} FROM {table} WHERE {due} LIMIT $2{lock}),\n\
         changed AS ({})\n\
         SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM changed)",
        change(&matches)
    )
}

/// Runs one batch statement and returns (selected, changed): from its
/// result row, or for a single-pass statement (a walked range changed
/// without a locking pass, see batch_statement_locking) from its row count.
fn run_counts(
    c: &mut pgrx::spi::SpiClient<'_>,
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'static>],
    single_pass: bool,
) -> (i64, i64) {
    let e = "running a batch";
    if single_pass {
        let n = c.update(sql, None, args).or_raise(e).len() as i64;
        return (n, n);
    }
    let row = c.update(sql, Some(1), args).or_raise(e).first();
    (
        row.get::<i64>(1).or_raise(e).unwrap_or(0),
        row.get::<i64>(2).or_raise(e).unwrap_or(0),
    )
}

fn target_or_fail(p: &Policy) -> Result<String, String> {
    ident::relation(p.target)
        .ok_or_else(|| format!("target table of policy \"{}\" no longer exists", p.name))
}

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
    release_stale_locks();
    crate::erasure::forget_held_keys();
    if !crate::gucs::ENABLED.get() {
        pgrx::notice!("retention.enabled is off; nothing done");
        return Vec::new();
    }
    let keep_days = crate::gucs::RUN_HISTORY_DAYS.get();
    if keep_days > 0 {
        security::as_extension_owner(|| {
            Spi::run_with_args(
                "DELETE FROM retention.run_log
                  WHERE status <> 'running' AND finished_at < pg_catalog.now() - $1 * interval '1 day'",
                &[keep_days.into()],
            )
            .or_raise("pruning old run history")
        });
    }
    let policies = match policy_name {
        Some(n) => vec![policy::load_one(n)],
        None => children_first(policy::load(None)),
    };
    let run_id = security::as_extension_owner(|| {
        Spi::get_one::<i64>("SELECT pg_catalog.nextval('retention.run_id_seq')")
            .or_raise("numbering the run")
            .unwrap_or_default()
    });
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
        if !try_lock(p.id) {
            security::as_extension_owner(|| {
                Spi::run_with_args(
                    "INSERT INTO retention.run_log (run_id, policy_id, policy, target, run_by, backend_pid,
                                                    started_at, finished_at, status, error)
                     VALUES ($1, $2, $3, $4, $5, pg_catalog.pg_backend_pid(), pg_catalog.now(), pg_catalog.clock_timestamp(),
                             'skipped', 'already running in another session')",
                    &[run_id.into(), p.id.into(), p.name.as_str().into(), target.as_str().into(), run_by.as_str().into()],
                )
                .or_raise("logging a skipped policy")
            });
            pgrx::notice!(
                "retention policy \"{}\" skipped: already running in another session",
                p.name
            );
            continue;
        }
        let item = security::as_extension_owner(|| {
            // Holding the lock proves no other session is running this
            // policy: earlier rows still marked running were interrupted.
            Spi::run_with_args(
                "UPDATE retention.run_log SET status = 'interrupted', finished_at = pg_catalog.clock_timestamp()
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
                &[run_id.into(), p.id.into(), target.as_str().into(), run_by.as_str().into()],
            )
            .or_raise("opening the run")
            .unwrap_or_default()
        });
        items.push(item);
    }
    items
}

/// Orders policies so that a table's policy runs before the policy of a
/// table it references: child rows purged first no longer block their
/// parents in the same run. Name order otherwise, and for cycles.
fn children_first(policies: Vec<Policy>) -> Vec<Policy> {
    let targets: Vec<pg_sys::Oid> = policies.iter().map(|p| p.target).collect();
    // edges (child index, parent index): child's table references parent's.
    let mut edges = Vec::new();
    for (pi, parent) in policies.iter().enumerate() {
        for r in crate::refs::references(parent.target) {
            for (ci, child) in policies.iter().enumerate() {
                if ci != pi
                    && ident::relation(targets[ci]).as_deref() == Some(r.child.as_str())
                    && child.target != parent.target
                {
                    edges.push((ci, pi));
                }
            }
        }
    }
    let n = policies.len();
    let mut indegree = vec![0usize; n]; // parents wait for their children
    for &(_, p) in &edges {
        indegree[p] += 1;
    }
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        // The first (by name) policy that no unprocessed child waits on;
        // with a cycle, simply the first unprocessed one.
        let next = (0..n)
            .find(|&i| !done[i] && indegree[i] == 0)
            .or_else(|| (0..n).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
        for &(c, p) in &edges {
            if c == i && indegree[p] > 0 {
                indegree[p] -= 1;
            }
        }
    }
    let mut slots: Vec<Option<Policy>> = policies.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

struct Item {
    policy_id: i64,
    status: String,
    stage: String,
    /// Cutoffs of the purge, anonymise and mark stages.
    cutoffs: [Option<TimestampWithTimeZone>; 3],
    /// Seconds since the item's first batch (or since the run opened).
    elapsed: f64,
    partitions_checked: bool,
}

fn load_item(item: i64) -> Option<Item> {
    Spi::connect(|c| {
        crate::plans::select(
            c,
            "SELECT policy_id, status, stage, cutoff, anonymise_cutoff, mark_cutoff,
                    extract(epoch FROM pg_catalog.clock_timestamp() - started_at)::float8, partitions_checked
               FROM retention.run_log WHERE id = $1",
            &[item.into()],
        )
        .or_raise("reading the run log")
        .next()
        .map(|r| {
            let e = "reading the run log";
            Item {
                policy_id: r.get::<i64>(1).or_raise(e).unwrap_or_default(),
                status: r.get::<String>(2).or_raise(e).unwrap_or_default(),
                stage: r.get::<String>(3).or_raise(e).unwrap_or_default(),
                cutoffs: [
                    r.get::<TimestampWithTimeZone>(4).or_raise(e),
                    r.get::<TimestampWithTimeZone>(5).or_raise(e),
                    r.get::<TimestampWithTimeZone>(6).or_raise(e),
                ],
                elapsed: r.get::<f64>(7).or_raise(e).unwrap_or(0.0),
                partitions_checked: r.get::<bool>(8).or_raise(e).unwrap_or(false),
            }
        })
    })
}

/// The stages in the order a run applies them: oldest first, so that rows
/// about to be deleted are not masked or marked first.
const STAGES: [&str; 3] = ["purge", "anonymise", "mark"];

fn next_stage(stage: &str) -> &'static str {
    match stage {
        "purge" => "anonymise",
        "anonymise" => "mark",
        _ => "done",
    }
}

thread_local! {
    /// The random key of the hash_random strategy for the run-log item
    /// being worked on; never stored, gone when the item is done.
    static RUN_KEY: RefCell<Option<(i64, Vec<u8>)>> = const { RefCell::new(None) };
}

fn run_key(item: i64) -> Vec<u8> {
    RUN_KEY.with(|k| {
        let mut k = k.borrow_mut();
        match &*k {
            Some((i, key)) if *i == item => key.clone(),
            _ => {
                let key = crate::mask::random_key();
                *k = Some((item, key.clone()));
                key
            }
        }
    })
}

fn forget_run_key() {
    RUN_KEY.with(|k| *k.borrow_mut() = None);
}

fn finish(item: i64, policy_id: i64, status: &str, code: Option<&str>, error: Option<&str>) {
    finish_with_note(item, policy_id, status, code, error, None)
}

fn finish_with_note(
    item: i64,
    policy_id: i64,
    status: &str,
    code: Option<&str>,
    error: Option<&str>,
    note: Option<&str>,
) {
    // Held subjects' keys listed for this item are not kept past it.
    crate::erasure::forget_held_keys();
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
            &[item.into(), status.into(), code.into(), error.into(), note.into()],
        )
        .or_raise("closing the run")
    });
    // Every policy run is in the audit log: names and counts only.
    if let Some(s) = summary {
        crate::audit::append("policy run", s.0);
    }
    unlock(policy_id);
    forget_run_key();
    WALK.with(|w| *w.borrow_mut() = None);
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
    let Some(it) = load_item(item) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("run-log entry {item} does not exist"),
            "Start runs with CALL retention.run().",
        )
    };
    if it.status != "running" {
        return done(0);
    }
    require_own_item(it.policy_id, item);
    let Some(p) = policy::load_by_id(it.policy_id) else {
        finish(
            item,
            it.policy_id,
            "skipped",
            None,
            Some("policy was dropped during the run"),
        );
        return done(0);
    };
    if p.paused {
        finish(
            item,
            p.id,
            "skipped",
            None,
            Some("policy was paused during the run"),
        );
        return done(0);
    }
    let table = match target_or_fail(&p) {
        Ok(t) => t,
        Err(msg) => {
            finish(item, p.id, "failed", Some("42P01"), Some(&msg));
            return done(0);
        }
    };
    if !crate::gucs::ENABLED.get() {
        finish_with_note(
            item,
            p.id,
            "skipped",
            None,
            None,
            Some("retention.enabled is off"),
        );
        return done(0);
    }
    if let Some(limit) = p.max_run_time_secs {
        if it.elapsed > limit {
            finish_with_note(
                item,
                p.id,
                "succeeded",
                None,
                None,
                Some("stopped at max_run_time; the remaining due rows are left for the next run"),
            );
            return done(0);
        }
    }
    // Legal holds on the table: a whole-table hold stops the policy, a
    // filtered hold keeps its rows out of every stage.
    let holds = crate::erasure::table_holds(p.target);
    if let Some((id, _, _)) = holds.iter().find(|h| h.2.is_none()) {
        finish_with_note(
            item,
            p.id,
            "skipped",
            None,
            None,
            Some(&format!("the whole table is under legal hold {id}")),
        );
        return done(0);
    }
    let not_held: Option<String> = if holds.is_empty() {
        None
    } else {
        Some(format!(
            "NOT ({})",
            crate::erasure::held_condition(holds.iter())
        ))
    };
    // Holds on subjects (stored as blind indexes) protect the subject's rows
    // in every table of the kinds' maps (parameters $3..$5, see
    // erasure::subject_hold); the statement reads only the policy's table.
    let subject_hold = crate::erasure::subject_hold(p.target, &table);
    let not_held: Option<String> = match (&subject_hold, not_held) {
        (Some(sh), h) => {
            let s = format!("NOT coalesce(({}), false)", sh.condition);
            Some(match h {
                Some(h) => format!("{h} AND {s}"),
                None => s,
            })
        }
        (None, h) => h,
    };
    // Rows whose deletion would reach a held row through a cascading
    // foreign key (ON DELETE CASCADE, SET NULL, SET DEFAULT) are kept by the
    // purge stage and counted as held.
    let cascade = crate::erasure::cascade_held(p.target, &table, 0)
        .map(|c| format!("NOT coalesce(({c}), false)"));
    let not_held_purge: Option<String> = match (&not_held, &cascade) {
        (Some(h), Some(c)) => Some(format!("{h} AND {c}")),
        (Some(h), None) => Some(h.clone()),
        (None, Some(c)) => Some(c.clone()),
        (None, None) => None,
    };
    let with_holds = |cond: Option<String>| -> Option<String> {
        match (cond, &not_held) {
            (Some(c), Some(h)) => Some(format!("{c} AND {h}")),
            (None, Some(h)) => Some(h.clone()),
            (c, None) => c,
        }
    };
    let mut stage = it.stage.clone();
    loop {
        // Skip stages the policy does not have (any more).
        let present = match stage.as_str() {
            "purge" => p.purge,
            "anonymise" => p.anonymise.is_some(),
            "mark" => p.mark.is_some(),
            _ => return done(0),
        };
        let idx = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
        if present && it.cutoffs[idx].is_some() {
            break;
        }
        stage = next_stage(&stage).to_string();
        set_stage(item, &stage);
    }
    let idx = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
    let Some(cutoff) = it.cutoffs[idx] else {
        return done(0);
    };
    // The batch runs as the table's owner; the policy's owner must still
    // hold the rights the stage needs, checked before every batch.
    let mut needed = vec!["SELECT", if stage == "purge" { "DELETE" } else { "UPDATE" }];
    if p.skip_locked {
        needed.push("UPDATE");
    }
    if let Some(missing) = security::missing_privilege(p.owner, p.target, &needed) {
        let msg = format!(
            "permission denied: the policy owner {} lacks {missing} on {table}",
            security::role_name(p.owner)
        );
        finish(item, p.id, "failed", Some("42501"), Some(&msg));
        return done(0);
    }
    // A batch that hit a lock or statement timeout is retried smaller (see
    // _run_retry); the procedure passes the reduced size back in.
    let batch = size
        .map(|n| n.clamp(1, p.batch_size))
        .unwrap_or(p.batch_size);
    let mut args: Vec<pgrx::datum::DatumWithOid<'static>> =
        vec![cutoff.into(), (batch as i64).into()];
    args.extend(crate::erasure::hold_args(item, subject_hold.as_ref()));
    if stage == "purge"
        && p.drop_partitions
        && !it.partitions_checked
        && holds.is_empty()
        && subject_hold.is_none()
        && cascade.is_none()
    {
        // Whole partitions first; the boundary partition is left to batches.
        // The removal is a batch of its own and counts in max_batch_ms.
        let started = Some(pgrx::datum::clock_timestamp());
        let (removed, rows) = crate::partition::remove(&p, &table, cutoff);
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
        if removed > 0 {
            return TableIterator::once((true, 0.0, rows, size));
        }
    }
    // Page-range bounds $6 and $7 (see Walk); NULL while batches count rows.
    args.push(pgrx::datum::DatumWithOid::null::<String>());
    args.push(pgrx::datum::DatumWithOid::null::<String>());
    let mut needs_key = false;
    let (pending, action) = match stage.as_str() {
        "purge" => {
            // Rows other tables still reference (RESTRICT / NO ACTION) are
            // left out instead of failing the batch.
            let refs = crate::refs::references(p.target);
            let unblocked = with_holds(
                match (crate::refs::unblocked_condition(&refs, &table), &cascade) {
                    (Some(u), Some(c)) => Some(format!("{u} AND {c}")),
                    (None, Some(c)) => Some(c.clone()),
                    (u, None) => u,
                },
            );
            (unblocked, Action::Delete)
        }
        "anonymise" => {
            let state = p.anonymise.clone().unwrap_or_default();
            let (sets, params) = crate::stage::mask_plan(&p, &table, 8);
            if sets.is_empty() {
                pgrx::notice!(
                    "retention policy \"{}\": the anonymise stage has no masks; skipped",
                    p.name
                );
                set_stage(item, next_stage(&stage));
                return TableIterator::once((true, 0.0, 0, None));
            }
            needs_key = crate::stage::needs_pseudonym_key(&sets);
            let rk = if params
                .iter()
                .any(|x| matches!(x, crate::stage::Param::RunKey))
            {
                run_key(item)
            } else {
                Vec::new()
            };
            args.extend(params.iter().map(|x| x.datum(&rk)));
            let set = format!("{sets}, {}", crate::stage::state_value(&state));
            let pending = with_holds(Some(crate::stage::pending_condition(&state)));
            (pending, Action::Update(set))
        }
        _ => {
            let state = p.mark.clone().unwrap_or_default();
            let pending = with_holds(Some(crate::stage::pending_condition(&state)));
            (pending, Action::Update(crate::stage::state_value(&state)))
        }
    };
    // The batch's time includes deciding on a walk (and counting for it).
    let batch_started = Some(pgrx::datum::clock_timestamp());
    // Large tables with many due rows are walked in ranges of pages.
    let window = if batch_by_row_id(&p) {
        walk_window(item, &stage, &p, &table, pending.as_deref(), &args[..7])
    } else {
        None
    };
    // A batch retried smaller covers proportionally fewer pages.
    let range_done = window.map(|(from, to)| {
        let pages = to.saturating_sub(from).max(1);
        let scaled = (pages * i64::from(batch) / i64::from(p.batch_size.max(1))).clamp(1, pages);
        (from, from + scaled)
    });
    if let Some((from, to)) = range_done {
        args[5] = format!("({from},0)").into();
        args[6] = format!("({to},0)").into();
    }
    let range = window.is_some();
    let sql = batch_statement(&p, &table, pending.as_deref(), &action, range);
    // Optimistic form: without the separate row-locking pass, which costs as
    // much as the change itself. It runs under a short lock_timeout in a
    // subtransaction; if it meets a row an application holds, it is rolled
    // back and the batch runs in the locking form, which skips such rows.
    let fast_sql = if p.skip_locked {
        Some(batch_statement_locking(
            &p,
            &table,
            pending.as_deref(),
            &action,
            false,
            range,
        ))
    } else {
        None
    };
    let (selected, changed) = sanitizing(&table, || {
        security::as_table_owner(p.target, || {
            crate::mask::with_stage_key(needs_key, || {
                crate::stage::as_stage(|| {
                    Spi::connect_mut(|c| {
                        // Deferred foreign keys are checked now, inside the batch, so
                        // that a violation fails this batch and not the COMMIT after it.
                        c.update("SET CONSTRAINTS ALL IMMEDIATE", None, &[])
                            .or_raise("running a batch");
                        let _timer = crate::timeout::StatementTimer::start(p.statement_timeout_ms);
                        // The batch's lock_timeout is for its statement only: the
                        // run-log update and the audit entry after it keep the
                        // session's setting.
                        let previous = crate::gucs::read(c, "lock_timeout");
                        if let Some(fast) = &fast_sql {
                            crate::gucs::set_local(
                                c,
                                "lock_timeout",
                                &p.lock_timeout_ms.min(FAST_PATH_LOCK_TIMEOUT_MS).to_string(),
                            );
                            let attempt = crate::partition::try_in_subtransaction(
                                std::panic::AssertUnwindSafe(|| run_counts(c, fast, &args, range)),
                            );
                            match attempt {
                                Ok(counts) => {
                                    crate::gucs::set_local(c, "lock_timeout", &previous);
                                    return counts;
                                }
                                Err(e) if e.is_lock_timeout() => {}
                                Err(e) => e.rethrow(),
                            }
                        }
                        // The policy's lock_timeout for this batch's statement.
                        crate::gucs::set_local(c, "lock_timeout", &p.lock_timeout_ms.to_string());
                        let counts = run_counts(c, &sql, &args, range && !p.skip_locked);
                        crate::gucs::set_local(c, "lock_timeout", &previous);
                        counts
                    })
                })
            })
        })
    });
    let counter = match stage.as_str() {
        "purge" => "rows_purged",
        "anonymise" => "rows_anonymised",
        _ => "rows_marked",
    };
    let (purged, anonymised, marked, batches, batch_secs, run_secs) = security::as_extension_owner(
        || {
            Spi::connect_mut(|c| {
                let e = "counting the batch";
                // A policy's own time starts with its first batch, not when
                // the run (and its cutoffs) opened. Three fixed texts, one
                // per counter: kept plans.
                let row = crate::plans::update(
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
                                extract(epoch FROM pg_catalog.clock_timestamp() - $4)::float8,
                                extract(epoch FROM pg_catalog.clock_timestamp() - started_at)::float8"
                    ),
                    &[item.into(), changed.into(), selected.into(), batch_started.into()],
                )
                .or_raise(e)
                .first();
                (
                    row.get::<i64>(1).or_raise(e).unwrap_or(0),
                    row.get::<i64>(2).or_raise(e).unwrap_or(0),
                    row.get::<i64>(3).or_raise(e).unwrap_or(0),
                    row.get::<i32>(4).or_raise(e).unwrap_or(0),
                    row.get::<f64>(5).or_raise(e).unwrap_or(0.0),
                    row.get::<f64>(6).or_raise(e).unwrap_or(0.0),
                )
            })
        },
    );
    if selected > 0 {
        report_progress(item, &p.name, purged, anonymised, marked, batches, run_secs);
    }
    // Grow a reduced batch back towards the policy's size after a success.
    let next_size = size
        .filter(|n| *n < p.batch_size)
        .map(|n| n.saturating_mul(2).min(p.batch_size));
    // Pause: the declared pause, or longer to stay under the rate limit.
    let mut pause = p.batch_pause_secs;
    if let Some(rate) = p.max_rows_per_second {
        pause = pause.max(changed as f64 / rate as f64 - batch_secs);
    }
    // More may remain only if the batch was full and made progress: rows
    // that are selected but cannot be changed (a row-security policy, a
    // trigger returning NULL) must not make the run loop forever.
    // The walk's next state is stored only once everything this batch does
    // has been done: a batch retried after an error covers the same pages.
    let stepped =
        range_done.and_then(|(_, to)| walk_step(item, &stage, to, selected, p.batch_size));
    let more_here = match range_done {
        // A walked stage goes on until its last page range is done.
        Some(_) => stepped.as_ref().is_some_and(Walk::goes_on),
        None => changed > 0 && selected >= batch as i64,
    };
    let store_walk = |stepped: Option<Walk>| {
        if let Some(w) = stepped {
            WALK.with(|x| *x.borrow_mut() = Some(w));
        }
    };
    if more_here {
        store_walk(stepped);
        return TableIterator::once((true, pause.max(0.0), changed, next_size));
    }
    if let Some(w) = &stepped {
        note_walk(item, w);
    }
    if stage == "purge" {
        count_blocked(item, &p, &table, cutoff);
        if let Some(h) = &not_held_purge {
            let sql = format!(
                "SELECT count(*) FROM {table} WHERE {} AND NOT ({h}) AND $2 IS NOT NULL",
                due_condition(&p)
            );
            let mut count_args: Vec<pgrx::datum::DatumWithOid<'static>> =
                vec![cutoff.into(), 0i64.into()];
            count_args.extend(crate::erasure::hold_args(item, subject_hold.as_ref()));
            let held = sanitizing(&table, || {
                security::as_table_owner(p.target, || {
                    Spi::get_one_with_args::<i64>(&sql, &count_args)
                        .or_raise("counting held rows")
                        .unwrap_or(0)
                })
            });
            let mut ids = holds.iter().map(|h| h.0.to_string()).collect::<Vec<_>>();
            if let Some(sh) = &subject_hold {
                ids.extend(sh.hold_ids.iter().map(|i| i.to_string()));
            }
            let ids = ids.join(", ");
            security::as_extension_owner(|| {
                Spi::run_with_args(
                    "UPDATE retention.run_log SET rows_held = $2,
                            note = CASE WHEN $2 > 0 THEN coalesce(note || '; ', '') || 'due rows kept by legal holds ' || $3 ELSE note END
                      WHERE id = $1",
                    &[item.into(), held.into(), ids.as_str().into()],
                )
                .or_raise("counting held rows")
            });
        }
    }
    let next = next_stage(&stage);
    set_stage(item, next);
    store_walk(stepped);
    TableIterator::once((next != "done", pause.max(0.0), changed, next_size))
}

/// Smallest table, in pages, that a stage walks in page ranges (16 MB with
/// the default block size). Smaller tables are batched by row count.
const WALK_MIN_PAGES: i64 = 2048;
/// Share of a table's rows that must be due (or pending) for page ranges to
/// beat finding the rows through an index.
const WALK_MIN_DUE_SHARE: f64 = 0.03;
/// A page range never spans more pages than could hold this many batches'
/// worth of rows, so that a batch cannot grow without bound where the due
/// rows are suddenly dense.
const WALK_MAX_BATCHES: f64 = 8.0;

/// A stage's walk through a large table in ranges of physical pages.
///
/// Where many rows are due, batches that select rows first and then change
/// them read every due row twice, and a LIMIT over an index has to step
/// over the rows earlier batches already removed. A walked stage instead
/// changes, in one statement, the due rows of the pages from `next` to
/// `next + pages`, then moves on: every page is read once per run, as by a
/// single DELETE, while each batch still commits on its own. The first
/// range holds `batch_size` rows, as if all of them were due; later ones
/// are sized from the due rows the previous range held. Where an index
/// finds the due rows they are counted first, and the walk ends after the
/// last of them. Rows moved to pages already walked (an UPDATE during the
/// run) are left for the next run, like rows locked by the application.
#[derive(Clone)]
struct Walk {
    item: i64,
    stage: String,
    /// Whether the stage walks page ranges at all (the decision is cached
    /// for the stage; batches count rows otherwise).
    ranged: bool,
    next: i64,
    /// Table size in pages when the stage started.
    end: i64,
    pages: i64,
    max_pages: i64,
    /// Due rows not yet changed, when they were counted at the start.
    remaining: Option<i64>,
}

impl Walk {
    /// Whether pages (and, when counted, due rows) remain.
    fn goes_on(&self) -> bool {
        self.next < self.end && self.remaining.is_none_or(|r| r > 0)
    }
}

thread_local! {
    /// The walk of the stage being worked on in this backend.
    static WALK: RefCell<Option<Walk>> = const { RefCell::new(None) };
}

/// The page range [from, to) of the next batch of a walked stage, deciding
/// when the stage starts whether to walk it; None when batches count rows.
fn walk_window(
    item: i64,
    stage: &str,
    p: &Policy,
    table: &str,
    pending: Option<&str>,
    args: &[pgrx::datum::DatumWithOid<'static>],
) -> Option<(i64, i64)> {
    let window = |w: &Walk| w.ranged.then(|| (w.next, (w.next + w.pages).min(w.end)));
    let known = WALK.with(|w| {
        w.borrow()
            .as_ref()
            .filter(|w| w.item == item && w.stage == stage)
            .map(&window)
    });
    if let Some(win) = known {
        return win;
    }
    // Planning and counting wait for table locks no longer than a batch.
    let walk = crate::gucs::with_local("lock_timeout", &p.lock_timeout_ms.to_string(), || {
        plan_walk(item, stage, p, table, pending, args)
    });
    let win = window(&walk);
    WALK.with(|w| *w.borrow_mut() = Some(walk));
    win
}

/// Decides whether a stage walks page ranges: the table has at least
/// WALK_MIN_PAGES pages, and the planner either would scan it whole for the
/// due rows or expects at least WALK_MIN_DUE_SHARE of its rows to be due.
fn plan_walk(
    item: i64,
    stage: &str,
    p: &Policy,
    table: &str,
    pending: Option<&str>,
    args: &[pgrx::datum::DatumWithOid<'static>],
) -> Walk {
    let mut walk = Walk {
        item,
        stage: stage.to_string(),
        ranged: false,
        next: 0,
        end: 0,
        pages: 1,
        max_pages: 1,
        remaining: None,
    };
    // Page-range scans exist from PostgreSQL 14 on.
    if cfg!(feature = "pg13") {
        return walk;
    }
    let e = "sizing the table";
    let (pages, tuples, relpages, schema, name, children) = Spi::connect(|c| {
        let row = c
            .select(
                "SELECT pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int8,
                        c.reltuples::float8, c.relpages::int8, n.nspname::text, c.relname::text,
                        c.relhassubclass
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = $1",
                Some(1),
                &[p.target.into()],
            )
            .or_raise(e)
            .first();
        (
            row.get::<i64>(1).or_raise(e).unwrap_or(0),
            row.get::<f64>(2).or_raise(e).unwrap_or(-1.0),
            row.get::<i64>(3).or_raise(e).unwrap_or(0),
            row.get::<String>(4).or_raise(e).unwrap_or_default(),
            row.get::<String>(5).or_raise(e).unwrap_or_default(),
            row.get::<bool>(6).or_raise(e).unwrap_or(true),
        )
    });
    // A table with inheritance children: its statements reach the children's
    // pages too, which a walk sized by the parent would not cover.
    if pages < WALK_MIN_PAGES || children {
        return walk;
    }
    let mut cond = due_condition(p);
    if let Some(c) = pending {
        cond.push_str(" AND ");
        cond.push_str(c);
    }
    let sql = format!("EXPLAIN (FORMAT JSON, VERBOSE) SELECT 1 FROM {table} WHERE {cond}");
    let plan = sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::get_one_with_args::<pgrx::datum::Json>(&sql, args).or_raise("planning a batch")
        })
    });
    let Some(plan) = plan.and_then(|j| j.0.get(0).and_then(|x| x.get("Plan")).cloned()) else {
        return walk;
    };
    let due = plan
        .get("Plan Rows")
        .and_then(|r| r.as_f64())
        .unwrap_or(0.0);
    let per_page = if tuples > 0.0 && relpages > 0 {
        tuples / relpages as f64
    } else {
        100.0
    }
    .max(1.0);
    let total = if tuples > 0.0 {
        tuples
    } else {
        per_page * pages as f64
    };
    let whole = scan_node(&plan, &schema, &name).as_deref() == Some("Seq Scan");
    if !whole && due < WALK_MIN_DUE_SHARE * total {
        return walk;
    }
    // Where an index finds the due rows, count them: the exact number
    // decides (statistics may be stale after a large purge), and the walk
    // stops once it has changed that many rows, so that due rows gathered at
    // one end of the table (an append-only table) do not make it read the
    // rest. Without an index, counting would cost a walk of its own.
    if !whole {
        let sql = format!("SELECT count(*) FROM {table} WHERE {cond}");
        let n = sanitizing(table, || {
            security::as_table_owner(p.target, || {
                Spi::get_one_with_args::<i64>(&sql, args).or_raise("counting due rows")
            })
        })
        .unwrap_or(0);
        if n > 0 && (n as f64) < WALK_MIN_DUE_SHARE * total {
            return walk;
        }
        walk.remaining = Some(n);
    }
    let batch = f64::from(p.batch_size.max(1));
    walk.max_pages = ((WALK_MAX_BATCHES * batch / per_page).ceil() as i64).max(1);
    // The first range could hold nothing but due rows; later ones are sized
    // from what the previous range held.
    walk.pages = ((batch / per_page).ceil() as i64).clamp(1, walk.max_pages);
    walk.ranged = true;
    walk.end = if walk.remaining == Some(0) { 0 } else { pages };
    walk
}

/// The table's size in pages and its row count (from the statistics, or
/// estimated from the size when it was never analysed).
fn table_size(target: pg_sys::Oid) -> Option<(i64, f64)> {
    if cfg!(feature = "pg13") {
        return None;
    }
    Spi::get_two_with_args::<i64, f64>(
        "SELECT pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int8,
                CASE WHEN c.reltuples > 0 THEN c.reltuples::float8
                     ELSE pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::float8 * 100 END
           FROM pg_catalog.pg_class c WHERE c.oid = $1 AND NOT c.relhassubclass",
        &[target.into()],
    )
    .ok()
    .and_then(|(pages, tuples)| Some((pages?, tuples?)))
}

/// The node type of the plan node that scans the named table.
fn scan_node(plan: &serde_json::Value, schema: &str, name: &str) -> Option<String> {
    if plan.get("Relation Name").and_then(|v| v.as_str()) == Some(name)
        && plan.get("Schema").and_then(|v| v.as_str()) == Some(schema)
    {
        return plan
            .get("Node Type")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    plan.get("Plans")?
        .as_array()?
        .iter()
        .find_map(|child| scan_node(child, schema, name))
}

/// Notes in retention.runs how much of the table a finished walk read.
fn note_walk(item: i64, w: &Walk) {
    if w.end == 0 {
        return;
    }
    let note = format!(
        "the {} stage walked {} of the table's {} pages in ranges",
        w.stage,
        w.next.min(w.end),
        w.end
    );
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET note = coalesce(note || '; ', '') || $2 WHERE id = $1",
            &[item.into(), note.as_str().into()],
        )
        .or_raise("noting the batching")
    });
}

/// The walk's state after a batch that covered pages up to `to` and held
/// `rows` due rows, with the next range sized; not stored (see run_batch).
fn walk_step(item: i64, stage: &str, to: i64, rows: i64, batch_size: i32) -> Option<Walk> {
    let mut w = WALK.with(|w| {
        w.borrow()
            .as_ref()
            .filter(|w| w.item == item && w.stage == stage)
            .cloned()
    })?;
    let span = (to - w.next).max(1);
    w.next = to;
    // Grow at most fourfold per batch; shrink at once where rows are dense.
    let want = if rows > 0 {
        (f64::from(batch_size.max(1)) * span as f64 / rows as f64).round() as i64
    } else {
        span * 4
    };
    w.pages = want.clamp(1, (span * 4).min(w.max_pages));
    if let Some(r) = &mut w.remaining {
        *r -= rows;
    }
    Some(w)
}

/// At the end of a purge stage: how many due rows were kept because other
/// rows still reference them.
fn count_blocked(item: i64, p: &Policy, table: &str, cutoff: TimestampWithTimeZone) {
    let refs = crate::refs::references(p.target);
    let blocking: Vec<String> = refs
        .iter()
        .filter(|r| r.blocks())
        .map(|r| r.exists_sql(table))
        .collect();
    if blocking.is_empty() {
        return;
    }
    let sql = format!(
        "SELECT count(*) FROM {table} WHERE {} AND ({})",
        due_condition(p),
        blocking.join(" OR ")
    );
    let blocked = sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::get_one_with_args::<i64>(&sql, &[cutoff.into()])
                .or_raise("counting blocked rows")
                .unwrap_or(0)
        })
    });
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET rows_blocked = $2 WHERE id = $1",
            &[item.into(), blocked.into()],
        )
        .or_raise("counting blocked rows")
    });
}

thread_local! {
    /// When this backend last reported progress, per run-log item.
    static LAST_PROGRESS: RefCell<Option<(i64, std::time::Instant)>> = const { RefCell::new(None) };
}

/// A NOTICE with the counts so far, at most every retention.progress_interval
/// seconds per policy.
fn report_progress(
    item: i64,
    policy: &str,
    purged: i64,
    anonymised: i64,
    marked: i64,
    batches: i32,
    secs: f64,
) {
    let every = crate::gucs::PROGRESS_INTERVAL.get();
    if every < 0 {
        return;
    }
    let now = std::time::Instant::now();
    let due = LAST_PROGRESS.with(|l| match *l.borrow() {
        Some((i, at)) if i == item => now.duration_since(at).as_secs_f64() >= every as f64,
        _ => every == 0,
    });
    if LAST_PROGRESS.with(|l| l.borrow().map(|(i, _)| i != item).unwrap_or(true)) {
        LAST_PROGRESS.with(|l| *l.borrow_mut() = Some((item, now)));
    }
    if due {
        LAST_PROGRESS.with(|l| *l.borrow_mut() = Some((item, now)));
        let rate = if secs > 0.0 {
            (purged + anonymised + marked) as f64 / secs
        } else {
            0.0
        };
        pgrx::notice!(
            "retention policy \"{policy}\": {purged} purged, {anonymised} anonymised, {marked} marked in {batches} batches ({rate:.0} rows/s)"
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
    if sqlstate == "57014" && !crate::timeout::last_timer_was_ours() {
        return Some(-1);
    }
    let it = load_item(item)?;
    require_own_item(it.policy_id, item);
    let p = policy::load_by_id(it.policy_id)?;
    let used = size.unwrap_or(p.batch_size).clamp(1, p.batch_size);
    let floor = p.batch_size.min(10);
    if used <= floor {
        return None;
    }
    let next = (used / 2).max(floor);
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET retries = retries + 1 WHERE id = $1",
            &[item.into()],
        )
        .or_raise("counting a retry")
    });
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

fn set_stage(item: i64, stage: &str) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.run_log SET stage = $2 WHERE id = $1",
            &[item.into(), stage.into()],
        )
        .or_raise("advancing the stage")
    });
}

/// The five-character SQLSTATE of an error code.
fn sqlstate_of(code: PgSqlErrorCode) -> String {
    let c = code as i32;
    (0..5)
        .map(|i| ((((c >> (6 * i)) & 0x3F) as u8) + b'0') as char)
        .collect()
}

/// Runs `f`, which executes statements on `table` with the policy owner's
/// rights. An ERROR from the server is raised again with the same SQLSTATE
/// and a message that cannot quote row values: messages raised by PL
/// functions (triggers) are withheld whatever their SQLSTATE, others are
/// filtered by `sanitized_error`.
fn sanitizing<R>(table: &str, f: impl FnOnce() -> R) -> R {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) => {
                let code = r.sql_error_code();
                let state = sqlstate_of(code);
                let from_pl = r.file().contains("pl_exec") || r.function_name() == Some("exec_stmt_raise");
                let msg = if from_pl {
                    format!("error {state} raised by a trigger or function (message withheld: it may quote row values) [table {table}]")
                } else {
                    sanitized_error(&state, Some(r.message()), Some(table), None, None)
                };
                raise(
                    code,
                    msg,
                    "Messages that may quote row values are withheld; repeat the statement as the policy owner to see the full error.",
                )
            }
            other => other.rethrow(),
        })
        .execute()
}

/// `sanitizing` for other modules.
pub fn sanitizing_pub<R>(table: &str, f: impl FnOnce() -> R) -> R {
    sanitizing(table, f)
}

/// Closes a run-log item that ran to its end.
#[pg_extern(name = "_run_close")]
fn run_close(item: i64) {
    security::require_admin("run retention policies");
    if let Some(it) = load_item(item) {
        if it.status == "running" {
            require_own_item(it.policy_id, item);
        }
        finish(item, it.policy_id, "succeeded", None, None);
    }
}

/// SQLSTATE classes whose server messages name objects only, never values:
/// their text is kept in the run log. For all other classes (data
/// exceptions, integrity violations, raised exceptions, ...) the message may
/// quote row values and is withheld.
fn message_is_safe(sqlstate: &str, message: &str) -> bool {
    match sqlstate.get(0..2).unwrap_or("") {
        "25" | "2D" | "40" | "42" | "53" | "54" | "55" | "57" | "58" | "0A" => true,
        // PostgreSQL's own integrity messages name tables, columns and
        // constraints and keep the key values in DETAIL (never stored). A
        // trigger may raise the same codes with its own text: only the
        // server's wording is kept.
        "23" => [
            "update or delete on table \"",
            "insert or update on table \"",
            "duplicate key value violates unique constraint \"",
            "null value in column \"",
            "new row for relation \"",
            "conflicting key value violates exclusion constraint \"",
        ]
        .iter()
        .any(|p| message.starts_with(p)),
        _ => false,
    }
}

/// The run-log text for an error: the server message when its class cannot
/// carry row data, the table and constraint it concerns otherwise.
pub fn sanitized_error(
    sqlstate: &str,
    message: Option<&str>,
    table: Option<&str>,
    constraint: Option<&str>,
    column: Option<&str>,
) -> String {
    let mut s = if message_is_safe(sqlstate, message.unwrap_or("")) {
        message.unwrap_or("error").to_string()
    } else {
        format!("error {sqlstate} (message withheld: it may quote row values)")
    };
    let mut parts = Vec::new();
    if let Some(t) = table.filter(|t| !t.is_empty()) {
        parts.push(format!("table {t}"));
    }
    if let Some(c) = constraint.filter(|c| !c.is_empty()) {
        parts.push(format!("constraint {c}"));
    }
    if let Some(c) = column.filter(|c| !c.is_empty()) {
        parts.push(format!("column {c}"));
    }
    if !parts.is_empty() {
        s.push_str(&format!(" [{}]", parts.join(", ")));
    }
    s
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
    let text = sanitized_error(sqlstate, message, table, constraint, column);
    if let Some(it) = load_item(item) {
        if it.status == "running" {
            require_own_item(it.policy_id, item);
        }
        finish(item, it.policy_id, "failed", Some(sqlstate), Some(&text));
        let name = policy::load_by_id(it.policy_id)
            .map(|p| p.name)
            .unwrap_or_else(|| it.policy_id.to_string());
        pgrx::warning!("retention policy \"{}\" failed: {}", name, text);
    }
}

/// What a policy would do now, without changing anything.
#[pg_extern(name = "_preview")]
#[allow(clippy::type_complexity)]
fn preview(
    policy_name: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(policy, String),
        name!(target, String),
        name!(action, String),
        name!(cutoff, Option<TimestampWithTimeZone>),
        name!(due_rows, Option<i64>),
        name!(clock_indexed, Option<bool>),
        name!(paused, bool),
        name!(note, Option<String>),
    ),
> {
    security::require_reader("preview retention policies");
    let policies = match policy_name {
        Some(n) => vec![policy::load_one(n)],
        None => policy::load(None),
    };
    let mut rows = Vec::new();
    for p in policies {
        // Cutoffs as a run computes them: under the pinned settings (UTC).
        let (purge_cut, anon_cut, mark_cut) = security::with_pinned_settings(|| {
            Spi::get_three_with_args::<
                TimestampWithTimeZone,
                TimestampWithTimeZone,
                TimestampWithTimeZone,
            >(
                "SELECT pg_catalog.now() - purge_after, pg_catalog.now() - anonymise_after, pg_catalog.now() - mark_after
                   FROM retention.policies WHERE id = $1",
                &[p.id.into()],
            )
            .or_raise("computing the cutoffs")
        });
        let Some(table) = ident::relation(p.target) else {
            rows.push((
                p.name.clone(),
                format!("(dropped table {})", p.target.to_u32()),
                "-".into(),
                None,
                None,
                None,
                p.paused,
                Some("the target table no longer exists; drop the policy".to_string()),
            ));
            continue;
        };
        // Stages in run order, each with its cutoff and the extra condition
        // that makes a row due for it and not for an older stage.
        let mut stages: Vec<(&str, TimestampWithTimeZone, Option<String>)> = Vec::new();
        if let (true, Some(c)) = (p.purge, purge_cut) {
            stages.push(("purge", c, None));
        }
        let not_purged = if p.purge && purge_cut.is_some() {
            Some(format!("NOT ({})", due_condition_at(&p, 2)))
        } else {
            None
        };
        for (name, state, cut) in [
            ("anonymise", &p.anonymise, anon_cut),
            ("mark", &p.mark, mark_cut),
        ] {
            if let (Some(state), Some(c)) = (state, cut) {
                let mut cond = crate::stage::pending_condition(state);
                if let Some(np) = &not_purged {
                    cond = format!("{cond} AND {np}");
                }
                stages.push((name, c, Some(cond)));
            }
        }
        if stages.is_empty() {
            rows.push((
                p.name.clone(),
                table,
                "-".into(),
                None,
                None,
                None,
                p.paused,
                Some("no stage declared: add one with retention.add_stage".to_string()),
            ));
            continue;
        }
        // As a run decides: no whole partitions while a hold applies to the
        // table, its partitions or its referencing tables.
        // Looked up once per policy; the stages below count with them.
        let holds = crate::erasure::table_holds(p.target);
        let subject = crate::erasure::subject_hold(p.target, &table);
        let cascade = crate::erasure::cascade_held(p.target, &table, 0);
        let held_somewhere = !holds.is_empty() || subject.is_some() || cascade.is_some();
        // The held subjects' keys, listed once per policy (not per stage).
        let mut subject_args: Option<Vec<pgrx::datum::DatumWithOid<'static>>> = None;
        if let (true, true, Some(c), false) =
            (p.purge, p.drop_partitions, purge_cut, held_somewhere)
        {
            let parts = crate::partition::candidates(&p, c);
            if !parts.is_empty() {
                let names: Vec<String> = parts.iter().map(|x| x.name.clone()).collect();
                let how = match &p.archive_schema {
                    None => "dropped".to_string(),
                    Some(s) => format!("detached into schema {}", ident::quote(s)),
                };
                rows.push((
                    p.name.clone(),
                    table.clone(),
                    "drop partitions".to_string(),
                    Some(c),
                    Some(
                        parts
                            .iter()
                            .map(|x| {
                                if x.rows_estimate >= 0 {
                                    x.rows_estimate
                                } else {
                                    // Never analysed: count (the preview is not a hot path).
                                    sanitizing(&x.name, || {
                                        security::as_table_owner(p.target, || {
                                            Spi::get_one::<i64>(&format!(
                                                "SELECT count(*) FROM {}",
                                                x.name
                                            ))
                                            .or_raise("counting a partition")
                                            .unwrap_or(0)
                                        })
                                    })
                                }
                            })
                            .sum(),
                    ),
                    None,
                    p.paused,
                    Some(format!(
                        "{} partitions {how} whole (rows from statistics when analysed): {}",
                        parts.len(),
                        names.join(", ")
                    )),
                ));
            }
        }
        let mut first = true;
        for (action, cut, extra) in stages {
            let mut due = due_condition(&p);
            if let Some(e) = &extra {
                due = format!("{due} AND {e}");
            }
            let count_sql = format!("SELECT count(*) FROM {table} WHERE {due}");
            let mut args: Vec<pgrx::datum::DatumWithOid<'static>> = vec![cut.into()];
            if extra.as_deref().is_some_and(|e| e.contains("$2")) {
                args.push(purge_cut.into());
            }
            let due_plain = due_condition(&p);
            let (due_rows, indexed) = sanitizing(&table, || {
                security::as_table_owner(p.target, || {
                    let n = Spi::get_one_with_args::<i64>(&count_sql, &args)
                        .or_raise("counting due rows");
                    (n, clock_indexed(&table, &due_plain, cut))
                })
            });
            let mut notes = Vec::new();
            // Due rows that legal holds keep (on the table, its partitions or
            // parents, on subjects, and for purge behind cascading keys).
            if due_rows.is_some_and(|n| n > 0) {
                let mut held = Vec::new();
                if holds.iter().any(|h| h.2.is_none()) {
                    held.push("true".to_string());
                } else if !holds.is_empty() {
                    held.push(crate::erasure::held_condition(holds.iter()));
                }
                if let Some(sh) = &subject {
                    held.push(format!("coalesce(({}), false)", sh.condition));
                }
                if let (true, Some(c)) = (action == "purge", &cascade) {
                    held.push(format!("coalesce(({c}), false)"));
                }
                if !held.is_empty() {
                    // $1 the stage's cutoff, $2 the purge cutoff, $3..$5 the
                    // subject holds' parameters.
                    let mut held_args: Vec<pgrx::datum::DatumWithOid<'static>> =
                        vec![cut.into(), purge_cut.into()];
                    let keys = subject_args.get_or_insert_with(|| {
                        let a = crate::erasure::hold_args(i64::MIN, subject.as_ref());
                        // The held subjects' ids are personal data: not kept.
                        crate::erasure::forget_held_keys();
                        a
                    });
                    held_args.extend(keys.iter().map(crate::erasure::clone_arg));
                    let sql = format!(
                        "SELECT count(*) FROM {table} WHERE {due} AND ({})",
                        held.join(" OR ")
                    );
                    let n = sanitizing(&table, || {
                        security::as_table_owner(p.target, || {
                            Spi::get_one_with_args::<i64>(&sql, &held_args)
                                .or_raise("counting held rows")
                                .unwrap_or(0)
                        })
                    });
                    if n > 0 {
                        notes.push(format!("{n} of the due rows are kept by legal holds"));
                    }
                }
            }
            // Whether a run would walk this stage in page ranges (see Walk).
            let walked = batch_by_row_id(&p)
                && due_rows.is_some_and(|n| n > 0)
                && table_size(p.target).is_some_and(|(pages, tuples)| {
                    pages >= WALK_MIN_PAGES
                        && (!indexed || due_rows.unwrap_or(0) as f64 >= WALK_MIN_DUE_SHARE * tuples)
                });
            if first && !indexed {
                notes.push(if walked {
                    format!(
                        "no index serves the clock (CREATE INDEX ON {table} ({}))",
                        p.clock.trim()
                    )
                } else {
                    format!(
                        "no index serves the clock: each batch may scan the whole table (CREATE INDEX ON {table} ({}))",
                        p.clock.trim()
                    )
                });
            }
            if walked {
                notes.push(
                    "a large table with many due rows: batches walk it in ranges of pages, reading each page once"
                        .to_string(),
                );
            }
            if first && p.key_columns.is_none() {
                notes.push("no primary key: batches use physical row ids (not supported on distributed tables)".to_string());
            }
            if action == "purge" {
                for r in crate::refs::references(p.target) {
                    let mut due_p = due_condition(&p);
                    due_p.push_str(" AND ");
                    due_p.push_str(&r.exists_sql(&table));
                    let sql = if r.blocks() {
                        format!("SELECT count(*) FROM {table} WHERE {due_p}")
                    } else {
                        let pairs: Vec<String> = r
                            .child_columns
                            .iter()
                            .zip(&r.parent_columns)
                            .map(|(c, pc)| {
                                format!("c.{} = {table}.{}", ident::quote(c), ident::quote(pc))
                            })
                            .collect();
                        format!(
                            "SELECT count(*) FROM {} c WHERE EXISTS (SELECT 1 FROM {table} WHERE {} AND {})",
                            r.child,
                            due_condition(&p),
                            pairs.join(" AND ")
                        )
                    };
                    let n = sanitizing(&table, || {
                        security::as_table_owner(p.target, || {
                            Spi::get_one_with_args::<i64>(&sql, &[cut.into()])
                                .or_raise("counting referencing rows")
                                .unwrap_or(0)
                        })
                    });
                    notes.push(match r.on_delete.as_str() {
                        "c" => format!(
                            "{n} rows of {} are deleted with them ({})",
                            r.child,
                            r.action_words()
                        ),
                        "n" | "d" => format!(
                            "{n} rows of {} lose their reference ({})",
                            r.child,
                            r.action_words()
                        ),
                        _ => format!(
                            "{n} due rows are still referenced by {} ({}) and will be kept",
                            r.child,
                            r.action_words()
                        ),
                    });
                }
            }
            if action != "purge" {
                if let Some(note) = crate::stage::clock_trigger_note(p.target, &table) {
                    notes.push(note);
                }
            }
            if action == "anonymise" {
                let masks = Spi::get_one_with_args::<i64>(
                    "SELECT count(*) FROM retention.masks WHERE policy_id = $1",
                    &[p.id.into()],
                )
                .or_raise("counting masks")
                .unwrap_or(0);
                if masks == 0 {
                    notes.push(
                        "no masks declared: the stage is skipped (retention.set_mask)".to_string(),
                    );
                }
            }
            first = false;
            rows.push((
                p.name.clone(),
                table.clone(),
                action.to_string(),
                Some(cut),
                due_rows,
                Some(indexed),
                p.paused,
                if notes.is_empty() {
                    None
                } else {
                    Some(notes.join("; "))
                },
            ));
        }
    }
    TableIterator::new(rows)
}

/// The planner's estimate of rows due for purge (or the first declared
/// stage): cheap enough for monitoring, unlike count(*).
pub fn backlog_estimate(p: &Policy, table: &str) -> Option<i64> {
    let cutoff = security::with_pinned_settings(|| {
        Spi::get_one_with_args::<TimestampWithTimeZone>(
            "SELECT pg_catalog.now() - coalesce(purge_after, anonymise_after, mark_after) FROM retention.policies WHERE id = $1",
            &[p.id.into()],
        )
        .ok()
        .flatten()
    })?;
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE {}",
        due_condition(p)
    );
    // An error (the table changed, a lock) means no estimate; it is caught
    // in its own subtransaction.
    crate::partition::try_in_subtransaction(std::panic::AssertUnwindSafe(|| {
        security::as_table_owner(p.target, || {
            let plan = Spi::get_one_with_args::<pgrx::datum::Json>(&sql, &[cutoff.into()])
                .ok()
                .flatten()?;
            plan.0
                .get(0)?
                .get("Plan")?
                .get("Plan Rows")?
                .as_f64()
                .map(|r| r.round() as i64)
        })
    }))
    .ok()
    .flatten()
}

/// Whether an index can find due rows: plan the due condition with
/// sequential scans disabled and look for an index condition in the plan.
fn clock_indexed(table: &str, due: &str, cutoff: TimestampWithTimeZone) -> bool {
    let sql = format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE {due}");
    crate::gucs::with_local("enable_seqscan", "off", || {
        Spi::get_one_with_args::<pgrx::datum::Json>(&sql, &[cutoff.into()])
            .or_raise("planning the preview")
            .map(|j| j.0.to_string().contains("Index Cond"))
            .unwrap_or(false)
    })
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
        assert!(pages >= WALK_MIN_PAGES, "table has {pages} pages");
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
        assert_eq!(run_note("walk_parent"), "");
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
        assert_eq!(run_note("few"), "");
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

    #[pg_test]
    fn error_text_withholds_values() {
        let s = sanitized_error(
            "22P02",
            Some("invalid input syntax for type integer: \"alice@example.com\""),
            Some("orders"),
            None,
            None,
        );
        assert!(!s.contains("alice"), "{s}");
        assert!(s.contains("table orders"), "{s}");
        let s = sanitized_error(
            "55P03",
            Some("canceling statement due to lock timeout"),
            None,
            None,
            None,
        );
        assert_eq!(s, "canceling statement due to lock timeout");
        let s = sanitized_error(
            "23503",
            Some("update or delete on table \"c\" violates foreign key constraint \"o_fk\""),
            Some("c"),
            Some("o_fk"),
            None,
        );
        assert!(s.starts_with("update or delete on table"), "{s}");
        assert!(s.contains("constraint o_fk"), "{s}");
        // The same code raised by a trigger with its own text is withheld.
        let s = sanitized_error(
            "23503",
            Some("customer bob@example.com still has orders"),
            None,
            None,
            None,
        );
        assert!(!s.contains("bob"), "{s}");
        let s = sanitized_error("P0001", Some("bob@example.com"), None, None, None);
        assert!(!s.contains("bob"), "{s}");
    }
}
