//! The one place where identifiers become SQL text.
//!
//! Every table and column name that ends up in a statement built by the
//! extension passes through these functions; values never do (they are bind
//! parameters).

use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, quote_qualified_identifier};
use std::ffi::CStr;

/// A quoted column or other simple identifier.
pub fn quote(name: &str) -> String {
    quote_identifier(name)
}

/// A comma-separated list of quoted columns, each prefixed with `table.`
/// when `table` (already quoted) is given.
pub fn columns(table: Option<&str>, names: &[String]) -> String {
    names
        .iter()
        .map(|c| match table {
            Some(t) => format!("{t}.{}", quote(c)),
            None => quote(c),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schema-qualified, quoted name of a relation, or `None` when no
/// relation has that OID (any more).
pub fn relation(oid: pg_sys::Oid) -> Option<String> {
    unsafe {
        let rel = pg_sys::get_rel_name(oid);
        if rel.is_null() {
            return None;
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(oid));
        if nsp.is_null() {
            return None;
        }
        let rel = CStr::from_ptr(rel).to_string_lossy().into_owned();
        let nsp = CStr::from_ptr(nsp).to_string_lossy().into_owned();
        Some(quote_qualified_identifier(nsp, rel))
    }
}

/// The relation's kind (`r`, `p`, `v`, ...) or `None` when it does not exist.
/// The schema and name of a relation, unquoted (empty when it is gone).
pub fn schema_and_name(oid: pg_sys::Oid) -> (String, String) {
    pgrx::spi::Spi::get_two_with_args::<String, String>(
        "SELECT n.nspname::text, c.relname::text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = $1",
        &[oid.into()],
    )
    .ok()
    .map(|(s, n)| (s.unwrap_or_default(), n.unwrap_or_default()))
    .unwrap_or_default()
}

pub fn relkind(oid: pg_sys::Oid) -> Option<u8> {
    let kind = unsafe { pg_sys::get_rel_relkind(oid) };
    if kind == 0 {
        None
    } else {
        Some(kind as u8)
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn quoting_keeps_hostile_names_names() {
        Spi::run(r#"CREATE SCHEMA "we;ird"; CREATE TABLE "we;ird"."t""--x" (id int)"#).unwrap();
        let oid: pg_sys::Oid = Spi::get_one(r#"SELECT '"we;ird"."t""--x"'::regclass::oid"#)
            .unwrap()
            .unwrap();
        let name = super::relation(oid).unwrap();
        assert_eq!(name, r#""we;ird"."t""--x""#);
        // The quoted name resolves back to the same table.
        let back: pg_sys::Oid =
            Spi::get_one_with_args("SELECT $1::regclass::oid", &[name.as_str().into()])
                .unwrap()
                .unwrap();
        assert_eq!(back, oid);
        assert_eq!(super::quote("a b"), "\"a b\"");
        assert_eq!(super::quote("plain"), "plain");
    }
}
