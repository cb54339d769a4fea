//! The proof of erasure: certificates, the ledger and replay after a restore.

use super::erase::erase_subject;
use super::requests::file_request;
use crate::audit;
use crate::error::{raise, OrRaise};
use crate::mask;
use crate::model::subject::{blind_key, load_kind};
use crate::pg::ident;
use crate::pg::security;
use pgrx::datum::{JsonB, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::{json, Value};

/// A yes/no question about request `request`, asked of the extension's own
/// tables as their owner; no answer (no such row) is no.
fn ask(sql: &str, request: i64) -> bool {
    security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(sql, &[request.into()])
            .ok()
            .flatten()
            .unwrap_or(false)
    })
}

/// Whether what the request row states (receipt and due dates,
/// extensions, the outcome with each table's counts and the sweep) is what
/// the audit chain recorded for a request of `request_type` (`erasure`,
/// `access`), whose outcome entry is `completed_event`.
pub(super) fn record_matches(request: i64, request_type: &str, completed_event: &str) -> bool {
    security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM retention.audit_log a
                             WHERE a.event = $2 AND (a.details ->> 'request')::bigint = r.id
                               AND a.details ->> 'received_at' = r.received_at::text)
                AND coalesce((SELECT a.details ->> 'due_at' FROM retention.audit_log a
                               WHERE a.event IN ($2, $3) AND (a.details ->> 'request')::bigint = r.id
                               ORDER BY a.id DESC LIMIT 1) = r.due_at::text, false)
                AND CASE r.status
                    WHEN 'received' THEN true
                    WHEN 'refused' THEN EXISTS (
                        SELECT 1 FROM retention.audit_log a
                         WHERE a.event = $4 AND (a.details ->> 'request')::bigint = r.id
                           AND a.details ->> 'completed_at' = r.completed_at::text)
                    ELSE EXISTS (
                        SELECT 1 FROM retention.audit_log a
                         WHERE a.event = $5 AND (a.details ->> 'request')::bigint = r.id
                           AND a.hash = r.audit_hash AND a.details ->> 'status' = r.status
                           AND a.details -> 'result' = r.result
                           AND (a.details -> 'sweep') IS NOT DISTINCT FROM r.sweep
                           AND a.details ->> 'completed_at' = r.completed_at::text)
                    END
               FROM retention.erasure_requests r WHERE r.id = $1 AND r.request_type = $6",
            &[
                request.into(),
                format!("{request_type} requested").into(),
                format!("{request_type} request extended").into(),
                format!("{request_type} request refused").into(),
                completed_event.into(),
                request_type.into(),
            ],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

#[pg_extern(name = "_erasure_certificate")]
fn erasure_certificate(request: i64) -> JsonB {
    security::require_reader("read erasure certificates");
    let row = security::as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>(
            "SELECT jsonb_build_object(
                 'request', id, 'reference', reference, 'kind', kind, 'subject_blind_index', subject_blind,
                 'status', status, 'received_at', received_at, 'due_at', due_at, 'extended_months', extended_months,
                 'completed_at', completed_at, 'on_time', completed_at <= due_at, 'refusal_ground', refusal_ground,
                 'tables', coalesce(result, '[]'::jsonb), 'sweep', sweep, 'audit_hash', audit_hash)
               FROM retention.erasure_requests WHERE id = $1 AND request_type = 'erasure'",
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
            "SELECT id, request_type, status FROM retention.requests lists the requests; an access request's proof is retention.access_certificate(request).",
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
        let found = ask(
            "SELECT EXISTS (SELECT 1 FROM retention.audit_log a JOIN retention.erasure_requests r ON r.audit_hash = a.hash
                                 WHERE r.id = $1 AND a.event = 'erasure completed' AND (a.details ->> 'request')::bigint = r.id)",
            request,
        );
        m.insert("audit_entry_found".into(), json!(found));
        // Everything the certificate states must be what the audit chain
        // recorded: receipt and due dates, extensions, the outcome and each
        // table's counts. An edit of the request row shows here.
        let matches = record_matches(request, "erasure", "erasure completed");
        // Requests filed before 0.2.0 have audit entries without dates or
        // results: for them, the status and the audit hash at completion
        // are what can be compared.
        let legacy = ask(
            "SELECT NOT EXISTS (SELECT 1 FROM retention.audit_log a
                                     WHERE a.event = 'erasure requested' AND (a.details ->> 'request')::bigint = $1
                                       AND a.details ? 'received_at')",
            request,
        );
        let (matches, compared) = if legacy {
            let m = ask(
                "SELECT CASE r.status
                            WHEN 'received' THEN true
                            WHEN 'refused' THEN EXISTS (
                                SELECT 1 FROM retention.audit_log a
                                 WHERE a.event = 'erasure request refused' AND (a.details ->> 'request')::bigint = r.id)
                            ELSE EXISTS (
                                SELECT 1 FROM retention.audit_log a
                                 WHERE a.event = 'erasure completed' AND (a.details ->> 'request')::bigint = r.id
                                   AND a.hash = r.audit_hash AND a.details ->> 'status' = r.status)
                            END
                       FROM retention.erasure_requests r WHERE r.id = $1",
                request,
            );
            (m, "status and audit hash (filed before 0.2.0, whose audit entries hold no dates or results)")
        } else {
            (matches, "dates, extensions, status, result and audit hash")
        };
        // Whether the erased rows' old versions are gone from the tables'
        // files: a VACUUM must have finished after the erasure. Read from
        // the statistics now (not part of what the audit chain recorded).
        if let (Some(tables), Some(done)) =
            (m.get("tables").cloned(), m.get("completed_at").cloned())
        {
            if !done.is_null() {
                let with_vacuum = Spi::get_one_with_args::<JsonB>(
                    "SELECT coalesce(jsonb_agg(t || CASE
                         WHEN coalesce((t ->> 'purged')::int8, 0) + coalesce((t ->> 'anonymised')::int8, 0) = 0 THEN '{}'::jsonb
                         WHEN v.at > $2::timestamptz THEN jsonb_build_object('vacuumed_at', v.at,
                              'row_versions', 'a VACUUM finished after the erasure: it removed the old versions of the erased rows, unless a transaction that began before the erasure was still open then')
                         ELSE jsonb_build_object('vacuumed_at', NULL,
                              'row_versions', 'no VACUUM has finished since the erasure: old versions of the erased rows may remain in the table''s files until one does')
                         END ORDER BY a.ord), '[]'::jsonb)
                       FROM jsonb_array_elements($1) WITH ORDINALITY a(t, ord)
                       LEFT JOIN LATERAL (SELECT greatest(pg_catalog.pg_stat_get_last_vacuum_time(c.oid),
                                                          pg_catalog.pg_stat_get_last_autovacuum_time(c.oid)) AS at
                                            FROM pg_catalog.pg_class c
                                           WHERE c.oid = pg_catalog.to_regclass(t ->> 'table')) v ON true",
                    &[JsonB(tables).into(), done.as_str().unwrap_or_default().into()],
                )
                .or_raise("reading when the tables were vacuumed");
                if let Some(t) = with_vacuum {
                    m.insert("tables".into(), t.0);
                }
            }
        }
        m.insert("audit_record_matches".into(), json!(matches));
        m.insert("audit_record_compared".into(), json!(compared));
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
              WHERE request_type = 'erasure' AND status IN ('completed', 'partially completed')
                AND ($1::timestamptz IS NULL OR completed_at >= $1)",
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
                let req = file_request(
                    &kind,
                    &id,
                    Some("re-applied from the erasure ledger"),
                    now,
                    super::requests::ERASURE,
                );
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

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// A certificate states what the audit chain recorded: an edit of the
    /// request's stored result shows as a mismatch.
    #[pg_test]
    fn a_certificate_shows_an_edited_request_row() {
        Spi::run(
            "CREATE TABLE public.pf_people (id int PRIMARY KEY);
             INSERT INTO public.pf_people VALUES (1), (2);
             SELECT retention.register_subject('pf_person', 'public.pf_people', 'id');",
        )
        .unwrap();
        let request = Spi::get_one::<i64>("SELECT retention.request_erasure('pf_person', '1')")
            .unwrap()
            .unwrap();
        let status = Spi::get_one_with_args::<String>(
            "SELECT retention._erase_subject($1)",
            &[request.into()],
        )
        .unwrap()
        .unwrap_or_default();
        assert_eq!(status, "completed");
        let cert = erasure_certificate(request).0;
        assert_eq!(cert["status"], "completed", "{cert}");
        assert_eq!(cert["audit_entry_found"], true, "{cert}");
        assert_eq!(cert["audit_record_matches"], true, "{cert}");
        assert_eq!(cert["audit_chain_verified"], true, "{cert}");
        // The guard trigger refuses the edit; a superuser can switch it off.
        Spi::run("ALTER TABLE retention.erasure_requests DISABLE TRIGGER USER").unwrap();
        Spi::run_with_args(
            "UPDATE retention.erasure_requests SET result = '[]' WHERE id = $1",
            &[request.into()],
        )
        .unwrap();
        Spi::run("ALTER TABLE retention.erasure_requests ENABLE TRIGGER USER").unwrap();
        let cert = erasure_certificate(request).0;
        assert_eq!(cert["audit_record_matches"], false, "{cert}");
        // The ledger names the subject by blind index only.
        let ledger = erasure_ledger(None).0.to_string();
        assert!(!ledger.contains("\"subject\":\"1\""), "{ledger}");
    }
}
