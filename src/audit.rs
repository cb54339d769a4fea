//! The audit log: append-only and hash-chained.
//!
//! Every entry holds its predecessor's hash and its own: SHA-256 over the
//! previous hash and a canonical serialisation of the entry (JSON with keys
//! sorted at every level). Entries record what pg_retention did (runs,
//! requests, holds, counts per table, actor role, transaction), never a
//! subject id or other personal data: subjects appear only as a keyed blind
//! index. Triggers refuse UPDATE, DELETE and TRUNCATE for everyone;
//! `retention.verify_audit()` recomputes the chain and names the first entry
//! that does not match.

use crate::error::OrRaise;
use crate::pg::security;
use pgrx::datum::JsonB;
use pgrx::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// JSON with object keys sorted at every level: one text per value.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of an entry: SHA-256(previous hash hex ‖ "\n" ‖ canonical entry).
pub fn entry_hash(prev: &str, entry: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical(entry).as_bytes());
    hex(&h.finalize())
}

/// The entry as it is hashed: every column except the hash itself.
fn entry_value(
    id: i64,
    at: &str,
    actor: &str,
    xid: i64,
    event: &str,
    details: &Value,
    prev: &str,
) -> Value {
    serde_json::json!({
        "id": id, "at": at, "actor": actor, "xid": xid, "event": event, "details": details, "prev_hash": prev,
    })
}

/// The newest entry's hash as committed now, read with the latest snapshot
/// (not the transaction's): called with the chain's lock held, it is the
/// true head whatever the isolation level, so that the chain has no forks
/// even under REPEATABLE READ or SERIALIZABLE.
fn latest_head() -> Option<String> {
    Spi::connect(|_c| unsafe {
        let plan = pg_sys::SPI_prepare(
            c"SELECT hash FROM retention.audit_log ORDER BY id DESC LIMIT 1".as_ptr(),
            0,
            std::ptr::null_mut(),
        );
        if plan.is_null() {
            crate::error::raise(
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "pg_retention: reading the audit log failed",
                "This is a defect in pg_retention; please report it with the statement that led to it.",
            )
        }
        let rc = pg_sys::SPI_execute_snapshot(
            plan,
            std::ptr::null_mut(),
            std::ptr::null(),
            pg_sys::GetLatestSnapshot(),
            std::ptr::null_mut(),
            true,
            false,
            1,
        );
        let mut head = None;
        if rc == pg_sys::SPI_OK_SELECT as i32 && pg_sys::SPI_processed == 1 {
            let table = pg_sys::SPI_tuptable;
            let value = pg_sys::SPI_getvalue(*(*table).vals, (*table).tupdesc, 1);
            if !value.is_null() {
                head = Some(
                    std::ffi::CStr::from_ptr(value)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        pg_sys::SPI_freeplan(plan);
        head
    })
}

/// Appends an entry; returns its hash. Serialised by a transaction-level
/// advisory lock so that the chain has no forks.
pub fn append(event: &str, details: Value) -> String {
    let actor = security::role_name(security::current_role());
    security::as_extension_owner(|| {
        crate::pg::locks::lock_audit_chain();
        let prev = latest_head().unwrap_or_else(|| "0".repeat(64));
        let (id, at, xid) = Spi::connect_mut(|c| {
            let r = c
                .update(
                    "SELECT pg_catalog.nextval('retention.audit_log_id_seq'),
                            pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                            pg_catalog.txid_current()",
                    Some(1),
                    &[],
                )
                .or_raise("numbering the audit entry")
                .first();
            (
                r.get::<i64>(1)
                    .or_raise("numbering the audit entry")
                    .unwrap_or(0),
                r.get::<String>(2)
                    .or_raise("numbering the audit entry")
                    .unwrap_or_default(),
                r.get::<i64>(3)
                    .or_raise("numbering the audit entry")
                    .unwrap_or(0),
            )
        });
        let hash = entry_hash(
            &prev,
            &entry_value(id, &at, &actor, xid, event, &details, &prev),
        );
        Spi::run_with_args(
            "INSERT INTO retention.audit_log (id, at, actor, xid, event, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                id.into(),
                at.as_str().into(),
                actor.as_str().into(),
                xid.into(),
                event.into(),
                JsonB(details).into(),
                prev.as_str().into(),
                hash.as_str().into(),
            ],
        )
        .or_raise("appending to the audit log");
        hash
    })
}

/// The chain's entries in order: (id, at, actor, xid, event, details,
/// prev_hash, hash).
#[allow(clippy::type_complexity)]
fn chain() -> Vec<(i64, String, String, i64, String, Value, String, String)> {
    Spi::connect(|c| {
        c.select("SELECT id, at, actor, xid, event, details, prev_hash, hash FROM retention.audit_log ORDER BY id", None, &[])
            .or_raise("reading the audit log")
            .map(|r| {
                let e = "reading the audit log";
                (
                    r.get::<i64>(1).or_raise(e).unwrap_or(0),
                    r.get::<String>(2).or_raise(e).unwrap_or_default(),
                    r.get::<String>(3).or_raise(e).unwrap_or_default(),
                    r.get::<i64>(4).or_raise(e).unwrap_or(0),
                    r.get::<String>(5).or_raise(e).unwrap_or_default(),
                    r.get::<JsonB>(6).or_raise(e).map(|j| j.0).unwrap_or(Value::Null),
                    r.get::<String>(7).or_raise(e).unwrap_or_default(),
                    r.get::<String>(8).or_raise(e).unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// The chain's anchor: how many entries it has and its newest entry's id
/// and hash. Kept outside the database (with the erasure ledger, in a
/// ticket, a mail to the DPO), it lets `verify_audit(anchor)` detect that
/// entries were removed from the end of the chain, which the chain alone
/// cannot show.
#[pg_extern(name = "_audit_anchor")]
pub fn audit_anchor() -> JsonB {
    security::require_reader("read the audit anchor");
    let rows = chain();
    let last = rows.last();
    let at = crate::pg::security::with_pinned_settings(|| {
        Spi::get_one::<String>("SELECT pg_catalog.now()::text").or_raise("reading the time")
    });
    JsonB(serde_json::json!({
        "entries": rows.len(),
        "last_id": last.map(|r| r.0),
        "head_hash": last.map(|r| r.7.clone()),
        "taken_at": at,
    }))
}

#[pg_extern(name = "_verify_audit")]
#[allow(clippy::type_complexity)]
fn verify_audit(
    anchor: default!(Option<JsonB>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(entries, i64),
        name!(first_broken_id, Option<i64>),
        name!(problem, Option<String>),
        name!(head_hash, Option<String>),
    ),
> {
    security::require_reader("verify the audit log");
    let rows = chain();
    let n = rows.len() as i64;
    let broken =
        |id: Option<i64>, why: String| TableIterator::once((false, n, id, Some(why), None));
    // An anchor taken earlier names an entry that must still be there,
    // unchanged, and a count the chain cannot have fallen below.
    if let Some(JsonB(a)) = &anchor {
        let last_id = a.get("last_id").and_then(|v| v.as_i64());
        let head = a.get("head_hash").and_then(|v| v.as_str());
        let entries = a.get("entries").and_then(|v| v.as_i64()).unwrap_or(0);
        if let (Some(id), Some(h)) = (last_id, head) {
            match rows.iter().find(|r| r.0 == id) {
                None => {
                    return broken(
                        Some(id),
                        format!("entry {id} named by the anchor is missing (entries were removed from the chain)"),
                    )
                }
                Some(r) if r.7 != h => {
                    return broken(Some(id), format!("entry {id} differs from the anchor's hash"))
                }
                _ => {}
            }
        }
        if n < entries {
            return broken(
                None,
                format!("the chain has {n} entries, fewer than the anchor's {entries}"),
            );
        }
    }
    let mut prev = "0".repeat(64);
    for (id, at, actor, xid, event, details, prev_hash, hash) in rows {
        if prev_hash != prev {
            return broken(
                Some(id),
                "prev_hash does not match the previous entry (entry removed or reordered)".into(),
            );
        }
        let expect = entry_hash(
            &prev,
            &entry_value(id, &at, &actor, xid, &event, &details, &prev_hash),
        );
        if expect != hash {
            return broken(
                Some(id),
                "content does not match its hash (entry altered)".into(),
            );
        }
        prev = hash;
    }
    TableIterator::once((true, n, None, None, if n > 0 { Some(prev) } else { None }))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn canonical_json_sorts_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":1,"y":2}],"c":"x"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#
        );
        assert_ne!(entry_hash("0", &a), entry_hash("1", &a));
    }
}
