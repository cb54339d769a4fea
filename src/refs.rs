//! Foreign keys that reference a policy's target.
//!
//! A purge must not fail on rows other tables still reference: with
//! ON DELETE RESTRICT or NO ACTION, such rows are left out of the batch (and
//! counted as blocked) instead of failing it; with CASCADE, SET NULL or SET
//! DEFAULT the server does what the key says and the preview counts the rows
//! that go with them.

use crate::error::OrRaise;
use crate::ident;
use pgrx::prelude::*;

pub struct Reference {
    pub constraint: String,
    pub child: String,
    pub child_oid: pg_sys::Oid,
    pub child_columns: Vec<String>,
    pub parent_columns: Vec<String>,
    /// pg_constraint.confdeltype: a (no action), r, c, n, d.
    pub on_delete: String,
}

impl Reference {
    pub fn blocks(&self) -> bool {
        self.on_delete == "a" || self.on_delete == "r"
    }

    pub fn action_words(&self) -> &'static str {
        match self.on_delete.as_str() {
            "c" => "ON DELETE CASCADE",
            "n" => "ON DELETE SET NULL",
            "d" => "ON DELETE SET DEFAULT",
            "r" => "ON DELETE RESTRICT",
            _ => "ON DELETE NO ACTION",
        }
    }

    /// `EXISTS (a child row references <table>'s row)`, correlated with the
    /// unaliased target `table`.
    pub fn exists_sql(&self, table: &str) -> String {
        let pairs: Vec<String> = self
            .child_columns
            .iter()
            .zip(&self.parent_columns)
            .map(|(c, p)| format!("r.{} = {table}.{}", ident::quote(c), ident::quote(p)))
            .collect();
        format!(
            "EXISTS (SELECT 1 FROM {} r WHERE {})",
            self.child,
            pairs.join(" AND ")
        )
    }
}

/// Every foreign key referencing `target` (top-level constraints only).
pub fn references(target: pg_sys::Oid) -> Vec<Reference> {
    let rows: Vec<(String, pg_sys::Oid, String, Vec<String>, Vec<String>)> = Spi::connect(|c| {
        crate::plans::select(
            c,
            "SELECT c.conname::text, c.conrelid, c.confdeltype::text,
                    (SELECT array_agg(a.attname::text ORDER BY k.n)
                       FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                    (SELECT array_agg(a.attname::text ORDER BY k.n)
                       FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
               FROM pg_catalog.pg_constraint c
              WHERE c.contype = 'f' AND c.confrelid = $1 AND c.conparentid = 0
              ORDER BY c.conrelid::regclass::text, c.conname",
            &[target.into()],
        )
        .or_raise("reading foreign keys")
        .map(|r| {
            let e = "reading foreign keys";
            (
                r.get::<String>(1).or_raise(e).unwrap_or_default(),
                r.get::<pg_sys::Oid>(2).or_raise(e).unwrap_or(pg_sys::InvalidOid),
                r.get::<String>(3).or_raise(e).unwrap_or_default(),
                r.get::<Vec<String>>(4).or_raise(e).unwrap_or_default(),
                r.get::<Vec<String>>(5).or_raise(e).unwrap_or_default(),
            )
        })
        .collect()
    });
    rows.into_iter()
        .filter_map(
            |(constraint, child, on_delete, child_columns, parent_columns)| {
                Some(Reference {
                    constraint,
                    child_oid: child,
                    child: ident::relation(child)?,
                    child_columns,
                    parent_columns,
                    on_delete,
                })
            },
        )
        .collect()
}

/// `NOT EXISTS (...) AND ...` for the references that block a delete, or
/// None when none does.
pub fn unblocked_condition(refs: &[Reference], table: &str) -> Option<String> {
    let parts: Vec<String> = refs
        .iter()
        .filter(|r| r.blocks())
        .map(|r| format!("NOT {}", r.exists_sql(table)))
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" AND "))
    }
}

/// Reports the referencing tables when a policy is declared.
pub fn notice_references(policy: &str, target: pg_sys::Oid) {
    for r in references(target) {
        let effect = if r.blocks() {
            "due rows it still references are kept and counted as blocked"
        } else {
            "the server applies the key when rows are purged"
        };
        pgrx::notice!(
            "retention policy \"{policy}\": {} references the target through {} ({}): {effect}",
            r.child,
            r.constraint,
            r.action_words()
        );
    }
}
