//! After a run: the dead row versions it left, whether autovacuum will
//! remove them, and the opt-in VACUUM through pg_cron (`vacuum_after`).
//!
//! Deleted and updated rows stay in the table's files as dead row versions
//! until a VACUUM removes them; for personal data that matters (an
//! anonymised row's old version still holds the original values). A run
//! that changed a large share of a table says in its run log, and in a
//! NOTICE, how many dead versions there are about and whether autovacuum's
//! threshold is reached. With `vacuum_after`, the run has pg_cron vacuum
//! the table once, about a minute later: a procedure cannot run VACUUM
//! itself. The next run records when a VACUUM was seen (`vacuumed_at`, from
//! the statistics, whoever ran it) and removes the one-off job.
//!
//! Invariants: the job's command is `VACUUM (ANALYZE) <table>` with the
//! table name quoted by `pg::ident`; it is scheduled as the role running the
//! run, and only when that role may vacuum the table (PostgreSQL checks
//! again when the job runs); nothing here fails a run: a job that cannot be
//! scheduled is noted in the run log.

use super::run_log;
use crate::error::OrRaise;
use crate::pg::{ident, security};
use pgrx::prelude::*;

/// Share of a table a run must change before the run log speaks of its
/// dead row versions ...
const LARGE_SHARE: f64 = 0.10;
/// ... and the fewest rows (dead versions of small tables cost little).
const MIN_ROWS: i64 = 1000;

/// What the run log needs of an item that ended.
struct Ended {
    policy_id: i64,
    changed: i64,
}

fn ended(item: i64) -> Option<Ended> {
    Spi::get_two_with_args::<i64, i64>(
        "SELECT policy_id, rows_purged + rows_anonymised + rows_marked
           FROM retention.run_log WHERE id = $1 AND status = 'succeeded'",
        &[item.into()],
    )
    .ok()
    .and_then(|(p, c)| {
        Some(Ended {
            policy_id: p?,
            changed: c?,
        })
    })
}

/// Called once per run item that ended (from `_run_close`).
pub fn after_run(item: i64) {
    let Some(e) = ended(item).filter(|e| e.changed > 0) else {
        return;
    };
    let Some(p) = crate::policy::load_by_id(e.policy_id) else {
        return;
    };
    let Some(table) = ident::relation(p.target) else {
        return;
    };
    if ident::relkind(p.target) == Some(b'r') {
        report_dead_rows(item, &p.name, p.target, e.changed);
    }
    if p.vacuum_after {
        schedule(item, &table, p.target, &p.name);
    }
}

/// Notes the dead row versions a run that changed a large share of the
/// table left, and whether autovacuum will remove them.
fn report_dead_rows(item: i64, policy: &str, target: pg_sys::Oid, changed: i64) {
    let e = "reading the table's statistics";
    let stats = Spi::connect(|c| {
        c.select(
            "SELECT CASE WHEN c.reltuples >= 1 THEN c.reltuples
                         ELSE pg_catalog.pg_stat_get_live_tuples(c.oid) END::float8,
                    pg_catalog.pg_stat_get_dead_tuples(c.oid)::float8,
                    pg_catalog.current_setting('autovacuum')::bool
                      AND coalesce((SELECT o.option_value::bool FROM pg_catalog.pg_options_to_table(c.reloptions) o
                                     WHERE o.option_name = 'autovacuum_enabled'), true),
                    coalesce((SELECT o.option_value::float8 FROM pg_catalog.pg_options_to_table(c.reloptions) o
                               WHERE o.option_name = 'autovacuum_vacuum_threshold'),
                             pg_catalog.current_setting('autovacuum_vacuum_threshold')::float8)
                    + coalesce((SELECT o.option_value::float8 FROM pg_catalog.pg_options_to_table(c.reloptions) o
                                 WHERE o.option_name = 'autovacuum_vacuum_scale_factor'),
                               pg_catalog.current_setting('autovacuum_vacuum_scale_factor')::float8)
                      * greatest(c.reltuples, 0)::float8
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            Some(1),
            &[target.into()],
        )
        .or_raise(e)
        .next()
        .map(|r| {
            (
                r.get::<f64>(1).or_raise(e).unwrap_or(-1.0),
                r.get::<f64>(2).or_raise(e).unwrap_or(0.0),
                r.get::<bool>(3).or_raise(e).unwrap_or(false),
                r.get::<f64>(4).or_raise(e).unwrap_or(0.0),
            )
        })
    });
    let Some((tuples, dead_seen, autovacuum, threshold)) = stats else {
        return;
    };
    // The statistics a table was last analysed with still count the rows
    // the run removed (a table never analysed: the live rows the statistics
    // saw, which may not yet include this session's changes).
    let before = tuples.max(changed as f64);
    if changed < MIN_ROWS || (changed as f64) < LARGE_SHARE * before {
        return;
    }
    // This session's changes reach the statistics only once it is idle, so
    // they are added to what the statistics show.
    let dead = dead_seen + changed as f64;
    // A row both anonymised and marked counts twice: two dead versions.
    let share = 100.0 * changed as f64 / tuples.max(1.0);
    let outlook = if !autovacuum {
        "autovacuum is off for the table, only a VACUUM removes them (see vacuum_after)".to_string()
    } else if dead >= threshold {
        format!("over autovacuum's threshold of {threshold:.0}, autovacuum will remove them")
    } else {
        format!("under autovacuum's threshold of {threshold:.0}, they stay until more rows change or a VACUUM runs (see vacuum_after)")
    };
    let left = if tuples >= 1.0 {
        format!("left {changed} dead row versions (as many as {share:.0}% of the table's {tuples:.0} rows last counted)")
    } else {
        format!("left {changed} dead row versions")
    };
    // The NOTICE leaves out the statistics' count, which depends on when
    // other sessions' changes reached them.
    pgrx::notice!("retention policy \"{policy}\" {left}: {outlook}");
    let text = format!("{left}; with those counted before about {dead:.0}: {outlook}");
    run_log::note(item, &text);
}

/// Whether the current role may VACUUM the table.
fn may_vacuum(target: pg_sys::Oid) -> bool {
    let sql = if cfg!(any(feature = "pg15", feature = "pg16")) {
        // Up to PostgreSQL 16: the owner, a superuser or the database owner.
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE')
                OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
                OR pg_catalog.pg_has_role((SELECT d.datdba FROM pg_catalog.pg_database d
                                            WHERE d.datname = pg_catalog.current_database()), 'USAGE')
           FROM pg_catalog.pg_class c WHERE c.oid = $1"
    } else {
        // From PostgreSQL 17: the MAINTAIN privilege (owners and
        // pg_maintain have it).
        "SELECT pg_catalog.has_table_privilege($1::oid, 'MAINTAIN')"
    };
    Spi::get_one_with_args::<bool>(sql, &[target.into()])
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Schedules the one-off VACUUM of `table` through pg_cron.
fn schedule(item: i64, table: &str, target: pg_sys::Oid, policy: &str) {
    if !may_vacuum(target) {
        run_log::note(
            item,
            &format!(
                "vacuum_after: {} may not VACUUM the table; nothing scheduled (run retention.run() as the table's owner or a role with that right)",
                security::role_name(security::current_role())
            ),
        );
        return;
    }
    let job_name = format!("pg_retention:vacuum:{policy}");
    let command = format!("VACUUM (ANALYZE) {table}");
    let scheduled = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
        crate::schedule::require_pg_cron();
        // The minute that starts at least 5 s from now, in pg_cron's time
        // zone; the job would repeat a year later, so the next run removes it.
        let timezone = crate::schedule::cron_timezone();
        let cron = Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format('%s %s %s %s *', extract(minute FROM t)::int, extract(hour FROM t)::int,
                                      extract(day FROM t)::int, extract(month FROM t)::int)
               FROM (SELECT pg_catalog.date_trunc('minute',
                            (pg_catalog.clock_timestamp() + interval '65 seconds') AT TIME ZONE $1) AS t) s",
            &[timezone.into()],
        )
        .or_raise("choosing the VACUUM's minute")
        .unwrap_or_default();
        let job = Spi::get_one_with_args::<i64>(
            "SELECT cron.schedule($1, $2, $3)",
            &[
                job_name.as_str().into(),
                cron.as_str().into(),
                command.as_str().into(),
            ],
        )
        .or_raise("scheduling the VACUUM")
        .unwrap_or_default();
        (job, cron)
    }));
    match scheduled {
        Ok((job, cron)) => {
            security::as_extension_owner(|| {
                Spi::run_with_args(
                    "UPDATE retention.run_log SET vacuum_job = $2 WHERE id = $1",
                    &[item.into(), job.into()],
                )
                .or_raise("recording the VACUUM job")
            });
            run_log::note(
                item,
                &format!("vacuum_after: VACUUM scheduled as pg_cron job {job} ({cron})"),
            );
        }
        Err(e) => run_log::note(
            item,
            &format!("vacuum_after: no VACUUM scheduled ({})", e.message()),
        ),
    }
}

/// At the start of a run: records when a VACUUM was first seen after
/// earlier runs that changed rows, and removes the one-off jobs of those
/// (and of any scheduled more than a day ago) that this role may remove.
pub fn reconcile() {
    let jobs: Vec<i64> = security::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                "WITH seen AS (
                     UPDATE retention.run_log l
                        SET vacuumed_at = v.at
                       FROM (SELECT l2.id, greatest(pg_catalog.pg_stat_get_last_vacuum_time(p.target::oid),
                                                    pg_catalog.pg_stat_get_last_autovacuum_time(p.target::oid)) AS at
                               FROM retention.run_log l2 JOIN retention.policies p ON p.id = l2.policy_id
                              WHERE l2.vacuumed_at IS NULL AND l2.finished_at IS NOT NULL
                                AND l2.rows_purged + l2.rows_anonymised + l2.rows_marked > 0) v
                      WHERE l.id = v.id AND v.at > l.finished_at
                  RETURNING l.vacuum_job)
                 SELECT vacuum_job FROM seen WHERE vacuum_job IS NOT NULL
                 UNION
                 SELECT vacuum_job FROM retention.run_log
                  WHERE vacuum_job IS NOT NULL AND vacuumed_at IS NULL
                    AND finished_at < pg_catalog.now() - interval '1 day'",
                None,
                &[],
            )
            .or_raise("recording VACUUMs")
            .filter_map(|r| r.get::<i64>(1).ok().flatten())
            .collect()
        })
    });
    for job in jobs {
        // Removing a job is its owner's (or a superuser's) right; a job of
        // another role is left to it.
        let _ = crate::pg::subxact::attempt(|| {
            let exists = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobid = $1 AND jobname LIKE 'pg\\_retention:vacuum:%')",
                &[job.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if exists {
                let _ = Spi::run_with_args("SELECT cron.unschedule($1)", &[job.into()]);
            }
        });
    }
}
