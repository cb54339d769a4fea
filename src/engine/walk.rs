//! A stage's walk through a large table in ranges of physical pages: the
//! only place that decides whether a stage is walked (the preview asks
//! [`would_walk`], which applies the same thresholds).
//!
//! Where many rows are due, batches that select rows first and then change
//! them read every due row twice, and a LIMIT over an index has to step
//! over the rows earlier batches already removed. A walked stage instead
//! changes, in one statement, the due rows of the pages from `next` to
//! `next + pages`, then moves on: every page is read once per run, as by a
//! single DELETE, while each batch still commits on its own. The first
//! range holds the first batch's rows (see `sizing`), as if all of them
//! were due; later ones are sized from the due rows the previous range held
//! and the time it took. Where an index
//! finds the due rows they are counted first, and the walk ends after the
//! last of them. Rows moved to pages already walked (an UPDATE during the
//! run) are left for the next run, like rows locked by the application.

use super::{run_log, state};
use crate::error::OrRaise;
use crate::model::policy::{Policy, Stage};
use crate::pg::ident;
use crate::pg::params::Params;
use crate::pg::security;
use pgrx::prelude::*;

/// Smallest table, in pages, that a stage walks in page ranges (16 MB with
/// the default block size). Smaller tables are batched by row count.
pub(super) const MIN_PAGES: i64 = 2048;
/// Share of a table's rows that must be due (or pending) for page ranges to
/// beat finding the rows through an index.
const MIN_DUE_SHARE: f64 = 0.03;
/// A page range never spans more pages than could hold this many batches'
/// worth of rows, so that a batch cannot grow without bound where the due
/// rows are suddenly dense.
const MAX_BATCHES: f64 = 8.0;

/// Smallest largest shard, in pages, for a distributed table's walk: one
/// page of every shard is the least a range can hold, and small tables
/// keep batches by key, which honour `batch_size` exactly.
const MIN_SPREAD_PAGES: i64 = 16;

/// The walk of one stage of one run item (kept in the item's state between
/// batches; see `state`).
#[derive(Clone)]
pub struct Walk {
    stage: Stage,
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
    /// The shards walked at once (a distributed table), or 0.
    shards: i64,
    /// A distributed table's walk ends on an estimate of its largest shard's
    /// pages; one more range, from there to the end of every shard, is to
    /// come (it holds nothing where the estimate was right).
    tail: bool,
    /// A distributed table whose due rows an index finds is walked in
    /// windows of its clock instead of pages.
    clock: Option<ClockWalk>,
}

/// A walk through windows of the clock: each window [from, from + width)
/// changes the due rows whose clock lies in it, found through the index
/// on every shard. The first window is open below and the last open above
/// (the due condition bounds it), so that the windows cover every due row
/// whatever the clock's type. Times are seconds since 1970.
#[derive(Clone)]
struct ClockWalk {
    from: f64,
    width: f64,
    /// The lowest clock of a due row when the stage started.
    start: f64,
    /// The cutoff.
    end: f64,
    /// The narrowest window a locked row is narrowed down to (a day for a
    /// date clock).
    min_width: f64,
    windows: i64,
    done: bool,
    /// The last window held few due rows (a quarter of a batch or fewer):
    /// the next starts at the next due clock and is sized as if the due
    /// rows left were spread evenly up to the cutoff, instead of growing
    /// across a gap.
    jump: bool,
    /// The planner's estimate of the due rows, and the rows changed so far.
    due_rows: f64,
    done_rows: f64,
}

/// What a stage's walk starts from: the first batch's rows and the cutoff.
#[derive(Clone, Copy)]
pub struct Start {
    pub first_rows: i32,
    pub cutoff: pgrx::datum::TimestampWithTimeZone,
}

/// The next batch's share of a walked stage.
#[derive(Clone, Copy)]
pub enum Win {
    /// Pages [from, to) (of every shard of a distributed table).
    Pages(i64, i64),
    /// A window [lo, hi) of a distributed table's clock, with the bounds a
    /// narrowing-down after a locked row works within: the due rows' clocks
    /// lie in [start, end), and their pages below `pages` (an estimate).
    Clock {
        lo: f64,
        hi: f64,
        start: f64,
        end: f64,
        min_width: f64,
        pages: i64,
    },
}

/// The end of the open range after a distributed table's walk: past the
/// last page any table can have.
pub const OPEN_END: i64 = 0xFFFF_FFFF;

impl Walk {
    /// A stage that is not walked (batches count rows); plans start from it.
    fn unranged(stage: Stage) -> Walk {
        Walk {
            stage,
            ranged: false,
            next: 0,
            end: 0,
            pages: 1,
            max_pages: 1,
            remaining: None,
            shards: 0,
            tail: false,
            clock: None,
        }
    }

    /// Whether pages (and, when counted, due rows) remain.
    pub fn goes_on(&self) -> bool {
        if let Some(c) = &self.clock {
            return !c.done;
        }
        (self.next < self.end || self.tail) && self.remaining.is_none_or(|r| r > 0)
    }

    fn window(&self) -> Option<Win> {
        if !self.ranged {
            return None;
        }
        if let Some(c) = &self.clock {
            let lo = if c.windows == 0 {
                f64::NEG_INFINITY
            } else {
                c.from
            };
            let hi = c.from + c.width;
            return Some(Win::Clock {
                lo,
                hi: if hi.is_nan() || hi >= c.end {
                    f64::INFINITY
                } else {
                    hi
                },
                start: c.start,
                end: c.end,
                min_width: c.min_width,
                pages: self.end,
            });
        }
        if self.tail && self.next >= self.end {
            return Some(Win::Pages(self.next, OPEN_END));
        }
        Some(Win::Pages(
            self.next,
            (self.next + self.pages).min(self.end),
        ))
    }
}

/// The page range [from, to) of the next batch of a walked stage, deciding
/// when the stage starts whether to walk it; None when batches count rows.
/// `cond` is the stage's due condition over `params`.
pub fn window(
    item: i64,
    stage: Stage,
    p: &Policy,
    table: &str,
    cond: &str,
    params: &Params,
    start: Start,
) -> Option<Win> {
    let first_rows = start.first_rows;
    let jump_from = state::with(item, |s| {
        s.walk
            .as_ref()
            .filter(|w| w.stage == stage)
            .and_then(|w| w.clock.as_ref())
            .filter(|c| c.jump)
            .map(|c| c.from)
    });
    if let Some(from) = jump_from {
        let next = next_due_clock(p, table, cond, params, from);
        let target = f64::from(super::sizing::rows(item, stage, p).max(1));
        state::with(item, |s| {
            if let Some(c) = s.walk.as_mut().and_then(|w| w.clock.as_mut()) {
                c.jump = false;
                c.from = match next {
                    // A second before it: the window's bound goes through
                    // the clock's type.
                    Some(n) if n.is_finite() => c.from.max(n - 1.0),
                    // None left: the last window, open above, is empty.
                    _ => c.end,
                };
                let left = (c.due_rows - c.done_rows).max(target);
                c.width = ((c.end - c.from) * target / left).max(c.min_width);
            }
        });
    }
    let known = state::with(item, |s| {
        s.walk
            .as_ref()
            .filter(|w| w.stage == stage)
            .map(Walk::window)
    });
    if let Some(win) = known {
        return win;
    }
    let forced = state::with(item, |s| s.walk_forced == Some(stage));
    // Planning and counting wait for table locks no longer than a batch.
    let walk = crate::gucs::with_local("lock_timeout", &p.lock_timeout_ms.to_string(), || {
        if super::batch::distributed(p) {
            plan_spread(stage, p, table, cond, params, start, forced)
        } else {
            plan(stage, p, table, cond, params, first_rows)
        }
    });
    let win = walk.window();
    state::with(item, |s| s.walk = Some(walk));
    win
}

/// Decides whether a stage walks page ranges: the table has at least
/// MIN_PAGES pages, and the planner either would scan it whole for the due
/// rows or expects at least MIN_DUE_SHARE of its rows to be due.
fn plan(
    stage: Stage,
    p: &Policy,
    table: &str,
    cond: &str,
    params: &Params,
    first_rows: i32,
) -> Walk {
    let mut walk = Walk::unranged(stage);
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
    if pages < MIN_PAGES || children {
        return walk;
    }
    let sql = format!("EXPLAIN (FORMAT JSON, VERBOSE) SELECT 1 FROM {table} WHERE {cond}");
    let plan = crate::error::sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::get_one_with_args::<pgrx::datum::Json>(&sql, params.args())
                .or_raise("planning a batch")
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
    if !whole && due < MIN_DUE_SHARE * total {
        return walk;
    }
    // Where an index finds the due rows, count them: the exact number
    // decides (statistics may be stale after a large purge), and the walk
    // stops once it has changed that many rows, so that due rows gathered at
    // one end of the table (an append-only table) do not make it read the
    // rest. Without an index, counting would cost a walk of its own.
    if !whole {
        let n = super::batch::count(p, table, cond, params, "counting due rows");
        if n > 0 && (n as f64) < MIN_DUE_SHARE * total {
            return walk;
        }
        walk.remaining = Some(n);
    }
    let cap = f64::from(p.batch_size.max(1));
    walk.max_pages = ((MAX_BATCHES * cap / per_page).ceil() as i64).max(1);
    // The first range could hold nothing but due rows; later ones are sized
    // from what the previous range held and how long it took.
    let first = f64::from(first_rows.max(1));
    walk.pages = ((first / per_page).ceil() as i64).clamp(1, walk.max_pages);
    walk.ranged = true;
    walk.end = if walk.remaining == Some(0) { 0 } else { pages };
    walk
}

/// The walk of a distributed table (Citus) whose shards are large enough,
/// or that has no key or met a locked row in a batch by key (`forced`).
/// Where an index finds the due rows, each batch is a window of the clock,
/// changed through the index on every shard at once; otherwise each batch
/// covers the same pages of every shard. Either way one statement changes
/// rows on all shards in parallel, instead of keys collected through the
/// coordinator. The shards' sizes come from the workers; the largest,
/// indexes included, bounds the pages to walk.
fn plan_spread(
    stage: Stage,
    p: &Policy,
    table: &str,
    cond: &str,
    params: &Params,
    Start { first_rows, cutoff }: Start,
    forced: bool,
) -> Walk {
    let mut walk = Walk::unranged(stage);
    if cfg!(feature = "pg13") {
        return walk;
    }
    let e = "sizing the shards";
    // The shards' sizes count their indexes; the largest shard's table is
    // estimated with the share of the tables in all shards' sizes (the
    // walk's last range reaches past the estimate, see `tail`).
    let (shards, largest, heap) = security::as_table_owner(p.target, || {
        Spi::get_three_with_args::<i64, i64, i64>(
            "SELECT count(*),
                    ceil(max(z.size)::float8 * z.heap / greatest(sum(z.size), 1)
                         / pg_catalog.current_setting('block_size')::int8)::int8 + 1,
                    z.heap / pg_catalog.current_setting('block_size')::int8
               FROM (SELECT DISTINCT s.shard_id, s.size,
                            pg_catalog.citus_relation_size($1::oid::regclass) AS heap
                       FROM pg_catalog.citus_shard_sizes() s
                       JOIN pg_catalog.pg_dist_shard d ON d.shardid = s.shard_id
                      WHERE d.logicalrelid = $1::oid::regclass) z
              GROUP BY z.heap",
            &[p.target.into()],
        )
        .or_raise(e)
    });
    let (shards, largest, heap) = (shards.unwrap_or(0), largest.unwrap_or(0), heap.unwrap_or(0));
    let must = forced || p.key_columns.is_none();
    if shards == 0 || largest == 0 || (largest < MIN_SPREAD_PAGES && !must) {
        return walk;
    }
    let (schema, name) = ident::schema_and_name(p.target);
    let explain = |sql: &str| {
        let plan = crate::error::sanitizing(table, || {
            security::as_table_owner(p.target, || {
                Spi::get_one_with_args::<pgrx::datum::Json>(sql, params.args())
                    .or_raise("planning a batch")
            })
        });
        plan.and_then(|j| shard_scan(&j.0, &schema, &name))
    };
    // How a shard would find its due rows, reading them (the row ids): an
    // index scan reads the table in the index's order, which the planner
    // chooses where the clock follows the rows' physical order; a bitmap
    // scan visits the pages that hold due rows in page order.
    let due = explain(&format!(
        "EXPLAIN (FORMAT JSON, VERBOSE) SELECT ctid FROM {table} WHERE {cond}"
    ));
    let all = explain(&format!(
        "EXPLAIN (FORMAT JSON, VERBOSE) SELECT 1 FROM {table}"
    ));
    // The planner's figures are for one shard.
    let total = all.map_or(0.0, |(_, rows)| rows) * shards as f64;
    let due_rows = due.as_ref().map_or(0.0, |(_, rows)| *rows) * shards as f64;
    let node = due.as_ref().map_or("Seq Scan", |(node, _)| node.as_str());
    walk.ranged = true;
    walk.shards = shards;
    walk.end = largest;
    // Windows of the clock where the due rows lie together, or are few;
    // pages where they are many and scattered (each window would visit
    // most pages again) or no index finds them.
    let windows =
        node == "Index Scan" || (node == "Bitmap Heap Scan" && due_rows < MIN_DUE_SHARE * total);
    if windows {
        // Sized from the planner's estimate of the due rows and the lowest
        // due clock.
        let mut args = params.share();
        let c = args.bind(cutoff);
        let sql = format!(
            "SELECT extract(epoch FROM min({})::timestamptz)::float8, extract(epoch FROM {c}::timestamptz)::float8 FROM {table} WHERE {cond}",
            crate::expr::embed(&p.clock)
        );
        let (start, end) = crate::error::sanitizing(table, || {
            security::as_table_owner(p.target, || {
                Spi::get_two_with_args::<f64, f64>(&sql, args.args())
                    .or_raise("finding the oldest due row")
            })
        });
        let (Some(start), Some(end)) = (start, end) else {
            // No due row: one empty range ends the stage.
            walk.end = 0;
            return walk;
        };
        // A clock at -infinity has no window to start from: page ranges.
        if start.is_finite() && end.is_finite() {
            walk.clock = Some(first_window(p, start, end, due_rows, first_rows, shards));
            return walk;
        }
    }
    // Rows in one page of one shard.
    let per_page = if total > 0.0 && heap > 0 {
        total / heap as f64
    } else {
        100.0
    }
    .max(1.0);
    let cap = f64::from(p.batch_size.max(1));
    walk.max_pages = ((MAX_BATCHES * cap / (per_page * shards as f64)).ceil() as i64).max(1);
    // The shards work in parallel: the first range holds the first batch's
    // rows in each shard.
    walk.pages = ((f64::from(first_rows.max(1)) / per_page).ceil() as i64).clamp(1, walk.max_pages);
    walk.tail = walk.end > 0;
    walk
}

/// The lowest clock of a due row at or after `from` (seconds since 1970),
/// as the table's owner; None when there is none.
fn next_due_clock(p: &Policy, table: &str, cond: &str, params: &Params, from: f64) -> Option<f64> {
    let mut args = params.share();
    let f = args.bind(from);
    let clock = crate::expr::embed(&p.clock);
    let sql = format!(
        "SELECT extract(epoch FROM min({clock})::timestamptz)::float8 FROM {table}
          WHERE {clock} >= pg_catalog.to_timestamp({f})::{} AND {cond}",
        super::batch::clock_cast(p.clock_type)
    );
    crate::error::sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::get_one_with_args::<f64>(&sql, args.args()).or_raise("finding the next due row")
        })
    })
}

/// The first window of a clock walk from the lowest due clock `start` to the
/// cutoff `end`: sized as if the planner's estimate of the due rows were
/// spread evenly, to hold the first batch's rows in each shard (of up to 8
/// shards working at once).
fn first_window(
    p: &Policy,
    start: f64,
    end: f64,
    due_rows: f64,
    first_rows: i32,
    shards: i64,
) -> ClockWalk {
    let span = (end - start).max(1.0);
    let first = f64::from(first_rows.max(1)) * shards.min(8) as f64;
    let min_width = if p.clock_type == pg_sys::DATEOID {
        86_400.0
    } else {
        1.0
    };
    let width = if due_rows > first {
        span * first / due_rows
    } else {
        span + 1.0
    };
    ClockWalk {
        from: start,
        width: width.max(min_width),
        start,
        end,
        min_width,
        windows: 0,
        done: false,
        jump: false,
        due_rows,
        done_rows: 0.0,
    }
}

/// The node type and estimated rows of the plan node that scans a shard of
/// the named table, in the plan Citus shows for one shard.
fn shard_scan(v: &serde_json::Value, schema: &str, name: &str) -> Option<(String, f64)> {
    match v {
        serde_json::Value::Object(o) => {
            let is_shard = o.get("Schema").and_then(|s| s.as_str()) == Some(schema)
                && o.get("Relation Name")
                    .and_then(|r| r.as_str())
                    .and_then(|r| r.strip_prefix(name))
                    .and_then(|r| r.strip_prefix('_'))
                    .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
            if is_shard {
                let node = o.get("Node Type").and_then(|t| t.as_str())?.to_string();
                let rows = o.get("Plan Rows").and_then(|r| r.as_f64()).unwrap_or(0.0);
                return Some((node, rows));
            }
            o.values().find_map(|x| shard_scan(x, schema, name))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| shard_scan(x, schema, name)),
        _ => None,
    }
}

/// Whether a run would walk a stage with `due_rows` due rows (the preview's
/// question): the same thresholds as [`window`], from the statistics.
pub fn would_walk(p: &Policy, due_rows: Option<i64>, indexed: bool) -> bool {
    super::batch::by_row_id(p)
        && due_rows.is_some_and(|n| n > 0)
        && table_size(p.target).is_some_and(|(pages, tuples)| {
            pages >= MIN_PAGES
                && (!indexed || due_rows.unwrap_or(0) as f64 >= MIN_DUE_SHARE * tuples)
        })
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
pub fn note(item: i64, w: &Walk) {
    if w.end == 0 {
        return;
    }
    let left = || {
        let skipped = state::with(item, |s| std::mem::take(&mut s.skipped_parts));
        if skipped > 0 {
            format!(", leaving {skipped} narrowed-down parts for the next run: rows in them were locked by other sessions")
        } else {
            String::new()
        }
    };
    let note = if let Some(c) = &w.clock {
        format!(
            "the {} stage went through the due rows of the table's {} shards in {} windows of the clock{}",
            w.stage.as_str(),
            w.shards,
            c.windows,
            left()
        )
    } else if w.shards > 0 {
        format!(
            "the {} stage walked pages 0 to {} of each of the table's {} shards in ranges{}",
            w.stage.as_str(),
            w.next.min(w.end),
            w.shards,
            left()
        )
    } else {
        format!(
            "the {} stage walked {} of the table's {} pages in ranges",
            w.stage.as_str(),
            w.next.min(w.end),
            w.end
        )
    };
    run_log::note(item, &note);
}

/// The walk's state after a batch that covered pages up to `to`, held
/// `rows` due rows and took `secs`, with the next range sized; not stored
/// (the caller stores it once everything the batch does has been done: a
/// batch retried after an error covers the same pages). Call it after
/// `sizing::learn`: the next range holds about as many due rows as the
/// next batch may change, and, with a time budget, takes about as long.
pub fn step(item: i64, stage: Stage, to: i64, rows: i64, secs: f64, p: &Policy) -> Option<Walk> {
    let mut w = state::with(item, |s| {
        s.walk.as_ref().filter(|w| w.stage == stage).cloned()
    })?;
    if to >= OPEN_END {
        w.tail = false;
        w.next = w.end;
        if let Some(r) = &mut w.remaining {
            *r -= rows;
        }
        return Some(w);
    }
    let span = (to - w.next).max(1);
    w.next = to;
    let target_rows = f64::from(super::sizing::rows(item, stage, p).max(1));
    // Grow at most fourfold per batch; shrink at once where rows are dense
    // or pages slow.
    let by_rows = if rows > 0 {
        (target_rows * span as f64 / rows as f64).round() as i64
    } else {
        span * 4
    };
    let by_time = match p.batch_target_secs {
        Some(target) if secs > 0.0 => (span as f64 * target / secs).round() as i64,
        _ => i64::MAX,
    };
    let want = by_rows.min(by_time);
    w.pages = want.clamp(1, (span * 4).min(w.max_pages));
    if let Some(r) = &mut w.remaining {
        *r -= rows;
    }
    Some(w)
}

/// As `step`, for a window of the clock that ended at `hi` (infinite for
/// the last): the next window holds about as many due rows as the next
/// batch may change and, with a time budget, takes about as long; it grows
/// at most fourfold.
pub fn step_clock(
    item: i64,
    stage: Stage,
    hi: f64,
    rows: i64,
    secs: f64,
    p: &Policy,
) -> Option<Walk> {
    let mut w = state::with(item, |s| {
        s.walk.as_ref().filter(|w| w.stage == stage).cloned()
    })?;
    let target_rows = f64::from(super::sizing::rows(item, stage, p).max(1));
    let c = w.clock.as_mut()?;
    c.windows += 1;
    if !hi.is_finite() {
        c.done = true;
        return Some(w);
    }
    let width = (hi - c.from).max(c.min_width);
    c.from = hi;
    // After a window with few rows the next starts at the next due row.
    c.done_rows += rows as f64;
    c.jump = (rows as f64) * 4.0 < target_rows;
    let by_rows = if rows > 0 {
        width * target_rows / rows as f64
    } else {
        width
    };
    let by_time = match p.batch_target_secs {
        Some(target) if secs > 0.0 => width * target / secs,
        _ => f64::INFINITY,
    };
    c.width = by_rows.min(by_time).clamp(c.min_width, width * 4.0);
    Some(w)
}

/// Keeps the walk's new state for the next batch.
pub fn store(item: i64, w: Option<Walk>) {
    if let Some(w) = w {
        state::with(item, |s| s.walk = Some(w));
    }
}
