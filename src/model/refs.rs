//! Foreign keys that reference a table, and the order tables are changed in.
//!
//! A purge must not fail on rows other tables still reference: with
//! ON DELETE RESTRICT or NO ACTION, such rows are left out of the batch (and
//! counted as blocked) instead of failing it; with CASCADE, SET NULL or SET
//! DEFAULT the server does what the key says and the preview counts the rows
//! that go with them.

use crate::error::OrRaise;
use crate::pg::ident;
use pgrx::prelude::*;

pub struct Reference {
    pub constraint: String,
    pub child: String,
    pub child_oid: pg_sys::Oid,
    pub child_columns: Vec<String>,
    pub parent_columns: Vec<String>,
    pub on_delete: OnDelete,
}

/// What the server does to referencing rows when a referenced row is deleted
/// (`pg_constraint.confdeltype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl OnDelete {
    fn from_catalogue(code: &str) -> OnDelete {
        match code {
            "r" => OnDelete::Restrict,
            "c" => OnDelete::Cascade,
            "n" => OnDelete::SetNull,
            "d" => OnDelete::SetDefault,
            _ => OnDelete::NoAction,
        }
    }
}

impl Reference {
    /// The key keeps the referenced row (RESTRICT, NO ACTION).
    pub fn blocks(&self) -> bool {
        matches!(self.on_delete, OnDelete::NoAction | OnDelete::Restrict)
    }

    pub fn action_words(&self) -> &'static str {
        match self.on_delete {
            OnDelete::Cascade => "ON DELETE CASCADE",
            OnDelete::SetNull => "ON DELETE SET NULL",
            OnDelete::SetDefault => "ON DELETE SET DEFAULT",
            OnDelete::Restrict => "ON DELETE RESTRICT",
            OnDelete::NoAction => "ON DELETE NO ACTION",
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
    // (constraint, referencing table, confdeltype, its columns, ours)
    type Found = (String, pg_sys::Oid, String, Vec<String>, Vec<String>);
    let rows: Vec<Found> = Spi::connect(|c| {
        crate::pg::plans::select(
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
                    on_delete: OnDelete::from_catalogue(&on_delete),
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

/// Orders `items` (each changing the table `target_of` names) so that an
/// item comes before every item whose table its table references:
/// referencing rows are removed first and no longer hold their parents back.
/// `waits` adds orderings the foreign keys do not show, as (waiting item,
/// item it waits for) index pairs. Among the items ready, the first in the
/// given order goes first; in a cycle, the first unprocessed one.
pub fn children_first<T>(
    items: Vec<T>,
    target_of: impl Fn(&T) -> pg_sys::Oid,
    waits: &[(usize, usize)],
) -> Vec<T> {
    let targets: Vec<pg_sys::Oid> = items.iter().map(&target_of).collect();
    // children[i]: the items that must come before item i.
    let mut children: Vec<Vec<usize>> = targets
        .iter()
        .map(|&t| {
            references(t)
                .iter()
                .flat_map(|r| {
                    targets
                        .iter()
                        .enumerate()
                        .filter(|(_, &c)| c == r.child_oid && c != t)
                        .map(|(ci, _)| ci)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    for &(waiting, first) in waits {
        children[waiting].push(first);
    }
    let n = items.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n)
            .find(|&i| !done[i] && children[i].iter().all(|&c| done[c]))
            .or_else(|| (0..n).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    fn oid(name: &str) -> pg_sys::Oid {
        Spi::get_one_with_args::<pg_sys::Oid>("SELECT $1::regclass::oid", &[name.into()])
            .unwrap()
            .unwrap()
    }

    /// Referencing tables come first at any depth, whatever the given order;
    /// extra waits are honoured; a cycle does not lose an item.
    #[pg_test]
    fn children_come_before_the_tables_they_reference() {
        Spi::run(
            "CREATE TABLE public.o_a (id int PRIMARY KEY);
             CREATE TABLE public.o_b (id int PRIMARY KEY, a int REFERENCES public.o_a ON DELETE CASCADE);
             CREATE TABLE public.o_c (id int PRIMARY KEY, b int REFERENCES public.o_b);
             CREATE TABLE public.o_d (id int PRIMARY KEY);
             CREATE TABLE public.o_x (id int PRIMARY KEY, y int);
             CREATE TABLE public.o_y (id int PRIMARY KEY, x int REFERENCES public.o_x);
             ALTER TABLE public.o_x ADD FOREIGN KEY (y) REFERENCES public.o_y;",
        )
        .unwrap();
        let names = ["public.o_a", "public.o_b", "public.o_d", "public.o_c"];
        let order = children_first(names.to_vec(), |n| oid(n), &[]);
        assert_eq!(
            order,
            ["public.o_d", "public.o_c", "public.o_b", "public.o_a"]
        );
        // o_d waits for o_a: it goes last.
        let order = children_first(names.to_vec(), |n| oid(n), &[(2, 0)]);
        assert_eq!(
            order,
            ["public.o_c", "public.o_b", "public.o_a", "public.o_d"]
        );
        let cycle = children_first(vec!["public.o_x", "public.o_y"], |n| oid(n), &[]);
        assert_eq!(cycle.len(), 2);
        let on_delete: Vec<OnDelete> = references(oid("public.o_a"))
            .iter()
            .map(|r| r.on_delete)
            .collect();
        assert_eq!(on_delete, [OnDelete::Cascade]);
        assert!(references(oid("public.o_b"))[0].blocks());
    }
}
