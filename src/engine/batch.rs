//! One batch as SQL: which rows it selects and what it does to them.
//!
//! A [`BatchPlan`] is built from a policy's stage, the conditions that keep
//! rows (holds, references, rows already in the stage's state) and the
//! parameters it binds; [`BatchPlan::sql`] writes the statement and
//! [`execute`] runs it as the table's owner. Invariants: the due condition
//! is re-checked inside the statement that changes rows (a row whose clock
//! moved meanwhile survives); rows locked by other sessions are skipped,
//! never waited for beyond the policy's lock_timeout; every value is a bind
//! parameter.

use crate::error::OrRaise;
use crate::expr;
use crate::model::policy::Policy;
use crate::pg::ident;
use crate::pg::params::{Param, Params};
use crate::pg::security;
use pgrx::prelude::*;

/// lock_timeout of the optimistic (non-locking) form of a batch, in ms.
const FAST_PATH_LOCK_TIMEOUT_MS: i64 = 100;

/// The SQL type name used to compare the cutoff with a clock of type `ty`.
pub fn clock_cast(ty: pg_sys::Oid) -> &'static str {
    if ty == pg_sys::DATEOID {
        "date"
    } else if ty == pg_sys::TIMESTAMPOID {
        "timestamp"
    } else {
        "timestamptz"
    }
}

/// `<clock> < <cutoff>::<type> [AND (<filter>)]`: the due condition of a
/// stage whose cutoff is bound as `cutoff`.
pub fn due_condition(p: &Policy, cutoff: Param) -> String {
    let mut s = format!(
        "{} < {cutoff}::{}",
        expr::embed(&p.clock),
        clock_cast(p.clock_type)
    );
    if let Some(f) = &p.filter {
        s.push_str(" AND ");
        s.push_str(&expr::embed(f));
    }
    s
}

/// `a AND b` of the conditions present.
pub fn all_of<I: IntoIterator<Item = Option<String>>>(conds: I) -> Option<String> {
    let parts: Vec<String> = conds.into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// Whether batches address rows by physical row id rather than by key.
///
/// On a plain local table this is the fast path: the row ids of a batch are
/// sorted by the TID scan, so the DELETE or UPDATE reads the heap in
/// physical order, without a join and without one index lookup per row.
/// Partitioned tables (row ids repeat across partitions) and Citus
/// distributed tables (no row ids across nodes) are batched by key.
pub fn by_row_id(p: &Policy) -> bool {
    if p.key_columns.is_none() {
        return true;
    }
    if ident::relkind(p.target) != Some(b'r') {
        return false;
    }
    !is_citus_table(p.target)
}

/// Whether the table is partitioned or has inheritance children: a scan of
/// it reads several tables, whose row ids repeat.
fn has_children(target: pg_sys::Oid) -> bool {
    ident::relkind(target) == Some(b'p')
        || Spi::get_one_with_args::<bool>(
            "SELECT relhassubclass FROM pg_catalog.pg_class WHERE oid = $1",
            &[target.into()],
        )
        .or_raise("reading the table")
        .unwrap_or(false)
}

/// Whether the policy's table is a Citus table whose shards have one
/// placement each (hash-distributed, not partitioned): its batches walk page
/// ranges of every shard at once (see `walk`), one statement changing rows
/// on all shards in parallel. Reference tables (and shards kept on several
/// nodes) are left to batches by key: the same page range would hold other
/// rows on each copy.
pub fn distributed(p: &Policy) -> bool {
    ident::relkind(p.target) == Some(b'r')
        && citus_installed()
        && Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::oid::regclass AND repmodel = 's')",
            &[p.target.into()],
        )
        .or_raise("asking Citus about the table")
        .unwrap_or(false)
}

/// Whether the Citus extension is installed in this database.
fn citus_installed() -> bool {
    unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// Whether the table is a Citus table of any kind (only asked when Citus is
/// installed).
pub fn is_citus_table(target: pg_sys::Oid) -> bool {
    if !citus_installed() {
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
pub enum Action {
    Delete,
    /// `UPDATE ... SET <list>`
    Update(String),
}

/// One batch of a stage.
pub struct BatchPlan<'a> {
    pub policy: &'a Policy,
    pub table: &'a str,
    /// The due condition with everything that keeps rows (see the module).
    pub due: String,
    pub action: Action,
    /// The most rows a batch selects.
    pub limit: Param,
    /// With a walk: the batch covers the pages from `.0` up to (not
    /// including) `.1` instead of a number of rows (see `walk`).
    pub range: Option<(Param, Param)>,
    /// The table is distributed (Citus): the row-locking forms are refused
    /// there (see [`execute`]).
    pub spread: bool,
    /// A distributed table's walk: this batch's share (instead of `range`).
    pub span: Option<Span>,
}

/// The share of a distributed table that one batch of its walk covers (see
/// `walk`): a window [lo, hi) of the clock (seconds since 1970, infinite
/// where open; none when pages are walked) and the row positions from `from`
/// to `to` (pages: `(page, 0)`), all bound as parameters.
pub struct Span {
    pub lo: Option<Param>,
    pub hi: Option<Param>,
    pub from: Param,
    pub to: Param,
    pub time: (f64, f64),
    pub pages: (i64, i64),
    /// The estimated pages of the largest shard (see `walk::Win`).
    pub pages_hint: i64,
}

/// What a batch did.
#[derive(Default)]
pub struct Done {
    pub selected: i64,
    pub changed: i64,
    /// The form that skips locked rows ran, or pages were left for rows
    /// locked by other sessions.
    pub skipping: bool,
    /// Row positions or ranges of them (of every shard) left for the next
    /// run because a row there was locked (distributed tables).
    pub skipped_parts: i64,
    /// A batch by key of a distributed table met a locked row and changed
    /// nothing: the stage goes on in page ranges, which can leave the
    /// locked row's page out.
    pub walk_instead: bool,
}

impl BatchPlan<'_> {
    /// The statement. With `lock_rows`, due rows are selected first,
    /// skipping locked ones, then changed while re-checking the condition;
    /// it returns (selected, changed). Without, one statement changes the
    /// due rows it finds (see [`BatchPlan::single_pass`]).
    pub fn sql(&self, lock_rows: bool) -> String {
        let (table, due) = (self.table, &self.due);
        let statement = |matches: &str, returning: &str| match &self.action {
            Action::Delete => format!("DELETE FROM {table} WHERE {matches}{due}{returning}"),
            Action::Update(set) => {
                format!("UPDATE {table} SET {set} WHERE {matches}{due}{returning}")
            }
        };
        let change = |matches: &str| statement(matches, " RETURNING 1");
        if let Some(sp) = &self.span {
            // One pass, on every shard at once; the row count is the result.
            let mut cond = String::new();
            if let (Some(lo), Some(hi)) = (sp.lo, sp.hi) {
                let clock = expr::embed(&self.policy.clock);
                let cast = clock_cast(self.policy.clock_type);
                cond = format!(
                    "{clock} >= pg_catalog.to_timestamp({lo})::{cast} AND {clock} < pg_catalog.to_timestamp({hi})::{cast} AND "
                );
            }
            cond.push_str(&format!(
                "ctid >= {}::pg_catalog.tid AND ctid < {}::pg_catalog.tid AND ",
                sp.from, sp.to
            ));
            return statement(&cond, "");
        }
        if let Some((from, to)) = self.range {
            let pages =
                format!("ctid >= {from}::pg_catalog.tid AND ctid < {to}::pg_catalog.tid AND ");
            if !lock_rows {
                // One pass over the range's pages: the change finds its own
                // rows. No RETURNING: the rows changed are the statement's
                // row count, and collecting them would cost about a quarter
                // of the batch's time.
                return statement(&pages, "");
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
        let key = if by_row_id(self.policy) {
            None
        } else {
            self.policy.key_columns.as_ref()
        };
        let (select_list, matches) = match key {
            Some(cols) => {
                let list = ident::columns(None, cols);
                (
                    list.clone(),
                    format!("({list}) IN (SELECT {list} FROM due) AND "),
                )
            }
            // A partitioned table (or an inheritance parent) without a key:
            // row ids repeat across its tables, so a row is its table and its
            // row id. The row ids still let each table be read by row id.
            None if has_children(self.policy.target) => (
                "tableoid AS part, ctid AS row_id".to_string(),
                "ctid = ANY (ARRAY(SELECT row_id FROM due)) AND (tableoid, ctid) IN (SELECT part, row_id FROM due) AND "
                    .to_string(),
            ),
            None => (
                "ctid AS row_id".to_string(),
                "ctid = ANY (ARRAY(SELECT row_id FROM due)) AND ".to_string(),
            ),
        };
        format!(
            "WITH due AS (SELECT {select_list} FROM {table} WHERE {due} LIMIT {}{lock}),\n\
             changed AS ({})\n\
             SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM changed)",
            self.limit,
            change(&matches)
        )
    }

    /// Whether the statement without row locks is a single pass whose row
    /// count is the result (a walked range).
    pub fn single_pass(&self, lock_rows: bool) -> bool {
        self.span.is_some() || (self.range.is_some() && !lock_rows)
    }
}

/// Runs one batch statement and returns (selected, changed): from its
/// result row, or for a single pass from its row count.
fn run_counts(
    c: &mut pgrx::spi::SpiClient<'_>,
    sql: &str,
    params: &Params,
    single_pass: bool,
) -> (i64, i64) {
    let e = "running a batch";
    if single_pass {
        let n = c.update(sql, None, params.args()).or_raise(e).len() as i64;
        return (n, n);
    }
    let row = c.update(sql, Some(1), params.args()).or_raise(e).first();
    (
        row.get::<i64>(1).or_raise(e).unwrap_or(0),
        row.get::<i64>(2).or_raise(e).unwrap_or(0),
    )
}

/// The lock wait of a distributed table's batch statements on the workers.
/// Citus passes `SET LOCAL` on to the nodes of the transaction when
/// `citus.propagate_set_commands` is `local` (`set_config` stays on the
/// coordinator); SET takes no parameters, so the statement is fixed text.
/// The shortest of them at least as short as the policy's lock_timeout
/// (and at most 100 ms) is used; `TO DEFAULT` sets it back when the batch's
/// statements are done.
fn spread_lock_timeout(policy_ms: i64) -> &'static str {
    if policy_ms <= 10 {
        "SET LOCAL lock_timeout = '10ms'"
    } else if policy_ms <= 50 {
        "SET LOCAL lock_timeout = '50ms'"
    } else {
        "SET LOCAL lock_timeout = '100ms'"
    }
}
/// The most statements one batch of a distributed table runs while it
/// narrows its share down to the rows locked by other sessions; what is left
/// then waits for the next run. The narrowing also stops after half the
/// policy's statement_timeout (or 30 s without one).
const SPREAD_MAX_TRIES: i64 = 128;

/// Runs a batch as the table's owner, as a stage write, under the policy's
/// statement and lock timeouts. With `skip_locked`, the optimistic form
/// (without the separate row-locking pass, which costs as much as the
/// change itself) runs first under a short lock_timeout in a
/// subtransaction; if it meets a row an application holds, it is rolled
/// back and the locking form, which skips such rows, runs. Citus refuses
/// that form on distributed tables: there, a page range that meets a
/// locked row is split in halves until the pages with locked rows are
/// found and left for the next run, and a batch by key that meets one asks
/// for the stage to go on in page ranges ([`Done::walk_instead`]).
pub fn execute(plan: &BatchPlan, params: &Params, keys: crate::mask::StageKeys) -> Done {
    let p = plan.policy;
    let sql = plan.sql(p.skip_locked);
    let fast = p.skip_locked.then(|| plan.sql(false));
    crate::error::sanitizing(plan.table, || {
        security::as_table_owner(p.target, || {
            crate::mask::with_stage_key(keys, || {
                crate::stage::as_stage(|| {
                    Spi::connect_mut(|c| {
                        // Deferred foreign keys are checked now, inside the
                        // batch, so that a violation fails this batch and
                        // not the COMMIT after it.
                        c.update("SET CONSTRAINTS ALL IMMEDIATE", None, &[])
                            .or_raise("running a batch");
                        let _timer =
                            crate::pg::timeout::StatementTimer::start(p.statement_timeout_ms);
                        // The batch's lock_timeout is for its statement only:
                        // the run-log update and the audit entry after it keep
                        // the session's setting.
                        let previous = crate::gucs::read(c, "lock_timeout");
                        let fast_timeout = p.lock_timeout_ms.min(FAST_PATH_LOCK_TIMEOUT_MS);
                        if let (Some(fast), true) = (&fast, plan.spread) {
                            let e = "limiting lock waits on the workers";
                            let propagate = crate::gucs::read(c, "citus.propagate_set_commands");
                            crate::gucs::set_local(c, "citus.propagate_set_commands", "local");
                            c.update(spread_lock_timeout(p.lock_timeout_ms), None, &[])
                                .or_raise(e);
                            crate::gucs::set_local(c, "lock_timeout", &fast_timeout.to_string());
                            let budget_ms = if p.statement_timeout_ms > 0 {
                                p.statement_timeout_ms / 2
                            } else {
                                30_000
                            };
                            let deadline = std::time::Instant::now()
                                + std::time::Duration::from_millis(budget_ms.max(0) as u64);
                            let done = match &plan.span {
                                Some(sp) => spread_walk(c, fast, params, sp, deadline),
                                None => spread_by_key(c, fast, params),
                            };
                            // The rest of the batch's transaction waits on the
                            // workers as the session says (RESET reaches them).
                            c.update("SET LOCAL lock_timeout TO DEFAULT", None, &[])
                                .or_raise(e);
                            crate::gucs::set_local(c, "lock_timeout", &previous);
                            crate::gucs::set_local(c, "citus.propagate_set_commands", &propagate);
                            return done;
                        }
                        if let Some(fast) = &fast {
                            crate::gucs::set_local(c, "lock_timeout", &fast_timeout.to_string());
                            let attempt =
                                crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
                                    run_counts(c, fast, params, plan.single_pass(false))
                                }));
                            match attempt {
                                Ok((selected, changed)) => {
                                    crate::gucs::set_local(c, "lock_timeout", &previous);
                                    return Done {
                                        selected,
                                        changed,
                                        ..Done::default()
                                    };
                                }
                                Err(e) if e.is_lock_timeout() => {}
                                Err(e) => e.rethrow(),
                            }
                        }
                        // The policy's lock_timeout for this batch's statement.
                        crate::gucs::set_local(c, "lock_timeout", &p.lock_timeout_ms.to_string());
                        let (selected, changed) =
                            run_counts(c, &sql, params, plan.single_pass(p.skip_locked));
                        crate::gucs::set_local(c, "lock_timeout", &previous);
                        Done {
                            selected,
                            changed,
                            skipping: p.skip_locked,
                            ..Done::default()
                        }
                    })
                })
            })
        })
    })
}

/// A distributed table's share of a walk, changed on every shard at once.
/// A part that meets a locked row is rolled back and split in halves by row
/// positions, by pages and then by line pointers within a page, down to one
/// position (that page and line on every shard, within the batch's window
/// of the clock), which is left for the next run. Positions are
/// `page << 16 | line`, as in a row id.
fn spread_walk(
    c: &mut pgrx::spi::SpiClient<'_>,
    sql: &str,
    params: &Params,
    sp: &Span,
    deadline: std::time::Instant,
) -> Done {
    const LINE: i64 = 1 << 16;
    let open = super::walk::OPEN_END * LINE;
    // The most rows a page can hold (MaxHeapTuplesPerPage): line pointers
    // start at 1.
    let lines = (pg_sys::BLCKSZ as i64 - 24) / 28 + 1;
    let split_positions = |a: i64, b: i64| -> Option<i64> {
        let (pa, pb) = (a / LINE, b / LINE);
        if b >= open {
            // The open end: first the pages the largest shard should have,
            // then twice as many pages as the part starts at, and so on.
            let hint = sp.pages_hint.max(1) * LINE;
            let m = if hint > a {
                hint
            } else {
                (2 * pa).max(pa + 1) * LINE
            };
            return (m < open).then_some(m);
        }
        if pb - pa > 1 || (pb - pa == 1 && b % LINE > 0) {
            return Some((pa + (pb - pa + 1) / 2) * LINE);
        }
        // Within one page: its lines.
        let last = if pb > pa { pa * LINE + lines } else { b };
        (last - a > 1).then(|| a + (last - a) / 2)
    };
    let mut local = params.share();
    let mut todo = vec![(
        sp.time.0,
        sp.time.1,
        sp.pages.0 * LINE,
        sp.pages.1.saturating_mul(LINE),
    )];
    let mut done = Done::default();
    let mut tries = 0;
    let mut probed = false;
    while let Some((lo, hi, a, b)) = todo.pop() {
        if tries == SPREAD_MAX_TRIES || (tries > 0 && std::time::Instant::now() > deadline) {
            done.skipped_parts += 1;
            continue;
        }
        tries += 1;
        if let (Some(lp), Some(hp)) = (sp.lo, sp.hi) {
            local.rebind(lp, lo);
            local.rebind(hp, hi);
        }
        local.rebind(sp.from, format!("({},{})", a / LINE, a % LINE));
        local.rebind(sp.to, format!("({},{})", b / LINE, b % LINE));
        let attempt = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
            run_counts(c, sql, &local, true)
        }));
        match attempt {
            Ok((_, n)) => {
                done.selected += n;
                done.changed += n;
            }
            Err(e) if e.is_lock_timeout() => {
                // A lock on the table itself (DDL, a shard move) is not a
                // locked row: the same statement over no rows shows it, and
                // the batch fails as a lock timeout.
                if !probed {
                    probed = true;
                    local.rebind(sp.from, "(0,0)".to_string());
                    local.rebind(sp.to, "(0,0)".to_string());
                    let probe = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
                        run_counts(c, sql, &local, true)
                    }));
                    if probe.is_err() {
                        e.rethrow()
                    }
                }
                // By row positions, also within a window of the clock: its
                // rows may all share one clock value.
                match split_positions(a, b) {
                    Some(m) if m > a && m < b => {
                        todo.push((lo, hi, m, b));
                        todo.push((lo, hi, a, m));
                    }
                    _ => done.skipped_parts += 1,
                }
            }
            Err(e) => e.rethrow(),
        }
    }
    done.skipping = done.skipped_parts > 0;
    done
}

/// A batch by key of a distributed table: rolled back if it meets a locked
/// row (the stage then goes on in page ranges).
fn spread_by_key(c: &mut pgrx::spi::SpiClient<'_>, sql: &str, params: &Params) -> Done {
    let attempt = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
        run_counts(c, sql, params, false)
    }));
    match attempt {
        Ok((selected, changed)) => Done {
            selected,
            changed,
            ..Done::default()
        },
        Err(e) if e.is_lock_timeout() => Done {
            skipping: true,
            walk_instead: true,
            ..Done::default()
        },
        Err(e) => e.rethrow(),
    }
}

/// `SELECT count(*)` of the rows of the policy's table matching `cond`, as
/// the table's owner.
pub fn count(p: &Policy, table: &str, cond: &str, params: &Params, doing: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE {cond}");
    crate::error::sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::get_one_with_args::<i64>(&sql, params.args())
                .or_raise(doing)
                .unwrap_or(0)
        })
    })
}
