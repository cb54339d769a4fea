//! Where else does this person appear? `retention.locate(kind, subject_id)`
//! takes the subject's identifiers from the root row (the columns whose
//! names say e-mail, phone, IBAN, card number or national id) and counts,
//! in every text column of every table the caller may read, the rows that
//! contain one of them. It answers with table, column and row count only,
//! and says which tables the kind's map does not reach.
//!
//! Invariants: the identifiers are personal data. They are read as the
//! root table's owner and kept in this backend's memory for the call; each
//! table's count asks `retention._locate_match(value)`, which compares
//! with them only while that count runs. They are never a statement's text
//! or parameter (a parameter log cannot show them), never returned, logged
//! or stored. Each table is read as its owner, only where the caller may
//! SELECT it without row security hiding rows from it, with at most 30 s
//! per table; a cancel or the caller's own statement_timeout ends the call.

use super::classify::{by_name, Category};
use crate::error::{raise, OrRaise};
use crate::model::subject::{id_type, load_kind, load_tables, Kind};
use crate::pg::ident;
use crate::pg::security;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;

thread_local! {
    /// The identifiers searched for, lower case, while one of locate's own
    /// counts runs; None otherwise.
    static NEEDLES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Whether `value` contains one of the subject's identifiers (case does
/// not matter). Answers only inside retention.locate's own counts.
#[pg_extern(name = "_locate_match", volatile, strict, parallel_unsafe)]
fn locate_match(value: &str) -> bool {
    NEEDLES.with(|n| match &*n.borrow() {
        Some(needles) => needles.iter().any(|x| contains_ignoring_case(value, x)),
        None => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "retention._locate_match() only works inside retention.locate's own statements",
            "SELECT * FROM retention.locate(kind, subject_id) searches for a subject.",
        ),
    })
}

/// Whether `value` contains `needle` (lower case), whatever the case of
/// `value`: without copying `value` when `needle` is ASCII (e-mail
/// addresses, phone numbers, IBANs), which is what nearly every row costs.
fn contains_ignoring_case(value: &str, needle: &str) -> bool {
    if !needle.is_ascii() {
        return value.to_lowercase().contains(needle);
    }
    let (v, n) = (value.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    if v.len() < n.len() {
        return false;
    }
    (0..=v.len() - n.len()).any(|i| {
        v[i].to_ascii_lowercase() == first && v[i + 1..i + n.len()].eq_ignore_ascii_case(rest)
    })
}

/// Runs `f` with the identifiers in place for `_locate_match`, and removes
/// them afterwards, also when `f` fails.
fn with_needles<R>(needles: &[String], f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            NEEDLES.with(|n| *n.borrow_mut() = None);
        }
    }
    NEEDLES.with(|n| *n.borrow_mut() = Some(needles.to_vec()));
    let _clear = Clear;
    f()
}

/// The identifier columns of the root table: the ones whose names say they
/// hold an e-mail address, a phone number, an IBAN, a card number or a
/// national id.
fn identifier_columns(root: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT a.attname::text FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
              ORDER BY a.attnum",
            None,
            &[root.into()],
        )
        .or_raise("reading the root table's columns")
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .filter(|name| {
            matches!(
                by_name(name, false, true),
                Some((
                    Category::Email
                        | Category::Phone
                        | Category::Iban
                        | Category::CreditCard
                        | Category::NationalId,
                    _
                ))
            )
        })
        .collect()
    })
}

/// Tables with their text columns, readable by `role`.
fn text_columns(role: pg_sys::Oid) -> Vec<(pg_sys::Oid, String, Vec<String>)> {
    let rows: Vec<(pg_sys::Oid, String, String)> = Spi::connect(|c| {
        c.select(
            "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname::text
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'retention')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
                AND pg_catalog.has_table_privilege($1::oid, c.oid, 'SELECT')
                AND coalesce(nullif(t.typbasetype, 0), a.atttypid) IN
                    ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'json'::regtype, 'jsonb'::regtype)
              ORDER BY n.nspname, c.relname, a.attnum",
            None,
            &[role.into()],
        )
        .or_raise("listing text columns")
        .filter_map(|r| {
            Some((
                r.get::<pg_sys::Oid>(1).ok().flatten()?,
                r.get::<String>(2).ok().flatten()?,
                r.get::<String>(3).ok().flatten()?,
            ))
        })
        .collect()
    });
    let mut out: Vec<(pg_sys::Oid, String, Vec<String>)> = Vec::new();
    for (oid, name, col) in rows {
        match out.last_mut() {
            Some((o, _, cols)) if *o == oid => cols.push(col),
            _ => out.push((oid, name, vec![col])),
        }
    }
    out
}

/// The subject's identifiers (lower case, 6 characters or more) from its
/// root row, read as the root table's owner; empty when there is no such
/// row. Personal data: kept in memory only, for the caller's search.
pub fn identifiers(k: &Kind, id_cols: &[String], subject_id: &str) -> Vec<String> {
    let Some(root) = ident::relation(k.root) else {
        return Vec::new();
    };
    if id_cols.is_empty() {
        return Vec::new();
    }
    let ty = id_type(k);
    let list = id_cols
        .iter()
        .map(|c| format!("r.{}::text", ident::quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT ARRAY[{list}] FROM {root} r WHERE r.{} = CAST($1 AS {ty})",
        ident::quote(&k.id_column)
    );
    let row: Option<Vec<Option<String>>> = security::as_table_owner(k.root, || {
        Spi::connect(|c| {
            c.select(&sql, None, &[subject_id.into()])
                .or_raise("reading the subject's identifiers")
                .next()
                .and_then(|r| r.get::<Vec<Option<String>>>(1).ok().flatten())
        })
    });
    row.unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|v| v.trim().to_lowercase())
        .filter(|v| v.chars().count() >= 6)
        .collect()
}

/// The identifier columns of a kind's root table (see
/// [`identifier_columns`]).
pub fn identifier_columns_of(k: &Kind) -> Vec<String> {
    identifier_columns(k.root)
}

/// Where the identifiers were found: a table's column and its row count,
/// or a table that could not be searched (`rows` None, with the reason).
pub struct Found {
    pub table: String,
    pub column: String,
    pub rows: Option<i64>,
    pub in_map: bool,
    pub note: Option<String>,
}

/// Counts, in every text column of every table `role` may read (without
/// row security hiding rows from it), the rows containing one of
/// `needles`; each table read as its owner in one scan, at most 30 s. A
/// cancel or the caller's own statement_timeout ends the search.
pub fn search(role: pg_sys::Oid, needles: &[String], kind: &str) -> Vec<Found> {
    let mapped: Vec<pg_sys::Oid> = load_tables(kind).iter().map(|t| t.target).collect();
    let mut out = Vec::new();
    for (oid, table, cols) in text_columns(role) {
        let in_map = mapped.contains(&oid);
        if security::row_security_binds(role, oid) {
            out.push(Found {
                table: table.clone(),
                column: String::new(),
                rows: None,
                in_map,
                note: Some(format!(
                    "not searched: row security hides rows of this table from {}",
                    security::role_name(role)
                )),
            });
            continue;
        }
        let counts = cols
            .iter()
            .map(|c| {
                format!(
                    "pg_catalog.count(*) FILTER (WHERE retention._locate_match(t.{}::text))",
                    ident::quote(c)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT ARRAY[{counts}]::int8[] FROM {table} t");
        let found = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
            security::as_table_owner(oid, || {
                let _timer = crate::pg::timeout::StatementTimer::start(30_000);
                with_needles(needles, || {
                    Spi::get_one::<Vec<Option<i64>>>(&sql).or_raise("searching the table")
                })
            })
        }));
        // A cancel or the caller's own statement_timeout ends the search;
        // pg_retention's own timer only this table's.
        if let Err(e) = &found {
            if e.is_cancel()
                && !(crate::pg::timeout::last_timer_was_ours()
                    && crate::pg::timeout::last_timeout_fired())
            {
                if let Err(e) = found {
                    e.rethrow()
                }
            }
        }
        match found {
            Ok(Some(counts)) => {
                for (col, n) in cols.iter().zip(counts) {
                    let n = n.unwrap_or(0);
                    if n == 0 {
                        continue;
                    }
                    let note = (!in_map).then(|| {
                        format!("not in the map of \"{kind}\": erasure does not reach these rows")
                    });
                    out.push(Found {
                        table: table.clone(),
                        column: col.clone(),
                        rows: Some(n),
                        in_map,
                        note,
                    });
                }
            }
            _ => out.push(Found {
                table: table.clone(),
                column: String::new(),
                rows: None,
                in_map,
                note: Some(
                    "not searched: reading the table failed or took longer than 30 s".into(),
                ),
            }),
        }
    }
    out
}

#[pg_extern(name = "_locate")]
#[allow(clippy::type_complexity)]
fn locate(
    kind: &str,
    subject_id: &str,
) -> TableIterator<
    'static,
    (
        name!(target, String),
        name!(column_name, String),
        name!(rows, Option<i64>),
        name!(in_map, bool),
        name!(note, Option<String>),
    ),
> {
    security::require_admin("locate a data subject");
    let k = load_kind(kind);
    security::require_kind_entitlement(kind, k.owner, k.root, "locate data subjects");
    crate::erasure::check_canonical_id(&k, subject_id);
    let Some(root) = ident::relation(k.root) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("the root table of subject kind \"{kind}\" does not exist"),
            "Register the kind again with retention.register_subject.",
        )
    };
    let me = security::current_role();
    if let Some(why) = security::cannot_read_as_owner(me, k.root) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: {} {why} {root}", security::role_name(me)),
            "The subject's identifiers are read from the kind's root table: locate needs to read all of it.",
        )
    }
    let id_cols = identifier_columns(k.root);
    if id_cols.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{root} has no column named like an e-mail address, phone number, IBAN, card number or national id"),
            "retention.locate searches for those identifiers; SELECT * FROM retention.discover() shows what the columns look like.",
        )
    }
    let needles = identifiers(&k, &id_cols, subject_id);
    if needles.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("subject kind \"{kind}\" has no subject with this id, or it has no identifiers to search for"),
            "Give the id of a row of the root table whose e-mail, phone or other identifier columns are filled.",
        )
    }
    let out = search(me, &needles, kind)
        .into_iter()
        .map(|f| (f.table, f.column, f.rows, f.in_map, f.note))
        .collect::<Vec<_>>();
    TableIterator::new(out)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::contains_ignoring_case;
    use pgrx::prelude::*;

    #[pg_test]
    fn identifiers_are_found_whatever_their_case() {
        assert!(contains_ignoring_case(
            "Write to Erika@Example.ORG today",
            "erika@example.org"
        ));
        assert!(contains_ignoring_case(
            "erika@example.org",
            "erika@example.org"
        ));
        assert!(!contains_ignoring_case(
            "erik@example.org",
            "erika@example.org"
        ));
        assert!(!contains_ignoring_case("short", "erika@example.org"));
        assert!(contains_ignoring_case(
            "Straße 1, MÜLLER@example.de",
            "müller@example.de"
        ));
        // Needles never match across a multi-byte character's bytes.
        assert!(!contains_ignoring_case("ümlaut", "mlauts"));
    }
}
