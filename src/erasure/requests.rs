//! Requests of data subjects: erasure (Art. 17) and access (Art. 15, 20).
//! Filing, deadlines, extensions and refusals, the same for both.
//!
//! Invariant: a request row changes only through these functions (the guard
//! trigger refuses every other change while `retention.request_write` is
//! off), and every change is in the audit chain.

use crate::audit;
use crate::error::{raise, OrRaise};
use crate::model::subject::{blind, id_type, load_kind, Kind};
use crate::pg::security;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::json;

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
    check_received_at(received_at);
    file_request(kind, subject_id, reference, received_at, ERASURE)
}

/// Refuses a receipt time more than five minutes in the future: the
/// deadline runs from it.
fn check_received_at(received_at: TimestampWithTimeZone) {
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
}

/// The request type of erasure requests, and of access requests.
pub const ERASURE: &str = "erasure";
pub const ACCESS: &str = "access";

#[pg_extern(name = "_request_access")]
fn request_access(
    kind: &str,
    subject_id: &str,
    reference: Option<&str>,
    received_at: TimestampWithTimeZone,
) -> i64 {
    security::require_admin("file access requests");
    let k = load_kind(kind);
    security::require_kind_entitlement(kind, k.owner, k.root, "file access requests");
    check_received_at(received_at);
    file_request(kind, subject_id, reference, received_at, ACCESS)
}

/// Refuses a subject id that is not exactly the text form of a value of the
/// id column's type ('042' for an integer id, ' 42', an upper-case uuid):
/// blind indexes and matching both rely on that one form.
pub fn check_canonical_id(k: &Kind, subject_id: &str) {
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
    let canonical = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
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

pub(super) fn file_request(
    kind: &str,
    subject_id: &str,
    reference: Option<&str>,
    received_at: TimestampWithTimeZone,
    request_type: &str,
) -> i64 {
    let k = security::as_extension_owner(|| load_kind(kind));
    check_canonical_id(&k, subject_id);
    let b = blind(kind, subject_id);
    // Dates as text under the pinned settings: the audit entry records
    // exactly what the request row holds, for the certificate to compare.
    let (id, received, due) = security::as_extension_owner(|| {
        Spi::get_three_with_args::<i64, String, String>(
            "INSERT INTO retention.erasure_requests (kind, subject_id, subject_blind, reference, received_at, due_at, request_type)
             VALUES ($1, $2, $3, $4, $5, $5 + interval '1 month', $6) RETURNING id, received_at::text, due_at::text",
            &[kind.into(), subject_id.into(), b.as_str().into(), reference.into(), received_at.into(), request_type.into()],
        )
        .or_raise("storing the request")
    });
    let id = id.unwrap_or_default();
    audit::append(
        &format!("{request_type} requested"),
        json!({"request": id, "kind": kind, "subject": b, "received_at": received, "due_at": due}),
    );
    id
}

pub(super) struct Request {
    pub id: i64,
    pub kind: String,
    pub subject_id: Option<String>,
    pub subject_blind: String,
    pub status: String,
    /// `erasure` or `access`.
    pub request_type: String,
}

fn load_request(id: i64) -> Request {
    load_request_locking(id, false)
}

/// Runs `f`, which changes erasure requests, with the setting that their
/// guard trigger lets through (see sql/schema.sql).
pub(super) fn writing_requests<R>(f: impl FnOnce() -> R) -> R {
    security::with_settings_as(
        pg_sys::GucContext::PGC_INTERNAL,
        &[("retention.request_write", "on")],
        f,
    )
}

/// The request; with `lock`, its row is locked first (FOR UPDATE), so that
/// a second session processing the same request waits, then sees the
/// request's final state and leaves it alone.
pub(super) fn load_request_locking(id: i64, lock: bool) -> Request {
    let sql = if lock {
        "SELECT id, kind, subject_id, subject_blind, status, request_type FROM retention.erasure_requests WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, kind, subject_id, subject_blind, status, request_type FROM retention.erasure_requests WHERE id = $1"
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
                        request_type: r.get::<String>(6).or_raise(e).unwrap_or_default(),
                    }
                })
        })
    });
    r.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("request {id} does not exist"),
            "SELECT id, request_type, status FROM retention.requests lists the requests.",
        )
    })
}

#[pg_extern(name = "_extend_request")]
fn extend_request(id: i64, months: i32, reason: &str) -> TimestampWithTimeZone {
    security::require_admin("extend requests");
    let r = load_request(id);
    let k = load_kind(&r.kind);
    security::require_kind_entitlement(&r.kind, k.owner, k.root, "extend requests");
    let what = r.request_type.as_str();
    if r.status != "received" {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} request {id} is {} and cannot be extended", r.status),
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
            format!("{what} request {id} cannot be extended by {months} months"),
            "GDPR Art. 12(3): at most two further months in all, decided within the first month after receipt.",
        )
    };
    audit::append(
        &format!("{what} request extended"),
        json!({"request": id, "months": months, "due_at": due_text}),
    );
    due
}

/// Grounds on which an access request may be refused.
const ACCESS_GROUNDS: [(&str, &str); 2] = [
    ("12(5)", "manifestly unfounded or excessive request"),
    (
        "15(4)",
        "the copy would adversely affect the rights and freedoms of others",
    ),
];

/// Grounds on which an erasure request may be refused.
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
    security::require_admin("refuse requests");
    let r = load_request(id);
    let k = load_kind(&r.kind);
    security::require_kind_entitlement(&r.kind, k.owner, k.root, "refuse requests");
    let what = r.request_type.as_str();
    if r.status != "received" {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} request {id} is already {}", r.status),
            "Only pending requests can be refused.",
        )
    }
    let g = ground
        .trim()
        .trim_start_matches("Art.")
        .trim()
        .trim_start_matches("GDPR")
        .trim();
    let grounds: &[(&str, &str)] = if what == ACCESS {
        &ACCESS_GROUNDS
    } else {
        &GROUNDS
    };
    let Some((code, text)) = grounds
        .iter()
        .find(|(c, _)| g == *c || g == format!("Art. {c}"))
    else {
        if what == ACCESS {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "a refusal of an access request needs a ground of GDPR Art. 12(5) or 15(4)",
                "'12(5)' for a manifestly unfounded or excessive request, '15(4)' where a copy would affect the rights of others.",
            )
        }
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
        &format!("{what} request refused"),
        json!({"request": id, "ground": code, "completed_at": completed}),
    );
    label
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
            "SELECT EXISTS (SELECT 1 FROM retention.erasure_requests
                             WHERE kind = $1 AND subject_blind = $2 AND status = 'received' AND request_type = 'erasure')",
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
        ERASURE,
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// A kind of its own for each test (tests run side by side).
    fn setup(kind: &str) {
        Spi::run(&format!(
            "CREATE TABLE public.{kind}_people (id int PRIMARY KEY);
             SELECT retention.register_subject('{kind}', 'public.{kind}_people', 'id');"
        ))
        .unwrap();
    }

    /// A request is due one month after receipt, an extension adds at most
    /// two months, and neither the request log nor the audit chain holds
    /// the subject's id.
    #[pg_test]
    fn a_request_is_due_a_month_after_receipt_and_its_id_stays_out_of_the_logs() {
        setup("rq_a");
        // Through SQL, as callers do: a statement of its own sees the table
        // created above (a direct call would read the test's snapshot).
        let id = Spi::get_one::<i64>(
            "SELECT retention.request_erasure('rq_a', '424242', 'ticket 9', now() - interval '1 day')",
        )
        .unwrap()
        .unwrap();
        let due_in_a_month = Spi::get_one_with_args::<bool>(
            "SELECT due_at = received_at + interval '1 month' FROM retention.erasure_requests WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(due_in_a_month, Some(true));
        Spi::run_with_args(
            "SELECT retention.extend_request($1, 2, 'many systems involved')",
            &[id.into()],
        )
        .unwrap();
        let extended = Spi::get_one_with_args::<bool>(
            "SELECT due_at = received_at + interval '3 months' AND extended_months = 2
               FROM retention.erasure_requests WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(extended, Some(true));
        let leaks = Spi::get_one::<i64>(
            "SELECT (SELECT count(*) FROM retention.audit_log WHERE details::text LIKE '%424242%')
                  + (SELECT count(*) FROM retention.requests WHERE row_to_json(requests)::text LIKE '%424242%')",
        )
        .unwrap();
        assert_eq!(leaks, Some(0));
    }

    #[pg_test(error = "subject_id is not in the text form of the id column's type (integer)")]
    fn a_subject_id_must_be_in_the_id_types_own_form() {
        setup("rq_b");
        Spi::run("SELECT retention.request_erasure('rq_b', '007')").unwrap();
    }

    /// Two months in all: a third is refused (22023) and changes nothing.
    #[pg_test]
    fn a_request_is_extended_by_two_months_at_most() {
        setup("rq_c");
        let id = Spi::get_one::<i64>("SELECT retention.request_erasure('rq_c', '1')")
            .unwrap()
            .unwrap();
        Spi::run_with_args(
            "SELECT retention.extend_request($1, 2, 'complex')",
            &[id.into()],
        )
        .unwrap();
        Spi::run_with_args("SELECT set_config('rq.id', $1::text, true)", &[id.into()]).unwrap();
        Spi::run(
            "DO $$
             BEGIN
                 PERFORM retention.extend_request(current_setting('rq.id')::bigint, 1, 'more');
                 RAISE EXCEPTION 'a third month was granted';
             EXCEPTION WHEN invalid_parameter_value THEN NULL;
             END $$",
        )
        .unwrap();
        let months = Spi::get_one_with_args::<i32>(
            "SELECT extended_months FROM retention.erasure_requests WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(months, Some(2));
    }
}
