//! Every setting of pg_retention, defined when the library loads.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Global switch, checked before every batch.
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Seconds between progress NOTICEs of a long run (0: after every batch,
/// -1: never).
pub static PROGRESS_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Days of run history kept in retention.run_log (0: keep all).
pub static RUN_HISTORY_DAYS: GucSetting<i32> = GucSetting::<i32>::new(400);

pub fn init() {
    GucRegistry::define_bool_guc(
        c"retention.enabled",
        c"Whether pg_retention runs do any work.",
        c"Checked before every batch: turning it off stops running policies after their current batch and makes new runs do nothing.",
        &ENABLED,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"retention.progress_interval",
        c"Seconds between progress NOTICEs of a running policy.",
        c"0 reports after every batch, -1 never.",
        &PROGRESS_INTERVAL,
        -1,
        86_400,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"retention.run_history_days",
        c"Days of run history kept in retention.run_log.",
        c"Older finished runs are deleted when a run starts; 0 keeps all.",
        &RUN_HISTORY_DAYS,
        0,
        100_000,
        GucContext::Suset,
        GucFlags::default(),
    );
}
