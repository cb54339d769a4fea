//! Change-data capture: what pg_retention did, told to logical decoding.
//!
//! Every batch that changed rows, every whole-partition removal and every
//! erasure writes one transactional logical decoding message (prefix
//! `pg_retention`) in the same transaction as its changes. A consumer of
//! the WAL (Debezium, a pgoutput subscriber with messages on, test_decoding)
//! sees it between the transaction's BEGIN and COMMIT, next to the deletes
//! and updates it explains: routine retention work can be dropped
//! downstream, erasures must be carried out downstream too.
//!
//! Invariants: a message names the action, the policy or request, the table
//! and counts, never a row value or a subject id (an erasure names its
//! subject by blind index, as the audit log does); it is written as the
//! extension owner; `retention.change_messages = off` (superuser) stops
//! them.

use crate::error::OrRaise;
use crate::pg::security;
use pgrx::prelude::*;
use serde_json::Value;

/// The prefix of every message.
pub const PREFIX: &str = "pg_retention";

/// Writes one message with `details` (a JSON object) in the current
/// transaction, unless messages are switched off.
pub fn emit(details: Value) {
    if !crate::gucs::CHANGE_MESSAGES.get() {
        return;
    }
    let text = crate::audit::canonical(&details);
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "SELECT pg_catalog.pg_logical_emit_message(true, $1, $2)",
            &[PREFIX.into(), text.as_str().into()],
        )
        .or_raise("writing a change message")
    });
}
