//! Legal holds and every rule about what they keep.
//!
//! A hold is on a table (all of it, or the rows its validated filter
//! matches) or on a subject (stored as the blind index). Runs, the preview
//! and erasure ask this module, and only this module, which rows a hold
//! keeps: rows matching a table hold, through the partition tree and
//! inheritance both ways; rows of a held subject in every table of every
//! kind's map; rows whose deletion would reach a held row through a
//! cascading foreign key, at any depth; rows below a held row in a subject
//! map. Held subjects' ids are personal data: they are found in memory, used
//! as bind parameters and dropped when the run item or request ends.

use crate::error::OrRaise;
use crate::model::refs::{self, OnDelete};
use crate::model::subject::{
    self, blind_key, blind_with, Kind, LinkKind, RootMatch, SubjectMap, SubjectTable,
};
use crate::pg::ident;
use crate::pg::params::Params;
use crate::pg::security;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// An active hold on a table.
#[derive(Clone, Debug)]
pub struct Hold {
    pub id: i64,
    pub reason: String,
    /// The rows held (a validated boolean expression over the table); None
    /// holds the whole table.
    pub filter: Option<String>,
}

impl Hold {
    pub fn is_whole(&self) -> bool {
        self.filter.is_none()
    }
}

/// The condition that makes a row of `retention.holds` (aliased `alias`)
/// a hold in force: not released, not expired. The one place it is written.
fn active(alias: &str) -> String {
    format!("{alias}.released_at IS NULL AND ({alias}.until IS NULL OR {alias}.until > pg_catalog.now())")
}

pub fn table_holds(target: pg_sys::Oid) -> Vec<Hold> {
    // (id, reason, filter, the descendant's subtree when the hold is below)
    type Found = (i64, String, Option<String>, Option<Vec<pg_sys::Oid>>);
    let sql = format!(
        "WITH RECURSIVE up(rel) AS (
                 SELECT $1::oid
                  UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.rel),
             down(rel) AS (
                 SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1::oid
                  UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down ON i.inhparent = down.rel)
             SELECT h.id, h.reason, h.filter,
                    CASE WHEN h.target::oid IN (SELECT rel FROM up) THEN NULL
                         ELSE (WITH RECURSIVE sub(rel) AS (
                                   SELECT h.target::oid
                                    UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN sub ON i.inhparent = sub.rel)
                               SELECT pg_catalog.array_agg(rel ORDER BY rel) FROM sub) END
               FROM retention.holds h
              WHERE (h.target::oid IN (SELECT rel FROM up) OR h.target::oid IN (SELECT rel FROM down))
                AND {active}
              ORDER BY h.id",
        active = active("h")
    );
    let rows: Vec<Found> = Spi::connect(|c| {
        crate::pg::plans::select(c, &sql, &[target.into()])
            .or_raise("reading holds")
            .map(|r| {
                let e = "reading holds";
                (
                    r.get::<i64>(1).or_raise(e).unwrap_or(0),
                    r.get::<String>(2).or_raise(e).unwrap_or_default(),
                    r.get::<String>(3).or_raise(e),
                    r.get::<Vec<pg_sys::Oid>>(4).or_raise(e),
                )
            })
            .collect()
    });
    rows.into_iter()
        .map(|(id, reason, filter, below)| {
            let filter = match below {
                None => filter,
                // OIDs come from the catalogue as numbers, never from a user.
                Some(oids) => {
                    let list = oids
                        .iter()
                        .map(|o| o.to_u32().to_string())
                        .collect::<Vec<_>>()
                        .join(",");
                    let rows_of = format!(
                        "tableoid OPERATOR(pg_catalog.=) ANY ('{{{list}}}'::pg_catalog.oid[])"
                    );
                    Some(match filter {
                        None => rows_of,
                        Some(f) => format!("{rows_of} AND {}", crate::expr::embed(&f)),
                    })
                }
            };
            Hold { id, reason, filter }
        })
        .collect()
}

/// The first hold that keeps the whole table, if any.
pub fn whole_table_hold(holds: &[Hold]) -> Option<&Hold> {
    holds.iter().find(|h| h.is_whole())
}

/// True for a row of `outer` (the target's table name or an alias) whose
/// deletion would reach a held row through a foreign key's ON DELETE
/// CASCADE, SET NULL or SET DEFAULT, at any depth of cascades: such a row is
/// kept (and counted as held), so that no held row is ever deleted or
/// changed by pg_retention, directly or by the server's foreign-key
/// actions. None when no referencing table has a hold.
pub fn cascade_held(target: pg_sys::Oid, outer: &str, depth: usize) -> Option<String> {
    cascade_held_keyed(target, outer, depth, &mut |_, _| None)
}

/// [`cascade_held`], with the rows of held subjects among the referencing
/// rows too: `subject(child, alias)` is the condition (over the child's
/// alias) that a child row belongs to a held subject, if the child table is
/// in the map of a kind with a held subject.
pub fn cascade_held_keyed(
    target: pg_sys::Oid,
    outer: &str,
    depth: usize,
    subject: &mut dyn FnMut(pg_sys::Oid, &str) -> Option<String>,
) -> Option<String> {
    // Deeper chains (and cycles) end here: beyond this depth the row is
    // kept whenever the chain goes on through a cascading key.
    const MAX_DEPTH: usize = 8;
    let mut parts = Vec::new();
    for r in refs::references(target) {
        // RESTRICT / NO ACTION: the referenced row is kept anyway.
        if r.blocks() {
            continue;
        }
        let alias = format!("held_{depth}");
        let pairs = r
            .child_columns
            .iter()
            .zip(&r.parent_columns)
            .map(|(c, p)| format!("{alias}.{} = {outer}.{}", ident::quote(c), ident::quote(p)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let holds = table_holds(r.child_oid);
        let mut held = Vec::new();
        if whole_table_hold(&holds).is_some() {
            held.push("true".to_string());
        } else if !holds.is_empty() {
            // The filters name the child's columns, unqualified: inside the
            // sub-query they resolve to the child's row.
            held.push(held_condition(&holds));
        }
        // Rows of a held subject (a message to a held customer, reached
        // through any of the map's paths).
        if let Some(c) = subject(r.child_oid, &alias) {
            held.push(format!("coalesce(({c}), false)"));
        }
        if r.on_delete == OnDelete::Cascade {
            if depth + 1 >= MAX_DEPTH {
                held.push("true".to_string());
            } else if let Some(deeper) = cascade_held_keyed(r.child_oid, &alias, depth + 1, subject)
            {
                held.push(deeper);
            }
        }
        if !held.is_empty() {
            parts.push(format!(
                "EXISTS (SELECT 1 FROM {} {alias} WHERE {pairs} AND ({}))",
                r.child,
                held.join(" OR ")
            ));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

/// The condition that a row of `child` (under `alias`) belongs to a held
/// subject, with the held subjects' keys bound in `params`; None when no
/// kind that maps the table has a held subject.
pub fn subject_held_as(
    child: pg_sys::Oid,
    alias: &str,
    item: i64,
    params: &mut Params,
) -> Option<String> {
    let sh = subject_hold(child, alias)?;
    let keys = sh.keys(item);
    Some(keys.bind(params))
}

/// `coalesce(<filter>, false) OR ...`: a row matches one of the holds'
/// (validated) filters. The one place hold filters become SQL.
pub fn held_condition(holds: &[Hold]) -> String {
    holds
        .iter()
        .map(|h| {
            format!(
                "coalesce({}, false)",
                crate::expr::embed(h.filter.as_deref().unwrap_or("false"))
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The active holds on one subject: (id, reason).
pub fn subject_holds(kind: &str, blind_value: &str) -> Vec<(i64, String)> {
    let sql = format!(
        "SELECT id, reason FROM retention.holds h
          WHERE kind = $1 AND subject_blind = $2 AND {} ORDER BY id",
        active("h")
    );
    Spi::connect(|c| {
        c.select(&sql, None, &[kind.into(), blind_value.into()])
            .or_raise("reading holds")
            .map(|r| {
                (
                    r.get::<i64>(1).or_raise("reading holds").unwrap_or(0),
                    r.get::<String>(2)
                        .or_raise("reading holds")
                        .unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// Blind indexes of the subjects of `kind` under an active hold.
pub fn held_blinds(kind: &str) -> Vec<String> {
    let sql = format!(
        "SELECT subject_blind FROM retention.holds h
          WHERE kind = $1 AND subject_blind IS NOT NULL AND {}",
        active("h")
    );
    Spi::connect(|c| {
        c.select(&sql, None, &[kind.into()])
            .or_raise("reading subject holds")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect()
    })
}

/// The rows of a policy's table that belong to subjects under a legal hold.
///
/// The statement that uses it reads only the policy's table: before each
/// batch, the kinds' owners list the held subjects' values of the columns
/// the table links by (following the map from the held subjects' root ids,
/// found once per run item by computing the blind index of every root row),
/// and the statement compares the row's columns with them in the columns'
/// own types. Neither the blind-index key nor a keyed hash ever appears in
/// a statement.
pub struct SubjectHold {
    /// The ids of the active holds on subjects of the kinds concerned.
    pub hold_ids: Vec<i64>,
    table: String,
    kinds: Vec<KindLink>,
}

/// How the table links to one kind's subjects.
struct KindLink {
    map: SubjectMap,
    target: pg_sys::Oid,
    /// Marks this kind's keys in the one key array ("1:", "2:", ...).
    prefix: String,
    /// The columns the table links by, each with its base type.
    columns: Vec<(String, String)>,
    /// Which of the table's paths to the subject (see [`link_columns`]).
    path: usize,
}

/// The held subjects' keys for one statement (see [`SubjectHold::keys`]).
pub struct HeldKeys<'a> {
    hold: &'a SubjectHold,
    keys: Vec<String>,
}

impl SubjectHold {
    /// Lists the held subjects' keys now, as each kind's owner would see
    /// them (rows linked to a held subject during the run are held too).
    pub fn keys(&self, item: i64) -> HeldKeys<'_> {
        let mut keys = Vec::new();
        for kl in &self.kinds {
            keys.extend(
                held_keys(item, kl)
                    .into_iter()
                    .map(|key| format!("{}{key}", kl.prefix)),
            );
        }
        HeldKeys { hold: self, keys }
    }
}

impl HeldKeys<'_> {
    /// Binds the keys; returns the condition, true for a row of a held
    /// subject of the statement's table.
    pub fn bind(&self, params: &mut Params) -> String {
        let keys = params.bind(self.keys.clone());
        let table = &self.hold.table;
        self.hold
            .kinds
            .iter()
            .map(|kl| {
                let names: Vec<String> = kl.columns.iter().map(|(c, _)| c.clone()).collect();
                let casts: Vec<String> = kl
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, ty))| format!("CAST(x.j ->> {i} AS {ty})"))
                    .collect();
                format!(
                    "({}) IN (SELECT {} FROM pg_catalog.unnest({keys}) AS k(v),
                        LATERAL (SELECT CAST(pg_catalog.substr(k.v, {}) AS jsonb) AS j) AS x
                       WHERE pg_catalog.starts_with(k.v, '{}'))",
                    ident::columns(Some(table), &names),
                    casts.join(", "),
                    kl.prefix.len() + 1,
                    kl.prefix
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

/// The columns of `t` that link it to the subject along its path number
/// `path` (see [`link_query`]; 0 for the root and value-linked tables);
/// None when the map no longer leads from the table to the root that way.
fn link_columns(map: &SubjectMap, t: &SubjectTable, path: usize) -> Option<Vec<String>> {
    let k = &map.kind;
    Some(match t.link {
        LinkKind::Root => vec![k.id_column.clone()],
        LinkKind::Value => match &t.matches {
            None => vec![t.columns.first()?.clone()],
            Some(_) => t.columns.clone(),
        },
        LinkKind::ForeignKey | LinkKind::Owned => {
            let p = t.paths().into_iter().nth(path)?;
            if t.link == LinkKind::ForeignKey
                && p.parent == k.root
                && p.parent_columns == [k.id_column.clone()]
            {
                vec![p.columns.first()?.clone()]
            } else {
                map.table(p.parent)?;
                p.columns
            }
        }
    })
}

/// The number of ways `t` links to the subject (see [`link_columns`]).
fn path_count(t: &SubjectTable) -> usize {
    t.paths().len().max(1)
}

/// A query listing the matched subjects' values of [`link_columns`] along
/// path number `path`, each row one JSON array (as text).
fn link_query(map: &SubjectMap, t: &SubjectTable, m: &RootMatch, path: usize) -> Option<String> {
    let k = &map.kind;
    let root = ident::relation(k.root)?;
    let root_id = format!("{root}.{}", ident::quote(&k.id_column));
    let list = |list: String, from: &str, cond: String| {
        format!(
            "SELECT DISTINCT pg_catalog.jsonb_build_array({list})::text FROM {from} WHERE {cond}"
        )
    };
    // The row holds the id: its keys are the matched root ids themselves.
    let by_id = || list(root_id.clone(), &root, m.id(&root_id));
    Some(match t.link {
        LinkKind::Root => by_id(),
        LinkKind::Value => match &t.matches {
            None => by_id(),
            Some(col) => list(
                format!("{root}.{}", ident::quote(col)),
                &root,
                m.id(&root_id),
            ),
        },
        LinkKind::ForeignKey | LinkKind::Owned => {
            let p = t.paths().into_iter().nth(path)?;
            if t.link == LinkKind::ForeignKey
                && p.parent == k.root
                && p.parent_columns == [k.id_column.clone()]
            {
                return Some(by_id());
            }
            let parent = map.table(p.parent)?;
            let parent_name = ident::relation(parent.target)?;
            list(
                ident::columns(Some(&parent_name), &p.parent_columns),
                &parent_name,
                subject::subject_condition(map, parent, m),
            )
        }
    })
}

/// For a policy's table: the rows of subjects under a legal hold, if a
/// subject of any kind whose map contains the table is held.
pub fn subject_hold(target: pg_sys::Oid, table: &str) -> Option<SubjectHold> {
    // The table itself, or (for a partition) the partitioned table above
    // it that the map holds: a partition's rows are its parent's.
    // (pg_partition_ancestors lists nothing for a table that is neither a
    // partition nor partitioned.)
    let sql = format!(
        "SELECT st.kind, st.target::oid, array_agg(h.id ORDER BY h.id)
           FROM retention.subject_tables st
           JOIN retention.holds h ON h.kind = st.kind AND h.subject_blind IS NOT NULL AND {}
          WHERE st.target::oid = $1
             OR st.target::oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors($1::oid::regclass) a)
          GROUP BY st.kind, st.target ORDER BY st.kind",
        active("h")
    );
    let kinds: Vec<(String, pg_sys::Oid, Vec<i64>)> = Spi::connect(|c| {
        crate::pg::plans::select(c, &sql, &[target.into()])
            .or_raise("reading subject holds")
            .map(|r| {
                let e = "reading subject holds";
                (
                    r.get::<String>(1).or_raise(e).unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2)
                        .or_raise(e)
                        .unwrap_or(pg_sys::InvalidOid),
                    r.get::<Vec<i64>>(3).or_raise(e).unwrap_or_default(),
                )
            })
            .collect()
    });
    let mut hold_ids: Vec<i64> = kinds
        .iter()
        .flat_map(|(_, _, ids)| ids.iter().copied())
        .collect();
    hold_ids.sort_unstable();
    hold_ids.dedup();
    let mut links = Vec::new();
    for (kind, mapped, _) in &kinds {
        // One link per way the table reaches the kind's subjects.
        let paths = SubjectMap::load(kind)
            .table(*mapped)
            .map(path_count)
            .unwrap_or(0);
        for path in 0..paths {
            let map = SubjectMap::load(kind);
            let columns = map.table(*mapped).and_then(|t| link_columns(&map, t, path));
            if let Some(columns) = columns {
                // The prefix numbers the link; the columns are compared in
                // their own (base) types, as the foreign key compares them.
                let prefix = format!("{}:", links.len() + 1);
                let columns = columns
                    .into_iter()
                    .map(|c| {
                        let ty = subject::column_base_type(target, &c);
                        (c, ty)
                    })
                    .collect();
                links.push(KindLink {
                    map,
                    target: *mapped,
                    prefix,
                    columns,
                    path,
                });
            }
        }
    }
    if links.is_empty() {
        return None;
    }
    Some(SubjectHold {
        hold_ids,
        table: table.to_string(),
        kinds: links,
    })
}

thread_local! {
    /// The held subjects' root ids found for a run item: (item, kind, blind
    /// indexes) and the ids. They are personal data: kept in this backend's
    /// memory only, until the item ends (see [`forget_held_keys`]).
    #[allow(clippy::type_complexity)]
    static HELD_ROOT_IDS: RefCell<HashMap<(i64, String, Vec<String>), Vec<String>>> =
        RefCell::new(HashMap::new());
}

/// Drops the held subjects' root ids kept for a run item.
pub fn forget_held_keys() {
    HELD_ROOT_IDS.with(|c| c.borrow_mut().clear());
}

/// One kind's keys, listed as the root table's owner: the held subjects'
/// root ids are found once per run item, the values linked to them again
/// for every batch.
fn held_keys(item: i64, kl: &KindLink) -> Vec<String> {
    let k = &kl.map.kind;
    let mut blinds = held_blinds(&k.name);
    blinds.sort();
    let Some(root) = ident::relation(k.root) else {
        return Vec::new();
    };
    if blinds.is_empty() {
        return Vec::new();
    }
    // Read as the root table's owner. The blind-index key never enters a
    // statement: the root ids are read and their blind indexes computed here.
    security::as_table_owner(k.root, || {
        let asked = (item, k.name.clone(), blinds.clone());
        let cached = HELD_ROOT_IDS.with(|c| c.borrow().get(&asked).cloned());
        let ids = cached.unwrap_or_else(|| {
            let ids = root_ids_of(k, &root, &blinds);
            HELD_ROOT_IDS.with(|c| c.borrow_mut().insert(asked, ids.clone()));
            ids
        });
        let mut params = Params::new();
        let ids = params.bind(ids);
        let ty = subject::id_type(k);
        let Some(t) = kl.map.table(kl.target) else {
            return Vec::new();
        };
        let Some(query) = link_query(&kl.map, t, &RootMatch::Held { ty: &ty, ids }, kl.path) else {
            return Vec::new();
        };
        Spi::connect(|c| {
            c.select(&query, None, params.args())
                .or_raise("finding held subjects")
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect()
        })
    })
}

/// The root ids (as text) of the subjects of kind `k` whose blind index is
/// one of `blinds`: every root id is read and its blind index computed in
/// Rust, so that the key is never a parameter of a statement. Runs as the
/// caller set up (the root table's owner).
fn root_ids_of(k: &Kind, root: &str, blinds: &[String]) -> Vec<String> {
    let key = blind_key();
    let wanted: std::collections::HashSet<&str> = blinds.iter().map(|b| b.as_str()).collect();
    let sql = format!("SELECT ({})::text FROM {root}", ident::quote(&k.id_column));
    Spi::connect(|c| {
        c.select(&sql, None, &[])
            .or_raise("finding held subjects")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .filter(|id| wanted.contains(blind_with(&key, &k.name, id).as_str()))
            .collect()
    })
}

/// Whole-table holds on the tables above `t` in the map (its parents, their
/// parents, ...): the subject's rows of `t` all hang below held rows.
pub fn ancestor_table_holds(map: &SubjectMap, t: &SubjectTable) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut seen: Vec<pg_sys::Oid> = vec![t.target];
    let mut next: Vec<pg_sys::Oid> = t.paths().iter().map(|p| p.parent).collect();
    while let Some(p) = next.pop() {
        if seen.contains(&p) || seen.len() > 64 {
            continue;
        }
        seen.push(p);
        for h in table_holds(p).into_iter().filter(Hold::is_whole) {
            if !out.iter().any(|(id, _)| *id == h.id) {
                out.push((h.id, h.reason));
            }
        }
        if let Some(pt) = map.table(p) {
            next.extend(pt.paths().iter().map(|x| x.parent));
        }
    }
    out
}

/// True for a row of `t` below a row that a filtered hold keeps, at any
/// depth of the subject map (an order's items and their notes, under a
/// disputed order), with the ids and reasons of those holds. None when no
/// table above `t` has a filtered hold.
pub fn below_held(
    map: &SubjectMap,
    t: &SubjectTable,
    depth: usize,
) -> Option<(String, Vec<(i64, String)>)> {
    // As deep as conditions go (see subject_condition); deeper is an error,
    // never "not held".
    if depth > 32 {
        subject::map_too_deep(&map.kind.name)
    }
    let table = ident::relation(t.target)?;
    let mut per_path = Vec::new();
    let mut ids: Vec<(i64, String)> = Vec::new();
    // Along every path: rows whose parent row is held, or below one.
    for path in t.paths() {
        let Some(parent) = map.table(path.parent) else {
            continue;
        };
        let Some(parent_name) = ident::relation(parent.target) else {
            continue;
        };
        let filtered: Vec<Hold> = table_holds(parent.target)
            .into_iter()
            .filter(|h| !h.is_whole())
            .collect();
        let mut conds = Vec::new();
        for h in &filtered {
            if !ids.iter().any(|(id, _)| *id == h.id) {
                ids.push((h.id, h.reason.clone()));
            }
        }
        if !filtered.is_empty() {
            conds.push(held_condition(&filtered));
        }
        if let Some((deeper, more)) = below_held(map, parent, depth + 1) {
            conds.push(deeper);
            for m in more {
                if !ids.iter().any(|(id, _)| *id == m.0) {
                    ids.push(m);
                }
            }
        }
        if conds.is_empty() {
            continue;
        }
        per_path.push(format!(
            "({}) IN (SELECT {} FROM {parent_name} WHERE {})",
            ident::columns(Some(&table), &path.columns),
            ident::columns(Some(&parent_name), &path.parent_columns),
            conds.join(" OR ")
        ));
    }
    if per_path.is_empty() {
        return None;
    }
    Some((per_path.join(" OR "), ids))
}

/// The reason of a hold, for certificates.
pub fn hold_reason(id: i64) -> String {
    security::as_extension_owner(|| {
        Spi::get_one_with_args::<String>(
            "SELECT reason FROM retention.holds WHERE id = $1",
            &[id.into()],
        )
        .ok()
        .flatten()
        .unwrap_or_default()
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// A held subject's rows are recognised by their linking values only:
    /// neither the blind-index key nor a keyed hash appears in a batch's
    /// statement or its parameters, even where the row holds the subject id.
    #[pg_test]
    fn subject_holds_keep_the_blind_index_key_out_of_batch_statements() {
        Spi::run(
            "CREATE TABLE public.sk_people (id int PRIMARY KEY, left_at timestamptz NOT NULL);
             INSERT INTO public.sk_people SELECT g, now() - interval '3 years' FROM generate_series(1, 5) g;
             SELECT retention.register_subject('sk_person', 'public.sk_people', 'id');
             SELECT retention.place_hold('lawsuit', kind => 'sk_person', subject_id => '2');",
        )
        .unwrap();
        let target: pg_sys::Oid = Spi::get_one("SELECT 'public.sk_people'::regclass::oid")
            .unwrap()
            .unwrap();
        let hold = subject_hold(target, "public.sk_people").expect("a subject hold applies");
        let mut params = Params::new();
        let before = params.bind(7i64);
        let condition = hold.keys(-1).bind(&mut params);
        assert!(!condition.contains("mask_hmac"), "{condition}");
        assert!(!condition.contains(&before.to_string()), "{condition}");
        // No key travels as a parameter: no bytea parameter is bound.
        for a in params.args() {
            assert!(a.oid() != pg_sys::BYTEAOID, "a bytea parameter is bound");
        }
        // The held subject's id is what the statement compares with.
        let n: i64 = Spi::get_one_with_args(
            &format!("SELECT count(*) FROM public.sk_people WHERE {condition} AND {before} = 7"),
            params.args(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(n, 1);
    }

    /// Released and expired holds keep nothing; a hold on a partition holds
    /// that partition's rows of the parent.
    #[pg_test]
    fn only_holds_in_force_apply_and_partition_holds_name_their_rows() {
        Spi::run(
            "CREATE TABLE public.hp (id int, at date NOT NULL) PARTITION BY RANGE (at);
             CREATE TABLE public.hp_2020 PARTITION OF public.hp FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
             CREATE TABLE public.hp_2021 PARTITION OF public.hp FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
             INSERT INTO public.hp VALUES (1, '2020-05-01'), (2, '2021-05-01');
             SELECT retention.place_hold('audit', target => 'public.hp_2020');
             SELECT retention.release_hold(retention.place_hold('old', target => 'public.hp'));
             SELECT retention.place_hold('expired', target => 'public.hp', until => now() - interval '1 day')",
        )
        .unwrap();
        let parent: pg_sys::Oid = Spi::get_one("SELECT 'public.hp'::regclass::oid")
            .unwrap()
            .unwrap();
        let holds = table_holds(parent);
        assert_eq!(holds.len(), 1, "{holds:?}");
        assert!(!holds[0].is_whole());
        assert!(whole_table_hold(&holds).is_none());
        let n: i64 = Spi::get_one(&format!(
            "SELECT count(*) FROM public.hp WHERE {}",
            held_condition(&holds)
        ))
        .unwrap()
        .unwrap();
        assert_eq!(n, 1);
    }
}
