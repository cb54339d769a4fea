//! The right to erasure (GDPR Art. 17): subjects, requests, processing,
//! certificates and replay after a restore.
//!
//! A kind of data subject has a root table and an id column; the tables that
//! hold the subject's data are found by walking foreign keys from the root
//! (any depth) and can be added by value (e.g. an e-mail column). A request
//! names a subject by id; the id is kept only until the request is processed,
//! the blind index (HMAC of kind and id under the database's blind-index key)
//! stays. Processing erases one subject in one transaction, deepest tables
//! first, keeping what a hold or a statutory minimum protects.

use crate::audit;
use crate::error::{raise, OrRaise};
use crate::ident;
use crate::mask;
use crate::policy;
use crate::security;
use pgrx::datum::{Interval, JsonB, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Blind index
// ---------------------------------------------------------------------------

pub fn blind_key() -> Vec<u8> {
    security::as_extension_owner(|| {
        if let Some(k) = Spi::get_one::<Vec<u8>>(
            "SELECT (SELECT key FROM retention.secrets WHERE name = 'blind_index')",
        )
        .or_raise("reading the blind-index key")
        {
            return k;
        }
        Spi::run_with_args(
            "INSERT INTO retention.secrets (name, key) VALUES ('blind_index', $1) ON CONFLICT (name) DO NOTHING",
            &[mask::random_key().as_slice().into()],
        )
        .or_raise("storing the blind-index key");
        Spi::get_one::<Vec<u8>>(
            "SELECT (SELECT key FROM retention.secrets WHERE name = 'blind_index')",
        )
        .or_raise("reading the blind-index key")
        .unwrap_or_default()
    })
}

/// The blind index of a subject: stable, keyed, not reversible without the key.
pub fn blind(kind: &str, subject_id: &str) -> String {
    mask::hmac_hex(&format!("{kind}\u{1f}{subject_id}"), &blind_key())
}

#[pg_extern(name = "_blind", volatile, parallel_unsafe)]
fn blind_sql(kind: &str, subject_id: &str) -> String {
    security::require_admin("compute blind indexes");
    blind(kind, subject_id)
}

// ---------------------------------------------------------------------------
// Subject kinds and their tables
// ---------------------------------------------------------------------------

struct Kind {
    root: pg_sys::Oid,
    id_column: String,
    owner: pg_sys::Oid,
}

fn load_kind(kind: &str) -> Kind {
    let row = Spi::connect(|c| {
        c.select("SELECT kind, root::oid, id_column, owner::oid FROM retention.subject_kinds WHERE kind = $1", None, &[kind.into()])
            .or_raise("reading subject kinds")
            .next()
            .map(|r| {
                let e = "reading subject kinds";
                Kind {
                    root: r.get::<pg_sys::Oid>(2).or_raise(e).unwrap_or(pg_sys::InvalidOid),
                    id_column: r.get::<String>(3).or_raise(e).unwrap_or_default(),
                    owner: r.get::<pg_sys::Oid>(4).or_raise(e).unwrap_or(pg_sys::InvalidOid),
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

#[derive(Clone)]
struct SubjectTable {
    target: pg_sys::Oid,
    link: String,
    depth: i32,
    parent: Option<pg_sys::Oid>,
    columns: Vec<String>,
    parent_columns: Vec<String>,
    matches: Option<String>,
    path: String,
    action: String,
    min_retention: Option<Interval>,
    legal_ground: Option<String>,
    clock: Option<String>,
    /// The policy whose masks an anonymising erasure applies (its id),
    /// chosen by the kind's owner.
    mask_policy: Option<i64>,
}

fn load_tables(kind: &str) -> Vec<SubjectTable> {
    Spi::connect(|c| {
        c.select(
            "SELECT target::oid, link, depth, parent::oid, columns, parent_columns, matches, path, action,
                    min_retention, legal_ground, clock, mask_policy
               FROM retention.subject_tables WHERE kind = $1
              ORDER BY depth DESC, link = 'root', target::oid",
            None,
            &[kind.into()],
        )
        .or_raise("reading the subject map")
        .map(|r| {
            let e = "reading the subject map";
            SubjectTable {
                target: r.get::<pg_sys::Oid>(1).or_raise(e).unwrap_or(pg_sys::InvalidOid),
                link: r.get::<String>(2).or_raise(e).unwrap_or_default(),
                depth: r.get::<i32>(3).or_raise(e).unwrap_or(0),
                parent: r.get::<pg_sys::Oid>(4).or_raise(e),
                columns: r.get::<Vec<String>>(5).or_raise(e).unwrap_or_default(),
                parent_columns: r.get::<Vec<String>>(6).or_raise(e).unwrap_or_default(),
                matches: r.get::<String>(7).or_raise(e),
                path: r.get::<String>(8).or_raise(e).unwrap_or_default(),
                action: r.get::<String>(9).or_raise(e).unwrap_or_else(|| "purge".into()),
                min_retention: r.get::<Interval>(10).or_raise(e),
                legal_ground: r.get::<String>(11).or_raise(e),
                clock: r.get::<String>(12).or_raise(e),
                mask_policy: r.get::<i64>(13).or_raise(e),
            }
        })
        .collect()
    })
}

fn column_exists(target: pg_sys::Oid, name: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
        &[target.into(), name.into()],
    )
    .or_raise("reading columns")
    .unwrap_or(false)
}

fn require_column(target: pg_sys::Oid, table: &str, name: &str) {
    if !column_exists(target, name) {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{name}\" of {table} does not exist"),
            "Name the column that holds the subject's id or value.",
        )
    }
}

fn insert_table(kind: &str, t: &SubjectTable) {
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO retention.subject_tables (kind, target, link, depth, parent, columns, parent_columns, matches, path, action)
             VALUES ($1, $2::oid::regclass, $3, $4, $5::oid::regclass, $6, $7, $8, $9, $10)",
            &[
                kind.into(),
                t.target.into(),
                t.link.as_str().into(),
                t.depth.into(),
                t.parent.into(),
                t.columns.clone().into(),
                if t.parent_columns.is_empty() { None } else { Some(t.parent_columns.clone()) }.into(),
                t.matches.clone().into(),
                t.path.as_str().into(),
                t.action.as_str().into(),
            ],
        )
        .or_raise("storing the subject map")
    });
}

#[pg_extern(name = "_register_subject")]
fn register_subject(
    kind: &str,
    root: pg_sys::Oid,
    id_column: &str,
    follow_foreign_keys: bool,
) -> i32 {
    security::require_admin("register data subjects");
    let valid = !kind.is_empty()
        && kind.len() <= 63
        && kind.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            "invalid subject kind",
            "A kind is a lower-case word of letters, digits and underscores, e.g. customer.",
        )
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM retention.subject_kinds WHERE kind = $1)",
        &[kind.into()],
    )
    .or_raise("reading subject kinds")
    .unwrap_or(false);
    if exists {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("subject kind \"{kind}\" already exists"),
            "Drop it with retention.drop_subject(kind) first, or add tables with retention.add_subject_table.",
        )
    }
    let root_name = policy::check_target(root);
    require_column(root, &root_name, id_column);
    for privilege in ["SELECT", "DELETE"] {
        policy::check_privilege(root, &root_name, privilege, "to erase subjects from it");
    }
    let owner = security::current_role();
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO retention.subject_kinds (kind, root, id_column, owner) VALUES ($1, $2::oid::regclass, $3, $4::oid::regrole)",
            &[kind.into(), root.into(), id_column.into(), owner.into()],
        )
        .or_raise("storing the subject kind")
    });
    let root_entry = SubjectTable {
        target: root,
        link: "root".into(),
        depth: 0,
        parent: None,
        columns: vec![id_column.to_string()],
        parent_columns: vec![],
        matches: None,
        path: format!("{root_name}.{}", ident::quote(id_column)),
        action: "purge".into(),
        min_retention: None,
        legal_ground: None,
        clock: None,
        mask_policy: None,
    };
    insert_table(kind, &root_entry);
    let mut found = 1;
    if follow_foreign_keys {
        // Breadth-first from the root; a table met again on its own path is
        // a cycle (refused), one met again on another path keeps its first.
        let mut queue: Vec<(pg_sys::Oid, i32, String, Vec<pg_sys::Oid>)> =
            vec![(root, 0, root_entry.path.clone(), vec![root])];
        let mut seen = vec![root];
        while let Some((parent, depth, path, ancestors)) =
            (!queue.is_empty()).then(|| queue.remove(0))
        {
            let parent_name = ident::relation(parent).unwrap_or_default();
            for r in crate::refs::references(parent) {
                let child = Spi::get_one_with_args::<pg_sys::Oid>(
                    "SELECT $1::regclass::oid",
                    &[r.child.as_str().into()],
                )
                .or_raise("resolving a table")
                .unwrap_or(pg_sys::InvalidOid);
                if ancestors.contains(&child) {
                    raise(
                        PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                        format!("cycle in the foreign-key graph of subject kind \"{kind}\": {} references {parent_name} on the path {path}", r.child),
                        "Register the subject without following foreign keys (follow_foreign_keys => false) and add the tables with retention.add_subject_table.",
                    )
                }
                if seen.contains(&child) {
                    pgrx::notice!("subject kind \"{kind}\": {} is reached again through {}; its first path is kept", r.child, r.constraint);
                    continue;
                }
                seen.push(child);
                for privilege in ["SELECT", "DELETE"] {
                    policy::check_privilege(
                        child,
                        &r.child,
                        privilege,
                        "to erase subjects from it",
                    );
                }
                let child_path = format!(
                    "{path} <- {}({})",
                    r.child,
                    ident::columns(None, &r.child_columns)
                );
                insert_table(
                    kind,
                    &SubjectTable {
                        target: child,
                        link: "foreign key".into(),
                        depth: depth + 1,
                        parent: Some(parent),
                        columns: r.child_columns.clone(),
                        parent_columns: r.parent_columns.clone(),
                        matches: None,
                        path: child_path.clone(),
                        action: "purge".into(),
                        min_retention: None,
                        legal_ground: None,
                        clock: None,
                        mask_policy: None,
                    },
                );
                found += 1;
                let mut a = ancestors.clone();
                a.push(child);
                queue.push((child, depth + 1, child_path, a));
            }
        }
    }
    blind_key();
    audit::append(
        "subject kind registered",
        json!({"kind": kind, "root": root_name, "tables": found}),
    );
    found
}

#[pg_extern(name = "_add_subject_table")]
fn add_subject_table(
    kind: &str,
    target: pg_sys::Oid,
    column_name: &str,
    matches: Option<&str>,
    action: &str,
) -> i32 {
    let k = load_kind(kind);
    security::require_kind_control(kind, k.owner);
    let table = policy::check_target(target);
    require_column(target, &table, column_name);
    let root_name = ident::relation(k.root).unwrap_or_default();
    if let Some(m) = matches {
        require_column(k.root, &root_name, m);
        let unique = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a
                              ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                             WHERE i.indrelid = $1 AND i.indisunique AND i.indnkeyatts = 1
                               AND i.indpred IS NULL AND a.attname = $2)",
            &[k.root.into(), m.into()],
        )
        .or_raise("reading indexes")
        .unwrap_or(false);
        if !unique {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("column \"{m}\" of {root_name} is not unique"),
                "A value link must identify one subject: add a unique index on the root column, or link by the id.",
            )
        }
    }
    let action = check_action(action);
    for privilege in [
        "SELECT",
        if action == "purge" {
            "DELETE"
        } else {
            "UPDATE"
        },
    ] {
        policy::check_privilege(target, &table, privilege, "to erase subjects from it");
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM retention.subject_tables WHERE kind = $1 AND target = $2::oid::regclass)",
        &[kind.into(), target.into()],
    )
    .or_raise("reading the subject map")
    .unwrap_or(false);
    if exists {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("{table} is already in the subject map of \"{kind}\""),
            "Change its action with retention.set_subject_table.",
        )
    }
    let source = matches
        .map(|m| format!("{root_name}.{}", ident::quote(m)))
        .unwrap_or_else(|| "the subject id".into());
    insert_table(
        kind,
        &SubjectTable {
            target,
            link: "value".into(),
            depth: 1,
            parent: None,
            columns: vec![column_name.to_string()],
            parent_columns: vec![],
            matches: matches.map(String::from),
            path: format!("{table}.{} = {source}", ident::quote(column_name)),
            action: action.to_string(),
            min_retention: None,
            legal_ground: None,
            clock: None,
            mask_policy: None,
        },
    );
    audit::append("subject table added", json!({"kind": kind, "table": table}));
    1
}

fn check_action(action: &str) -> &'static str {
    match action.trim().to_ascii_lowercase().as_str() {
        "purge" => "purge",
        "anonymise" | "anonymize" => "anonymise",
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "unknown erasure action \"{}\"",
                action.chars().take(40).collect::<String>()
            ),
            "The actions are 'purge' and 'anonymise' (with the masks of a policy on the table).",
        ),
    }
}

/// The policy whose masks (and marker) an anonymise action or a retained
/// row uses: the first policy on the table that has masks.
/// The policies on `target` with masks whose owner `role` has the
/// privileges of: the only ones whose masks a kind's owner may choose.
fn mask_candidates(target: pg_sys::Oid, role: pg_sys::Oid) -> Vec<policy::Policy> {
    let ids: Vec<i64> = Spi::connect(|c| {
        c.select(
            "SELECT p.id FROM retention.policies p WHERE p.target = $1::oid::regclass
                AND EXISTS (SELECT 1 FROM retention.masks m WHERE m.policy_id = p.id) ORDER BY p.name",
            None,
            &[target.into()],
        )
        .or_raise("reading policies")
        .filter_map(|r| r.get::<i64>(1).ok().flatten())
        .collect()
    });
    ids.into_iter()
        .filter_map(policy::load_by_id)
        .filter(|p| security::has_privs_of(role, p.owner))
        .collect()
}

/// The policy whose masks (and markers) an erasure applies to the rows of
/// `t`: the one the kind's owner chose with set_subject_table (recorded by
/// id), never one that another role declared. None when it is gone.
fn masking_policy(t: &SubjectTable, kind_owner: pg_sys::Oid) -> Option<policy::Policy> {
    match t.mask_policy {
        Some(id) => policy::load_by_id(id).filter(|p| security::has_privs_of(kind_owner, p.owner)),
        // A statutory minimum on a table without an anonymise action: the
        // one policy with masks that the kind's owner controls, if any.
        None => {
            let mut c = mask_candidates(t.target, kind_owner);
            (c.len() == 1).then(|| c.remove(0))
        }
    }
}

#[pg_extern(name = "_set_subject_table")]
fn set_subject_table(
    kind: &str,
    target: pg_sys::Oid,
    action: Option<&str>,
    min_retention: Option<Interval>,
    legal_ground: Option<&str>,
    clock: Option<&str>,
    mask_policy: Option<&str>,
) -> bool {
    let k = load_kind(kind);
    security::require_kind_control(kind, k.owner);
    let table = policy::check_target(target);
    let action = action.map(check_action);
    // Anonymising erasure uses the masks of one policy on the table, named
    // now and recorded: the caller must control it (a policy another role
    // declared on the same table is never used).
    let mask_policy_id: Option<i64> = match (mask_policy, action) {
        (Some(name), _) => {
            let p = policy::load_one(name);
            if p.target != target {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("policy \"{name}\" does not govern {table}"),
                    "Name a policy on this table whose masks the erasure should apply.",
                )
            }
            if !security::has_privs_of(security::current_role(), p.owner) {
                raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "must be a member of role \"{}\" to use the masks of policy \"{name}\"",
                        security::role_name(p.owner)
                    ),
                    "An erasure applies only masks that the kind's owner controls.",
                )
            }
            if mask_candidates(target, p.owner)
                .iter()
                .all(|c| c.id != p.id)
            {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("policy \"{name}\" declares no masks"),
                    "Declare them with retention.set_mask first.",
                )
            }
            Some(p.id)
        }
        (None, Some("anonymise")) => {
            let c = mask_candidates(target, security::current_role());
            match c.as_slice() {
                [one] => Some(one.id),
                [] => raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("no policy on {table} that you control declares masks"),
                    "Anonymising erasure uses the masks of a policy on the table: declare them with retention.set_mask first.",
                ),
                _ => raise(
                    PgSqlErrorCode::ERRCODE_AMBIGUOUS_PARAMETER,
                    format!("several policies on {table} declare masks"),
                    "Name the one to use: set_subject_table(..., mask_policy => 'name').",
                ),
            }
        }
        _ => None,
    };
    if min_retention.is_some() != clock.is_some()
        || (min_retention.is_some() && legal_ground.is_none())
    {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a statutory minimum needs min_retention, clock and legal_ground together",
            "e.g. min_retention => interval '10 years', clock => 'issued_on', legal_ground => 'HGB §257, AO §147'",
        )
    }
    let clock = clock.map(|c| crate::expr::analyse(crate::expr::Role::Clock, c, &table));
    if let Some(checked) = &clock {
        if !crate::expr::is_clock_type(checked.ty) {
            raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "the clock of a statutory minimum must be of type timestamptz, timestamp or date",
                "Name the column the retention period runs from, e.g. issued_on.",
            )
        }
    }
    if let Some(iv) = min_retention {
        policy::check_age("min_retention", iv);
    }
    let clock = clock.map(|c| c.canonical);
    let updated = security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH u AS (
                UPDATE retention.subject_tables SET
                    action = coalesce($3, action),
                    min_retention = coalesce($4, min_retention),
                    legal_ground = coalesce($5, legal_ground),
                    clock = coalesce($6, clock),
                    mask_policy = CASE WHEN coalesce($3, action) = 'anonymise' THEN coalesce($7, mask_policy) END
                 WHERE kind = $1 AND target = $2::oid::regclass RETURNING 1)
             SELECT count(*) > 0 FROM u",
            &[
                kind.into(),
                target.into(),
                action.into(),
                min_retention.into(),
                legal_ground.into(),
                clock.into(),
                mask_policy_id.into(),
            ],
        )
        .or_raise("changing the subject map")
        .unwrap_or(false)
    });
    if !updated {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("{table} is not in the subject map of \"{kind}\""),
            "SELECT * FROM retention.subject_map(kind) lists its tables.",
        )
    }
    audit::append(
        "subject table changed",
        json!({"kind": kind, "table": table}),
    );
    true
}

#[pg_extern(name = "_drop_subject")]
fn drop_subject(kind: &str) -> bool {
    let k = load_kind(kind);
    security::require_kind_control(kind, k.owner);
    let pending = security::as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM retention.erasure_requests WHERE kind = $1 AND status = 'received'",
            &[kind.into()],
        )
        .or_raise("reading requests")
        .unwrap_or(0)
    });
    if pending > 0 {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("subject kind \"{kind}\" has {pending} pending erasure requests"),
            "Process them (CALL retention.process_erasures()) or refuse them (retention.refuse_request) first.",
        )
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM retention.subject_kinds WHERE kind = $1",
            &[kind.into()],
        )
        .or_raise("dropping the subject kind")
    });
    audit::append("subject kind dropped", json!({"kind": kind}));
    true
}

/// Whether an index on `target` starts with exactly `columns`.
fn has_index_on(target: pg_sys::Oid, columns: &[String]) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i
             WHERE i.indrelid = $1
               AND (SELECT array_agg(a.attname::text ORDER BY k.n)
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE k.n <= pg_catalog.cardinality($2::text[])) = $2::text[])",
        &[target.into(), columns.to_vec().into()],
    )
    .or_raise("reading indexes")
    .unwrap_or(false)
}

#[pg_extern(name = "_subject_map")]
#[allow(clippy::type_complexity)]
fn subject_map(
    kind: &str,
) -> TableIterator<
    'static,
    (
        name!(target, String),
        name!(link, String),
        name!(depth, i32),
        name!(path, String),
        name!(action, String),
        name!(min_retention, Option<Interval>),
        name!(legal_ground, Option<String>),
        name!(indexed, bool),
        name!(warning, Option<String>),
    ),
> {
    security::require_reader("read subject maps");
    load_kind(kind);
    let mut rows = Vec::new();
    let mut tables = load_tables(kind);
    tables.sort_by_key(|t| (t.depth, t.path.clone()));
    for t in tables {
        let name = ident::relation(t.target)
            .unwrap_or_else(|| format!("(dropped table {})", t.target.to_u32()));
        let indexed = has_index_on(t.target, &t.columns);
        let warning = (!indexed).then(|| {
            format!(
                "no index on the subject column: erasing a subject scans the table (CREATE INDEX ON {name} ({}))",
                ident::columns(None, &t.columns)
            )
        });
        rows.push((
            name,
            t.link,
            t.depth,
            t.path,
            t.action,
            t.min_retention,
            t.legal_ground,
            indexed,
            warning,
        ));
    }
    TableIterator::new(rows)
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[pg_extern(name = "_request_erasure")]
fn request_erasure(
    kind: &str,
    subject_id: &str,
    reference: Option<&str>,
    received_at: TimestampWithTimeZone,
) -> i64 {
    security::require_admin("file erasure requests");
    let k = load_kind(kind);
    security::require_kind_entitlement(kind, k.owner, k.root, "file erasure requests");
    let now = pgrx::datum::now();
    let skew = pgrx::datum::Interval::new(0, 0, 5 * 60 * 1_000_000).ok();
    let latest: Option<TimestampWithTimeZone> = skew.and_then(|iv| {
        Spi::get_one_with_args::<TimestampWithTimeZone>("SELECT $1 + $2", &[now.into(), iv.into()])
            .ok()
            .flatten()
    });
    if latest.is_some_and(|l| received_at > l) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "received_at lies in the future",
            "Give the time the request reached you; the deadline runs from it.",
        )
    }
    file_request(kind, subject_id, reference, received_at)
}

/// The root id column's type without modifiers (a cast to `varchar(10)`
/// would silently cut a longer id), schema-qualified where needed
/// (statements using it may run with another search_path than the caller's).
fn id_type(k: &Kind) -> String {
    security::with_pinned_search_path(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2",
            &[k.root.into(), k.id_column.as_str().into()],
        )
        .or_raise("reading the id column")
        .unwrap_or_else(|| "text".into())
    })
}

/// Refuses a subject id that is not exactly the text form of a value of the
/// id column's type ('042' for an integer id, ' 42', an upper-case uuid):
/// blind indexes and matching both rely on that one form.
fn check_canonical_id(k: &Kind, subject_id: &str) {
    if subject_id.trim().is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "subject_id must not be empty",
            "Give the value of the root table's id column for the person.",
        )
    }
    let ty = id_type(k);
    // A domain's checks are code attached to the root table's type: they
    // run as the root table's owner.
    let canonical = crate::partition::try_in_subtransaction(std::panic::AssertUnwindSafe(|| {
        security::as_table_owner(k.root, || {
            Spi::get_one_with_args::<String>(
                &format!("SELECT CAST($1 AS {ty})::text"),
                &[subject_id.into()],
            )
            .or_raise("checking the subject id")
        })
    }))
    .ok()
    .flatten();
    if canonical.as_deref() != Some(subject_id) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("subject_id is not in the text form of the id column's type ({ty})"),
            "Give the id exactly as the database prints it, e.g. SELECT id::text FROM the root table.",
        )
    }
}

fn file_request(
    kind: &str,
    subject_id: &str,
    reference: Option<&str>,
    received_at: TimestampWithTimeZone,
) -> i64 {
    let k = security::as_extension_owner(|| load_kind(kind));
    check_canonical_id(&k, subject_id);
    let b = blind(kind, subject_id);
    // Dates as text under the pinned settings: the audit entry records
    // exactly what the request row holds, for the certificate to compare.
    let (id, received, due) = security::as_extension_owner(|| {
        Spi::get_three_with_args::<i64, String, String>(
            "INSERT INTO retention.erasure_requests (kind, subject_id, subject_blind, reference, received_at, due_at)
             VALUES ($1, $2, $3, $4, $5, $5 + interval '1 month') RETURNING id, received_at::text, due_at::text",
            &[kind.into(), subject_id.into(), b.as_str().into(), reference.into(), received_at.into()],
        )
        .or_raise("storing the request")
    });
    let id = id.unwrap_or_default();
    audit::append(
        "erasure requested",
        json!({"request": id, "kind": kind, "subject": b, "received_at": received, "due_at": due}),
    );
    id
}

struct Request {
    id: i64,
    kind: String,
    subject_id: Option<String>,
    subject_blind: String,
    status: String,
}

fn load_request(id: i64) -> Request {
    load_request_locking(id, false)
}

/// Runs `f`, which changes erasure requests, with the setting that their
/// guard trigger lets through (see sql/schema.sql).
fn writing_requests<R>(f: impl FnOnce() -> R) -> R {
    security::with_settings_as(
        pg_sys::GucContext::PGC_INTERNAL,
        &[("retention.request_write", "on")],
        f,
    )
}

/// The request; with `lock`, its row is locked first (FOR UPDATE), so that
/// a second session processing the same request waits, then sees the
/// request's final state and leaves it alone.
fn load_request_locking(id: i64, lock: bool) -> Request {
    let sql = if lock {
        "SELECT id, kind, subject_id, subject_blind, status FROM retention.erasure_requests WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, kind, subject_id, subject_blind, status FROM retention.erasure_requests WHERE id = $1"
    };
    let r = security::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            c.update(sql, None, &[id.into()])
                .or_raise("reading the request")
                .next()
                .map(|r| {
                    let e = "reading the request";
                    Request {
                        id: r.get::<i64>(1).or_raise(e).unwrap_or(0),
                        kind: r.get::<String>(2).or_raise(e).unwrap_or_default(),
                        subject_id: r.get::<String>(3).or_raise(e),
                        subject_blind: r.get::<String>(4).or_raise(e).unwrap_or_default(),
                        status: r.get::<String>(5).or_raise(e).unwrap_or_default(),
                    }
                })
        })
    });
    r.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("erasure request {id} does not exist"),
            "SELECT id, status FROM retention.requests lists the requests.",
        )
    })
}

#[pg_extern(name = "_extend_request")]
fn extend_request(id: i64, months: i32, reason: &str) -> TimestampWithTimeZone {
    security::require_admin("extend erasure requests");
    let r = load_request(id);
    let k = load_kind(&r.kind);
    security::require_kind_entitlement(&r.kind, k.owner, k.root, "extend erasure requests");
    if r.status != "received" {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "erasure request {id} is {} and cannot be extended",
                r.status
            ),
            "Only pending requests can be extended.",
        )
    }
    if reason.trim().is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "an extension needs a reason",
            "GDPR Art. 12(3): the data subject is told the reasons within the first month.",
        )
    }
    let (due, due_text) = writing_requests(|| {
        security::as_extension_owner(|| {
            Spi::get_two_with_args::<TimestampWithTimeZone, String>(
                "WITH u AS (
                UPDATE retention.erasure_requests
                   SET extended_months = extended_months + $2, extension_reason = $3,
                       due_at = received_at + (1 + extended_months + $2) * interval '1 month'
                 WHERE id = $1 AND $2 > 0 AND extended_months + $2 <= 2
                   AND pg_catalog.now() <= received_at + interval '1 month'
                RETURNING due_at)
             SELECT (SELECT due_at FROM u), (SELECT due_at::text FROM u)",
                &[id.into(), months.into(), reason.into()],
            )
            .or_raise("extending the request")
        })
    });
    let Some(due) = due else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("erasure request {id} cannot be extended by {months} months"),
            "GDPR Art. 12(3): at most two further months in all, decided within the first month after receipt.",
        )
    };
    audit::append(
        "erasure request extended",
        json!({"request": id, "months": months, "due_at": due_text}),
    );
    due
}

const GROUNDS: [(&str, &str); 5] = [
    (
        "17(3)(a)",
        "exercising the right of freedom of expression and information",
    ),
    (
        "17(3)(b)",
        "compliance with a legal obligation or a task in the public interest",
    ),
    ("17(3)(c)", "public interest in the area of public health"),
    (
        "17(3)(d)",
        "archiving, scientific or historical research or statistical purposes",
    ),
    (
        "17(3)(e)",
        "establishment, exercise or defence of legal claims",
    ),
];

#[pg_extern(name = "_refuse_request")]
fn refuse_request(id: i64, ground: &str) -> String {
    security::require_admin("refuse erasure requests");
    let r = load_request(id);
    let k = load_kind(&r.kind);
    security::require_kind_entitlement(&r.kind, k.owner, k.root, "refuse erasure requests");
    if r.status != "received" {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("erasure request {id} is already {}", r.status),
            "Only pending requests can be refused.",
        )
    }
    let g = ground
        .trim()
        .trim_start_matches("Art.")
        .trim()
        .trim_start_matches("GDPR")
        .trim();
    let Some((code, text)) = GROUNDS
        .iter()
        .find(|(c, _)| g == *c || g == format!("Art. {c}"))
    else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a refusal needs a ground of GDPR Art. 17(3)",
            "One of '17(3)(a)' … '17(3)(e)', e.g. '17(3)(e)' for legal claims.",
        )
    };
    let label = format!("Art. {code}: {text}");
    let completed = writing_requests(|| {
        security::as_extension_owner(|| {
            Spi::get_one_with_args::<String>(
            "UPDATE retention.erasure_requests SET status = 'refused', refusal_ground = $2, subject_id = NULL,
                    completed_at = pg_catalog.now() WHERE id = $1 RETURNING completed_at::text",
            &[id.into(), label.as_str().into()],
        )
        .or_raise("refusing the request")
        })
    });
    audit::append(
        "erasure request refused",
        json!({"request": id, "ground": code, "completed_at": completed}),
    );
    label
}

// ---------------------------------------------------------------------------
// Holds
// ---------------------------------------------------------------------------

#[pg_extern(name = "_place_hold")]
fn place_hold(
    reason: &str,
    kind: Option<&str>,
    subject_id: Option<&str>,
    target: Option<pg_sys::Oid>,
    filter: Option<&str>,
    until: Option<TimestampWithTimeZone>,
) -> i64 {
    security::require_admin("place legal holds");
    if reason.trim().is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a hold needs a reason",
            "e.g. 'tax audit 2026' or 'lawsuit 12 O 345/26'.",
        )
    }
    let blind_value = match (kind, subject_id) {
        (Some(k), Some(s)) => {
            let kd = load_kind(k);
            // Holding a subject keeps its data everywhere in the kind's map:
            // the placing role must be able to see the subjects.
            if !security::has_table_privileges(security::current_role(), kd.root, "SELECT") {
                raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied to hold subjects of kind \"{k}\""),
                    "A hold on a subject needs SELECT on the kind's root table.",
                )
            }
            check_canonical_id(&kd, s);
            Some(blind(k, s))
        }
        (None, None) => None,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a subject hold needs both kind and subject_id",
            "Or hold a table (target) or part of one (target and filter).",
        ),
    };
    let table = target.map(policy::check_target);
    if blind_value.is_none() && table.is_none() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a hold needs a subject (kind, subject_id) or a table (target)",
            "e.g. place_hold('tax audit', target => 'invoices', filter => 'issued_on >= ''2020-01-01''').",
        )
    }
    if let Some(t) = target {
        // A hold is a legal act on data the placing role can see.
        if !security::has_table_privileges(security::current_role(), t, "SELECT") {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to place a hold on {}",
                    table.clone().unwrap_or_default()
                ),
                "A hold on a table needs SELECT on it.",
            )
        }
    }
    let mut canonical_filter = None;
    if let (Some(f), Some(t)) = (filter, &table) {
        let checked = crate::expr::analyse(crate::expr::Role::Filter, f, t);
        canonical_filter = Some(checked.canonical);
        if checked.ty != pg_sys::BOOLOID {
            raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "the filter of a hold must be a boolean expression",
                "e.g. issued_on >= '2020-01-01'",
            )
        }
    } else if filter.is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a filter needs a target table",
            "Give target => 'table' with the filter.",
        )
    }
    let me = security::current_role();
    let by = security::role_name(me);
    let filter = canonical_filter;
    let id = security::as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO retention.holds (kind, subject_blind, target, filter, reason, placed_by, placed_by_role, until)
             VALUES ($1, $2, $3::oid::regclass, $4, $5, $6, $7, $8) RETURNING id",
            &[kind.into(), blind_value.clone().into(), target.into(), filter.clone().into(), reason.into(), by.as_str().into(), me.into(), until.into()],
        )
        .or_raise("storing the hold")
        .unwrap_or_default()
    });
    audit::append(
        "hold placed",
        json!({"hold": id, "kind": kind, "subject": blind_value, "table": table, "filtered": filter.is_some()}),
    );
    id
}

#[pg_extern(name = "_release_hold")]
fn release_hold(id: i64) -> bool {
    security::require_admin("release legal holds");
    let by = security::role_name(security::current_role());
    // By role identity: a renamed role keeps its holds, and a hold whose
    // role was dropped can only be released by a superuser.
    let placed_by = security::as_extension_owner(|| {
        Spi::get_two_with_args::<bool, pg_sys::Oid>(
            "SELECT true, placed_by_role FROM retention.holds WHERE id = $1",
            &[id.into()],
        )
        .ok()
    });
    let Some((Some(true), placed_by)) = placed_by else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("hold {id} does not exist"),
            "SELECT id, reason FROM retention.holds lists the holds.",
        )
    };
    let me = security::current_role();
    let allowed = match placed_by {
        Some(owner) if security::role_exists(owner) => security::has_privs_of(me, owner),
        _ => unsafe { pg_sys::superuser_arg(me) },
    };
    if !allowed {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("hold {id} was placed by another role"),
            "A hold is released by the role that placed it, a member of that role or a superuser.",
        )
    }
    let released = security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH u AS (UPDATE retention.holds SET released_at = pg_catalog.now(), released_by = $2
                         WHERE id = $1 AND released_at IS NULL RETURNING 1)
             SELECT count(*) > 0 FROM u",
            &[id.into(), by.as_str().into()],
        )
        .or_raise("releasing the hold")
        .unwrap_or(false)
    });
    if released {
        audit::append("hold released", json!({"hold": id}));
    }
    released
}

/// Active holds that apply to a table's rows: (id, reason, filter), where
/// a NULL filter holds the whole table. Holds apply through the partition
/// tree and inheritance both ways: a hold on an ancestor (a partitioned
/// parent) applies to the table as declared, and a hold on a descendant (a
/// partition, a child table) holds that descendant's rows, which its filter
/// then names with `tableoid` (so a policy on the parent keeps them).
pub fn table_holds(target: pg_sys::Oid) -> Vec<(i64, String, Option<String>)> {
    // (id, reason, filter, the descendant's subtree when the hold is below)
    type Found = (i64, String, Option<String>, Option<Vec<pg_sys::Oid>>);
    let rows: Vec<Found> = Spi::connect(|c| {
        crate::plans::select(
            c,
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
                AND h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now())
              ORDER BY h.id",
            &[target.into()],
        )
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
            (id, reason, filter)
        })
        .collect()
}

/// True for a row of `outer` (the target's table name or an alias) whose
/// deletion would reach a held row through a foreign key's ON DELETE
/// CASCADE, SET NULL or SET DEFAULT, at any depth of cascades: such a row is
/// kept (and counted as held), so that no held row is ever deleted or
/// changed by pg_retention, directly or by the server's foreign-key
/// actions. None when no referencing table has a hold.
pub fn cascade_held(target: pg_sys::Oid, outer: &str, depth: usize) -> Option<String> {
    // Deeper chains (and cycles) end here: beyond this depth the row is
    // kept whenever the chain goes on through a cascading key.
    const MAX_DEPTH: usize = 8;
    let mut parts = Vec::new();
    for r in crate::refs::references(target) {
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
        if holds.iter().any(|h| h.2.is_none()) {
            held.push("true".to_string());
        } else if !holds.is_empty() {
            // The filters name the child's columns, unqualified: inside the
            // sub-query they resolve to the child's row.
            held.push(held_condition(holds.iter()));
        }
        if r.on_delete == "c" {
            if depth + 1 >= MAX_DEPTH {
                held.push("true".to_string());
            } else if let Some(deeper) = cascade_held(r.child_oid, &alias, depth + 1) {
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

/// `coalesce(<filter>, false) OR ...`: a row matches one of the holds'
/// (validated) filters. The one place hold filters become SQL.
pub fn held_condition<'a>(
    filters: impl Iterator<Item = &'a (i64, String, Option<String>)>,
) -> String {
    filters
        .map(|h| {
            format!(
                "coalesce({}, false)",
                crate::expr::embed(h.2.as_deref().unwrap_or("false"))
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

fn subject_holds(kind: &str, blind_value: &str) -> Vec<(i64, String)> {
    Spi::connect(|c| {
        c.select(
            "SELECT id, reason FROM retention.holds
              WHERE kind = $1 AND subject_blind = $2 AND released_at IS NULL
                AND (until IS NULL OR until > pg_catalog.now()) ORDER BY id",
            None,
            &[kind.into(), blind_value.into()],
        )
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

/// The rows of a policy's table that belong to subjects under a legal hold.
pub struct SubjectHold {
    /// The ids of the active holds on subjects of the kinds concerned.
    pub hold_ids: Vec<i64>,
    /// True for a row of a held subject, over the statement's table, with
    /// parameters $3..$5 from [`hold_args`].
    pub condition: String,
    how: HeldBy,
}

/// How [`SubjectHold::condition`] recognises held subjects.
enum HeldBy {
    /// The row's linking columns are compared with keys ($4) that the kinds'
    /// owners list before each batch.
    Keys(Vec<KindKeys>),
}

/// One kind's keys: each is `prefix` followed by a JSON array of the held
/// subjects' values of the columns the table links by, listed by `query`
/// with the held subjects' root ids (text) as $4.
struct KindKeys {
    kind: String,
    prefix: String,
    query: String,
}

/// The base type of `column` of `target` (a domain's base type, no
/// modifiers: keys come from the referenced table and must not fail a
/// domain's checks or be cut), schema-qualified where needed.
fn column_base_type(target: pg_sys::Oid, column: &str) -> String {
    security::with_pinned_search_path(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL)
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped",
            &[target.into(), column.into()],
        )
        .or_raise("reading a column type")
        .unwrap_or_else(|| "text".into())
    })
}

/// How a table of one kind's map reaches the subject.
struct Link {
    /// The columns the row links by, and a query listing the held subjects'
    /// values of them as JSON arrays (text), with the held root ids as $4.
    columns: Vec<String>,
    query: String,
}

/// One kind's [`Link`] for table `t` of its map; None when the map no
/// longer leads from the table to the root.
fn kind_link(t: &SubjectTable, k: &Kind, tables: &[SubjectTable]) -> Option<Link> {
    let root = ident::relation(k.root)?;
    let root_id = format!("{root}.{}", ident::quote(&k.id_column));
    let held = RootMatch::Held(&id_type(k));
    let link = |columns: Vec<String>, list: String, from: String, cond: String| Link {
        columns,
        query: format!(
            "SELECT DISTINCT pg_catalog.jsonb_build_array({list})::text FROM {from} WHERE {cond}"
        ),
    };
    // The row holds the id: its keys are the held root ids themselves.
    let by_id = |col: &String| {
        link(
            vec![col.clone()],
            root_id.clone(),
            root.clone(),
            held.id(&root_id),
        )
    };
    Some(match t.link.as_str() {
        "root" => by_id(&k.id_column),
        "value" => match &t.matches {
            None => by_id(t.columns.first()?),
            Some(m) => link(
                t.columns.clone(),
                format!("{root}.{}", ident::quote(m)),
                root.clone(),
                held.id(&root_id),
            ),
        },
        _ => {
            if t.parent == Some(k.root) && t.parent_columns == [k.id_column.clone()] {
                return Some(by_id(t.columns.first()?));
            }
            let parent = tables.iter().find(|x| Some(x.target) == t.parent)?;
            let parent_name = ident::relation(parent.target)?;
            let by_oid = |o: pg_sys::Oid| tables.iter().find(|x| x.target == o).cloned();
            link(
                t.columns.clone(),
                ident::columns(Some(&parent_name), &t.parent_columns),
                parent_name.clone(),
                subject_condition(parent, &by_oid, k, &held),
            )
        }
    })
}

/// For a policy's table: the rows of subjects under a legal hold, if a
/// subject of any kind whose map contains the table is held.
///
/// The batch statement reads only the policy's table. Where the row holds
/// the subject id (the root table, a foreign key to the root id, a value
/// link on the id) and one kind is concerned, it computes the row's blind
/// index. Otherwise, before each batch, the kinds' owners list the held
/// subjects' values of the columns the table links by (following the map
/// from the held subjects' root ids, found once per run by computing the
/// blind index of every root row), and the statement compares the row's
/// columns with them in the columns' own types.
pub fn subject_hold(target: pg_sys::Oid, table: &str) -> Option<SubjectHold> {
    let kinds: Vec<(String, Vec<i64>)> = Spi::connect(|c| {
        crate::plans::select(
            c,
            "SELECT st.kind, array_agg(h.id ORDER BY h.id)
               FROM retention.subject_tables st
               JOIN retention.holds h ON h.kind = st.kind AND h.subject_blind IS NOT NULL
                    AND h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now())
              WHERE st.target = $1::oid::regclass
              GROUP BY st.kind ORDER BY st.kind",
            &[target.into()],
        )
        .or_raise("reading subject holds")
        .map(|r| {
            let e = "reading subject holds";
            (
                r.get::<String>(1).or_raise(e).unwrap_or_default(),
                r.get::<Vec<i64>>(2).or_raise(e).unwrap_or_default(),
            )
        })
        .collect()
    });
    let hold_ids: Vec<i64> = kinds
        .iter()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    let mut links = Vec::new();
    for (kind, _) in &kinds {
        let k = load_kind(kind);
        let tables = load_tables(kind);
        let link = tables
            .iter()
            .find(|t| t.target == target)
            .and_then(|t| kind_link(t, &k, &tables));
        if let Some(link) = link {
            links.push((kind.clone(), link));
        }
    }
    if links.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    for (n, (kind, Link { columns, query, .. })) in links.into_iter().enumerate() {
        // The prefix numbers the kind; the columns are compared in their
        // own (base) types, as the foreign key compares them.
        let prefix = format!("{}:", n + 1);
        let casts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("CAST(x.j ->> {i} AS {})", column_base_type(target, c)))
            .collect();
        parts.push(format!(
            "({}) IN (SELECT {} FROM pg_catalog.unnest($4) AS k(v),
                LATERAL (SELECT CAST(pg_catalog.substr(k.v, {}) AS jsonb) AS j) AS x
               WHERE pg_catalog.starts_with(k.v, '{prefix}'))",
            ident::columns(Some(table), &columns),
            casts.join(", "),
            prefix.len() + 1
        ));
        keys.push(KindKeys {
            kind,
            prefix,
            query,
        });
    }
    Some(SubjectHold {
        hold_ids,
        condition: parts.join(" OR "),
        how: HeldBy::Keys(keys),
    })
}

thread_local! {
    /// The held subjects' root ids found for a run item: (item, kind, blind
    /// indexes) and the ids. They are personal data: kept in this backend's
    /// memory only, until the item ends (see [`forget_held_keys`]).
    #[allow(clippy::type_complexity)]
    static HELD_ROOT_IDS: std::cell::RefCell<std::collections::HashMap<(i64, String, Vec<String>), Vec<String>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Drops the held subjects' root ids kept for a run item.
pub fn forget_held_keys() {
    HELD_ROOT_IDS.with(|c| c.borrow_mut().clear());
}

/// Parameters $3..$5 of a batch for `hold` (NULLs without one).
pub fn hold_args(item: i64, hold: Option<&SubjectHold>) -> Vec<pgrx::datum::DatumWithOid<'static>> {
    let nulls = || {
        vec![
            pgrx::datum::DatumWithOid::null::<Vec<u8>>(),
            pgrx::datum::DatumWithOid::null::<Vec<String>>(),
            pgrx::datum::DatumWithOid::null::<String>(),
        ]
    };
    let Some(hold) = hold else {
        return nulls();
    };
    match &hold.how {
        HeldBy::Keys(kinds) => {
            let mut all = Vec::new();
            for kk in kinds {
                all.extend(
                    held_keys(item, kk)
                        .into_iter()
                        .map(|key| format!("{}{key}", kk.prefix)),
                );
            }
            let mut args = nulls();
            args[1] = all.into();
            args
        }
    }
}

/// One kind's keys (see [`KindKeys`]), listed as the kind's owner: the
/// held subjects' root ids are found once per run item, the values linked
/// to them again for every batch, so that rows linked to a held subject
/// during the run are held too.
fn held_keys(item: i64, kk: &KindKeys) -> Vec<String> {
    let k = load_kind(&kk.kind);
    let mut blinds = held_blinds(&kk.kind);
    blinds.sort();
    let Some(root) = ident::relation(k.root) else {
        return Vec::new();
    };
    if blinds.is_empty() {
        return Vec::new();
    }
    let rows = |sql: &str, args: &[pgrx::datum::DatumWithOid]| -> Vec<String> {
        Spi::connect(|c| {
            c.select(sql, None, args)
                .or_raise("finding held subjects")
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect()
        })
    };
    // Read as the root table's owner. The blind-index key never enters a
    // statement: the root ids are read and their blind indexes computed here.
    security::as_table_owner(k.root, || {
        let asked = (item, kk.kind.clone(), blinds.clone());
        let cached = HELD_ROOT_IDS.with(|c| c.borrow().get(&asked).cloned());
        let ids = cached.unwrap_or_else(|| {
            let ids = root_ids_of(&k, &root, &kk.kind, &blinds);
            HELD_ROOT_IDS.with(|c| c.borrow_mut().insert(asked, ids.clone()));
            ids
        });
        rows(
            &kk.query,
            &[
                pgrx::datum::DatumWithOid::null::<Vec<u8>>(),
                pgrx::datum::DatumWithOid::null::<Vec<String>>(),
                pgrx::datum::DatumWithOid::null::<String>(),
                ids.into(),
            ],
        )
    })
}

/// The root ids (as text) of the subjects of `kind` whose blind index is one
/// of `blinds`: every root id is read and its blind index computed in Rust,
/// so that the key is never a parameter of a statement. Runs as the caller
/// set up (the root table's owner).
fn root_ids_of(k: &Kind, root: &str, kind: &str, blinds: &[String]) -> Vec<String> {
    let key = blind_key();
    let wanted: std::collections::HashSet<&str> = blinds.iter().map(|b| b.as_str()).collect();
    let sql = format!("SELECT ({})::text FROM {root}", ident::quote(&k.id_column));
    Spi::connect(|c| {
        c.select(&sql, None, &[])
            .or_raise("finding held subjects")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .filter(|id| {
                wanted.contains(mask::hmac_hex(&format!("{kind}\u{1f}{id}"), &key).as_str())
            })
            .collect()
    })
}

/// Blind indexes of the subjects of `kind` under an active hold.
pub fn held_blinds(kind: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT subject_blind FROM retention.holds
              WHERE kind = $1 AND subject_blind IS NOT NULL AND released_at IS NULL
                AND (until IS NULL OR until > pg_catalog.now())",
            None,
            &[kind.into()],
        )
        .or_raise("reading subject holds")
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
    })
}

// ---------------------------------------------------------------------------
// Erasing one subject
// ---------------------------------------------------------------------------

/// What the root of the map is matched against.
enum RootMatch<'a> {
    /// One subject's id, parameter $1 (text), cast to the root id's type.
    Subject(&'a str),
    /// The held subjects' root ids, parameter $4 (text[]), cast to an array
    /// of the root id's type so that indexes on the linking columns serve.
    Held(&'a str),
}

impl RootMatch<'_> {
    /// `expr` (of the root id's type) is one of the matched ids.
    fn id(&self, expr: &str) -> String {
        match self {
            RootMatch::Subject(t) => format!("{expr} = CAST($1 AS {t})"),
            RootMatch::Held(t) => format!("{expr} = ANY (CAST($4 AS {t}[]))"),
        }
    }

    /// `expr`, a column of type `ty` (its base type), holds one of the
    /// matched ids as a value: compared in the column's type, as a foreign
    /// key would (7.00 in a numeric(12,2) column is the id 7).
    fn value(&self, expr: &str, ty: &str) -> String {
        match self {
            RootMatch::Subject(_) => format!("{expr} = CAST($1 AS {ty})"),
            RootMatch::Held(_) => format!("{expr} = ANY (CAST($4 AS {ty}[]))"),
        }
    }
}

/// `WHERE` condition selecting the matched subjects' rows of table `t`
/// (see [`RootMatch`]), following the map up to the root.
fn subject_condition(
    t: &SubjectTable,
    by_oid: &dyn Fn(pg_sys::Oid) -> Option<SubjectTable>,
    k: &Kind,
    m: &RootMatch,
) -> String {
    let table = ident::relation(t.target).unwrap_or_default();
    let root = ident::relation(k.root).unwrap_or_default();
    match t.link.as_str() {
        "root" => m.id(&format!("{table}.{}", ident::quote(&k.id_column))),
        "value" => match &t.matches {
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
        _ => {
            let parent = t.parent.and_then(by_oid);
            let Some(parent) = parent else {
                return "false".into();
            };
            let parent_name = ident::relation(parent.target).unwrap_or_default();
            let cols = ident::columns(Some(table.as_str()), &t.columns);
            // A foreign key to the root id holds the id itself.
            if matches!(m, RootMatch::Held(_))
                && parent.target == k.root
                && t.parent_columns == [k.id_column.clone()]
            {
                return m.id(&cols);
            }
            let pcols = ident::columns(Some(&parent_name), &t.parent_columns);
            format!(
                "({cols}) IN (SELECT {pcols} FROM {parent_name} WHERE {})",
                subject_condition(&parent, by_oid, k, m)
            )
        }
    }
}

/// Erases the subject of one request across its tables, in one
/// transaction. Returns the request's new status.
#[pg_extern(name = "_erase_subject")]
fn erase_subject(request: i64) -> String {
    security::require_admin("process erasure requests");
    // Overlapping runs (the nightly job and a manual call) process each
    // request once: the second waits for the first and finds it done.
    let r = load_request_locking(request, true);
    if r.status != "received" {
        return r.status;
    }
    let Some(subject) = r.subject_id.clone() else {
        return r.status;
    };
    let k = load_kind(&r.kind);
    let tables = load_tables(&r.kind);
    let id_type = id_type(&k);
    let all = tables.clone();
    let by_oid = move |o: pg_sys::Oid| all.iter().find(|t| t.target == o).cloned();
    let tables = children_first(tables);
    let held_subject = subject_holds(&r.kind, &r.subject_blind);
    let mut results = Vec::new();
    let mut partial = false;
    for t in &tables {
        let Some(table) = ident::relation(t.target) else {
            continue;
        };
        let cond = subject_condition(t, &by_oid, &k, &RootMatch::Subject(&id_type));
        let mut entry = json!({"table": table, "path": t.path, "action": t.action,
                               "purged": 0, "anonymised": 0, "retained": 0, "held": 0});
        // A whole-table hold on a table above this one holds its rows too.
        let mut holds_here = held_subject.clone();
        holds_here.extend(ancestor_table_holds(t, &by_oid));
        // The kind's owner must hold the rights the action needs; the
        // statements then run as the table's owner.
        let needed: &[&str] = if t.action == "anonymise" {
            &["SELECT", "UPDATE"]
        } else {
            &["SELECT", "DELETE"]
        };
        if let Some(missing) = security::missing_privilege(k.owner, t.target, needed) {
            entry["problem"] = json!(format!(
                "the kind's owner {} lacks {missing} on this table",
                security::role_name(k.owner)
            ));
            entry["remaining"] = json!(security::as_table_owner(t.target, || {
                count_args(&table, &cond, &[subject.clone().into()])
            }));
            partial = true;
            results.push(entry);
            continue;
        }
        let outcome = crate::engine::sanitizing_pub(&table, || {
            security::as_table_owner(t.target, || {
                crate::stage::as_stage(|| {
                    erase_table(
                        t,
                        &table,
                        &cond,
                        &subject,
                        &holds_here,
                        &by_oid,
                        request,
                        k.owner,
                        &mut entry,
                    )
                })
            })
        });
        partial |= outcome;
        results.push(entry);
    }
    // Held subjects' ids found for this request are personal data: dropped.
    forget_held_keys();
    let status = if partial {
        "partially completed"
    } else {
        "completed"
    };
    let summary: Vec<Value> = results
        .iter()
        .map(|e| {
            json!({"table": e["table"], "purged": e["purged"], "anonymised": e["anonymised"],
                        "retained": e["retained"], "held": e["held"],
                        "kept_referenced": e.get("kept_referenced").cloned().unwrap_or(json!(0)),
                        "remaining": e.get("remaining").cloned().unwrap_or(json!(0))})
        })
        .collect();
    let results = Value::Array(results);
    let completed_at = security::as_extension_owner(|| {
        Spi::get_one::<String>("SELECT pg_catalog.now()::text").or_raise("reading the time")
    });
    let hash = audit::append(
        "erasure completed",
        json!({"request": request, "kind": r.kind, "subject": r.subject_blind, "status": status, "tables": summary,
               "result": results, "completed_at": completed_at}),
    );
    writing_requests(|| {
        security::as_extension_owner(|| {
            Spi::run_with_args(
            "UPDATE retention.erasure_requests
                SET status = $2, subject_id = NULL, completed_at = pg_catalog.now(), result = $3, audit_hash = $4
              WHERE id = $1 AND status = 'received'",
            &[r.id.into(), status.into(), JsonB(results).into(), hash.as_str().into()],
        )
        .or_raise("closing the request")
        })
    });
    status.to_string()
}

/// Orders the map so that a table comes before every table it references
/// (children before parents), whatever their depth; cycles keep the order
/// they had (deepest first).
fn children_first(tables: Vec<SubjectTable>) -> Vec<SubjectTable> {
    let names: Vec<Option<String>> = tables.iter().map(|t| ident::relation(t.target)).collect();
    // children[i]: indexes of mapped tables that reference table i.
    let children: Vec<Vec<usize>> = tables
        .iter()
        .map(|t| {
            crate::refs::references(t.target)
                .iter()
                .filter_map(|r| {
                    names
                        .iter()
                        .position(|n| n.as_deref() == Some(r.child.as_str()))
                })
                .filter(|&c| tables[c].target != t.target)
                .collect()
        })
        .collect();
    // Value-linked tables look their rows up through the root: the root
    // waits for them as for a child.
    let mut children = children;
    let value_tables: Vec<usize> = (0..tables.len())
        .filter(|&i| tables[i].link == "value")
        .collect();
    for (i, t) in tables.iter().enumerate() {
        if t.link == "root" {
            children[i].extend(value_tables.iter().copied());
        }
    }
    let n = tables.len();
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
    let mut slots: Vec<Option<SubjectTable>> = tables.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Whole-table holds on the tables above `t` in the map (its parents, their
/// parents, ...): the subject's rows of `t` all hang below held rows.
fn ancestor_table_holds(
    t: &SubjectTable,
    all: &dyn Fn(pg_sys::Oid) -> Option<SubjectTable>,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut cur = t.parent;
    let mut guard = 0;
    while let Some(p) = cur {
        guard += 1;
        if guard > 64 {
            break;
        }
        out.extend(
            table_holds(p)
                .into_iter()
                .filter(|h| h.2.is_none())
                .map(|h| (h.0, h.1)),
        );
        cur = all(p).and_then(|pt| pt.parent);
    }
    out
}

/// The parameters every statement of one table's erasure binds: $1 the
/// subject id (text), $2 the statutory minimum (interval), $3..$5 the
/// subject holds' parameters (see [`hold_args`]). Mask parameters follow.
type Args = Vec<pgrx::datum::DatumWithOid<'static>>;

/// True for a row of `t` below a row that a filtered hold keeps, at any
/// depth of the subject map (an order's items and their notes, under a
/// disputed order), with the ids and reasons of those holds. None when no
/// table above `t` has a filtered hold.
fn below_held(
    t: &SubjectTable,
    by_oid: &dyn Fn(pg_sys::Oid) -> Option<SubjectTable>,
    depth: usize,
) -> Option<(String, Vec<(i64, String)>)> {
    if depth > 16 {
        return None;
    }
    let parent = by_oid(t.parent?)?;
    let table = ident::relation(t.target)?;
    let parent_name = ident::relation(parent.target)?;
    let filtered: Vec<(i64, String, Option<String>)> = table_holds(parent.target)
        .into_iter()
        .filter(|h| h.2.is_some())
        .collect();
    let mut conds = Vec::new();
    let mut ids: Vec<(i64, String)> = filtered.iter().map(|h| (h.0, h.1.clone())).collect();
    if !filtered.is_empty() {
        conds.push(held_condition(filtered.iter()));
    }
    if let Some((deeper, more)) = below_held(&parent, by_oid, depth + 1) {
        conds.push(deeper);
        ids.extend(more);
    }
    if conds.is_empty() {
        return None;
    }
    Some((
        format!(
            "({}) IN (SELECT {} FROM {parent_name} WHERE {})",
            ident::columns(Some(&table), &t.columns),
            ident::columns(Some(&parent_name), &t.parent_columns),
            conds.join(" OR ")
        ),
        ids,
    ))
}

fn count_args(table: &str, cond: &str, args: &[pgrx::datum::DatumWithOid<'static>]) -> i64 {
    Spi::get_one_with_args::<i64>(&format!("SELECT count(*) FROM {table} WHERE {cond}"), args)
        .or_raise("counting the subject's rows")
        .unwrap_or(0)
}

fn hold_names(entry: &mut Value, holds: impl Iterator<Item = (i64, String)>) {
    let mut list = entry["holds"].as_array().cloned().unwrap_or_default();
    for (id, reason) in holds {
        let v = json!({"hold": id, "reason": reason});
        if !list.contains(&v) {
            list.push(v);
        }
    }
    entry["holds"] = Value::Array(list);
}

/// Erases one table's rows of the subject; fills `entry`. Returns whether
/// anything was kept (held, retained, referenced, remaining).
///
/// Every row the erasure reaches ends in one counted outcome: held (by a
/// hold on the subject, on the table or a table above it, by a filtered
/// hold on a row above it at any depth, or by a hold on a subject of any
/// kind whose map holds the table), retained (a statutory minimum, a NULL
/// clock included), kept because kept rows still reference it, purged or
/// anonymised; and what is still there after the DELETE is remaining.
#[allow(clippy::too_many_arguments)]
fn erase_table(
    t: &SubjectTable,
    table: &str,
    cond: &str,
    subject: &str,
    subject_holds: &[(i64, String)],
    by_oid: &dyn Fn(pg_sys::Oid) -> Option<SubjectTable>,
    request: i64,
    kind_owner: pg_sys::Oid,
    entry: &mut Value,
) -> bool {
    // Holds on subjects of every kind whose map holds this table (the
    // subject of another kind linked to these rows, e.g. a held customer's
    // orders in an erased shop).
    let others = subject_hold(t.target, table);
    let mut args: Args = vec![subject.to_string().into(), t.min_retention.into()];
    args.extend(hold_args(-request, others.as_ref()));
    let total = count_args(table, cond, &args);
    if total == 0 {
        return false;
    }
    // A hold on the subject or on the whole table keeps everything.
    let holds = table_holds(t.target);
    let whole: Vec<&(i64, String, Option<String>)> =
        holds.iter().filter(|h| h.2.is_none()).collect();
    if !subject_holds.is_empty() || !whole.is_empty() {
        let names: Vec<Value> = subject_holds
            .iter()
            .map(|(id, reason)| json!({"hold": id, "reason": reason}))
            .chain(
                whole
                    .iter()
                    .map(|(id, reason, _)| json!({"hold": id, "reason": reason})),
            )
            .collect();
        entry["held"] = json!(total);
        entry["holds"] = Value::Array(names);
        return true;
    }
    let mut keep: Vec<String> = Vec::new();
    let mut kept_any = false;
    let mut held_total = 0i64;
    // Each kind of hold, counted over the rows no earlier kind kept.
    let mut hold_kind =
        |keep: &mut Vec<String>, held_if: String, names: Vec<(i64, String)>, entry: &mut Value| {
            let mut c = format!("{cond} AND coalesce(({held_if}), false)");
            for k in keep.iter() {
                c.push_str(" AND ");
                c.push_str(k);
            }
            let n = count_args(table, &c, &args);
            if n > 0 {
                held_total += n;
                hold_names(entry, names.into_iter());
                kept_any = true;
            }
            keep.push(format!("NOT coalesce(({held_if}), false)"));
        };
    // Rows below a row kept by a filtered hold, at any depth.
    if let Some((below, ids)) = below_held(t, by_oid, 0) {
        hold_kind(&mut keep, below, ids, entry);
    }
    // Rows matching a hold's filter on this table (or on a table above it
    // in the partition tree, or a partition's rows).
    let filtered: Vec<&(i64, String, Option<String>)> =
        holds.iter().filter(|h| h.2.is_some()).collect();
    if !filtered.is_empty() {
        let names = filtered.iter().map(|h| (h.0, h.1.clone())).collect();
        hold_kind(
            &mut keep,
            held_condition(filtered.iter().copied()),
            names,
            entry,
        );
    }
    if let Some(sh) = &others {
        let names = sh
            .hold_ids
            .iter()
            .map(|id| (*id, hold_reason(*id)))
            .collect();
        hold_kind(&mut keep, sh.condition.clone(), names, entry);
    }
    // Rows whose deletion would reach a held row through a cascading
    // foreign key stay.
    if t.action != "anonymise" {
        if let Some(c) = cascade_held(t.target, table, 0) {
            hold_kind(&mut keep, c, Vec::new(), entry);
        }
    }
    if held_total > 0 {
        entry["held"] = json!(held_total);
    }
    // Rows under a statutory minimum are restricted and minimised instead.
    let masking = masking_policy(t, kind_owner);
    if let (Some(_), Some(clock)) = (t.min_retention, &t.clock) {
        // A row whose clock is NULL cannot be shown to be past the minimum:
        // it is retained (and counted), never silently skipped.
        let under = format!(
            "({clock} IS NULL OR {clock} >= pg_catalog.now() - $2::interval)",
            clock = crate::expr::embed(clock)
        );
        let mut under_cond = format!("{cond} AND {under}");
        if !keep.is_empty() {
            under_cond = format!("{under_cond} AND {}", keep.join(" AND "));
        }
        let retained = count_args(table, &under_cond, &args);
        if retained > 0 {
            kept_any = true;
            entry["retained"] = json!(retained);
            entry["retained_ground"] = json!(t.legal_ground);
            if let Some(p) = &masking {
                minimise(p, table, &under_cond, &args);
            }
        }
        keep.push(format!("NOT ({under})"));
    }
    let mut where_ = cond.to_string();
    for k in &keep {
        where_.push_str(" AND ");
        where_.push_str(k);
    }
    match t.action.as_str() {
        "anonymise" => match &masking {
            Some(p) => {
                let n = minimise(p, table, &where_, &args);
                entry["anonymised"] = json!(n);
            }
            None => {
                // The table's masks are gone: nothing can be anonymised, and
                // the request must not claim otherwise.
                entry["not_anonymised"] = json!(count_args(table, cond, &args));
                entry["problem"] = json!("no policy on this table declares masks any more");
                kept_any = true;
            }
        },
        _ => {
            // Rows that kept rows (held, retained) still reference stay:
            // deleting them would fail, or cascade into what must be kept.
            let refs = crate::refs::references(t.target);
            let mut where_ = where_;
            // Every reference counts here, CASCADE and SET NULL included: the
            // subject's own referencing rows were handled before (deepest
            // first), so what still refers to a row is something kept.
            let still_referenced: Vec<String> = refs
                .iter()
                .map(|r| format!("NOT {}", r.exists_sql(table)))
                .collect();
            let unblocked = (!still_referenced.is_empty()).then(|| still_referenced.join(" AND "));
            if let Some(unblocked) = unblocked {
                let referenced =
                    count_args(table, &format!("{where_} AND NOT ({unblocked})"), &args);
                if referenced > 0 {
                    entry["kept_referenced"] = json!(referenced);
                    kept_any = true;
                }
                where_ = format!("{where_} AND {unblocked}");
            }
            let n = Spi::get_one_with_args::<i64>(
                &format!("WITH d AS (DELETE FROM {table} WHERE {where_} RETURNING 1) SELECT count(*) FROM d"),
                &args,
            )
            .or_raise("erasing rows")
            .unwrap_or(0);
            entry["purged"] = json!(n);
            // What the certificate states is checked against the data: the
            // subject's rows are counted again with row security off (where
            // a policy would hide rows from the table's owner, the count
            // fails and the request stays pending). Rows a trigger or a rule
            // kept (a soft delete) are remaining, and the request is then
            // never completed.
            let left =
                crate::gucs::with_local("row_security", "off", || count_args(table, cond, &args));
            let accounted = ["held", "retained", "kept_referenced"]
                .iter()
                .map(|k| entry[*k].as_i64().unwrap_or(0))
                .sum::<i64>();
            if left > accounted {
                entry["remaining"] = json!(left - accounted);
                entry["problem"] = json!(
                    "rows of the subject remain after the DELETE (a trigger, a rule or row security kept them)"
                );
                kept_any = true;
            }
        }
    }
    kept_any
}

/// The reason of a hold, for certificates.
fn hold_reason(id: i64) -> String {
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

/// Applies a policy's masks (and marker) to the rows matching `cond`;
/// returns the number of rows changed. `args` are the erasure's parameters
/// ($1..$5); the masks' own follow from $6.
fn minimise(p: &policy::Policy, table: &str, cond: &str, args: &Args) -> i64 {
    let (sets, params) = crate::stage::mask_plan(p, table, args.len() + 1);
    let mut set_list = Vec::new();
    if !sets.is_empty() {
        set_list.push(sets);
    }
    if let Some(state) = &p.anonymise {
        set_list.push(crate::stage::state_value(state));
    }
    if let Some(state) = &p.mark {
        set_list.push(crate::stage::state_value(state));
    }
    if set_list.is_empty() {
        return 0;
    }
    let rk = mask::random_key();
    let mut all: Args = args.iter().map(clone_arg).collect();
    all.extend(params.iter().map(|x| x.datum(&rk)));
    let sets = set_list.join(", ");
    mask::with_stage_key(crate::stage::needs_pseudonym_key(&sets), || {
        Spi::get_one_with_args::<i64>(
            &format!("WITH u AS (UPDATE {table} SET {sets} WHERE {cond} RETURNING 1) SELECT count(*) FROM u"),
            &all,
        )
        .or_raise("minimising rows")
        .unwrap_or(0)
    })
}

/// A copy of a bind parameter (the datum is shared, not copied: it lives
/// as long as the original).
pub fn clone_arg(a: &pgrx::datum::DatumWithOid<'static>) -> pgrx::datum::DatumWithOid<'static> {
    unsafe { pgrx::datum::DatumWithOid::new_from_datum(a.datum(), a.oid()) }
}

// ---------------------------------------------------------------------------
// Certificates, ledger and replay
// ---------------------------------------------------------------------------

#[pg_extern(name = "_erasure_certificate")]
fn erasure_certificate(request: i64) -> JsonB {
    security::require_reader("read erasure certificates");
    let row = security::as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>(
            "SELECT jsonb_build_object(
                 'request', id, 'reference', reference, 'kind', kind, 'subject_blind_index', subject_blind,
                 'status', status, 'received_at', received_at, 'due_at', due_at, 'extended_months', extended_months,
                 'completed_at', completed_at, 'on_time', completed_at <= due_at, 'refusal_ground', refusal_ground,
                 'tables', coalesce(result, '[]'::jsonb), 'audit_hash', audit_hash)
               FROM retention.erasure_requests WHERE id = $1",
            &[request.into()],
        )
        // No such request: no row (an error is raised below).
        .ok()
        .flatten()
    });
    let Some(mut cert) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("erasure request {request} does not exist"),
            "SELECT id, status FROM retention.requests lists the requests.",
        )
    };
    // Whether the chain is intact up to the entry recorded at completion.
    let verified = Spi::get_one::<bool>("SELECT ok FROM retention._verify_audit()")
        .ok()
        .flatten()
        .unwrap_or(false);
    if let Value::Object(m) = &mut cert.0 {
        m.insert("audit_chain_verified".into(), json!(verified));
        // The entry written at completion must still be in the chain.
        let found = security::as_extension_owner(|| {
            Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM retention.audit_log a JOIN retention.erasure_requests r ON r.audit_hash = a.hash
                                 WHERE r.id = $1 AND a.event = 'erasure completed' AND (a.details ->> 'request')::bigint = r.id)",
                &[request.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false)
        });
        m.insert("audit_entry_found".into(), json!(found));
        // Everything the certificate states must be what the audit chain
        // recorded: receipt and due dates, extensions, the outcome and each
        // table's counts. An edit of the request row shows here.
        let matches = security::as_extension_owner(|| {
            Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM retention.audit_log a
                                 WHERE a.event = 'erasure requested' AND (a.details ->> 'request')::bigint = r.id
                                   AND a.details ->> 'received_at' = r.received_at::text)
                    AND coalesce((SELECT a.details ->> 'due_at' FROM retention.audit_log a
                                   WHERE a.event IN ('erasure requested', 'erasure request extended')
                                     AND (a.details ->> 'request')::bigint = r.id
                                   ORDER BY a.id DESC LIMIT 1) = r.due_at::text, false)
                    AND CASE r.status
                        WHEN 'received' THEN true
                        WHEN 'refused' THEN EXISTS (
                            SELECT 1 FROM retention.audit_log a
                             WHERE a.event = 'erasure request refused' AND (a.details ->> 'request')::bigint = r.id
                               AND a.details ->> 'completed_at' = r.completed_at::text)
                        ELSE EXISTS (
                            SELECT 1 FROM retention.audit_log a
                             WHERE a.event = 'erasure completed' AND (a.details ->> 'request')::bigint = r.id
                               AND a.hash = r.audit_hash AND a.details ->> 'status' = r.status
                               AND a.details -> 'result' = r.result
                               AND a.details ->> 'completed_at' = r.completed_at::text)
                        END
                   FROM retention.erasure_requests r WHERE r.id = $1",
                &[request.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false)
        });
        m.insert("audit_record_matches".into(), json!(matches));
        m.insert(
            "issued_at".into(),
            json!(Spi::get_one::<String>("SELECT pg_catalog.now()::text")
                .ok()
                .flatten()),
        );
    }
    cert
}

#[pg_extern(name = "_erasure_ledger")]
fn erasure_ledger(since: Option<TimestampWithTimeZone>) -> JsonB {
    security::require_reader("read the erasure ledger");
    let anchor = crate::audit::audit_anchor().0;
    let ledger = security::as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>(
            "SELECT coalesce(jsonb_agg(jsonb_build_object('request', id, 'kind', kind, 'subject', subject_blind,
                                                        'completed_at', completed_at) ORDER BY id), '[]'::jsonb)
               FROM retention.erasure_requests
              WHERE status IN ('completed', 'partially completed') AND ($1::timestamptz IS NULL OR completed_at >= $1)",
            &[since.into()],
        )
        .or_raise("reading the ledger")
        .unwrap_or(JsonB(json!([])))
    });
    // The chain's anchor travels with the ledger, kept outside the
    // database: verify_audit(anchor) then finds a truncated chain.
    let mut items = match ledger.0 {
        Value::Array(v) => v,
        _ => Vec::new(),
    };
    items.push(json!({"audit_anchor": anchor}));
    JsonB(Value::Array(items))
}

#[pg_extern(name = "_reapply_erasures")]
#[allow(clippy::type_complexity)]
fn reapply_erasures(
    since: Option<TimestampWithTimeZone>,
    ledger: Option<JsonB>,
) -> TableIterator<
    'static,
    (
        name!(kind, String),
        name!(subject_blind_index, String),
        name!(request, Option<i64>),
        name!(status, String),
    ),
> {
    security::require_admin("re-apply erasures");
    let ledger = ledger.unwrap_or_else(|| erasure_ledger(since)).0;
    let mut wanted: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if let Value::Array(items) = &ledger {
        for it in items {
            if let (Some(k), Some(s)) = (
                it.get("kind").and_then(|v| v.as_str()),
                it.get("subject").and_then(|v| v.as_str()),
            ) {
                wanted.entry(k.to_string()).or_default().push(s.to_string());
            }
        }
    } else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the ledger must be a JSON array",
            "Pass the value of retention.erasure_ledger().",
        )
    }
    let mut out = Vec::new();
    for (kind, blinds) in wanted {
        let k = load_kind(&kind);
        let root = ident::relation(k.root).unwrap_or_default();
        // Which root rows are these subjects? Compare blind indexes; the
        // ledger never held an id.
        let key = blind_key();
        security::require_kind_entitlement(&kind, k.owner, k.root, "re-apply erasures");
        let ids: Vec<String> = security::as_table_owner(k.root, || {
            Spi::connect(|c| {
                c.select(
                    &format!("SELECT {}::text FROM {root}", ident::quote(&k.id_column)),
                    None,
                    &[],
                )
                .or_raise("reading subjects")
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect()
            })
        });
        let mut found = std::collections::BTreeSet::new();
        for id in ids {
            let b = mask::hmac_hex(&format!("{kind}\u{1f}{id}"), &key);
            if blinds.contains(&b) && found.insert(b.clone()) {
                let now = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.now()")
                    .ok()
                    .flatten();
                let Some(now) = now else { continue };
                let req = file_request(&kind, &id, Some("re-applied from the erasure ledger"), now);
                let status = erase_subject(req);
                out.push((kind.clone(), b, Some(req), status));
            }
        }
        for b in blinds {
            if !found.contains(&b) {
                out.push((kind.clone(), b, None, "not present".to_string()));
            }
        }
    }
    audit::append(
        "erasures re-applied",
        json!({"subjects": out.iter().filter(|o| o.2.is_some()).count()}),
    );
    TableIterator::new(out)
}

/// The request an application's trigger files (see
/// `triggers::request_erasure_trigger`); a pending request for the same
/// subject is not repeated. The role whose change fired the trigger must be
/// entitled to the kind's subjects.
pub fn request_from_trigger(kind: &str, subject_id: Option<&str>, table: &str) -> Option<i64> {
    let subject_id = subject_id?;
    // The firing role need not read the extension's tables.
    let k = security::as_extension_owner(|| load_kind(kind));
    security::require_kind_entitlement(kind, k.owner, k.root, "file erasure requests");
    let b = blind(kind, subject_id);
    let pending = security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM retention.erasure_requests WHERE kind = $1 AND subject_blind = $2 AND status = 'received')",
            &[kind.into(), b.as_str().into()],
        )
        .or_raise("reading requests")
        .unwrap_or(false)
    });
    if pending {
        return None;
    }
    let now = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.now()")
        .ok()
        .flatten()?;
    Some(file_request(
        kind,
        subject_id,
        Some(&format!("filed by a trigger on {table}")),
        now,
    ))
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
        assert!(!hold.condition.contains("mask_hmac"), "{}", hold.condition);
        assert!(!hold.condition.contains("$3"), "{}", hold.condition);
        let args = hold_args(-1, Some(&hold));
        // No key travels as a parameter: every bytea parameter is NULL.
        for a in &args {
            assert!(
                a.oid() != pg_sys::BYTEAOID || a.datum().is_none(),
                "a bytea parameter is bound"
            );
        }
        // The held subject's id is what the statement compares with.
        let mut all = vec![
            pgrx::datum::DatumWithOid::null::<pgrx::datum::TimestampWithTimeZone>(),
            pgrx::datum::DatumWithOid::null::<i64>(),
        ];
        all.extend(args);
        let n: i64 = Spi::get_one_with_args(
            &format!(
                "SELECT count(*) FROM public.sk_people WHERE {} AND $1 IS NULL AND $2 IS NULL AND $3 IS NULL AND $5 IS NULL",
                hold.condition
            ),
            &all,
        )
        .unwrap()
        .unwrap();
        assert_eq!(n, 1);
    }
}
