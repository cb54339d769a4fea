//! One way to fail: an ERROR with a SQLSTATE, a one-line message and a hint.
//!
//! Messages name policies, tables and columns only, never row values, so that
//! nothing personal reaches a client, a log line or the run log. Errors the
//! server raises while pg_retention changes an application table go through
//! [`sanitizing`]: their SQLSTATE is kept, their text only where its class
//! cannot quote a row value.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Raises an ERROR and does not return.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "pg_retention")
        .set_hint(hint.into())
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returns control to PostgreSQL")
}

/// Raises an ERROR with a detail line as well as a hint.
pub fn raise_detail(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    detail: impl Into<String>,
    hint: impl Into<String>,
) -> ! {
    ErrorReport::new(code, message.into(), "pg_retention")
        .set_detail(detail.into())
        .set_hint(hint.into())
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returns control to PostgreSQL")
}

/// Turns an SPI failure that should not happen into an internal error that
/// says what was being done, instead of a Rust panic.
pub trait OrRaise<T> {
    fn or_raise(self, doing: &str) -> T;
}

impl<T> OrRaise<T> for Result<T, pgrx::spi::SpiError> {
    fn or_raise(self, doing: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("pg_retention: {doing} failed: {e}"),
                "This is a defect in pg_retention; please report it with the statement that led to it.",
            ),
        }
    }
}

/// The five-character SQLSTATE of an error code.
pub fn sqlstate_of(code: PgSqlErrorCode) -> String {
    let c = code as i32;
    (0..5)
        .map(|i| ((((c >> (6 * i)) & 0x3F) as u8) + b'0') as char)
        .collect()
}

/// Runs `f`, which executes statements on `table` with the policy owner's
/// rights. An ERROR from the server is raised again with the same SQLSTATE
/// and a message that cannot quote row values: messages raised by PL
/// functions (triggers) are withheld whatever their SQLSTATE, others are
/// filtered by `sanitized_error`.
pub fn sanitizing<R>(table: &str, f: impl FnOnce() -> R) -> R {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) => {
                let code = r.sql_error_code();
                let state = sqlstate_of(code);
                let from_pl = r.file().contains("pl_exec") || r.function_name() == Some("exec_stmt_raise");
                let msg = if from_pl {
                    format!("error {state} raised by a trigger or function (message withheld: it may quote row values) [table {table}]")
                } else {
                    sanitized_error(&state, Some(r.message()), Some(table), None, None)
                };
                raise(
                    code,
                    msg,
                    "Messages that may quote row values are withheld; repeat the statement as the policy owner to see the full error.",
                )
            }
            other => other.rethrow(),
        })
        .execute()
}

/// SQLSTATE classes whose server messages name objects only, never values:
/// their text is kept in the run log. For all other classes (data
/// exceptions, integrity violations, raised exceptions, ...) the message may
/// quote row values and is withheld.
fn message_is_safe(sqlstate: &str, message: &str) -> bool {
    match sqlstate.get(0..2).unwrap_or("") {
        "25" | "2D" | "40" | "42" | "53" | "54" | "55" | "57" | "58" | "0A" => true,
        // PostgreSQL's own integrity messages name tables, columns and
        // constraints and keep the key values in DETAIL (never stored). A
        // trigger may raise the same codes with its own text: only the
        // server's wording is kept.
        "23" => [
            "update or delete on table \"",
            "insert or update on table \"",
            "duplicate key value violates unique constraint \"",
            "null value in column \"",
            "new row for relation \"",
            "conflicting key value violates exclusion constraint \"",
        ]
        .iter()
        .any(|p| message.starts_with(p)),
        _ => false,
    }
}

/// The run-log text for an error: the server message when its class cannot
/// carry row data, the table and constraint it concerns otherwise.
pub fn sanitized_error(
    sqlstate: &str,
    message: Option<&str>,
    table: Option<&str>,
    constraint: Option<&str>,
    column: Option<&str>,
) -> String {
    let mut s = if message_is_safe(sqlstate, message.unwrap_or("")) {
        message.unwrap_or("error").to_string()
    } else {
        format!("error {sqlstate} (message withheld: it may quote row values)")
    };
    let mut parts = Vec::new();
    if let Some(t) = table.filter(|t| !t.is_empty()) {
        parts.push(format!("table {t}"));
    }
    if let Some(c) = constraint.filter(|c| !c.is_empty()) {
        parts.push(format!("constraint {c}"));
    }
    if let Some(c) = column.filter(|c| !c.is_empty()) {
        parts.push(format!("column {c}"));
    }
    if !parts.is_empty() {
        s.push_str(&format!(" [{}]", parts.join(", ")));
    }
    s
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn error_text_withholds_values() {
        let s = sanitized_error(
            "22P02",
            Some("invalid input syntax for type integer: \"alice@example.com\""),
            Some("orders"),
            None,
            None,
        );
        assert!(!s.contains("alice"), "{s}");
        assert!(s.contains("table orders"), "{s}");
        let s = sanitized_error(
            "55P03",
            Some("canceling statement due to lock timeout"),
            None,
            None,
            None,
        );
        assert_eq!(s, "canceling statement due to lock timeout");
        let s = sanitized_error(
            "23503",
            Some("update or delete on table \"c\" violates foreign key constraint \"o_fk\""),
            Some("c"),
            Some("o_fk"),
            None,
        );
        assert!(s.starts_with("update or delete on table"), "{s}");
        assert!(s.contains("constraint o_fk"), "{s}");
        // The same code raised by a trigger with its own text is withheld.
        let s = sanitized_error(
            "23503",
            Some("customer bob@example.com still has orders"),
            None,
            None,
            None,
        );
        assert!(!s.contains("bob"), "{s}");
        let s = sanitized_error("P0001", Some("bob@example.com"), None, None, None);
        assert!(!s.contains("bob"), "{s}");
    }
}
