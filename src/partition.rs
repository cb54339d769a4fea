//! Removing whole partitions.
//!
//! For a table partitioned by range on the clock column, a partition whose
//! upper bound is at or before the purge cutoff holds nothing but due rows:
//! it is dropped (or detached into an archive schema) in one step instead of
//! deleted row by row. Only the boundary partition is then purged by
//! batches. A filter, a foreign key that references the table, a partition
//! the policy owner does not own, or a lock that cannot be had within the
//! policy's lock_timeout (three tries) all leave the partition to the
//! row-level batches.

use crate::error::OrRaise;
use crate::pg::ident;
use crate::pg::security;
use crate::policy::Policy;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

pub struct Candidate {
    pub name: String,
    pub rows_estimate: i64,
}

/// The partition key column when `target` is range-partitioned on exactly
/// the policy's clock column.
fn clock_partitioned(p: &Policy) -> bool {
    if ident::relkind(p.target) != Some(b'p') || p.filter.is_some() {
        return false;
    }
    // One row always (NULL when the table is list- or hash-partitioned, or
    // by more than one column).
    let key = Spi::get_one_with_args::<String>(
        "SELECT (SELECT a.attname::text
                   FROM pg_catalog.pg_partitioned_table pt
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
                  WHERE pt.partrelid = $1 AND pt.partstrat = 'r' AND pt.partnatts = 1)",
        &[p.target.into()],
    )
    .or_raise("reading the partition key");
    let clock = p.clock.trim();
    match key {
        Some(k) => clock == k || clock == ident::quote(&k),
        None => false,
    }
}

/// Partitions entirely before `cutoff`, oldest first. Bounds are printed
/// and compared under the pinned settings, so that a `timestamp` bound is
/// read as UTC whatever the session's TimeZone and DateStyle.
pub fn candidates(p: &Policy, cutoff: TimestampWithTimeZone) -> Vec<Candidate> {
    security::with_pinned_settings(|| candidates_pinned(p, cutoff))
}

fn candidates_pinned(p: &Policy, cutoff: TimestampWithTimeZone) -> Vec<Candidate> {
    if !clock_partitioned(p) {
        return Vec::new();
    }
    // Any foreign key referencing the table blocks dropping partitions.
    if !crate::model::refs::references(p.target).is_empty() {
        return Vec::new();
    }
    let ty = match p.clock_type {
        t if t == pg_sys::DATEOID => "date",
        t if t == pg_sys::TIMESTAMPOID => "timestamp",
        _ => "timestamptz",
    };
    // The upper bound as the server prints it, compared in the clock's type.
    let sql = "SELECT c.oid, c.reltuples::int8,
                (pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'TO \\(''(.*)''\\)$'))[1]
           FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = $1 AND c.relispartition
            AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'";
    let parts: Vec<(pg_sys::Oid, i64, Option<String>)> = Spi::connect(|c| {
        c.select(sql, None, &[p.target.into()])
            .or_raise("reading partitions")
            .map(|r| {
                let e = "reading partitions";
                (
                    r.get::<pg_sys::Oid>(1)
                        .or_raise(e)
                        .unwrap_or(pg_sys::InvalidOid),
                    r.get::<i64>(2).or_raise(e).unwrap_or(-1),
                    r.get::<String>(3).or_raise(e),
                )
            })
            .collect()
    });
    let check = format!("SELECT replace($1, '''''', '''')::{ty} <= $2::{ty}");
    let mut out: Vec<(String, Candidate)> = Vec::new();
    for (oid, tuples, upper) in parts {
        let Some(upper) = upper else { continue };
        let fits = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
            Spi::get_one_with_args::<bool>(&check, &[upper.as_str().into(), cutoff.into()])
                .or_raise("comparing partition bounds")
                .unwrap_or(false)
        }))
        .unwrap_or(false);
        if fits {
            if let Some(name) = ident::relation(oid) {
                out.push((
                    upper,
                    Candidate {
                        name,
                        rows_estimate: tuples,
                    },
                ));
            }
        }
    }
    out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    out.into_iter().map(|(_, c)| c).collect()
}

/// Drops (or detaches into `archive_schema`) the partitions entirely before
/// the cutoff. Returns (partitions removed, rows in them as estimated by the
/// statistics, or counted when the partition was never analysed).
pub fn remove(p: &Policy, table: &str, cutoff: TimestampWithTimeZone) -> (i32, i64) {
    let mut removed = 0;
    let mut rows = 0i64;
    // The policy's lock_timeout is for the DROPs only; the run-log update
    // after them keeps the session's setting.
    let previous = Spi::connect_mut(|c| crate::gucs::read(c, "lock_timeout"));
    for cand in candidates(p, cutoff) {
        let mut done = false;
        for _attempt in 0..3 {
            // Each try in its own subtransaction: a lock timeout undoes only
            // this partition's work.
            let ok = PgTryBuilder::new(|| {
                crate::pg::subxact::run(|| {
                    security::as_table_owner(p.target, || {
                        Spi::connect_mut(|c| {
                            crate::gucs::set_local(
                                c,
                                "lock_timeout",
                                &p.lock_timeout_ms.to_string(),
                            );
                            let n = if cand.rows_estimate >= 0 {
                                cand.rows_estimate
                            } else {
                                c.update(
                                    &format!("SELECT count(*) FROM {}", cand.name),
                                    Some(1),
                                    &[],
                                )
                                .or_raise("counting a partition")
                                .first()
                                .get::<i64>(1)
                                .or_raise("counting a partition")
                                .unwrap_or(0)
                            };
                            match &p.archive_schema {
                                None => {
                                    c.update(&format!("DROP TABLE {}", cand.name), None, &[])
                                        .or_raise("dropping a partition");
                                }
                                Some(schema) => {
                                    c.update(
                                        &format!(
                                            "ALTER TABLE {table} DETACH PARTITION {}",
                                            cand.name
                                        ),
                                        None,
                                        &[],
                                    )
                                    .or_raise("detaching a partition");
                                    c.update(
                                        &format!(
                                            "ALTER TABLE {} SET SCHEMA {}",
                                            cand.name,
                                            ident::quote(schema)
                                        ),
                                        None,
                                        &[],
                                    )
                                    .or_raise("archiving a partition");
                                }
                            }
                            n
                        })
                    })
                })
            })
            .catch_others(|_| -1)
            .execute();
            if ok >= 0 {
                rows += ok;
                removed += 1;
                done = true;
                break;
            }
        }
        if !done {
            pgrx::notice!(
                "retention policy \"{}\": partition {} could not be removed (lock or privilege); its rows are purged in batches",
                p.name,
                cand.name
            );
        }
    }
    Spi::connect_mut(|c| crate::gucs::set_local(c, "lock_timeout", &previous));
    (removed, rows)
}
