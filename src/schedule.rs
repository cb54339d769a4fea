//! Scheduling runs with pg_cron.
//!
//! pg_cron keeps its jobs in one database (`cron.database_name`) and can run
//! them in any database of the cluster; `retention.schedule` therefore works
//! in that database, for itself. Everything else in pg_retention works
//! without pg_cron.

use crate::error::{raise, OrRaise};
use crate::policy;
use crate::security;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Raises a clear error unless pg_cron can schedule jobs from this database.
fn require_pg_cron() {
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
