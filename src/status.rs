//! `retention.status`: one row per policy, for people and for monitoring
//! (a postgres_exporter custom query can scrape it: labels policy/target,
//! numeric columns for the rest).

use crate::error::OrRaise;
use crate::pg::ident;
use crate::pg::security;
use crate::policy;
use crate::schedule::{next_cron_time, schedule_of};
use chrono::{DateTime, TimeZone, Utc};
use pgrx::datum::TimestampWithTimeZone;
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
        ));
    }
    TableIterator::new(rows)
}
