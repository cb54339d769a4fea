//! A policy as the engine reads it, and its lifecycle stages.
//!
//! Invariants: a policy is read by column name from `retention.policies`
//! (the table's defaults live in `sql/schema.sql` only: a NULL in a NOT NULL
//! column is an error, never replaced by a default here); a stage is a
//! [`Stage`], written to the catalogue by its one spelling.

use crate::error::{raise, OrRaise};
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;
use pgrx::PgSqlErrorCode;

/// A lifecycle stage. Runs apply them oldest first ([`Stage::RUN_ORDER`]),
/// so that rows about to be deleted are not masked or marked first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Purge,
    Anonymise,
    Mark,
}

impl Stage {
    pub const RUN_ORDER: [Stage; 3] = [Stage::Purge, Stage::Anonymise, Stage::Mark];

    /// The stage's name in the catalogue, the run log and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Purge => "purge",
            Stage::Anonymise => "anonymise",
            Stage::Mark => "mark",
        }
    }

    /// A stage named by a user or read from the run log (`anonymize` is
    /// accepted too); None for anything else (`done`).
    pub fn parse(name: &str) -> Option<Stage> {
        match name {
            "purge" => Some(Stage::Purge),
            "anonymise" | "anonymize" => Some(Stage::Anonymise),
            "mark" => Some(Stage::Mark),
            _ => None,
        }
    }

    /// The stage a run applies after this one; None after the last.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Purge => Some(Stage::Anonymise),
            Stage::Anonymise => Some(Stage::Mark),
            Stage::Mark => None,
        }
    }

    /// Position in [`Stage::RUN_ORDER`] (and in a run's cutoffs).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The run-log column counting the rows this stage changed.
    pub fn counter(self) -> &'static str {
        match self {
            Stage::Purge => "rows_purged",
            Stage::Anonymise => "rows_anonymised",
            Stage::Mark => "rows_marked",
        }
    }

    /// The privilege (besides SELECT) a role needs to apply the stage.
    pub fn privilege(self) -> &'static str {
        match self {
            Stage::Purge => "DELETE",
            _ => "UPDATE",
        }
    }
}

/// The run-log spelling of a stage, `done` after the last one.
pub fn stage_name(stage: Option<Stage>) -> &'static str {
    stage.map_or("done", Stage::as_str)
}

/// The column that records a row's state for the mark or anonymise stage
/// (a nullable `timestamptz` or a `boolean`).
#[derive(Debug, Clone, Default)]
pub struct StateColumn {
    pub column: String,
    pub ty: pg_sys::Oid,
}

/// A policy as the engine needs it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: i64,
    pub name: String,
    pub target: pg_sys::Oid,
    pub key_columns: Option<Vec<String>>,
    pub clock: String,
    pub clock_type: pg_sys::Oid,
    pub filter: Option<String>,
    /// The most rows a batch changes.
    pub batch_size: i32,
    /// How long a batch should take; batches are sized from the time the
    /// previous ones took (None: every batch has batch_size rows).
    pub batch_target_secs: Option<f64>,
    pub batch_pause_secs: f64,
    pub skip_locked: bool,
    pub owner: pg_sys::Oid,
    pub paused: bool,
    /// The purge stage is declared.
    pub purge: bool,
    /// The mark stage: its marker column.
    pub mark: Option<StateColumn>,
    /// The anonymise stage: its tracking column.
    pub anonymise: Option<StateColumn>,
    pub lock_timeout_ms: i64,
    pub statement_timeout_ms: i64,
    pub max_run_time_secs: Option<f64>,
    pub max_rows_per_second: Option<i32>,
    pub drop_partitions: bool,
    pub archive_schema: Option<String>,
    /// Vacuum the table through pg_cron after a run that changed rows.
    pub vacuum_after: bool,
    /// The safety cap: the largest share of the table a run may find due
    /// for purge or anonymisation (see `engine::cap`).
    pub max_due_fraction: Option<f64>,
    /// A run found the share above the cap and nobody acknowledged it since.
    pub cap_stopped: bool,
    /// The cap tripped and was acknowledged: the next run goes ahead.
    pub cap_acknowledged: bool,
}

impl Policy {
    /// Whether the policy declares the stage.
    pub fn has(&self, stage: Stage) -> bool {
        match stage {
            Stage::Purge => self.purge,
            Stage::Anonymise => self.anonymise.is_some(),
            Stage::Mark => self.mark.is_some(),
        }
    }

    /// The state column of the mark or anonymise stage.
    pub fn state_column(&self, stage: Stage) -> Option<&StateColumn> {
        match stage {
            Stage::Purge => None,
            Stage::Anonymise => self.anonymise.as_ref(),
            Stage::Mark => self.mark.as_ref(),
        }
    }
}

/// The select list a [`Policy`] is read from, each value named as its field.
const POLICY_COLUMNS: &str = "id, name, target::oid AS target, key_columns, clock, \
     clock_type::oid AS clock_type, filter, batch_size, \
     extract(epoch FROM batch_pause)::float8 AS batch_pause_secs, skip_locked, owner::oid AS owner, paused, \
     purge_after IS NOT NULL AS purge, \
     CASE WHEN mark_after IS NOT NULL THEN marker_column END AS mark_column, marker_type::oid AS mark_type, \
     CASE WHEN anonymise_after IS NOT NULL THEN anonymised_column END AS anonymise_column, \
     anonymised_type::oid AS anonymise_type, \
     (extract(epoch FROM lock_timeout) * 1000)::int8 AS lock_timeout_ms, \
     (extract(epoch FROM statement_timeout) * 1000)::int8 AS statement_timeout_ms, \
     extract(epoch FROM max_run_time)::float8 AS max_run_time_secs, max_rows_per_second, \
     drop_partitions, archive_schema, \
     extract(epoch FROM batch_target)::float8 AS batch_target_secs, vacuum_after, \
     max_due_fraction::float8 AS max_due_fraction, \
     (cap_tripped_at IS NOT NULL AND (cap_acknowledged_at IS NULL OR cap_acknowledged_at < cap_tripped_at)) AS cap_stopped, \
     (cap_tripped_at IS NOT NULL AND cap_acknowledged_at >= cap_tripped_at) AS cap_acknowledged";

const READING: &str = "reading a policy";

/// A nullable value of the row.
fn opt<T: pgrx::datum::IntoDatum + pgrx::datum::FromDatum>(
    row: &SpiHeapTupleData,
    name: &str,
) -> Option<T> {
    row.get_by_name::<T, _>(name).or_raise(READING)
}

/// A value of a NOT NULL column: a NULL means the catalogue was damaged.
fn req<T: pgrx::datum::IntoDatum + pgrx::datum::FromDatum>(
    row: &SpiHeapTupleData,
    name: &str,
) -> T {
    opt(row, name).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("retention.policies has a NULL {name}"),
            "The column is NOT NULL in retention.policies; restore the table from a dump.",
        )
    })
}

fn state_column(row: &SpiHeapTupleData, column: &str, ty: &str) -> Option<StateColumn> {
    opt::<String>(row, column).map(|column| StateColumn {
        column,
        ty: opt(row, ty).unwrap_or(pg_sys::InvalidOid),
    })
}

fn policy_from_row(row: &SpiHeapTupleData) -> Policy {
    Policy {
        id: req(row, "id"),
        name: req(row, "name"),
        target: req(row, "target"),
        key_columns: opt(row, "key_columns"),
        clock: req(row, "clock"),
        clock_type: req(row, "clock_type"),
        filter: opt(row, "filter"),
        batch_size: req(row, "batch_size"),
        batch_target_secs: opt(row, "batch_target_secs"),
        batch_pause_secs: req(row, "batch_pause_secs"),
        skip_locked: req(row, "skip_locked"),
        owner: req(row, "owner"),
        paused: req(row, "paused"),
        purge: req(row, "purge"),
        mark: state_column(row, "mark_column", "mark_type"),
        anonymise: state_column(row, "anonymise_column", "anonymise_type"),
        lock_timeout_ms: req(row, "lock_timeout_ms"),
        statement_timeout_ms: req(row, "statement_timeout_ms"),
        max_run_time_secs: opt(row, "max_run_time_secs"),
        max_rows_per_second: opt(row, "max_rows_per_second"),
        drop_partitions: req(row, "drop_partitions"),
        archive_schema: opt(row, "archive_schema"),
        vacuum_after: req(row, "vacuum_after"),
        max_due_fraction: opt(row, "max_due_fraction"),
        cap_stopped: req(row, "cap_stopped"),
        cap_acknowledged: opt(row, "cap_acknowledged").unwrap_or(false),
    }
}

/// Loads the policies named (or all, ordered by name).
pub fn load(name: Option<&str>) -> Vec<Policy> {
    let sql = format!(
        "SELECT {POLICY_COLUMNS} FROM retention.policies WHERE $1::text IS NULL OR name = $1 ORDER BY name"
    );
    Spi::connect(|c| {
        c.select(&sql, None, &[name.into()])
            .or_raise("reading policies")
            .map(|row| policy_from_row(&row))
            .collect()
    })
}

/// Loads one policy by id, if it still exists.
pub fn load_by_id(id: i64) -> Option<Policy> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM retention.policies WHERE id = $1");
    Spi::connect(|c| {
        crate::pg::plans::select(c, &sql, &[id.into()])
            .or_raise(READING)
            .next()
            .map(|row| policy_from_row(&row))
    })
}

/// Loads one policy by name or raises `undefined_object`.
pub fn load_one(name: &str) -> Policy {
    load(Some(name)).into_iter().next().unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("retention policy \"{name}\" does not exist"),
            "SELECT name FROM retention.policies lists the declared policies.",
        )
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn stages_follow_the_run_order_and_parse_their_own_names() {
        let mut s = Some(Stage::RUN_ORDER[0]);
        let mut seen = Vec::new();
        while let Some(st) = s {
            assert_eq!(Stage::parse(st.as_str()), Some(st));
            assert_eq!(Stage::RUN_ORDER[st.index()], st);
            seen.push(st);
            s = st.next();
        }
        assert_eq!(seen, Stage::RUN_ORDER);
        assert_eq!(Stage::parse("anonymize"), Some(Stage::Anonymise));
        assert_eq!(Stage::parse("done"), None);
        assert_eq!(stage_name(None), "done");
    }
}
