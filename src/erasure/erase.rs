//! Erasing one subject across the tables of its kind's map.
//!
//! One request is erased in one transaction, deepest tables first (a table
//! before every table it references), each table as its owner after the
//! kind's owner's privileges were checked. Every row the erasure reaches
//! ends in one counted outcome (see [`erase_table`]); the certificate
//! states those counts, and the rows are counted again afterwards.

use super::requests::{load_request_locking, writing_requests};
use crate::audit;
use crate::error::OrRaise;
use crate::model::hold;
use crate::model::refs;
use crate::model::subject::{
    id_type, subject_condition, ErasureAction, LinkKind, RootMatch, SubjectMap, SubjectTable,
};
use crate::pg::ident;
use crate::pg::params::Params;
use crate::pg::security;
use crate::policy;
use pgrx::datum::JsonB;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// One table's part of an erasure.
#[derive(Clone, Copy)]
struct TableJob<'a> {
    map: &'a SubjectMap,
    t: &'a SubjectTable,
    table: &'a str,
    /// The subject's rows of the table (over the job's parameters).
    cond: &'a str,
    /// Holds on the subject itself, and whole-table holds above the table.
    subject_holds: &'a [(i64, String)],
    request: i64,
}

/// Erases the subject of one request across its tables, in one
/// transaction. Returns the request's new status.
#[pg_extern(name = "_erase_subject")]
pub(super) fn erase_subject(request: i64) -> String {
    security::require_admin("process erasure requests");
    // Overlapping runs (the nightly job and a manual call) process each
    // request once: the second waits for the first and finds it done.
    let r = load_request_locking(request, true);
    if r.request_type != super::requests::ERASURE {
        crate::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "request {request} is an {} request, not an erasure request",
                r.request_type
            ),
            format!("Deliver it with retention.deliver_access({request})."),
        )
    }
    if r.status != "received" {
        return r.status;
    }
    let Some(subject) = r.subject_id.clone() else {
        return r.status;
    };
    let map = SubjectMap::load(&r.kind);
    let k = &map.kind;
    let ty = id_type(k);
    let held_subject = hold::subject_holds(&r.kind, &r.subject_blind);
    // Owned rows are found through the rows that reference them, which are
    // erased first: their keys are read before anything changes.
    let owned = owned_keys(&map, &subject, &ty);
    // The final sweep's identifiers, read before the root row goes.
    let needles = k.sweep.then(|| {
        let cols = crate::discover::locate::identifier_columns_of(k);
        crate::discover::locate::identifiers(k, &cols, &subject)
    });
    let mut results = Vec::new();
    let mut partial = false;
    for t in children_first(&map) {
        let Some(table) = ident::relation(t.target) else {
            continue;
        };
        let mut params = Params::new();
        let id = params.bind(subject.clone());
        let cond = match owned.iter().find(|(o, _)| *o == t.target) {
            Some((_, keys)) => {
                let keys = params.bind(keys.clone());
                owned_condition(t, &table, &keys)
            }
            None => subject_condition(&map, t, &RootMatch::Subject { ty: &ty, id }),
        };
        let mut entry = json!({"table": table, "path": t.path, "action": t.action.as_str(),
                               "purged": 0, "anonymised": 0, "retained": 0, "held": 0});
        // A whole-table hold on a table above this one holds its rows too.
        let mut holds_here = held_subject.clone();
        holds_here.extend(hold::ancestor_table_holds(&map, t));
        // The kind's owner must hold the rights the action needs; the
        // statements then run as the table's owner.
        let needed = ["SELECT", t.action.privilege()];
        if let Some(missing) = security::missing_privilege(k.owner, t.target, &needed) {
            entry["problem"] = json!(format!(
                "the kind's owner {} lacks {missing} on this table",
                security::role_name(k.owner)
            ));
            entry["remaining"] = json!(security::as_table_owner(t.target, || {
                count_args(&table, &cond, &params)
            }));
            partial = true;
            results.push(entry);
            continue;
        }
        let job = TableJob {
            map: &map,
            t,
            table: &table,
            cond: &cond,
            subject_holds: &holds_here,
            request,
        };
        let outcome = crate::error::sanitizing(&table, || {
            security::as_table_owner(t.target, || {
                crate::stage::as_stage(|| erase_table(&job, params, &mut entry))
            })
        });
        partial |= outcome;
        results.push(entry);
    }
    // The final sweep: where the identifiers are still found, in every
    // table the kind's owner may read. Copies outside the map leave the
    // request partially completed.
    let sweep = needles.map(|needles| {
        if needles.is_empty() {
            return json!([{"table": null, "column": null, "rows": null, "in_map": null,
                            "note": "not searched: the subject's root row held no identifier to search for"}]);
        }
        let found = crate::discover::locate::search(k.owner, &needles, &r.kind);
        partial |= found.iter().any(|f| !f.in_map && f.rows.is_some_and(|n| n > 0));
        Value::Array(
            found
                .into_iter()
                .map(|f| {
                    json!({"table": f.table, "column": f.column, "rows": f.rows, "in_map": f.in_map, "note": f.note})
                })
                .collect(),
        )
    });
    // Held subjects' ids found for this request are personal data: dropped.
    hold::forget_held_keys();
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
    // Change-data capture: systems fed from the WAL must erase this subject
    // too; the message names it by blind index, as the audit log does.
    crate::cdc::emit(
        json!({"action": "erasure", "request": request, "kind": r.kind,
                            "subject_blind_index": r.subject_blind, "status": status, "tables": summary}),
    );
    let mut details = json!({"request": request, "kind": r.kind, "subject": r.subject_blind, "status": status,
                             "tables": summary, "result": results, "completed_at": completed_at});
    if let Some(s) = &sweep {
        details["sweep"] = s.clone();
    }
    let hash = audit::append("erasure completed", details);
    writing_requests(|| {
        security::as_extension_owner(|| {
            Spi::run_with_args(
                "UPDATE retention.erasure_requests
                    SET status = $2, subject_id = NULL, completed_at = pg_catalog.now(), result = $3, audit_hash = $4,
                        sweep = $5
                  WHERE id = $1 AND status = 'received'",
                &[r.id.into(), status.into(), JsonB(results).into(), hash.as_str().into(), sweep.map(JsonB).into()],
            )
            .or_raise("closing the request")
        })
    });
    status.to_string()
}

/// The keys (each a JSON array, as text) of the rows of every owned table
/// that the subject's rows reference now, read as the referencing table's
/// owner where the kind's owner may read that table (else none).
fn owned_keys(map: &SubjectMap, subject: &str, ty: &str) -> Vec<(pg_sys::Oid, Vec<String>)> {
    map.tables
        .iter()
        .filter(|t| t.link == LinkKind::Owned)
        .map(|t| {
            let keys = map
                .parent_of(t)
                .filter(|p| security::missing_privilege(map.kind.owner, p.target, &["SELECT"]).is_none())
                .and_then(|p| {
                    let parent = ident::relation(p.target)?;
                    let mut params = Params::new();
                    let id = params.bind(subject.to_string());
                    let cond = subject_condition(map, p, &RootMatch::Subject { ty, id });
                    let sql = format!(
                        "SELECT coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.jsonb_build_array({})::text), '{{}}')
                           FROM {parent} WHERE {cond}",
                        ident::columns(Some(&parent), &t.parent_columns)
                    );
                    security::as_table_owner(p.target, || {
                        Spi::get_one_with_args::<Vec<String>>(&sql, params.args())
                            .or_raise("reading the keys of owned rows")
                    })
                })
                .unwrap_or_default();
            (t.target, keys)
        })
        .collect()
}

/// The rows of owned table `t` whose keys are in `keys` (a text[] of JSON
/// arrays), compared in the key columns' own types.
fn owned_condition(t: &SubjectTable, table: &str, keys: &crate::pg::params::Param) -> String {
    let casts = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "CAST(x.j ->> {i} AS {})",
                crate::model::subject::column_base_type(t.target, c)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "({}) IN (SELECT {casts} FROM pg_catalog.unnest(CAST({keys} AS text[])) AS k(v),
                   LATERAL (SELECT CAST(k.v AS jsonb) AS j) AS x)",
        ident::columns(Some(table), &t.columns)
    )
}

/// The map's tables in erasure order: a table before every table it
/// references (children before parents), whatever their depth; value-linked
/// tables, which find their rows through the root, before the root. Cycles
/// keep the order they had (deepest first).
fn children_first(map: &SubjectMap) -> Vec<&SubjectTable> {
    let tables: Vec<&SubjectTable> = map.tables.iter().collect();
    let values: Vec<usize> = (0..tables.len())
        .filter(|&i| tables[i].link == LinkKind::Value)
        .collect();
    let waits: Vec<(usize, usize)> = (0..tables.len())
        .filter(|&i| tables[i].link == LinkKind::Root)
        .flat_map(|root| values.iter().map(move |&v| (root, v)))
        .collect();
    refs::children_first(tables, |t| t.target, &waits)
}

fn count_args(table: &str, cond: &str, params: &Params) -> i64 {
    Spi::get_one_with_args::<i64>(
        &format!("SELECT count(*) FROM {table} WHERE {cond}"),
        params.args(),
    )
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
fn erase_table(job: &TableJob, mut params: Params, entry: &mut Value) -> bool {
    let TableJob {
        map,
        t,
        table,
        cond,
        subject_holds,
        request,
    } = *job;
    // Holds on subjects of every kind whose map holds this table (the
    // subject of another kind linked to these rows, e.g. a held customer's
    // orders in an erased shop).
    let others = hold::subject_hold(t.target, table);
    let minimum = params.bind(t.min_retention);
    let others_held = others
        .as_ref()
        .map(|sh| sh.keys(-request).bind(&mut params));
    let args = params;
    let total = count_args(table, cond, &args);
    if total == 0 {
        return false;
    }
    // A hold on the subject or on the whole table keeps everything.
    let holds = hold::table_holds(t.target);
    let whole: Vec<&hold::Hold> = holds.iter().filter(|h| h.is_whole()).collect();
    if !subject_holds.is_empty() || !whole.is_empty() {
        let names: Vec<Value> = subject_holds
            .iter()
            .map(|(id, reason)| json!({"hold": id, "reason": reason}))
            .chain(
                whole
                    .iter()
                    .map(|h| json!({"hold": h.id, "reason": h.reason})),
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
    if let Some((below, ids)) = hold::below_held(map, t, 0) {
        hold_kind(&mut keep, below, ids, entry);
    }
    // Rows matching a hold's filter on this table (or on a table above it
    // in the partition tree, or a partition's rows).
    let filtered: Vec<hold::Hold> = holds.iter().filter(|h| !h.is_whole()).cloned().collect();
    if !filtered.is_empty() {
        let names = filtered.iter().map(|h| (h.id, h.reason.clone())).collect();
        hold_kind(&mut keep, hold::held_condition(&filtered), names, entry);
    }
    if let (Some(sh), Some(held)) = (&others, others_held) {
        let names = sh
            .hold_ids
            .iter()
            .map(|id| (*id, hold::hold_reason(*id)))
            .collect();
        hold_kind(&mut keep, held, names, entry);
    }
    // Rows whose deletion would reach a held row through a cascading
    // foreign key stay.
    if t.action != ErasureAction::Anonymise {
        if let Some(c) = hold::cascade_held(t.target, table, 0) {
            hold_kind(&mut keep, c, Vec::new(), entry);
        }
    }
    if held_total > 0 {
        entry["held"] = json!(held_total);
    }
    // Rows under a statutory minimum are restricted and minimised instead.
    let masking = super::subjects::masking_policy(t, map.kind.owner);
    if let (Some(_), Some(clock)) = (t.min_retention, &t.clock) {
        // A row whose clock is NULL cannot be shown to be past the minimum:
        // it is retained (and counted), never silently skipped.
        let under = format!(
            "({clock} IS NULL OR {clock} >= pg_catalog.now() - {minimum}::interval)",
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
    match t.action {
        ErasureAction::Anonymise => match &masking {
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
        ErasureAction::Purge => {
            // Rows that kept rows (held, retained) still reference stay:
            // deleting them would fail, or cascade into what must be kept.
            let refs = refs::references(t.target);
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
                    // Which tables still reference them (for an owned row:
                    // who shares it).
                    let by: Vec<String> = refs
                        .iter()
                        .filter(|r| {
                            count_args(
                                table,
                                &format!("{where_} AND {}", r.exists_sql(table)),
                                &args,
                            ) > 0
                        })
                        .map(|r| r.child.clone())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    entry["referenced_by"] = json!(by);
                    kept_any = true;
                }
                where_ = format!("{where_} AND {unblocked}");
            }
            let n = Spi::get_one_with_args::<i64>(
                &format!("WITH d AS (DELETE FROM {table} WHERE {where_} RETURNING 1) SELECT count(*) FROM d"),
                args.args(),
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

/// Applies a policy's masks (and marker) to the rows matching `cond`;
/// returns the number of rows changed. `args` are the erasure's parameters;
/// the masks' own are bound after them.
fn minimise(p: &policy::Policy, table: &str, cond: &str, args: &Params) -> i64 {
    let mut all = args.share();
    let sets = crate::stage::mask_plan(p, table, &mut all);
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
    let sets = set_list.join(", ");
    let keys = crate::stage::stage_keys(&sets, crate::pg::secrets::random_key);
    crate::mask::with_stage_key(keys, || {
        Spi::get_one_with_args::<i64>(
            &format!("WITH u AS (UPDATE {table} SET {sets} WHERE {cond} RETURNING 1) SELECT count(*) FROM u"),
            all.args(),
        )
        .or_raise("minimising rows")
        .unwrap_or(0)
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// Customers with orders (one under a filtered hold), invoices under a
    /// ten-year minimum and a newsletter linked by e-mail.
    fn shop() {
        Spi::run(
            "CREATE TABLE public.e_customers (id int PRIMARY KEY, email text UNIQUE NOT NULL);
             CREATE TABLE public.e_orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.e_customers,
                                           disputed boolean NOT NULL DEFAULT false);
             CREATE TABLE public.e_invoices (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.e_customers,
                                             issued timestamptz NOT NULL);
             CREATE TABLE public.e_newsletter (email text NOT NULL);
             INSERT INTO public.e_customers VALUES (1, 'a@example.org'), (2, 'b@example.org');
             INSERT INTO public.e_orders VALUES (10, 1, false), (11, 1, true), (12, 2, false);
             INSERT INTO public.e_invoices VALUES (20, 1, now() - interval '20 years'),
                                                  (21, 1, now() - interval '1 year'), (22, 2, now());
             INSERT INTO public.e_newsletter VALUES ('a@example.org'), ('b@example.org');
             SELECT retention.register_subject('e_customer', 'public.e_customers', 'id');
             SELECT retention.add_subject_table('e_customer', 'public.e_newsletter', 'email', matches => 'email');
             SELECT retention.set_subject_table('e_customer', 'public.e_invoices', min_retention => '10 years',
                                                legal_ground => 'HGB 257', clock => 'issued');
             SELECT retention.place_hold('dispute', target => 'public.e_orders', filter => 'disputed');",
        )
        .unwrap();
    }

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap_or(-1)
    }

    /// Referencing tables before the tables they reference, value-linked
    /// tables before the root.
    #[pg_test]
    fn the_map_is_erased_children_first_and_value_links_before_the_root() {
        shop();
        let map = SubjectMap::load("e_customer");
        let order: Vec<String> = children_first(&map)
            .iter()
            .map(|t| ident::relation(t.target).unwrap_or_default())
            .collect();
        let pos = |name: &str| order.iter().position(|n| n == name).expect(name);
        let root = pos("public.e_customers");
        assert_eq!(root, order.len() - 1, "{order:?}");
        for t in [
            "public.e_orders",
            "public.e_invoices",
            "public.e_newsletter",
        ] {
            assert!(pos(t) < root, "{order:?}");
        }
    }

    /// Every row of the subject ends in one counted outcome, the other
    /// subject's rows are untouched, and the request says what was kept.
    #[pg_test]
    fn every_row_of_the_subject_ends_in_one_counted_outcome() {
        shop();
        let request = Spi::get_one::<i64>("SELECT retention.request_erasure('e_customer', '1')")
            .unwrap()
            .unwrap();
        let status = Spi::get_one_with_args::<String>(
            "SELECT retention._erase_subject($1)",
            &[request.into()],
        )
        .unwrap()
        .unwrap_or_default();
        assert_eq!(status, "partially completed");
        let result = Spi::get_one_with_args::<JsonB>(
            "SELECT result FROM retention.erasure_requests WHERE id = $1",
            &[request.into()],
        )
        .unwrap()
        .unwrap()
        .0;
        let entry = |table: &str| {
            result
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["table"] == table)
                .cloned()
                .unwrap_or_else(|| panic!("{table} missing from {result}"))
        };
        let orders = entry("public.e_orders");
        assert_eq!(
            (orders["purged"].as_i64(), orders["held"].as_i64()),
            (Some(1), Some(1)),
            "{orders}"
        );
        let invoices = entry("public.e_invoices");
        assert_eq!(
            (invoices["purged"].as_i64(), invoices["retained"].as_i64()),
            (Some(1), Some(1)),
            "{invoices}"
        );
        assert_eq!(invoices["retained_ground"], "HGB 257");
        assert_eq!(entry("public.e_newsletter")["purged"].as_i64(), Some(1));
        // The customer row is still referenced by the kept order and invoice.
        let customer = entry("public.e_customers");
        assert_eq!(customer["kept_referenced"].as_i64(), Some(1), "{customer}");
        // What the data says agrees.
        assert_eq!(
            count("SELECT count(*) FROM public.e_orders WHERE customer_id = 1"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM public.e_invoices WHERE customer_id = 1"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM public.e_newsletter WHERE email = 'a@example.org'"),
            0
        );
        // The other subject is untouched; the request keeps no id.
        assert_eq!(
            count(
                "SELECT (SELECT count(*) FROM public.e_orders WHERE customer_id = 2)
                        + (SELECT count(*) FROM public.e_invoices WHERE customer_id = 2)
                        + (SELECT count(*) FROM public.e_newsletter WHERE email = 'b@example.org')"
            ),
            3
        );
        let id_left = Spi::get_one_with_args::<bool>(
            "SELECT subject_id IS NOT NULL FROM retention.erasure_requests WHERE id = $1",
            &[request.into()],
        )
        .unwrap();
        assert_eq!(id_left, Some(false));
    }
}
