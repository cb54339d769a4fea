//! The safety cap: `max_due_fraction`.
//!
//! A policy whose period was shortened by mistake (2 days typed for 2 years)
//! would empty its table at the next run. With `max_due_fraction` set, the
//! first batch of every run item first asks how large a share of the table
//! is due for the stages that destroy data (purge and anonymise). Above the
//! cap the item changes nothing: it is logged `skipped` with the counts, the
//! policy shows as stopped in `retention.status`, and an audit entry records
//! it, until a role that controls the policy calls
//! `retention.acknowledge(policy)`, which lets one run go ahead, or the
//! policy is changed so that the share falls under the cap.
//!
//! Invariants: the share is estimated from the planner's statistics and
//! counted exactly whenever the estimate comes within a quarter of the cap
//! or the statistics are stale (never analysed, or more than a fifth of the
//! rows changed since), so that stale statistics cannot wave a mass deletion
//! through; counting runs as the table's owner; the numbers recorded are
//! counts, never row values.

use super::run_log;
use crate::model::policy::{Policy, Stage};
use crate::pg::params::Params;
use crate::pg::security;
use pgrx::prelude::*;

/// The share above which the estimate is checked by counting, relative to
/// the cap.
const COUNT_ABOVE: f64 = 0.25;

/// The table's row count from the statistics, and whether they are fresh.
fn statistics(target: pg_sys::Oid) -> (f64, bool) {
    Spi::get_two_with_args::<f64, bool>(
        "SELECT c.reltuples::float8,
                c.reltuples >= 1 AND pg_catalog.pg_stat_get_mod_since_analyze(c.oid) <= 0.2 * c.reltuples
           FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[target.into()],
    )
    .ok()
    .map(|(t, f)| (t.unwrap_or(-1.0), f.unwrap_or(false)))
    .unwrap_or((-1.0, false))
}

/// The planner's estimate of the rows matching `cond`.
fn estimate(p: &Policy, table: &str, cond: &str, params: &Params) -> Option<f64> {
    let sql = format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE {cond}");
    crate::error::sanitizing(table, || {
        security::as_table_owner(p.target, || {
            Spi::get_one_with_args::<pgrx::datum::Json>(&sql, params.args())
                .ok()
                .flatten()
                .and_then(|j| j.0.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64())
        })
    })
}

/// The first stage, of those that destroy data, whose due share is above
/// the cap: (stage, due rows, table rows).
fn over_cap(p: &Policy, table: &str, it: &run_log::Item, cap: f64) -> Option<(Stage, i64, i64)> {
    let (tuples, fresh) = statistics(p.target);
    for stage in [Stage::Purge, Stage::Anonymise] {
        if !p.has(stage) {
            continue;
        }
        let Some(cutoff) = it.cutoff(stage) else {
            continue;
        };
        let mut params = Params::new();
        let cut = params.bind(cutoff);
        let mut cond = super::batch::due_condition(p, cut);
        if let Some(state) = p.state_column(stage) {
            cond = format!("{cond} AND {}", crate::stage::pending_condition(state));
        }
        if fresh {
            if let Some(est) = estimate(p, table, &cond, &params) {
                if est <= COUNT_ABOVE * cap * tuples {
                    continue;
                }
            }
        }
        let due = super::batch::count(
            p,
            table,
            &cond,
            &params,
            "counting due rows for max_due_fraction",
        );
        if due == 0 {
            continue;
        }
        let rows = super::batch::count(
            p,
            table,
            "true",
            &Params::new(),
            "counting the table's rows",
        );
        if due as f64 > cap * rows as f64 {
            return Some((stage, due, rows));
        }
    }
    None
}

/// Checks the cap before the item's first batch. Returns why the item must
/// stop, or None to go ahead (recording that an acknowledgement was used,
/// or that the policy no longer exceeds its cap).
pub fn check(item: i64, p: &Policy, table: &str, it: &run_log::Item) -> Option<String> {
    let cap = p.max_due_fraction?;
    let Some((stage, due, rows)) = over_cap(p, table, it, cap) else {
        if p.cap_stopped || p.cap_acknowledged {
            record(p.id, false);
            run_log::note(
                item,
                "the share of due rows is under max_due_fraction again",
            );
        }
        return None;
    };
    let share = 100.0 * due as f64 / rows.max(1) as f64;
    let details = serde_json::json!({
        "policy": p.name, "table": table, "stage": stage.as_str(), "run_log_id": item,
        "due_rows": due, "table_rows": rows, "max_due_fraction": cap,
    });
    if p.cap_acknowledged {
        // One run goes ahead per acknowledgement.
        record(p.id, false);
        crate::audit::append("policy went ahead over its cap", details);
        run_log::note(
            item,
            &format!("{due} of {rows} rows ({share:.1}%) due for the {} stage, over max_due_fraction; going ahead as acknowledged", stage.as_str()),
        );
        return None;
    }
    record(p.id, true);
    crate::audit::append("policy stopped by its cap", details);
    Some(format!(
        "stopped by max_due_fraction: {due} of {rows} rows ({share:.1}%) are due for the {} stage, more than {:.1}% allowed; check the policy, then SELECT retention.acknowledge('{}') to let the next run go ahead",
        stage.as_str(),
        100.0 * cap,
        p.name.replace('\'', "''")
    ))
}

/// Records that the cap tripped now (an earlier acknowledgement no longer
/// covers it), or clears the stop and its acknowledgement.
fn record(policy: i64, tripped: bool) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies
                SET cap_tripped_at = CASE WHEN $2 THEN pg_catalog.clock_timestamp() END,
                    cap_acknowledged_at = CASE WHEN $2 THEN cap_acknowledged_at END
              WHERE id = $1",
            &[policy.into(), tripped.into()],
        )
        .or_raise("recording the safety cap")
    });
}

use crate::error::OrRaise;
