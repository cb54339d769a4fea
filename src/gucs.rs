//! Every setting of pg_retention, defined when the library loads.

use crate::error::OrRaise;
use pgrx::spi::SpiClient;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, Spi};

/// Global switch, checked before every batch.
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Seconds between progress NOTICEs of a long run (0: after every batch,
/// -1: never).
pub static PROGRESS_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Days of run history kept in retention.run_log (0: keep all).
pub static RUN_HISTORY_DAYS: GucSetting<i32> = GucSetting::<i32>::new(400);
/// On while one of pg_retention's own stage statements (mark, anonymise,
/// an erasure's DELETE or UPDATE) runs; read-only for everyone else.
pub static STAGE_WRITE: GucSetting<bool> = GucSetting::<bool>::new(false);
/// Whether batches, partition removals and erasures write a logical decoding
/// message (see `cdc`).
pub static CHANGE_MESSAGES: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Most WAL (MB) a streaming standby may have to replay before batches wait
/// (0: never wait).
pub static MAX_REPLICA_LAG: GucSetting<i32> = GucSetting::<i32>::new(1024);
/// Most WAL (MB) a replication slot may hold back before batches wait (0:
/// never wait).
pub static MAX_SLOT_LAG: GucSetting<i32> = GucSetting::<i32>::new(0);
/// Most WAL (MB) a run may write per second, on average over each batch and
/// the pause after it (0: no limit).
pub static MAX_WAL_RATE: GucSetting<i32> = GucSetting::<i32>::new(0);
/// On while pg_retention's own functions change erasure requests.
pub static REQUEST_WRITE: GucSetting<bool> = GucSetting::<bool>::new(false);

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
    GucRegistry::define_bool_guc(
        c"retention.stage_write",
        c"On while pg_retention's own stage statements change rows.",
        c"Set by pg_retention, not by users: a trigger that maintains a clock column can skip pg_retention's writes with WHEN (current_setting('retention.stage_write', true) IS DISTINCT FROM 'on').",
        &STAGE_WRITE,
        GucContext::Internal,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"retention.request_write",
        c"On while pg_retention's own functions change erasure requests.",
        c"Set by pg_retention, not by users: the guard trigger of retention.erasure_requests refuses every other change.",
        &REQUEST_WRITE,
        GucContext::Internal,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"retention.change_messages",
        c"Whether pg_retention tells logical decoding what it changed.",
        c"On: every batch that changed rows, every whole-partition removal and every erasure writes a transactional logical decoding message with the prefix pg_retention (action, policy or request, table, counts; no row data) in the same transaction, for change-data-capture consumers.",
        &CHANGE_MESSAGES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"retention.max_replica_lag",
        c"WAL a streaming standby may have left to replay before batches wait.",
        c"Checked before every batch: while a standby connected to this server lags by more (sent but not replayed WAL), the run pauses between batches, up to the policy's max_run_time (15 minutes without one). 0 turns the check off.",
        &MAX_REPLICA_LAG,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"retention.max_slot_lag",
        c"WAL a replication slot may hold back before batches wait.",
        c"Checked before every batch: while a physical replication slot, or a logical slot of this database, keeps more WAL than this, the run pauses between batches, as for retention.max_replica_lag. 0 (the default) turns the check off: an abandoned slot would otherwise stop retention.",
        &MAX_SLOT_LAG,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"retention.max_wal_rate",
        c"WAL a run may write per second (MB), batch and pause together.",
        c"After each batch, the run pauses long enough that the batch's WAL, spread over the batch and the pause, stays under this rate: for WAL archives and standbys that read at a known speed. 0 (the default) sets no limit. The pause counts in retention.runs.throttled_ms.",
        &MAX_WAL_RATE,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MB,
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

/// The current value of the server setting `name`, read through `c`.
pub fn read(c: &mut SpiClient<'_>, name: &str) -> String {
    crate::pg::plans::update(c, "SELECT pg_catalog.current_setting($1)", &[name.into()])
        .or_raise("reading a setting")
        .first()
        .get::<String>(1)
        .or_raise("reading a setting")
        .unwrap_or_default()
}

/// Sets the server setting `name` until the end of the transaction (or of
/// the subtransaction, if that is rolled back), or until it is set again.
pub fn set_local(c: &mut SpiClient<'_>, name: &str, value: &str) {
    crate::pg::plans::update(
        c,
        "SELECT pg_catalog.set_config($1, $2, true)",
        &[name.into(), value.into()],
    )
    .or_raise("changing a setting");
}

/// Runs `f` with the server setting `name` at `value`, then sets it back (an
/// ERROR in `f` undoes the change with the transaction).
pub fn with_local<R>(name: &str, value: &str, f: impl FnOnce() -> R) -> R {
    let previous = Spi::connect_mut(|c| {
        let v = read(c, name);
        set_local(c, name, value);
        v
    });
    let result = f();
    Spi::connect_mut(|c| set_local(c, name, &previous));
    result
}
