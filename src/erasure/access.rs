//! Access and portability (GDPR Art. 15 and 20): one subject's data from
//! every table of its kind's map, as one JSON document, with what the
//! subject is entitled to know about each table (purposes, legal bases,
//! retention periods, statutory minimums, holds).
//!
//! Invariants: the export is produced once, when the request is delivered,
//! and returned to the caller; it is never stored, logged or sent anywhere
//! else. The request keeps, and the audit log records, the number of rows
//! delivered per table under the subject's blind index. Rows are read as
//! each table's owner, and only where both the kind's owner and the
//! calling role may read the table and every table on its way to the root,
//! the caller without row security hiding rows from it: an access request
//! gives nobody rows they could not select themselves.

use super::proof::record_matches;
use super::requests::{load_request_locking, writing_requests, ACCESS};
use crate::audit;
use crate::error::{raise, OrRaise};
use crate::model::hold;
use crate::model::subject::{
    id_type, subject_condition, LinkKind, RootMatch, SubjectMap, SubjectTable,
};
use crate::pg::ident;
use crate::pg::params::Params;
use crate::pg::security;
use pgrx::datum::JsonB;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::{json, Value};

/// What the policies on a table declare, for the data subject: purposes,
/// legal bases, stages and statutory minimums; the columns the anonymise
/// stage masks; the holds on the table. Periods as ISO 8601 durations.
const TABLE_FACTS: &str = "
SELECT pg_catalog.jsonb_build_object(
    'policies', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'policy', p.name, 'purpose', p.purpose, 'legal_basis', p.legal_basis, 'period_runs_from', p.clock,
            'restricted_after', p.mark_after::text, 'anonymised_after', p.anonymise_after::text,
            'deleted_after', p.purge_after::text,
            'statutory_minimum', CASE WHEN p.min_retention IS NOT NULL THEN pg_catalog.jsonb_build_object(
                'period', p.min_retention::text, 'ground', p.min_retention_ground) END)) ORDER BY p.name)
          FROM retention.policies p WHERE p.target = $1), '[]'::jsonb),
    'masked_columns', coalesce((SELECT pg_catalog.jsonb_object_agg(m.column_name, m.strategy)
          FROM retention.masks m JOIN retention.policies p ON p.id = m.policy_id
         WHERE p.target = $1 AND p.anonymise_after IS NOT NULL), '{}'::jsonb),
    'table_holds', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
            'reason', h.reason, 'until', h.until, 'rows', CASE WHEN h.filter IS NULL THEN 'all' ELSE 'some' END) ORDER BY h.id)
          FROM retention.holds h
         WHERE h.target = $1 AND h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now())), '[]'::jsonb))";

/// The state columns of the policies on a table: (marker columns,
/// anonymised columns).
fn state_columns(target: pg_sys::Oid) -> (Vec<String>, Vec<String>) {
    Spi::connect(|c| {
        let mut marks = Vec::new();
        let mut anons = Vec::new();
        for r in c
            .select(
                "SELECT marker_column, anonymised_column FROM retention.policies WHERE target = $1 ORDER BY id",
                None,
                &[target.into()],
            )
            .or_raise("reading the policies' state columns")
        {
            if let Ok(Some(m)) = r.get::<String>(1) {
                marks.push(m);
            }
            if let Ok(Some(a)) = r.get::<String>(2) {
                anons.push(a);
            }
        }
        (marks, anons)
    })
}

/// `true` when any of `columns` of row `s` records its stage (a time, or
/// true).
fn any_set(columns: &[String]) -> String {
    if columns.is_empty() {
        return "false".into();
    }
    columns
        .iter()
        .map(|c| format!("coalesce(s.{}::text, 'false') <> 'false'", ident::quote(c)))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// One table's part of the export: its facts and the subject's rows.
fn table_part(map: &SubjectMap, t: &SubjectTable, subject: &str, ty: &str, table: &str) -> Value {
    let k = &map.kind;
    let facts = security::as_extension_owner(|| {
        crate::gucs::with_local("IntervalStyle", "iso_8601", || {
            Spi::get_one_with_args::<JsonB>(TABLE_FACTS, &[t.target.into()])
                .or_raise("reading what the policies declare")
        })
    })
    .map(|j| j.0)
    .unwrap_or_else(|| json!({}));
    let mut entry = json!({"table": table, "link": t.link.as_str(), "path": t.path});
    if let (Value::Object(e), Value::Object(f)) = (&mut entry, facts) {
        e.extend(f);
    }
    entry["on_erasure"] = json!({
        "action": t.action.as_str(),
        "statutory_minimum": t.min_retention.map(|m| json!({
            "period": crate::policy::iso_period(m), "ground": t.legal_ground, "period_runs_from": t.clock,
        })),
    });
    // The rows are read as the table's owner, through the tables on the
    // way to the root: the kind's owner and the caller must both be able
    // to read each of them, the caller without row security hiding rows
    // from it (the owner would see them).
    let mut on_the_way = vec![t.target];
    let mut next: Vec<pg_sys::Oid> = t.paths().iter().map(|p| p.parent).collect();
    while let Some(p) = next.pop() {
        if on_the_way.contains(&p) || on_the_way.len() > 64 {
            continue;
        }
        on_the_way.push(p);
        if let Some(pt) = map.table(p) {
            next.extend(pt.paths().iter().map(|x| x.parent));
        }
    }
    // A value-linked table on the way is found through the root table.
    let through_values = on_the_way
        .iter()
        .any(|o| map.table(*o).is_some_and(|x| x.link == LinkKind::Value));
    if through_values && !on_the_way.contains(&k.root) {
        on_the_way.push(k.root);
    }
    let me = security::current_role();
    let problem = on_the_way.iter().find_map(|rel| {
        let name = ident::relation(*rel).unwrap_or_default();
        security::missing_privilege(k.owner, *rel, &["SELECT"])
            .map(|_| format!("{} lacks SELECT on {name}", security::role_name(k.owner)))
            .or_else(|| {
                security::cannot_read_as_owner(me, *rel)
                    .map(|why| format!("{} {why} {name}", security::role_name(me)))
            })
    });
    if let Some(p) = problem {
        entry["problem"] = json!(format!("{p}: this table's rows are not in this export"));
        entry["rows"] = json!([]);
        entry["row_count"] = Value::Null;
        return entry;
    }
    let (marks, anons) = state_columns(t.target);
    let mut params = Params::new();
    let id = params.bind(subject.to_string());
    let cond = subject_condition(map, t, &RootMatch::Subject { ty, id });
    let sql = format!(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                    'values', pg_catalog.to_jsonb(s), 'restricted', {}, 'anonymised', {})), '[]'::jsonb),
                pg_catalog.count(*)
           FROM (SELECT * FROM {table} WHERE {cond}) s",
        any_set(&marks),
        any_set(&anons),
    );
    let (rows, count) = crate::error::sanitizing(table, || {
        security::as_table_owner(t.target, || {
            Spi::get_two_with_args::<JsonB, i64>(&sql, params.args())
                .or_raise("reading the subject's rows")
        })
    });
    entry["rows"] = rows.map(|j| j.0).unwrap_or_else(|| json!([]));
    entry["row_count"] = json!(count.unwrap_or(0));
    entry
}

/// Produces the export of an access request and records its delivery: the
/// request is completed (the subject id forgotten) and the audit log
/// records the rows delivered per table. Returned once.
#[pg_extern(name = "_deliver_access")]
fn deliver_access(request: i64) -> JsonB {
    security::require_admin("deliver access requests");
    let r = load_request_locking(request, true);
    if r.request_type != ACCESS {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "request {request} is an {} request, not an access request",
                r.request_type
            ),
            "Erasure requests are processed by CALL retention.process_erasures().",
        )
    }
    let Some(subject) = r.subject_id.clone().filter(|_| r.status == "received") else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("access request {request} is already {}", r.status),
            "The export is produced once, for the requester, and not kept; a new copy needs a new request (retention.request_access).",
        )
    };
    let map = SubjectMap::load(&r.kind);
    let k = &map.kind;
    security::require_kind_entitlement(&r.kind, k.owner, k.root, "deliver access requests");
    let ty = id_type(k);
    let mut tables = Vec::new();
    let mut partial = false;
    let mut ordered: Vec<&SubjectTable> = map.tables.iter().collect();
    ordered.sort_by_key(|t| t.depth);
    for t in ordered {
        let Some(table) = ident::relation(t.target) else {
            continue;
        };
        let entry = table_part(&map, t, &subject, &ty, &table);
        partial |= entry.get("problem").is_some();
        tables.push(entry);
    }
    let holds: Vec<Value> = hold::subject_holds(&r.kind, &r.subject_blind)
        .into_iter()
        .map(|(_, reason)| json!({"reason": reason}))
        .collect();
    let status = if partial {
        "partially completed"
    } else {
        "completed"
    };
    let summary: Vec<Value> = tables
        .iter()
        .map(|e| {
            let mut s = json!({"table": e["table"], "rows": e["row_count"]});
            if let Some(p) = e.get("problem") {
                s["problem"] = p.clone();
            }
            s
        })
        .collect();
    let completed_at = security::as_extension_owner(|| {
        Spi::get_one::<String>("SELECT pg_catalog.now()::text").or_raise("reading the time")
    });
    let hash = audit::append(
        "access delivered",
        json!({"request": request, "kind": r.kind, "subject": r.subject_blind, "status": status,
               "result": summary, "completed_at": completed_at}),
    );
    // The request's reference and dates, as JSON (ISO 8601 times).
    let dates = writing_requests(|| {
        security::as_extension_owner(|| {
            Spi::get_one_with_args::<JsonB>(
                "UPDATE retention.erasure_requests
                    SET status = $2, subject_id = NULL, completed_at = pg_catalog.now(), result = $3, audit_hash = $4
                  WHERE id = $1 AND status = 'received'
              RETURNING pg_catalog.jsonb_build_object('reference', reference, 'received_at', received_at,
                                                      'due_at', due_at, 'produced_at', completed_at)",
                &[r.id.into(), status.into(), JsonB(Value::Array(summary)).into(), hash.as_str().into()],
            )
            .or_raise("closing the request")
        })
    });
    let mut doc = json!({
        "format": "pg_retention access export",
        "version": 1,
        "request": request,
        "kind": r.kind,
        "subject_id": subject,
        "status": status,
        "holds_on_this_subject": holds,
        "tables": tables,
    });
    if let (Value::Object(d), Some(JsonB(Value::Object(dates)))) = (&mut doc, dates) {
        d.extend(dates);
    }
    JsonB(doc)
}

/// The proof that an access request was answered, and when: its dates, the
/// rows delivered per table, and whether all of it is what the audit chain
/// recorded.
#[pg_extern(name = "_access_certificate")]
fn access_certificate(request: i64) -> JsonB {
    security::require_reader("read access certificates");
    let row = security::as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>(
            "SELECT jsonb_build_object(
                 'request', id, 'reference', reference, 'kind', kind, 'subject_blind_index', subject_blind,
                 'status', status, 'received_at', received_at, 'due_at', due_at, 'extended_months', extended_months,
                 'delivered_at', CASE WHEN status IN ('completed', 'partially completed') THEN completed_at END,
                 'answered_at', completed_at, 'on_time', completed_at <= due_at, 'refusal_ground', refusal_ground,
                 'tables', coalesce(result, '[]'::jsonb), 'audit_hash', audit_hash)
               FROM retention.erasure_requests WHERE id = $1 AND request_type = 'access'",
            &[request.into()],
        )
        .ok()
        .flatten()
    });
    let Some(mut cert) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("access request {request} does not exist"),
            "SELECT id, request_type, status FROM retention.requests lists the requests; an erasure request's proof is retention.erasure_certificate(request).",
        )
    };
    let verified = Spi::get_one::<bool>("SELECT ok FROM retention._verify_audit()")
        .ok()
        .flatten()
        .unwrap_or(false);
    // Receipt and due dates, extensions, the outcome and each table's count
    // must be what the audit chain recorded.
    let matches = record_matches(request, "access", "access delivered");
    if let Value::Object(m) = &mut cert.0 {
        m.insert("audit_chain_verified".into(), json!(verified));
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
