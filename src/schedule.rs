//! Scheduling runs with pg_cron, and reading schedules back: which job
//! covers a policy, and when a five-field cron expression fires next.
//!
//! pg_cron keeps its jobs in one database (`cron.database_name`) and can run
//! them in any database of the cluster; `retention.schedule` therefore works
//! in that database, for itself. Everything else in pg_retention works
//! without pg_cron.

use crate::error::{raise, OrRaise};
use crate::pg::security;
use crate::policy;
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Raises a clear error unless pg_cron can schedule jobs from this database.
pub(crate) fn require_pg_cron() {
    // pg_cron defines its settings when the server preloads it. They are
    // read here without the privilege check of current_setting(): a
    // scheduling admin need not be able to read server settings.
    let cron_db = unsafe {
        let p = pg_sys::GetConfigOption(c"cron.database_name".as_ptr(), true, false);
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    let Some(cron_db) = cron_db else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_cron is not loaded",
            "Add pg_cron to shared_preload_libraries, set cron.database_name, restart the server and CREATE EXTENSION pg_cron in that database; or call CALL retention.run() from any other scheduler.",
        )
    };
    let here = Spi::get_one::<String>("SELECT pg_catalog.current_database()::text")
        .or_raise("reading the database name");
    let here = here.unwrap_or_default();
    if cron_db != here {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("pg_cron keeps its jobs in database \"{cron_db}\", not in \"{here}\""),
            format!(
                "Schedule from database \"{cron_db}\": SELECT cron.schedule_in_database('pg_retention', '0 3 * * *', 'CALL retention.run()', '{here}');"
            ),
        )
    }
    let installed = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = 'cron' AND p.proname = 'schedule' AND p.pronargs = 3)",
    )
    .or_raise("looking for pg_cron")
    .unwrap_or(false);
    if !installed {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
            "extension \"pg_cron\" is not installed in this database",
            "CREATE EXTENSION pg_cron; (pg_cron 1.4 or later)",
        )
    }
}

/// The time zone pg_cron reads schedules in (`cron.timezone`, GMT when
/// unset or when pg_cron is older than 1.6).
pub(crate) fn cron_timezone() -> String {
    unsafe {
        let p = pg_sys::GetConfigOption(c"cron.timezone".as_ptr(), true, false);
        if p.is_null() {
            "GMT".to_string()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

fn job_name(policy: Option<&str>) -> String {
    match policy {
        None => "pg_retention".to_string(),
        Some(p) => format!("pg_retention:{p}"),
    }
}

#[pg_extern(name = "_schedule")]
fn schedule(cron: &str, policy_name: Option<&str>) -> i64 {
    security::require_admin("schedule retention runs");
    if let Some(name) = policy_name {
        policy::load_one(name);
    }
    require_pg_cron();
    // The command is SQL text that pg_cron runs later; the only value in it,
    // the policy name, goes in as a quoted literal.
    let command = match policy_name {
        None => "CALL retention.run()".to_string(),
        Some(name) => format!("CALL retention.run({})", pgrx::spi::quote_literal(name)),
    };
    Spi::get_one_with_args::<i64>(
        // The job runs in this database (pg_cron's own, checked above) as
        // the calling role; unlike schedule_in_database, cron.schedule is
        // open to roles that are not superusers.
        "SELECT cron.schedule($1, $2, $3)",
        &[job_name(policy_name).into(), cron.into(), command.into()],
    )
    .or_raise("scheduling the run")
    .unwrap_or_default()
}

#[pg_extern(name = "_unschedule")]
fn unschedule(policy_name: Option<&str>) -> bool {
    security::require_admin("unschedule retention runs");
    require_pg_cron();
    let name = job_name(policy_name);
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1 AND username = current_user)",
        &[name.as_str().into()],
    )
    .or_raise("looking up the job")
    .unwrap_or(false);
    if !exists {
        return false;
    }
    Spi::get_one_with_args::<bool>("SELECT cron.unschedule($1)", &[name.as_str().into()])
        .or_raise("unscheduling the run")
        .unwrap_or(false)
}

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
        if value >= lo && value <= hi && (value - lo).is_multiple_of(step) {
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
/// Whether the caller may read pg_cron's jobs here. Found through the
/// catalogue, not to_regclass(): that raises an error for a role without
/// USAGE on schema cron.
fn jobs_readable() -> bool {
    Spi::get_one::<bool>(
        "SELECT coalesce((SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE')
                                 AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
                            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'cron' AND c.relname = 'job'), false)",
    )
    .or_raise("looking for pg_cron")
    .unwrap_or(false)
}

/// The active pg_cron jobs of pg_retention for this database, as (job name,
/// schedule); none where pg_cron's jobs cannot be read.
pub fn readable_jobs() -> Vec<(String, String)> {
    if !jobs_readable() {
        return Vec::new();
    }
    crate::pg::subxact::attempt(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT jobname::text, schedule::text FROM cron.job
                  WHERE active AND database = pg_catalog.current_database()
                    AND (jobname = 'pg_retention' OR jobname LIKE 'pg\\_retention:%')
                  ORDER BY jobname",
                None,
                &[],
            )
            .or_raise("reading the pg_cron schedules")
            .filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??)))
            .collect()
        })
    })
    .unwrap_or_default()
}

pub fn schedule_of(policy: &str) -> Option<String> {
    if !jobs_readable() {
        return None;
    }
    crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
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
