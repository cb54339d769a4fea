//! Trigger functions that applications attach to their tables.
//!
//! They run with the rights of the role whose change fired them, never as
//! the extension owner, and read column values without running any code a
//! role wrote: a value is turned into text by its type's output function
//! (only superusers create types with their own), never by a cast.

use crate::error::raise;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, PgTriggerLevel, PgTriggerOperation};
use std::ffi::{CStr, CString};

/// The attribute number of column `name` of the trigger's table, or an error.
fn column_number(trigger: &PgTrigger<'_>, name: &str) -> i32 {
    let data = trigger.trigger_data();
    let Ok(c) = CString::new(name) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            "column name contains a zero byte",
            "Give the column's name as the trigger argument.",
        )
    };
    let n = unsafe { pg_sys::SPI_fnumber((*data.tg_relation).rd_att, c.as_ptr()) };
    if n <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "column \"{name}\" of {} does not exist",
                trigger_table(trigger)
            ),
            "Give the trigger the name of an existing column.",
        )
    }
    n
}

fn trigger_table(trigger: &PgTrigger<'_>) -> String {
    trigger
        .relid()
        .ok()
        .and_then(crate::pg::ident::relation)
        .unwrap_or_else(|| "the table".into())
}

fn protocol_error(what: &str, hint: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        what.to_string(),
        hint.to_string(),
    )
}

/// Trigger installed by `retention.restrict`: refuses UPDATEs of rows whose
/// marker column (the trigger argument) is set, except by pg_retention's own
/// stage statements.
// The SQL is written here: pgrx's own declaration of a trigger function
// names the library MODULE_PATHNAME, which a versioned library (see
// `upgrade`) does not fill in; @MODULE_PATHNAME@ is this version's library.
#[pg_trigger(
    sql = "CREATE FUNCTION retention.refuse_restricted_update() RETURNS trigger LANGUAGE c AS '@MODULE_PATHNAME@', 'refuse_restricted_update_wrapper';"
)]
fn refuse_restricted_update<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::heap_tuple::PgHeapTupleError> {
    let args = trigger.extra_args().unwrap_or_default();
    if args.len() != 1
        || !matches!(trigger.level(), PgTriggerLevel::Row)
        || !matches!(trigger.op(), Ok(PgTriggerOperation::Update))
    {
        protocol_error(
            "retention.refuse_restricted_update() must be a row-level UPDATE trigger with the marker column as its argument",
            "Install it with retention.restrict(table).",
        )
    }
    let attnum = column_number(trigger, &args[0]);
    let data = trigger.trigger_data();
    let restricted = unsafe {
        let desc = (*data.tg_relation).rd_att;
        let mut isnull = false;
        let value = pg_sys::SPI_getbinval(data.tg_trigtuple, desc, attnum, &mut isnull);
        let ty = pg_sys::SPI_gettypeid(desc, attnum);
        // Restricted: a marker that is set (a time, or true).
        !isnull && (ty != pg_sys::BOOLOID || bool::from_datum(value, false).unwrap_or(false))
    };
    if restricted && !crate::stage::stage_is_active() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "a row of {} is restricted (GDPR Art. 18) and cannot be changed",
                trigger_table(trigger)
            ),
            "Restricted rows are only anonymised or deleted by pg_retention's stages.",
        )
    }
    Ok(trigger.new())
}

/// Trigger for applications: files an erasure request for the row's subject
/// (arguments: kind, id column), e.g. when an account is flagged for
/// deletion. The role whose change fires it must be entitled to the kind's
/// subjects (a member of the kind's owner, or DELETE on its root table).
#[pg_trigger(
    sql = "CREATE FUNCTION retention.request_erasure_trigger() RETURNS trigger LANGUAGE c AS '@MODULE_PATHNAME@', 'request_erasure_trigger_wrapper';"
)]
fn request_erasure_trigger<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::heap_tuple::PgHeapTupleError> {
    let args = trigger.extra_args().unwrap_or_default();
    let op = trigger.op();
    if args.len() != 2
        || !matches!(trigger.level(), PgTriggerLevel::Row)
        || !matches!(
            op,
            Ok(PgTriggerOperation::Insert) | Ok(PgTriggerOperation::Update)
        )
    {
        protocol_error(
            "retention.request_erasure_trigger() must be a row-level INSERT or UPDATE trigger with the subject kind and the id column as arguments",
            "e.g. AFTER UPDATE OF deletion_requested ON customers FOR EACH ROW WHEN (NEW.deletion_requested) EXECUTE FUNCTION retention.request_erasure_trigger('customer', 'id')",
        )
    }
    let attnum = column_number(trigger, &args[1]);
    let data = trigger.trigger_data();
    let row = if matches!(op, Ok(PgTriggerOperation::Update)) {
        data.tg_newtuple
    } else {
        data.tg_trigtuple
    };
    // The type's output function: no cast, no code a role wrote.
    let id = unsafe {
        let p = pg_sys::SPI_getvalue(row, (*data.tg_relation).rd_att, attnum);
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    };
    let table = trigger.table_name().unwrap_or_default();
    crate::erasure::request_from_trigger(&args[0], id.as_deref(), &table);
    Ok(trigger.new())
}
