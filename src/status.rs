//! `retention.status`: one row per policy, for people and for monitoring
//! (a postgres_exporter custom query can scrape it: labels policy/target,
//! numeric columns for the rest).

use crate::error::OrRaise;
use crate::pg::ident;
use crate::pg::security;
use crate::policy;
use crate::schedule::{next_cron_time, schedule_of};
use chrono::{DateTime, TimeZone, Utc};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;

fn to_chrono(ts: TimestampWithTimeZone) -> Option<DateTime<Utc>> {
    let micros: i64 = Spi::get_one_with_args::<i64>(
        "SELECT (extract(epoch FROM $1) * 1000000)::int8",
        &[ts.into()],
    )
    .ok()
    .flatten()?;
    Utc.timestamp_micros(micros).single()
}

fn from_chrono(t: DateTime<Utc>) -> Option<TimestampWithTimeZone> {
    Spi::get_one_with_args::<TimestampWithTimeZone>(
        "SELECT pg_catalog.to_timestamp($1::float8 / 1000000)",
        &[(t.timestamp_micros() as f64).into()],
    )
    .ok()
    .flatten()
}

/// Runs looked at for the per-day rates (seven intervals between them).
const RATE_RUNS: i64 = 8;

/// Whether a policy keeps up (see the view's comment).
#[derive(Default)]
struct KeepingUp {
    due_left: Option<i64>,
    oldest_due: Option<TimestampWithTimeZone>,
    lag: Option<Interval>,
    became_due_per_day: Option<f64>,
    removed_per_day: Option<f64>,
    falling_behind: bool,
    overdue_requests: i64,
    dead_rows: Option<i64>,
    last_vacuum: Option<TimestampWithTimeZone>,
}

/// Reads from the run log what the last runs left, the rates at which rows
/// became due and were removed between them, the erasure and access
/// requests overdue for the policy's table and its dead row versions (from
/// the statistics).
fn keeping_up(p: &crate::model::policy::Policy) -> KeepingUp {
    let Some(stage) = crate::engine::last_stage(p) else {
        return KeepingUp::default();
    };
    let e = "reading the run log";
    // Runs whose backlog was counted, newest first, each with the one
    // before it: rows that became due between two runs are the rows the
    // later one removed plus what it left, minus what the earlier one left.
    let sql = "WITH r AS (
                   SELECT l.id, l.finished_at, l.due_left, l.oldest_due,
                          CASE $2 WHEN 'purge' THEN l.rows_purged WHEN 'anonymise' THEN l.rows_anonymised
                                  ELSE l.rows_marked END AS removed,
                          lag(l.due_left) OVER w AS prev_left, lag(l.finished_at) OVER w AS prev_at
                     FROM (SELECT * FROM retention.run_log
                            WHERE policy_id = $1 AND status = 'succeeded' AND due_left IS NOT NULL
                            ORDER BY id DESC LIMIT $3 + 1) l
                   WINDOW w AS (ORDER BY l.id)),
               last AS (SELECT * FROM r ORDER BY id DESC LIMIT 1),
               span AS (SELECT extract(epoch FROM max(finished_at) - min(prev_at))::float8 / 86400 AS days,
                               sum(due_left + removed - prev_left)::float8 AS became, sum(removed)::float8 AS removed
                          FROM r WHERE prev_at IS NOT NULL),
               trend AS (SELECT array_agg(due_left ORDER BY id) AS lefts FROM (SELECT * FROM r ORDER BY id DESC LIMIT 3) t)
          SELECT (SELECT due_left FROM last), (SELECT oldest_due FROM last),
                 (SELECT greatest(pg_catalog.now() - (o.oldest_due + coalesce(
                           CASE $2 WHEN 'purge' THEN q.purge_after WHEN 'anonymise' THEN q.anonymise_after
                                   ELSE q.mark_after END, interval '0')), interval '0')
                    FROM last o, retention.policies q WHERE q.id = $1 AND o.due_left > 0),
                 (SELECT CASE WHEN days > 0 THEN became / days END FROM span),
                 (SELECT CASE WHEN days > 0 THEN removed / days END FROM span),
                 coalesce((SELECT cardinality(lefts) = 3 AND lefts[1] < lefts[2] AND lefts[2] < lefts[3] FROM trend), false)";
    let mut k = Spi::connect(|c| {
        c.select(
            sql,
            Some(1),
            &[p.id.into(), stage.as_str().into(), RATE_RUNS.into()],
        )
        .or_raise(e)
        .next()
        .map(|r| KeepingUp {
            due_left: r.get::<i64>(1).or_raise(e),
            oldest_due: r.get::<TimestampWithTimeZone>(2).or_raise(e),
            lag: r.get::<Interval>(3).or_raise(e),
            became_due_per_day: r.get::<f64>(4).or_raise(e),
            removed_per_day: r.get::<f64>(5).or_raise(e),
            falling_behind: r.get::<bool>(6).or_raise(e).unwrap_or(false),
            ..KeepingUp::default()
        })
    })
    .unwrap_or_default();
    // Erasure and access requests past their deadline whose kind maps this
    // table.
    k.overdue_requests = security::as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
        "SELECT count(*) FROM retention.erasure_requests r
          WHERE r.status = 'received' AND r.due_at < pg_catalog.now()
            AND (EXISTS (SELECT 1 FROM retention.subject_kinds k WHERE k.kind = r.kind AND k.root = $1::oid::regclass)
                 OR EXISTS (SELECT 1 FROM retention.subject_tables t WHERE t.kind = r.kind AND t.target = $1::oid::regclass))",
        &[p.target.into()],
    )
    .or_raise("counting overdue requests")
    .unwrap_or(0)
    });
    if let Ok((dead, vacuum)) = Spi::get_two_with_args::<i64, TimestampWithTimeZone>(
        "SELECT pg_catalog.pg_stat_get_dead_tuples($1::oid),
                greatest(pg_catalog.pg_stat_get_last_vacuum_time($1::oid), pg_catalog.pg_stat_get_last_autovacuum_time($1::oid))",
        &[p.target.into()],
    ) {
        k.dead_rows = dead;
        k.last_vacuum = vacuum;
    }
    k
}

#[pg_extern(name = "_status")]
#[allow(clippy::type_complexity)]
fn status() -> TableIterator<
    'static,
    (
        name!(policy, String),
        name!(target, String),
        name!(state, String),
        name!(stages, String),
        name!(last_run_started, Option<TimestampWithTimeZone>),
        name!(last_run_finished, Option<TimestampWithTimeZone>),
        name!(last_status, Option<String>),
        name!(last_error, Option<String>),
        name!(last_success, Option<TimestampWithTimeZone>),
        name!(schedule, Option<String>),
        name!(next_run, Option<TimestampWithTimeZone>),
        name!(backlog_estimate, Option<i64>),
        name!(runs_total, i64),
        name!(runs_failed_total, i64),
        name!(rows_purged_total, i64),
        name!(rows_anonymised_total, i64),
        name!(rows_marked_total, i64),
        name!(due_left, Option<i64>),
        name!(oldest_due, Option<TimestampWithTimeZone>),
        name!(lag, Option<Interval>),
        name!(became_due_per_day, Option<f64>),
        name!(removed_per_day, Option<f64>),
        name!(falling_behind, bool),
        name!(overdue_requests, i64),
        name!(dead_rows, Option<i64>),
        name!(last_vacuum, Option<TimestampWithTimeZone>),
    ),
> {
    security::require_reader("read retention status");
    let now = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.now()")
        .ok()
        .flatten();
    let mut rows = Vec::new();
    for p in policy::load(None) {
        let e = "reading the run log";
        let last = Spi::connect(|c| {
            c.select(
                "SELECT r.started_at, r.finished_at, r.status, coalesce(r.error, r.note)
                   FROM retention.runs r WHERE r.policy_id = $1 ORDER BY r.id DESC LIMIT 1",
                None,
                &[p.id.into()],
            )
            .or_raise(e)
            .next()
            .map(|r| {
                (
                    r.get::<TimestampWithTimeZone>(1).or_raise(e),
                    r.get::<TimestampWithTimeZone>(2).or_raise(e),
                    r.get::<String>(3).or_raise(e),
                    r.get::<String>(4).or_raise(e),
                )
            })
        });
        let (started, finished, last_status, last_error) = last.unwrap_or((None, None, None, None));
        let totals = Spi::connect(|c| {
            c.select(
                "SELECT count(*), count(*) FILTER (WHERE status = 'failed'),
                        coalesce(sum(rows_purged), 0)::int8, coalesce(sum(rows_anonymised), 0)::int8,
                        coalesce(sum(rows_marked), 0)::int8,
                        max(finished_at) FILTER (WHERE status = 'succeeded')
                   FROM retention.run_log WHERE policy_id = $1",
                None,
                &[p.id.into()],
            )
            .or_raise(e)
            .next()
            .map(|r| {
                (
                    r.get::<i64>(1).or_raise(e).unwrap_or(0),
                    r.get::<i64>(2).or_raise(e).unwrap_or(0),
                    r.get::<i64>(3).or_raise(e).unwrap_or(0),
                    r.get::<i64>(4).or_raise(e).unwrap_or(0),
                    r.get::<i64>(5).or_raise(e).unwrap_or(0),
                    r.get::<TimestampWithTimeZone>(6).or_raise(e),
                )
            })
        })
        .unwrap_or((0, 0, 0, 0, 0, None));
        let state = if last_status.as_deref() == Some("running") {
            "running"
        } else if p.paused {
            "paused"
        } else if p.cap_stopped {
            "stopped by max_due_fraction"
        } else {
            "active"
        };
        let stages = Spi::get_one_with_args::<String>(
            "SELECT concat_ws(', ', 'mark after ' || mark_after, 'anonymise after ' || anonymise_after,
                              'purge after ' || purge_after)
               FROM retention.policies WHERE id = $1",
            &[p.id.into()],
        )
        .or_raise("describing stages")
        .unwrap_or_default();
        let schedule = schedule_of(&p.name);
        let next_run = match (&schedule, now) {
            (Some(s), Some(n)) => to_chrono(n)
                .and_then(|n| next_cron_time(s, n))
                .and_then(from_chrono),
            _ => None,
        };
        let table = ident::relation(p.target);
        let backlog = table
            .as_ref()
            .and_then(|t| crate::preview::backlog_estimate(&p, t));
        let k = keeping_up(&p);
        rows.push((
            p.name.clone(),
            table.unwrap_or_else(|| format!("(dropped table {})", p.target.to_u32())),
            state.to_string(),
            stages,
            started,
            finished,
            last_status,
            last_error,
            totals.5,
            schedule,
            next_run,
            backlog,
            totals.0,
            totals.1,
            totals.2,
            totals.3,
            totals.4,
            k.due_left,
            k.oldest_due,
            k.lag,
            k.became_due_per_day,
            k.removed_per_day,
            k.falling_behind,
            k.overdue_requests,
            k.dead_rows,
            k.last_vacuum,
        ));
    }
    TableIterator::new(rows)
}
