//! Declaring kinds of data subject and the tables of their maps.

use crate::audit;
use crate::error::{raise, OrRaise};
use crate::model::subject::{
    blind_key, load_kind, load_tables, ErasureAction, LinkKind, SubjectMap, SubjectTable,
};
use crate::pg::ident;
use crate::pg::security;
use crate::policy;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::json;

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
        link: LinkKind::Root,
        depth: 0,
        parent: None,
        columns: vec![id_column.to_string()],
        parent_columns: vec![],
        matches: None,
        path: format!("{root_name}.{}", ident::quote(id_column)),
        action: ErasureAction::Purge,
        min_retention: None,
        legal_ground: None,
        clock: None,
        mask_policy: None,
        also: Vec::new(),
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
            for r in crate::model::refs::references(parent) {
                // A foreign key declared on a partition maps the partitioned
                // table it belongs to (its other partitions hold the same
                // data, with or without the key).
                let child = Spi::get_one_with_args::<pg_sys::Oid>(
                    "SELECT coalesce((SELECT a.relid FROM pg_catalog.pg_partition_ancestors($1::regclass) a
                                        JOIN pg_catalog.pg_class c ON c.oid = a.relid
                                       WHERE NOT c.relispartition LIMIT 1), $1::regclass)::oid",
                    &[r.child.as_str().into()],
                )
                .or_raise("resolving a table")
                .unwrap_or(pg_sys::InvalidOid);
                let child_name = ident::relation(child).unwrap_or_else(|| r.child.clone());
                if ancestors.contains(&child) {
                    raise(
                        PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                        format!("cycle in the foreign-key graph of subject kind \"{kind}\": {child_name} references {parent_name} on the path {path}"),
                        "Register the subject without following foreign keys (follow_foreign_keys => false) and add the tables with retention.add_subject_table.",
                    )
                }
                if seen.contains(&child) {
                    // Another partition's key to the same table and columns
                    // is the same link.
                    let same = load_tables(kind).iter().any(|t| {
                        t.target == child
                            && t.parent == Some(parent)
                            && t.columns == r.child_columns
                    });
                    if !same {
                        pgrx::notice!("subject kind \"{kind}\": {child_name} is reached again through {}; its first path is kept", r.constraint);
                    }
                    continue;
                }
                seen.push(child);
                for privilege in ["SELECT", "DELETE"] {
                    policy::check_privilege(
                        child,
                        &child_name,
                        privilege,
                        "to erase subjects from it",
                    );
                }
                let child_path = format!(
                    "{path} <- {child_name}({})",
                    ident::columns(None, &r.child_columns)
                );
                insert_table(
                    kind,
                    &SubjectTable {
                        target: child,
                        link: LinkKind::ForeignKey,
                        depth: depth + 1,
                        parent: Some(parent),
                        columns: r.child_columns.clone(),
                        parent_columns: r.parent_columns.clone(),
                        matches: None,
                        path: child_path.clone(),
                        action: ErasureAction::Purge,
                        min_retention: None,
                        legal_ground: None,
                        clock: None,
                        mask_policy: None,
                        also: Vec::new(),
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
    // Links the foreign keys do not show: say how many, and where to look.
    let more = Spi::get_one_with_args::<i64>(
        "SELECT count(*) FROM retention._link_suggestions($1)",
        &[kind.into()],
    )
    .or_raise("looking for links")
    .unwrap_or(0);
    if more > 0 {
        pgrx::notice!(
            "subject kind \"{kind}\": {more} more places may hold the subject without a foreign key the map follows; review SELECT * FROM retention.link_suggestions('{kind}')"
        );
    }
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
    for privilege in ["SELECT", action.privilege()] {
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
            link: LinkKind::Value,
            depth: 1,
            parent: None,
            columns: vec![column_name.to_string()],
            parent_columns: vec![],
            matches: matches.map(String::from),
            path: format!("{table}.{} = {source}", ident::quote(column_name)),
            action,
            min_retention: None,
            legal_ground: None,
            clock: None,
            mask_policy: None,
            also: Vec::new(),
        },
    );
    audit::append("subject table added", json!({"kind": kind, "table": table}));
    1
}

/// Adds a table whose rows the subject's rows reference and own (a
/// customer's address): found through the foreign key of a mapped table
/// (`via`, or the one mapped table that references it). On erasure such a
/// row is erased once nothing else references it; a row other rows still
/// reference is kept and counted, with the tables referencing it.
#[pg_extern(name = "_add_owned_table")]
fn add_owned_table(kind: &str, target: pg_sys::Oid, via: Option<pg_sys::Oid>, action: &str) -> i32 {
    let k = load_kind(kind);
    security::require_kind_control(kind, k.owner);
    let table = policy::check_target(target);
    let action = check_action(action);
    for privilege in ["SELECT", action.privilege()] {
        policy::check_privilege(target, &table, privilege, "to erase subjects from it");
    }
    let map = SubjectMap::load(kind);
    if map.table(target).is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("{table} is already in the subject map of \"{kind}\""),
            "Change its action with retention.set_subject_table.",
        )
    }
    if let Some(v) = via {
        if map.table(v).is_none() {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "{} is not in the subject map of \"{kind}\"",
                    ident::relation(v).unwrap_or_default()
                ),
                "via names the mapped table whose foreign key references the owned table.",
            )
        }
    }
    // The foreign keys of mapped tables that reference the table.
    let keys: Vec<crate::model::refs::Reference> = crate::model::refs::references(target)
        .into_iter()
        .filter(|r| map.table(r.child_oid).is_some() && via.is_none_or(|v| v == r.child_oid))
        .collect();
    let key = match keys.as_slice() {
        [one] => one,
        [] => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("no table in the subject map of \"{kind}\" references {table} by a foreign key"),
            "An owned table is found through a mapped table's foreign key: map the referencing table first.",
        ),
        _ => raise(
            PgSqlErrorCode::ERRCODE_AMBIGUOUS_PARAMETER,
            format!("several foreign keys of mapped tables reference {table}"),
            "Name the table to follow: add_owned_table(kind, target, via => 'table').",
        ),
    };
    let Some(parent) = map.table(key.child_oid) else {
        return 0;
    };
    insert_table(
        kind,
        &SubjectTable {
            target,
            link: LinkKind::Owned,
            depth: parent.depth + 1,
            parent: Some(parent.target),
            columns: key.parent_columns.clone(),
            parent_columns: key.child_columns.clone(),
            matches: None,
            path: format!(
                "{} → {table} (owned: {}.{} references it)",
                parent.path,
                key.child,
                ident::columns(None, &key.child_columns)
            ),
            action,
            min_retention: None,
            legal_ground: None,
            clock: None,
            mask_policy: None,
            also: Vec::new(),
        },
    );
    audit::append(
        "subject table added",
        json!({"kind": kind, "table": table, "owned": true}),
    );
    1
}

/// Adds a further foreign key from a mapped table to a mapped table (a
/// message's recipient next to its sender): the table's rows reached
/// through it are the subject's too, for erasure, holds and access.
#[pg_extern(name = "_add_subject_path")]
fn add_subject_path(kind: &str, target: pg_sys::Oid, foreign_key: &str) -> i32 {
    let k = load_kind(kind);
    security::require_kind_control(kind, k.owner);
    // One change of the kind's paths at a time: the cycle check below sees
    // every path committed before.
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "SELECT 1 FROM retention.subject_kinds WHERE kind = $1 FOR UPDATE",
            &[kind.into()],
        )
        .or_raise("locking the subject kind")
    });
    let table = policy::check_target(target);
    let map = SubjectMap::load(kind);
    let Some(t) = map.table(target) else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{table} is not in the subject map of \"{kind}\""),
            "A further path is added to a table the map reaches by a foreign key.",
        )
    };
    if t.link != LinkKind::ForeignKey {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "{table} is in the map of \"{kind}\" as {}, not by a foreign key",
                t.link.as_str()
            ),
            "Only a table the map reaches by a foreign key takes further foreign keys.",
        )
    }
    let found = Spi::connect(|c| {
        c.select(
            "SELECT f.confrelid,
                    (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(f.conkey) WITH ORDINALITY k(attnum, i)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum),
                    (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(f.confkey) WITH ORDINALITY k(attnum, i)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum)
               FROM pg_catalog.pg_constraint f
              WHERE f.conrelid = $1 AND f.conname = $2 AND f.contype = 'f'",
            None,
            &[target.into(), foreign_key.into()],
        )
        .or_raise("reading foreign keys")
        .next()
        .and_then(|r| {
            Some((
                r.get::<pg_sys::Oid>(1).ok().flatten()?,
                r.get::<Vec<String>>(2).ok().flatten()?,
                r.get::<Vec<String>>(3).ok().flatten()?,
            ))
        })
    });
    let Some((parent, columns, parent_columns)) = found else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("{table} has no foreign key named \"{foreign_key}\""),
            "SELECT * FROM retention.link_suggestions(kind) names the foreign keys the map does not follow.",
        )
    };
    let parent_name = ident::relation(parent).unwrap_or_default();
    match map.table(parent).map(|p| p.link) {
        None => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{parent_name} is not in the subject map of \"{kind}\""),
            "The foreign key must reference a table of the map: map that table first.",
        ),
        // An owned row may be shared: the rows referencing it are not all
        // the subject's.
        Some(LinkKind::Owned) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{parent_name} is an owned table of the map of \"{kind}\""),
            "A further path leads to a table whose rows are the subject's own: its root, a table reached by a foreign key or a value.",
        ),
        Some(_) => {}
    }
    if t.paths()
        .iter()
        .any(|p| p.parent == parent && p.columns == columns)
    {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!(
                "the map of \"{kind}\" already follows {table} ({})",
                ident::columns(None, &columns)
            ),
            "SELECT * FROM retention.subject_map(kind) shows the paths.",
        )
    }
    // The referenced table must not reach the subject through this table:
    // its rows would be found through their own.
    let mut seen: Vec<pg_sys::Oid> = Vec::new();
    let mut next = vec![parent];
    while let Some(p) = next.pop() {
        if p == target {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                format!("following \"{foreign_key}\" would make {table} a way to itself in the map of \"{kind}\""),
                "A further path must lead towards the root, to a table that does not reach the subject through this one.",
            )
        }
        if seen.contains(&p) || seen.len() > 64 {
            continue;
        }
        seen.push(p);
        if let Some(pt) = map.table(p) {
            next.extend(pt.paths().iter().map(|x| x.parent));
        }
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO retention.subject_paths (kind, target, foreign_key, parent, columns, parent_columns)
             VALUES ($1, $2::oid::regclass, $3, $4::oid::regclass, $5, $6)",
            &[
                kind.into(),
                target.into(),
                foreign_key.into(),
                parent.into(),
                columns.into(),
                parent_columns.into(),
            ],
        )
        .or_raise("storing the subject map")
    });
    audit::append(
        "subject path added",
        json!({"kind": kind, "table": table, "foreign_key": foreign_key, "parent": parent_name}),
    );
    1
}

/// Makes every erasure of `kind` end with a sweep: the subject's
/// identifiers (e-mail address, phone number, IBAN, card number, national
/// id, from the root row) are searched in every text column of every table
/// the kind's owner may read, after the erasure, and the certificate states
/// where they were still found. Returns the setting's previous value.
#[pg_extern(name = "_set_erasure_sweep")]
fn set_erasure_sweep(kind: &str, sweep: bool) -> bool {
    let k = load_kind(kind);
    security::require_kind_control(kind, k.owner);
    if sweep && crate::discover::locate::identifier_columns_of(&k).is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "{} has no column named like an e-mail address, phone number, IBAN, card number or national id",
                ident::relation(k.root).unwrap_or_default()
            ),
            "The sweep searches for the identifiers in the root row's columns named so.",
        )
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.subject_kinds SET sweep = $2 WHERE kind = $1",
            &[kind.into(), sweep.into()],
        )
        .or_raise("changing the subject kind")
    });
    if sweep != k.sweep {
        audit::append("erasure sweep set", json!({"kind": kind, "sweep": sweep}));
    }
    k.sweep
}

fn check_action(action: &str) -> ErasureAction {
    match ErasureAction::parse(action.trim().to_ascii_lowercase().as_str()) {
        Some(a) => a,
        None => raise(
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
pub(super) fn masking_policy(t: &SubjectTable, kind_owner: pg_sys::Oid) -> Option<policy::Policy> {
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
        (None, Some(ErasureAction::Anonymise)) => {
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
                action.map(ErasureAction::as_str).into(),
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
            format!("subject kind \"{kind}\" has {pending} pending requests"),
            "Process the erasure requests (CALL retention.process_erasures()) and deliver the access requests (retention.deliver_access), or refuse them (retention.refuse_request) first.",
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
        // The further foreign keys the map follows to the table.
        let mut path = t.path.clone();
        for p in &t.also {
            path.push_str(&format!(
                "; also {name}({}) -> {} by {}",
                ident::columns(None, &p.columns),
                ident::relation(p.parent).unwrap_or_default(),
                ident::quote(p.foreign_key.as_deref().unwrap_or_default())
            ));
        }
        rows.push((
            name,
            t.link.as_str().to_string(),
            t.depth,
            path,
            t.action.as_str().to_string(),
            t.min_retention,
            t.legal_ground,
            indexed,
            warning,
        ));
    }
    TableIterator::new(rows)
}

/// The names a column holding the subject's id is commonly given: the
/// root table's name in the singular (and as it is) followed by `_id`,
/// `id` or `_<id column>`, and the id column's own name when it is not a
/// bare `id`.
fn id_column_names(root: &str, id_column: &str) -> Vec<String> {
    let root = root.to_lowercase();
    let mut stems = vec![root.clone()];
    if let Some(s) = root.strip_suffix("ies") {
        stems.push(format!("{s}y"));
    } else if let Some(s) = root.strip_suffix('s') {
        stems.push(s.to_string());
    }
    let id = id_column.to_lowercase();
    let mut names = Vec::new();
    for s in &stems {
        names.push(format!("{s}_id"));
        names.push(format!("{s}id"));
        names.push(format!("{s}_{id}"));
    }
    if id != "id" {
        names.push(id);
    }
    names.sort();
    names.dedup();
    names
}

/// Tables that may hold a kind's subjects without being in its map:
/// columns named and typed like the root's id (no foreign key declared),
/// foreign keys declared on the partitions of a partitioned table but not
/// on the table itself, and second foreign keys to a mapped table that the
/// map does not follow. Each comes with the call that maps it, where one
/// does.
#[pg_extern(name = "_link_suggestions")]
#[allow(clippy::type_complexity)]
fn link_suggestions(
    kind: &str,
) -> TableIterator<
    'static,
    (
        name!(target, String),
        name!(column_name, String),
        name!(found_by, String),
        name!(note, String),
        name!(suggestion, Option<String>),
    ),
> {
    security::require_reader("read subject maps");
    let k = load_kind(kind);
    let e = "looking for links";
    let root_name = Spi::get_one_with_args::<String>(
        "SELECT relname::text FROM pg_catalog.pg_class WHERE oid = $1",
        &[k.root.into()],
    )
    .or_raise(e)
    .unwrap_or_default();
    let names = id_column_names(&root_name, &k.id_column);
    let call = |table: &str, column: &str, matches: Option<&str>| {
        let quote = pgrx::spi::quote_literal;
        format!(
            "SELECT retention.add_subject_table({}, {}, {}{});",
            quote(kind),
            quote(table),
            quote(column),
            matches
                .map(|m| format!(", matches => {}", quote(m)))
                .unwrap_or_default()
        )
    };
    let mut rows = Vec::new();
    // Ordinary and partitioned tables outside the system schemas, the
    // extension's own and the partitions (their parent is the table).
    const USER_TABLES: &str = "c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'retention', 'cron')
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";
    // 1. Columns named like the subject's id, of the id's type (integers of
    //    any width count as one type), with no foreign key on them and not
    //    already linking their table in the map.
    let sql = format!(
        "WITH id AS (SELECT a.atttypid AS ty FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2)
         SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname::text
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           CROSS JOIN id
          WHERE {USER_TABLES}
            AND c.oid <> $1
            AND lower(a.attname) = ANY ($3)
            AND (a.atttypid = id.ty OR (a.atttypid IN (21, 23, 20) AND id.ty IN (21, 23, 20)))
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f
                             WHERE f.conrelid = c.oid AND f.contype = 'f' AND a.attnum = ANY (f.conkey))
            AND NOT EXISTS (SELECT 1 FROM retention.subject_tables st
                             WHERE st.kind = $4 AND st.target = c.oid::regclass AND a.attname = ANY (st.columns))
          ORDER BY 1, 2"
    );
    Spi::connect(|c| {
        for r in c
            .select(
                &sql,
                None,
                &[
                    k.root.into(),
                    k.id_column.as_str().into(),
                    names.clone().into(),
                    kind.into(),
                ],
            )
            .or_raise(e)
        {
            let table = r.get::<String>(1).or_raise(e).unwrap_or_default();
            let column = r.get::<String>(2).or_raise(e).unwrap_or_default();
            let note = format!(
                "named and typed like {root_name}.{}, without a foreign key: check that it holds the subject's id",
                ident::quote(&k.id_column)
            );
            let suggestion = Some(call(&table, &column, None));
            rows.push((
                table,
                column,
                "column name and type".to_string(),
                note,
                suggestion,
            ));
        }
    });
    // 2. Foreign keys on partitions, to the root or a mapped table, that
    //    the partitioned table itself does not declare (it is then not in
    //    the map: foreign keys are followed from the tables they are on).
    let sql = format!(
        "SELECT DISTINCT pg_catalog.format('%I.%I', n.nspname, c.relname),
                (SELECT pg_catalog.string_agg(a.attname::text, ', ' ORDER BY k.i)
                   FROM unnest(f.conkey) WITH ORDINALITY k(attnum, i)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum),
                (SELECT pg_catalog.string_agg(a.attname::text, ', ' ORDER BY k.i)
                   FROM unnest(f.confkey) WITH ORDINALITY k(attnum, i)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum),
                f.confrelid = $1, f.confrelid::regclass::text
           FROM pg_catalog.pg_constraint f
           JOIN pg_catalog.pg_inherits i ON i.inhrelid = f.conrelid
           JOIN pg_catalog.pg_class c ON c.oid = i.inhparent
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE f.contype = 'f' AND f.conparentid = 0 AND {USER_TABLES}
            AND (f.confrelid = $1 OR EXISTS (SELECT 1 FROM retention.subject_tables st
                                               WHERE st.kind = $2 AND st.target = f.confrelid::regclass))
            AND NOT EXISTS (SELECT 1 FROM retention.subject_tables st WHERE st.kind = $2 AND st.target = c.oid::regclass)
          ORDER BY 1, 2"
    );
    Spi::connect(|c| {
        for r in c
            .select(&sql, None, &[k.root.into(), kind.into()])
            .or_raise(e)
        {
            let table = r.get::<String>(1).or_raise(e).unwrap_or_default();
            let columns = r.get::<String>(2).or_raise(e).unwrap_or_default();
            let referenced = r.get::<String>(3).or_raise(e).unwrap_or_default();
            let to_root = r.get::<bool>(4).or_raise(e).unwrap_or(false);
            let parent = r.get::<String>(5).or_raise(e).unwrap_or_default();
            let single = !columns.contains(',');
            let (note, suggestion) = if to_root && single && referenced == k.id_column {
                (
                    format!("its partitions reference {parent} ({referenced}); the partitioned table does not"),
                    Some(call(&table, &columns, None)),
                )
            } else if to_root && single {
                (
                    format!("its partitions reference {parent} ({referenced}); the partitioned table does not"),
                    Some(call(&table, &columns, Some(&referenced))),
                )
            } else {
                (
                    format!("its partitions reference {parent} ({referenced}), which is in the map; declare the foreign key on the partitioned table and register the kind again to follow it"),
                    None,
                )
            };
            rows.push((
                table,
                columns,
                "foreign key on partitions".to_string(),
                note,
                suggestion,
            ));
        }
    });
    // A column found both ways is listed once, for its foreign keys.
    let on_partitions: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.2 == "foreign key on partitions")
        .map(|r| (r.0.clone(), r.1.clone()))
        .collect();
    rows.retain(|r| {
        r.2 != "column name and type" || !on_partitions.contains(&(r.0.clone(), r.1.clone()))
    });
    // 3. Tables in the map that a second foreign key links to a mapped
    //    table: the map follows one path per table.
    let map = SubjectMap::load(kind);
    for p in &map.tables {
        let parent = ident::relation(p.target).unwrap_or_default();
        for r in crate::model::refs::references(p.target) {
            let Some(t) = map.table(r.child_oid) else {
                continue;
            };
            if t.link != LinkKind::ForeignKey
                || t.paths()
                    .iter()
                    .any(|x| x.parent == p.target && x.columns == r.child_columns)
            {
                continue;
            }
            rows.push((
                r.child.clone(),
                ident::columns(None, &r.child_columns),
                "second foreign key".to_string(),
                format!(
                    "also references {parent} ({}); the map follows {}: rows linked to the subject only through this key are not erased (with ON DELETE NO ACTION or RESTRICT they keep the referenced row, and the erasure ends partially completed) unless the map follows it too",
                    ident::columns(None, &r.parent_columns),
                    t.path
                ),
                Some(format!(
                    "SELECT retention.add_subject_path({}, {}, {});",
                    pgrx::spi::quote_literal(kind),
                    pgrx::spi::quote_literal(&r.child),
                    pgrx::spi::quote_literal(&r.constraint)
                )),
            ));
        }
    }
    // 4. Tables that mapped tables reference by a foreign key and that are
    //    not in the map: rows the subject may own (an address, a profile).
    for p in &map.tables {
        let Some(via) = ident::relation(p.target) else {
            continue;
        };
        let referenced: Vec<(pg_sys::Oid, String, String)> = Spi::connect(|c| {
            c.select(
                "SELECT f.confrelid, pg_catalog.format('%I.%I', n.nspname, c.relname),
                        (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.i)
                           FROM unnest(f.conkey) WITH ORDINALITY k(attnum, i)
                           JOIN pg_catalog.pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum)
                   FROM pg_catalog.pg_constraint f
                   JOIN pg_catalog.pg_class c ON c.oid = f.confrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE f.conrelid = $1 AND f.contype = 'f' AND f.conparentid = 0
                  ORDER BY 2, 3",
                None,
                &[p.target.into()],
            )
            .or_raise(e)
            .filter_map(|r| {
                Some((
                    r.get::<pg_sys::Oid>(1).ok().flatten()?,
                    r.get::<String>(2).ok().flatten()?,
                    r.get::<String>(3).ok().flatten()?,
                ))
            })
            .collect()
        });
        for (oid, target, columns) in referenced {
            if map.table(oid).is_some() || oid == k.root {
                continue;
            }
            rows.push((
                target.clone(),
                String::new(),
                "referenced by a mapped table".to_string(),
                format!(
                    "{via} ({columns}) references it: if its rows belong to the subject (an address, a profile), map it as owned; erasure then removes such a row once nothing else references it"
                ),
                Some(format!(
                    "SELECT retention.add_owned_table({}, {}, via => {});",
                    pgrx::spi::quote_literal(kind),
                    pgrx::spi::quote_literal(&target),
                    pgrx::spi::quote_literal(&via)
                )),
            ));
        }
    }
    TableIterator::new(rows)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// The map follows foreign keys at any depth, with each table's path.
    #[pg_test]
    fn the_map_follows_foreign_keys_at_any_depth() {
        Spi::run(
            "CREATE TABLE public.s_root (id int PRIMARY KEY, name text);
             CREATE TABLE public.s_child (id int PRIMARY KEY, root_id int REFERENCES public.s_root);
             CREATE TABLE public.s_grandchild (id int PRIMARY KEY, child_id int REFERENCES public.s_child);
             SELECT retention.register_subject('s_kind', 'public.s_root', 'id');",
        )
        .unwrap();
        let mut found: Vec<(String, LinkKind, i32)> = load_tables("s_kind")
            .into_iter()
            .map(|t| {
                (
                    ident::relation(t.target).unwrap_or_default(),
                    t.link,
                    t.depth,
                )
            })
            .collect();
        found.sort_by_key(|f| f.2);
        assert_eq!(
            found,
            [
                ("public.s_root".to_string(), LinkKind::Root, 0),
                ("public.s_child".to_string(), LinkKind::ForeignKey, 1),
                ("public.s_grandchild".to_string(), LinkKind::ForeignKey, 2),
            ]
        );
    }

    /// A value link must name one subject: a root column that is not unique
    /// is refused.
    #[pg_test(error = "column \"name\" of public.s2_root is not unique")]
    fn a_value_link_needs_a_unique_root_column() {
        Spi::run(
            "CREATE TABLE public.s2_root (id int PRIMARY KEY, name text);
             CREATE TABLE public.s2_notes (author text);
             SELECT retention.register_subject('s2_kind', 'public.s2_root', 'id');
             SELECT retention.add_subject_table('s2_kind', 'public.s2_notes', 'author', matches => 'name');",
        )
        .unwrap();
    }
}
