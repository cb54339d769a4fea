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
fn clock_cast(ty: pg_sys::Oid) -> &'static str {
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
    !is_distributed(p.target)
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
        self.range.is_some() && !lock_rows
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

/// Runs a batch as the table's owner, as a stage write, under the policy's
/// statement and lock timeouts; returns (selected, changed, skipping):
/// `skipping` is true when the form that skips locked rows ran. With
/// `skip_locked`, the optimistic form (without the separate row-locking
/// pass, which costs as much as the change itself) runs first under a short
/// lock_timeout in a subtransaction; if it meets a row an application holds,
/// it is rolled back and the locking form, which skips such rows, runs.
pub fn execute(
    plan: &BatchPlan,
    params: &Params,
    keys: crate::mask::StageKeys,
) -> (i64, i64, bool) {
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
                        if let Some(fast) = &fast {
                            crate::gucs::set_local(
                                c,
                                "lock_timeout",
                                &p.lock_timeout_ms.min(FAST_PATH_LOCK_TIMEOUT_MS).to_string(),
                            );
                            let attempt =
                                crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
                                    run_counts(c, fast, params, plan.single_pass(false))
                                }));
                            match attempt {
                                Ok((selected, changed)) => {
                                    crate::gucs::set_local(c, "lock_timeout", &previous);
                                    return (selected, changed, false);
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
                        (selected, changed, p.skip_locked)
                    })
                })
            })
        })
    })
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
