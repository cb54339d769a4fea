//! What a run would do now, without changing anything; and the backlog
//! estimate of `retention.status`.
//!
//! The preview builds its conditions with the engine's own builders
//! (`engine::batch`), asks `model::hold` what holds keep and
//! `engine::walk::would_walk` whether a stage would be walked, so that it
//! cannot decide differently from a run. It counts as the table's owner.

use crate::engine::batch::{self, due_condition};
use crate::engine::walk;
use crate::error::{sanitizing, OrRaise};
use crate::model::hold;
use crate::model::policy::{self, Policy, Stage};
use crate::model::refs::{self, OnDelete};
use crate::pg::ident;
use crate::pg::params::Params;
use crate::pg::security;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

type Row = (
    String,
    String,
    String,
    Option<TimestampWithTimeZone>,
    Option<i64>,
    Option<bool>,
    bool,
    Option<String>,
);

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
        preview_policy(&p, &mut rows);
    }
    TableIterator::new(rows)
}

/// The stage cutoffs a run would fix now: under the pinned settings (UTC).
fn cutoffs(p: &Policy) -> [Option<TimestampWithTimeZone>; 3] {
    let (purge, anonymise, mark) = security::with_pinned_settings(|| {
        Spi::get_three_with_args::<TimestampWithTimeZone, TimestampWithTimeZone, TimestampWithTimeZone>(
            "SELECT pg_catalog.now() - purge_after, pg_catalog.now() - anonymise_after, pg_catalog.now() - mark_after
               FROM retention.policies WHERE id = $1",
            &[p.id.into()],
        )
        .or_raise("computing the cutoffs")
    });
    [purge, anonymise, mark]
}

fn preview_policy(p: &Policy, rows: &mut Vec<Row>) {
    let row = |target: String, action: &str, cut, due, indexed, note: Option<String>| -> Row {
        (
            p.name.clone(),
            target,
            action.to_string(),
            cut,
            due,
            indexed,
            p.paused,
            note,
        )
    };
    let cuts = cutoffs(p);
    let Some(table) = ident::relation(p.target) else {
        rows.push(row(
            format!("(dropped table {})", p.target.to_u32()),
            "-",
            None,
            None,
            None,
            Some("the target table no longer exists; drop the policy".to_string()),
        ));
        return;
    };
    let purge_cut = cuts[Stage::Purge.index()].filter(|_| p.purge);
    // Stages in run order, each with its cutoff.
    let stages: Vec<(Stage, TimestampWithTimeZone)> = Stage::RUN_ORDER
        .iter()
        .filter(|s| p.has(**s))
        .filter_map(|s| cuts[s.index()].map(|c| (*s, c)))
        .collect();
    if stages.is_empty() {
        rows.push(row(
            table,
            "-",
            None,
            None,
            None,
            Some("no stage declared: add one with retention.add_stage".to_string()),
        ));
        return;
    }
    // As a run decides: no whole partitions while a hold applies to the
    // table, its partitions or its referencing tables. Looked up once per
    // policy; the stages below count with them.
    let holds = hold::table_holds(p.target);
    let subject = hold::subject_hold(p.target, &table);
    let cascade = hold::cascade_held(p.target, &table, 0);
    // Referencing tables (through cascading keys) in the map of a kind with
    // a held subject.
    let mut cascade_subject = false;
    hold::cascade_held_keyed(p.target, &table, 0, &mut |child, _| {
        let held = hold::subject_hold(child, "held").is_some();
        cascade_subject |= held;
        held.then(|| "true".to_string())
    });
    let held_somewhere =
        !holds.is_empty() || subject.is_some() || cascade.is_some() || cascade_subject;
    // The held subjects' keys, listed once per policy (not per stage); the
    // ids are personal data: not kept.
    let keys = subject.as_ref().map(|sh| {
        let k = sh.keys(i64::MIN);
        hold::forget_held_keys();
        k
    });
    if let (true, true, Some(c), false) = (p.purge, p.drop_partitions, purge_cut, held_somewhere) {
        if let Some(r) = partitions_row(p, &table, c) {
            rows.push(r);
        }
    }
    let mut first = true;
    for (stage, cut) in stages {
        // The condition that makes a row due for this stage and not for an
        // older one, over its own parameters.
        let mut params = Params::new();
        let cut_p = params.bind(cut);
        let mut due = due_condition(p, cut_p);
        if let Some(state) = p.state_column(stage) {
            due = format!("{due} AND {}", crate::stage::pending_condition(state));
            if let Some(pc) = purge_cut {
                let purge_p = params.bind(pc);
                due = format!("{due} AND NOT ({})", due_condition(p, purge_p));
            }
        }
        let (due_rows, indexed) = sanitizing(&table, || {
            security::as_table_owner(p.target, || {
                let n = Spi::get_one_with_args::<i64>(
                    &format!("SELECT count(*) FROM {table} WHERE {due}"),
                    params.args(),
                )
                .or_raise("counting due rows");
                (n, clock_indexed(p, &table, cut))
            })
        });
        let mut notes = Vec::new();
        // Due rows that legal holds keep (on the table, its partitions or
        // parents, on subjects, and for purge behind cascading keys).
        if due_rows.is_some_and(|n| n > 0) {
            let mut held = Vec::new();
            if hold::whole_table_hold(&holds).is_some() {
                held.push("true".to_string());
            } else if !holds.is_empty() {
                held.push(hold::held_condition(&holds));
            }
            if let Some(k) = &keys {
                held.push(format!("coalesce(({}), false)", k.bind(&mut params)));
            }
            if stage == Stage::Purge {
                let c = if cascade_subject {
                    let c = hold::cascade_held_keyed(p.target, &table, 0, &mut |child, alias| {
                        hold::subject_held_as(child, alias, i64::MIN, &mut params)
                    });
                    hold::forget_held_keys();
                    c
                } else {
                    cascade.clone()
                };
                if let Some(c) = c {
                    held.push(format!("coalesce(({c}), false)"));
                }
            }
            if !held.is_empty() {
                let cond = format!("{due} AND ({})", held.join(" OR "));
                let n = batch::count(p, &table, &cond, &params, "counting held rows");
                if n > 0 {
                    notes.push(format!("{n} of the due rows are kept by legal holds"));
                }
            }
        }
        // Whether a run would walk this stage in page ranges.
        let spread = batch::distributed(p);
        let walked = !spread && walk::would_walk(p, due_rows, indexed);
        if spread && due_rows.is_some_and(|n| n > 0) {
            notes.push(shard_note(p, &table, &due, &params));
        }
        if first && !indexed {
            notes.push(if walked || spread {
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
        if first && p.key_columns.is_none() && !spread {
            notes.push(if batch::is_citus_table(p.target) {
                "no primary key: a Citus table whose shards are kept on several nodes cannot be batched; give it a key".to_string()
            } else {
                "no primary key: batches use physical row ids".to_string()
            });
        }
        if stage == Stage::Purge {
            notes.extend(reference_notes(p, &table, cut));
        } else if let Some(note) = crate::stage::clock_trigger_note(p.target, &table) {
            notes.push(note);
        }
        if stage == Stage::Anonymise {
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
        rows.push(row(
            table.clone(),
            stage.as_str(),
            Some(cut),
            due_rows,
            Some(indexed),
            (!notes.is_empty()).then(|| notes.join("; ")),
        ));
    }
}

/// The row for whole partitions the purge stage would remove, if any.
fn partitions_row(p: &Policy, table: &str, cut: TimestampWithTimeZone) -> Option<Row> {
    let parts = crate::partition::candidates(p, cut);
    if parts.is_empty() {
        return None;
    }
    let names: Vec<String> = parts.iter().map(|x| x.name.clone()).collect();
    let how = match &p.archive_schema {
        None => "dropped".to_string(),
        Some(s) => format!("detached into schema {}", ident::quote(s)),
    };
    let rows: i64 = parts
        .iter()
        .map(|x| {
            if x.rows_estimate >= 0 {
                x.rows_estimate
            } else {
                // Never analysed: count (the preview is not a hot path).
                sanitizing(&x.name, || {
                    security::as_table_owner(p.target, || {
                        Spi::get_one::<i64>(&format!("SELECT count(*) FROM {}", x.name))
                            .or_raise("counting a partition")
                            .unwrap_or(0)
                    })
                })
            }
        })
        .sum();
    Some((
        p.name.clone(),
        table.to_string(),
        "drop partitions".to_string(),
        Some(cut),
        Some(rows),
        None,
        p.paused,
        Some(format!(
            "{} partitions {how} whole (rows from statistics when analysed): {}",
            parts.len(),
            names.join(", ")
        )),
    ))
}

/// What the purge stage's due rows mean for the tables that reference them.
fn reference_notes(p: &Policy, table: &str, cut: TimestampWithTimeZone) -> Vec<String> {
    let mut notes = Vec::new();
    for r in refs::references(p.target) {
        let mut params = Params::new();
        let cut_p = params.bind(cut);
        let due = due_condition(p, cut_p);
        let n = if r.blocks() {
            batch::count(
                p,
                table,
                &format!("{due} AND {}", r.exists_sql(table)),
                &params,
                "counting referencing rows",
            )
        } else {
            let pairs: Vec<String> = r
                .child_columns
                .iter()
                .zip(&r.parent_columns)
                .map(|(c, pc)| format!("c.{} = {table}.{}", ident::quote(c), ident::quote(pc)))
                .collect();
            sanitizing(table, || {
                security::as_table_owner(p.target, || {
                    Spi::get_one_with_args::<i64>(
                        &format!(
                            "SELECT count(*) FROM {} c WHERE EXISTS (SELECT 1 FROM {table} WHERE {due} AND {})",
                            r.child,
                            pairs.join(" AND ")
                        ),
                        params.args(),
                    )
                    .or_raise("counting referencing rows")
                    .unwrap_or(0)
                })
            })
        };
        notes.push(match r.on_delete {
            OnDelete::Cascade => format!(
                "{n} rows of {} are deleted with them ({})",
                r.child,
                r.action_words()
            ),
            OnDelete::SetNull | OnDelete::SetDefault => format!(
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
    notes
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
    let mut params = Params::new();
    let cut = params.bind(cutoff);
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE {}",
        due_condition(p, cut)
    );
    // An error (the table changed, a lock) means no estimate; it is caught
    // in its own subtransaction.
    crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
        security::as_table_owner(p.target, || {
            let plan = Spi::get_one_with_args::<pgrx::datum::Json>(&sql, params.args())
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
fn clock_indexed(p: &Policy, table: &str, cutoff: TimestampWithTimeZone) -> bool {
    let mut params = Params::new();
    let cut = params.bind(cutoff);
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE {}",
        due_condition(p, cut)
    );
    crate::gucs::with_local("enable_seqscan", "off", || {
        Spi::get_one_with_args::<pgrx::datum::Json>(&sql, params.args())
            .or_raise("planning the preview")
            .map(|j| j.0.to_string().contains("Index Cond"))
            .unwrap_or(false)
    })
}

/// Where a distributed table's due rows are: how many shards hold some,
/// the fewest and most in one shard, and the rows per node; and how a run
/// batches them. Counted on the shards (Citus names each shard after its
/// table and shard id), as the table's owner; the shards are then looked up
/// in the coordinator's catalogue (one statement each: Citus cannot always
/// combine a distributed query with local tables in one transaction).
fn shard_note(p: &Policy, table: &str, due: &str, params: &Params) -> String {
    let sql = format!(
        "SELECT pg_catalog.substring(tableoid::regclass::text, '_([0-9]+)\"?$')::int8, count(*)
           FROM {table} WHERE {due} GROUP BY 1"
    );
    let (shards, rows): (Vec<i64>, Vec<i64>) = sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::connect(|c| {
                let e = "counting due rows by shard";
                c.select(&sql, None, params.args())
                    .or_raise(e)
                    .map(|r| {
                        (
                            r.get::<i64>(1).or_raise(e).unwrap_or(0),
                            r.get::<i64>(2).or_raise(e).unwrap_or(0),
                        )
                    })
                    .unzip()
            })
        })
    });
    Spi::get_one_with_args::<String>(
        "WITH per_shard AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int8[])) AS s(shard, n)),
              per_node AS (
                  SELECT n.nodename || ':' || n.nodeport AS node, sum(s.n) AS n
                    FROM per_shard s
                    JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shard
                    JOIN pg_catalog.pg_dist_node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
                   GROUP BY 1)
         SELECT pg_catalog.format('due rows by shard: %s of %s shards hold some, from %s to %s each; by node: %s; once a shard holds 16 pages (or the table has no key), a run walks them on every shard at once: in windows of the clock where an index reads them in its order or finds few, in page ranges otherwise; smaller tables are batched by key',
                    (SELECT count(*) FROM per_shard),
                    (SELECT count(*) FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $3::oid::regclass),
                    (SELECT min(n) FROM per_shard), (SELECT max(n) FROM per_shard),
                    (SELECT string_agg(node || ' ' || n, ', ' ORDER BY node) FROM per_node))",
        &[shards.into(), rows.into(), p.target.into()],
    )
    .or_raise("counting due rows by shard")
    .unwrap_or_default()
}
