//! Kinds of data subject and the map of tables that hold a subject's data.
//!
//! A kind has a root table and an id column. Its map (`retention.subject_tables`)
//! lists every table holding the subject's data and how each links to the
//! root: the root itself, a foreign key to a mapped table, or a value (the id
//! or a unique root column such as the e-mail). Invariants: a subject is
//! named in SQL only through [`RootMatch`], as a bind parameter compared in
//! the linking column's own type; its id never enters a statement's text,
//! and the blind index (HMAC of kind and id under the database's key) is
//! computed in Rust, never by a statement.

use crate::error::{raise, OrRaise};
use crate::mask;
use crate::pg::ident;
use crate::pg::params::Param;
use crate::pg::security;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The database's blind-index key, created on first use.
pub fn blind_key() -> Vec<u8> {
    crate::pg::secrets::get_or_create(crate::pg::secrets::Secret::BlindIndex)
}

/// The blind index of a subject: stable, keyed, not reversible without the key.
pub fn blind(kind: &str, subject_id: &str) -> String {
    blind_with(&blind_key(), kind, subject_id)
}

/// The blind index under a key already read (for many subjects at once).
pub fn blind_with(key: &[u8], kind: &str, subject_id: &str) -> String {
    mask::hmac_hex(&format!("{kind}\u{1f}{subject_id}"), key)
}

/// A kind of data subject.
pub struct Kind {
    pub name: String,
    pub root: pg_sys::Oid,
    pub id_column: String,
    pub owner: pg_sys::Oid,
    /// Erasure ends with a search for the subject's identifiers in every
    /// table (`retention.set_erasure_sweep`).
    pub sweep: bool,
}

/// Loads a kind or raises `undefined_object`.
pub fn load_kind(kind: &str) -> Kind {
    let row = Spi::connect(|c| {
        c.select("SELECT kind, root::oid, id_column, owner::oid, sweep FROM retention.subject_kinds WHERE kind = $1", None, &[kind.into()])
            .or_raise("reading subject kinds")
            .next()
            .map(|r| {
                let e = "reading subject kinds";
                Kind {
                    name: kind.to_string(),
                    root: r.get_by_name::<pg_sys::Oid, _>("root").or_raise(e).unwrap_or(pg_sys::InvalidOid),
                    id_column: r.get_by_name::<String, _>("id_column").or_raise(e).unwrap_or_default(),
                    owner: r.get_by_name::<pg_sys::Oid, _>("owner").or_raise(e).unwrap_or(pg_sys::InvalidOid),
                    sweep: r.get_by_name::<bool, _>("sweep").or_raise(e).unwrap_or(false),
                }
            })
    });
    row.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("subject kind \"{kind}\" does not exist"),
            "SELECT kind FROM retention.subject_kinds lists them; declare one with retention.register_subject.",
        )
    })
}

/// How a mapped table reaches the subject (`subject_tables.link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// The kind's root table.
    Root,
    /// A foreign key to the table's parent in the map.
    ForeignKey,
    /// A column holding the subject's id, or a value of a unique root column.
    Value,
    /// A row the subject's rows reference and own (a customer's address):
    /// `columns` are the table's referenced key, `parent` the mapped table
    /// whose foreign key (`parent_columns`) references it.
    Owned,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Root => "root",
            LinkKind::ForeignKey => "foreign key",
            LinkKind::Value => "value",
            LinkKind::Owned => "owned",
        }
    }

    fn parse(s: &str) -> LinkKind {
        match s {
            "root" => LinkKind::Root,
            "value" => LinkKind::Value,
            "owned" => LinkKind::Owned,
            _ => LinkKind::ForeignKey,
        }
    }
}

/// What an erasure does to a mapped table's rows of the subject
/// (`subject_tables.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErasureAction {
    Purge,
    Anonymise,
}

impl ErasureAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureAction::Purge => "purge",
            ErasureAction::Anonymise => "anonymise",
        }
    }

    /// An action named by a user (`anonymize` is accepted too).
    pub fn parse(s: &str) -> Option<ErasureAction> {
        match s {
            "purge" => Some(ErasureAction::Purge),
            "anonymise" | "anonymize" => Some(ErasureAction::Anonymise),
            _ => None,
        }
    }

    /// The privileges (besides SELECT) the action needs.
    pub fn privilege(self) -> &'static str {
        match self {
            ErasureAction::Purge => "DELETE",
            ErasureAction::Anonymise => "UPDATE",
        }
    }
}

/// One table of a kind's map.
#[derive(Clone)]
pub struct SubjectTable {
    pub target: pg_sys::Oid,
    pub link: LinkKind,
    pub depth: i32,
    pub parent: Option<pg_sys::Oid>,
    pub columns: Vec<String>,
    pub parent_columns: Vec<String>,
    pub matches: Option<String>,
    pub path: String,
    pub action: ErasureAction,
    pub min_retention: Option<Interval>,
    pub legal_ground: Option<String>,
    pub clock: Option<String>,
    /// The policy whose masks an anonymising erasure applies (its id),
    /// chosen by the kind's owner.
    pub mask_policy: Option<i64>,
    /// Further foreign keys from this table to mapped tables
    /// (`subject_paths`): rows reached through any of them are the
    /// subject's too.
    pub also: Vec<Path>,
}

/// One way from a mapped table to its parent in the map: its columns equal
/// the parent's columns.
#[derive(Clone, Debug)]
pub struct Path {
    pub parent: pg_sys::Oid,
    pub columns: Vec<String>,
    pub parent_columns: Vec<String>,
    /// The foreign key's name (further paths only).
    pub foreign_key: Option<String>,
}

impl SubjectTable {
    /// Every way from this table to a parent in the map: the one it was
    /// mapped by, then the further foreign keys. None for the root and
    /// value-linked tables.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        if let (LinkKind::ForeignKey | LinkKind::Owned, Some(parent)) = (self.link, self.parent) {
            out.push(Path {
                parent,
                columns: self.columns.clone(),
                parent_columns: self.parent_columns.clone(),
                foreign_key: None,
            });
        }
        out.extend(self.also.iter().cloned());
        out
    }
}

/// A kind with the tables of its map, deepest first.
pub struct SubjectMap {
    pub kind: Kind,
    pub tables: Vec<SubjectTable>,
}

impl SubjectMap {
    pub fn load(kind: &str) -> SubjectMap {
        SubjectMap {
            kind: load_kind(kind),
            tables: load_tables(kind),
        }
    }

    /// The mapped table `target`, if it is in the map.
    pub fn table(&self, target: pg_sys::Oid) -> Option<&SubjectTable> {
        self.tables.iter().find(|t| t.target == target)
    }

    /// The table above `t` in the map.
    pub fn parent_of(&self, t: &SubjectTable) -> Option<&SubjectTable> {
        self.table(t.parent?)
    }
}

/// The tables of a kind's map, deepest first.
pub fn load_tables(kind: &str) -> Vec<SubjectTable> {
    let tables = Spi::connect(|c| {
        c.select(
            "SELECT target::oid AS target, link, depth, parent::oid AS parent, columns, parent_columns, matches,
                    path, action, min_retention, legal_ground, clock, mask_policy
               FROM retention.subject_tables WHERE kind = $1
              ORDER BY depth DESC, link = 'root', target::oid",
            None,
            &[kind.into()],
        )
        .or_raise("reading the subject map")
        .map(|r| {
            let e = "reading the subject map";
            let text = |name: &str| r.get_by_name::<String, _>(name).or_raise(e);
            SubjectTable {
                target: r.get_by_name::<pg_sys::Oid, _>("target").or_raise(e).unwrap_or(pg_sys::InvalidOid),
                link: LinkKind::parse(&text("link").unwrap_or_default()),
                depth: r.get_by_name::<i32, _>("depth").or_raise(e).unwrap_or(0),
                parent: r.get_by_name::<pg_sys::Oid, _>("parent").or_raise(e),
                columns: r.get_by_name::<Vec<String>, _>("columns").or_raise(e).unwrap_or_default(),
                parent_columns: r.get_by_name::<Vec<String>, _>("parent_columns").or_raise(e).unwrap_or_default(),
                matches: text("matches"),
                path: text("path").unwrap_or_default(),
                action: text("action").and_then(|a| ErasureAction::parse(&a)).unwrap_or(ErasureAction::Purge),
                min_retention: r.get_by_name::<Interval, _>("min_retention").or_raise(e),
                legal_ground: text("legal_ground"),
                clock: text("clock"),
                mask_policy: r.get_by_name::<i64, _>("mask_policy").or_raise(e),
                also: Vec::new(),
            }
        })
        .collect::<Vec<SubjectTable>>()
    });
    // The further paths, in the order they were added.
    let paths: Vec<(pg_sys::Oid, Path)> = Spi::connect(|c| {
        c.select(
            "SELECT target::oid, parent::oid, columns, parent_columns, foreign_key
               FROM retention.subject_paths WHERE kind = $1 ORDER BY target::oid, foreign_key",
            None,
            &[kind.into()],
        )
        .or_raise("reading the subject map")
        .filter_map(|r| {
            Some((
                r.get::<pg_sys::Oid>(1).ok().flatten()?,
                Path {
                    parent: r.get::<pg_sys::Oid>(2).ok().flatten()?,
                    columns: r.get::<Vec<String>>(3).ok().flatten()?,
                    parent_columns: r.get::<Vec<String>>(4).ok().flatten()?,
                    foreign_key: r.get::<String>(5).ok().flatten(),
                },
            ))
        })
        .collect()
    });
    let mut tables = tables;
    for (target, path) in paths {
        if let Some(t) = tables.iter_mut().find(|t| t.target == target) {
            t.also.push(path);
        }
    }
    tables
}

/// The root id column's type without modifiers (a cast to `varchar(10)`
/// would silently cut a longer id; typmod -1, not NULL, so that `char(n)`
/// is named `bpchar` and not `character`, which means `char(1)`),
/// schema-qualified where needed
/// (statements using it may run with another search_path than the caller's).
pub fn id_type(k: &Kind) -> String {
    security::with_pinned_search_path(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format_type(atttypid, -1) FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2",
            &[k.root.into(), k.id_column.as_str().into()],
        )
        .or_raise("reading the id column")
        .unwrap_or_else(|| "text".into())
    })
}

/// The base type of `column` of `target` (a domain's base type, no
/// modifiers: keys come from the referenced table and must not fail a
/// domain's checks or be cut), schema-qualified where needed.
pub fn column_base_type(target: pg_sys::Oid, column: &str) -> String {
    security::with_pinned_search_path(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, -1)
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped",
            &[target.into(), column.into()],
        )
        .or_raise("reading a column type")
        .unwrap_or_else(|| "text".into())
    })
}

/// What the root of the map is matched against: a bind parameter, never a
/// value in the statement's text.
pub enum RootMatch<'a> {
    /// One subject's id (text), cast to the root id's type `ty`.
    Subject { ty: &'a str, id: Param },
    /// The held subjects' root ids (text[]), cast to an array of the root
    /// id's type so that indexes on the linking columns serve.
    Held { ty: &'a str, ids: Param },
}

impl RootMatch<'_> {
    /// `expr` (of the root id's type) is one of the matched ids.
    pub fn id(&self, expr: &str) -> String {
        match self {
            RootMatch::Subject { ty, id } => format!("{expr} = CAST({id} AS {ty})"),
            RootMatch::Held { ty, ids } => format!("{expr} = ANY (CAST({ids} AS {ty}[]))"),
        }
    }

    /// `expr`, a column of type `ty` (its base type), holds one of the
    /// matched ids as a value: compared in the column's type, as a foreign
    /// key would (7.00 in a numeric(12,2) column is the id 7).
    pub fn value(&self, expr: &str, ty: &str) -> String {
        match self {
            RootMatch::Subject { id, .. } => format!("{expr} = CAST({id} AS {ty})"),
            RootMatch::Held { ids, .. } => format!("{expr} = ANY (CAST({ids} AS {ty}[]))"),
        }
    }
}

/// Raised when following a map goes deeper than any map should.
pub fn map_too_deep(kind: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!("the subject map of \"{kind}\" is more than 32 tables deep"),
        "SELECT * FROM retention.subject_map(kind) shows its paths; a map this deep usually follows a key it should not.",
    )
}

/// `WHERE` condition selecting the matched subjects' rows of table `t`
/// (see [`RootMatch`]), following the map up to the root along every path
/// (the foreign key the table was mapped by and the further ones).
pub fn subject_condition(map: &SubjectMap, t: &SubjectTable, m: &RootMatch) -> String {
    condition_at(map, t, m, 0)
}

fn condition_at(map: &SubjectMap, t: &SubjectTable, m: &RootMatch, depth: usize) -> String {
    // The map is checked for cycles when paths are added; this bounds the
    // recursion whatever the catalogue holds. Giving up must not mean "not
    // the subject's" (held rows would go unrecognised): it is an error.
    if depth > 32 {
        map_too_deep(&map.kind.name)
    }
    let k = &map.kind;
    let table = ident::relation(t.target).unwrap_or_default();
    let root = ident::relation(k.root).unwrap_or_default();
    match t.link {
        LinkKind::Root => m.id(&format!("{table}.{}", ident::quote(&k.id_column))),
        LinkKind::Value => match &t.matches {
            None => m.value(
                &format!("{table}.{}", ident::quote(&t.columns[0])),
                &column_base_type(t.target, &t.columns[0]),
            ),
            Some(col) => format!(
                "{table}.{} IN (SELECT r.{} FROM {root} r WHERE {})",
                ident::quote(&t.columns[0]),
                ident::quote(col),
                m.id(&format!("r.{}", ident::quote(&k.id_column)))
            ),
        },
        // A foreign key to the parent's key, or (owned) the table's key
        // referenced by the parent's foreign key: the same comparison.
        LinkKind::ForeignKey | LinkKind::Owned => {
            let conds: Vec<String> = t
                .paths()
                .iter()
                .filter_map(|path| {
                    let parent = map.table(path.parent)?;
                    let parent_name = ident::relation(parent.target)?;
                    let cols = ident::columns(Some(table.as_str()), &path.columns);
                    // A foreign key to the root id holds the id itself.
                    if matches!(m, RootMatch::Held { .. })
                        && t.link == LinkKind::ForeignKey
                        && parent.target == k.root
                        && path.parent_columns == [k.id_column.clone()]
                    {
                        return Some(m.id(&cols));
                    }
                    let pcols = ident::columns(Some(&parent_name), &path.parent_columns);
                    Some(format!(
                        "({cols}) IN (SELECT {pcols} FROM {parent_name} WHERE {})",
                        condition_at(map, parent, m, depth + 1)
                    ))
                })
                .collect();
            match conds.len() {
                0 => "false".into(),
                1 => conds.into_iter().next().unwrap_or_default(),
                _ => format!("({})", conds.join(" OR ")),
            }
        }
    }
}
