//! `retention.status`: one row per policy, for people and for monitoring
//! (a postgres_exporter custom query can scrape it: labels policy/target,
//! numeric columns for the rest).

use crate::error::OrRaise;
use crate::ident;
use crate::policy;
use crate::security;
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

/// One field of a five-field cron expression.
fn field_matches(field: &str, value: u32, min: u32, max: u32) -> Option<bool> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let v: u32 = range.parse().ok()?;
            (v, if step > 1 { max } else { v })
        };
        if value >= lo && value <= hi && (value - lo) % step == 0 {
            return Some(true);
        }
    }
    Some(false)
}

/// The values from `min` to `max` that a cron field matches; `None` when the
/// field is not understood.
fn field_values(field: &str, min: u32, max: u32) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for v in min..=max {
        if field_matches(field, v, min, max)? {
            out.push(v);
        }
    }
    Some(out)
}

/// The next time after `after` (UTC, pg_cron's default time zone) at which a
/// five-field cron expression fires; None for expressions this does not
/// understand (e.g. '@daily', '30 seconds') or that never fire within two
/// years. Bounded work: each field's matching values are listed once, then
/// at most two years of days are stepped through, and within the first
/// matching day the first matching hour and minute are picked.
pub fn next_cron_time(expr: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return None;
    }
    let minutes = field_values(fields[0], 0, 59)?;
    let hours = field_values(fields[1], 0, 23)?;
    let doms = field_values(fields[2], 1, 31)?;
    let months = field_values(fields[3], 1, 12)?;
    let dows = field_values(fields[4], 0, 7)?;
    if minutes.is_empty() || hours.is_empty() || months.is_empty() {
        return None;
    }
    let dom_restricted = fields[2] != "*";
    let dow_restricted = fields[4] != "*";
    let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
    let mut day = start.date_naive();
    for _ in 0..(2 * 366) {
        let dow = day.weekday().num_days_from_sunday();
        let dom_ok = doms.contains(&day.day());
        let dow_ok = dows.contains(&dow) || (dow == 0 && dows.contains(&7));
        // As in cron: with both day fields restricted, either may match.
        let day_ok = if dom_restricted && dow_restricted {
            dom_ok || dow_ok
        } else {
            dom_ok && dow_ok
        };
        if day_ok && months.contains(&day.month()) {
            let first = day == start.date_naive();
            for &h in &hours {
                if first && h < start.hour() {
                    continue;
                }
                for &m in &minutes {
                    if first && h == start.hour() && m < start.minute() {
                        continue;
                    }
                    let t = Utc.from_utc_datetime(&day.and_hms_opt(h, m, 0)?);
                    return Some(t);
                }
            }
        }
        day = day.succ_opt()?;
    }
    None
}

/// The pg_cron schedule that covers a policy (its own job, else the job for
/// all policies), when pg_cron is installed in this database.
fn schedule_of(policy: &str) -> Option<String> {
    // Found through the catalogue, not to_regclass(): that raises an error
    // for a role without USAGE on schema cron.
    let readable = Spi::get_one::<bool>(
        "SELECT coalesce((SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE')
                                 AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
                            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'cron' AND c.relname = 'job'), false)",
    )
    .or_raise("looking for pg_cron")
    .unwrap_or(false);
    if !readable {
        return None;
    }
    crate::partition::try_in_subtransaction(std::panic::AssertUnwindSafe(|| {
        Spi::get_one_with_args::<String>(
            "SELECT schedule FROM cron.job
              WHERE active AND database = pg_catalog.current_database()
                AND jobname IN ('pg_retention:' || $1, 'pg_retention')
              ORDER BY jobname = 'pg_retention' LIMIT 1",
            &[policy.into()],
        )
        .or_raise("reading the pg_cron schedule")
    }))
    // Any other error reading pg_cron's table: no schedule then.
    .ok()
    .flatten()
}

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
            .and_then(|t| crate::engine::backlog_estimate(&p, t));
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

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[pg_test]
    fn cron_next_times() {
        let t = at("2026-11-29T10:15:30Z"); // a Sunday
        assert_eq!(
            next_cron_time("0 3 * * *", t),
            Some(at("2026-11-30T03:00:00Z"))
        );
        assert_eq!(
            next_cron_time("* * * * *", t),
            Some(at("2026-11-29T10:16:00Z"))
        );
        assert_eq!(
            next_cron_time("*/20 * * * *", t),
            Some(at("2026-11-29T10:20:00Z"))
        );
        assert_eq!(
            next_cron_time("30 2 1 * *", t),
            Some(at("2026-12-01T02:30:00Z"))
        );
        assert_eq!(
            next_cron_time("0 4 * * 1-5", t),
            Some(at("2026-11-30T04:00:00Z"))
        );
        assert_eq!(
            next_cron_time("0 4 * * 0", t),
            Some(at("2026-12-06T04:00:00Z"))
        );
        assert_eq!(
            next_cron_time("0 4 * * 7", t),
            Some(at("2026-12-06T04:00:00Z"))
        );
        assert_eq!(
            next_cron_time("0 0 29 2 *", t),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert_eq!(next_cron_time("@daily", t), None);
        assert_eq!(next_cron_time("61 * * * *", t), None);
        // Expressions that never fire end after at most two years of days.
        assert_eq!(next_cron_time("0 0 31 2 *", t), None);
        assert_eq!(next_cron_time("0 0 30 2 *", t), None);
        assert_eq!(
            next_cron_time("59 23 * * *", at("2026-11-29T23:59:30Z")),
            Some(at("2026-11-30T23:59:00Z"))
        );
    }
}
