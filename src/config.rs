//! Policy-as-code: the whole configuration as one JSON document.
//!
//! `retention.export_config()` returns every policy (stages, masks, batch
//! settings, limits, partitions, statutory minimum, schedule), every kind
//! of data subject with its map, and the legal holds in force (subjects by
//! blind index only). The document is `jsonb`, whose key order and number
//! formats are canonical: exporting the same configuration twice gives the
//! same document, and `jsonb_pretty` of it diffs cleanly. Periods are ISO
//! 8601 durations (`P10Y`, `PT0.1S`) whatever the session's IntervalStyle;
//! tables are schema-qualified whatever its search_path. The format is
//! described by `config/pg_retention-config-1.schema.json`.
//!
//! Invariants: no personal data (holds on subjects carry the blind index,
//! never the id); the caller's rights suffice (readers may export).

use crate::error::OrRaise;
use crate::pg::security;
use pgrx::datum::JsonB;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// The document, without schedules (read from pg_cron separately).
const DOCUMENT: &str = r#"
WITH names AS (
    SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
)
SELECT pg_catalog.jsonb_build_object(
    'format', 'pg_retention config',
    'version', 1,
    'policies', coalesce((SELECT pg_catalog.jsonb_object_agg(p.name, pg_catalog.jsonb_build_object(
        'table', (SELECT name FROM names WHERE oid = p.target),
        'clock', p.clock,
        'filter', p.filter,
        'purpose', p.purpose,
        'legal_basis', p.legal_basis,
        'stages', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'mark', CASE WHEN p.mark_after IS NOT NULL THEN pg_catalog.jsonb_build_object('after', p.mark_after::text, 'column', p.marker_column) END,
            'anonymise', CASE WHEN p.anonymise_after IS NOT NULL THEN pg_catalog.jsonb_build_object('after', p.anonymise_after::text, 'column', p.anonymised_column) END,
            'purge', CASE WHEN p.purge_after IS NOT NULL THEN pg_catalog.jsonb_build_object('after', p.purge_after::text) END)),
        'masks', coalesce((SELECT pg_catalog.jsonb_object_agg(m.column_name, pg_catalog.jsonb_build_object('strategy', m.strategy, 'options', m.options))
                             FROM retention.masks m WHERE m.policy_id = p.id), '{}'::jsonb),
        'statutory_minimum', CASE WHEN p.min_retention IS NOT NULL
            THEN pg_catalog.jsonb_build_object('period', p.min_retention::text, 'ground', p.min_retention_ground) END,
        'batches', pg_catalog.jsonb_build_object('size', p.batch_size, 'target', p.batch_target::text,
                                                 'pause', p.batch_pause::text, 'skip_locked', p.skip_locked),
        'limits', pg_catalog.jsonb_build_object('lock_timeout', p.lock_timeout::text, 'statement_timeout', p.statement_timeout::text,
                                                'max_run_time', p.max_run_time::text, 'max_rows_per_second', p.max_rows_per_second,
                                                'max_due_fraction', p.max_due_fraction),
        'partitions', pg_catalog.jsonb_build_object('drop', p.drop_partitions, 'archive_schema', p.archive_schema),
        'vacuum_after', p.vacuum_after,
        'paused', p.paused))
      FROM retention.policies p), '{}'::jsonb),
    'subject_kinds', coalesce((SELECT pg_catalog.jsonb_object_agg(k.kind, pg_catalog.jsonb_build_object(
        'root', (SELECT name FROM names WHERE oid = k.root),
        'id_column', k.id_column,
        'sweep', k.sweep,
        'tables', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'table', (SELECT name FROM names WHERE oid = t.target),
                'link', t.link,
                'columns', pg_catalog.to_jsonb(t.columns),
                'parent', (SELECT name FROM names WHERE oid = t.parent),
                'parent_columns', pg_catalog.to_jsonb(t.parent_columns),
                'matches', t.matches,
                'action', t.action,
                'statutory_minimum', CASE WHEN t.min_retention IS NOT NULL
                    THEN pg_catalog.jsonb_build_object('period', t.min_retention::text, 'ground', t.legal_ground, 'clock', t.clock) END,
                'mask_policy', (SELECT mp.name FROM retention.policies mp WHERE mp.id = t.mask_policy),
                'also', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'foreign_key', sp.foreign_key,
                        'parent', (SELECT name FROM names WHERE oid = sp.parent),
                        'columns', pg_catalog.to_jsonb(sp.columns),
                        'parent_columns', pg_catalog.to_jsonb(sp.parent_columns)) ORDER BY sp.foreign_key), '[]'::jsonb)
                   FROM retention.subject_paths sp WHERE sp.kind = t.kind AND sp.target = t.target))
              ORDER BY t.depth, (SELECT name FROM names WHERE oid = t.target), t.path), '[]'::jsonb)
             FROM retention.subject_tables t WHERE t.kind = k.kind)))
      FROM retention.subject_kinds k), '{}'::jsonb),
    'holds', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'reason', h.reason,
        'kind', h.kind,
        'subject_blind_index', h.subject_blind,
        'table', (SELECT name FROM names WHERE oid = h.target),
        'filter', h.filter,
        'until', h.until) ORDER BY h.id), '[]'::jsonb)
      FROM retention.holds h
     WHERE h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now()))
)
"#;

/// The pg_cron schedules of this database's runs: the one for all policies
/// and one per policy, where the caller may read pg_cron's jobs.
fn schedules() -> (Option<String>, Vec<(String, String)>) {
    let jobs: Vec<(String, String)> = crate::schedule::readable_jobs();
    let all = jobs
        .iter()
        .find(|(name, _)| name == "pg_retention")
        .map(|(_, s)| s.clone());
    let per_policy = jobs
        .into_iter()
        .filter_map(|(name, s)| {
            name.strip_prefix("pg_retention:")
                .map(|p| (p.to_string(), s))
        })
        .filter(|(p, _)| !p.starts_with("vacuum:"))
        .collect();
    (all, per_policy)
}

#[pg_extern(name = "_export_config")]
fn export_config() -> JsonB {
    security::require_reader("export the configuration");
    let doc = crate::gucs::with_local("IntervalStyle", "iso_8601", || {
        security::with_pinned_search_path(|| {
            Spi::get_one::<JsonB>(DOCUMENT).or_raise("exporting the configuration")
        })
    });
    let mut doc = doc.map(|j| j.0).unwrap_or_else(|| json!({}));
    let (all, per_policy) = schedules();
    if let Value::Object(m) = &mut doc {
        m.insert("schedule".into(), json!(all));
        if let Some(Value::Object(policies)) = m.get_mut("policies") {
            for (name, p) in policies.iter_mut() {
                let s = per_policy.iter().find(|(n, _)| n == name).map(|(_, s)| s);
                if let Value::Object(p) = p {
                    p.insert("schedule".into(), json!(s));
                }
            }
        }
    }
    JsonB(doc)
}
