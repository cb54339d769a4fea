//! Finding personal data: `retention.discover()` reads the catalogue and a
//! bounded sample of each table and says, per column, which kind of
//! personal data it looks like, how that was recognised and how sure it
//! is.
//!
//! Invariants:
//! - no sampled value ever leaves this module: the answer holds names,
//!   categories and shares only;
//! - a table is sampled only when the caller may SELECT it, without row
//!   security hiding rows from the caller; the sample is
//!   read as the table's owner (code attached to the table runs as its
//!   owner), as ANALYZE reads it, at most `sample_rows` rows, from a
//!   `TABLESAMPLE SYSTEM` of the pages where the table is larger;
//! - only columns of built-in types are read (their text output is the
//!   server's own code);
//! - a table that cannot be sampled (an error, a lock, a timeout) is
//!   reported by its column names alone.

pub mod classify;
pub mod locate;

use crate::error::OrRaise;
use crate::pg::ident;
use crate::pg::security;
use classify::{by_name, embedded, Category, NameMatch};
use pgrx::prelude::*;

/// One candidate column of a table.
struct Column {
    name: String,
    type_name: String,
    /// Date or timestamp: a birth date by name only.
    date_like: bool,
    /// Text, or a type whose text may hold personal data (numbers, inet,
    /// json): read in the sample.
    sampled: bool,
    text_like: bool,
}

/// One table to look at.
struct Table {
    oid: pg_sys::Oid,
    name: String,
    estimate: f64,
    readable: bool,
}

/// Built-in types whose values are read: text and character types, json,
/// inet/cidr, and the integer and numeric types (card numbers, phone
/// numbers and tax ids are stored as numbers too).
const SAMPLED_TYPES: &str =
    "'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype,
    'json'::regtype, 'jsonb'::regtype, 'inet'::regtype, 'cidr'::regtype,
    'int8'::regtype, 'numeric'::regtype";
const TEXT_TYPES: &str =
    "'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'json'::regtype, 'jsonb'::regtype";
const DATE_TYPES: &str = "'date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype";

fn tables(schema_filter: Option<&str>) -> Vec<Table> {
    let sql = "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname),
                      greatest(c.reltuples, CASE WHEN c.reltuples < 0 THEN c.relpages * 60.0 ELSE 0 END)::float8,
                      pg_catalog.has_table_privilege(c.oid, 'SELECT')
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'retention')
                  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                   WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
                  AND ($1::text IS NULL OR n.nspname LIKE $1)
                ORDER BY n.nspname, c.relname";
    Spi::connect(|c| {
        c.select(sql, None, &[schema_filter.into()])
            .or_raise("listing tables")
            .filter_map(|r| {
                Some(Table {
                    oid: r.get::<pg_sys::Oid>(1).ok().flatten()?,
                    name: r.get::<String>(2).ok().flatten()?,
                    estimate: r.get::<f64>(3).ok().flatten().unwrap_or(0.0),
                    readable: r.get::<bool>(4).ok().flatten().unwrap_or(false),
                })
            })
            .collect()
    })
}

fn columns(table: pg_sys::Oid) -> Vec<Column> {
    let sql = format!(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                coalesce(nullif(t.typbasetype, 0), a.atttypid) IN ({DATE_TYPES}),
                coalesce(nullif(t.typbasetype, 0), a.atttypid) IN ({SAMPLED_TYPES}),
                coalesce(nullif(t.typbasetype, 0), a.atttypid) IN ({TEXT_TYPES})
           FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum"
    );
    Spi::connect(|c| {
        c.select(&sql, None, &[table.into()])
            .or_raise("reading columns")
            .filter_map(|r| {
                Some(Column {
                    name: r.get::<String>(1).ok().flatten()?,
                    type_name: r.get::<String>(2).ok().flatten()?,
                    date_like: r.get::<bool>(3).ok().flatten().unwrap_or(false),
                    sampled: r.get::<bool>(4).ok().flatten().unwrap_or(false),
                    text_like: r.get::<bool>(5).ok().flatten().unwrap_or(false),
                })
            })
            .collect()
    })
}

/// Per sampled column: the number of non-null values, and per category
/// the number of values of that shape (whole value) or containing it
/// (free text).
#[derive(Default, Clone)]
struct Counts {
    values: i64,
    whole: Vec<(Category, i64)>,
    inside: Vec<(Category, i64)>,
    /// Values containing any of those categories.
    any_inside: i64,
    texts: i64,
}

impl Counts {
    fn add(list: &mut Vec<(Category, i64)>, c: Category) {
        match list.iter_mut().find(|(k, _)| *k == c) {
            Some((_, n)) => *n += 1,
            None => list.push((c, 1)),
        }
    }
    fn of(list: &[(Category, i64)], c: Category) -> i64 {
        list.iter()
            .find(|(k, _)| *k == c)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

/// Reads the sample: at most `limit` rows of the sampled columns. None
/// when the table could not be read (the reason is not returned: it could
/// quote values).
fn sample(t: &Table, cols: &[&Column], limit: i32) -> Option<Vec<Counts>> {
    let list = cols
        .iter()
        // The first 2,000 characters of a value are enough to judge it.
        .map(|c| format!("pg_catalog.left({}::text, 2000)", ident::quote(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    // Pages enough for the sample, twice over; the whole table when small.
    let percent = if t.estimate > f64::from(limit) * 4.0 {
        (f64::from(limit) * 2.0 * 100.0 / t.estimate).clamp(0.001, 100.0)
    } else {
        100.0
    };
    let sql = if percent < 100.0 {
        format!(
            "SELECT {list} FROM {} TABLESAMPLE SYSTEM ($1) LIMIT $2",
            t.name
        )
    } else {
        format!("SELECT {list} FROM {} LIMIT $2", t.name)
    };
    let n = cols.len();
    // The values are fetched under the timer, then classified after it is
    // disarmed.
    let read = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
        security::as_table_owner(t.oid, || {
            // Ten seconds at most per table (a lock held by another session,
            // a slow disk): the table is then judged by its names.
            let _timer = crate::pg::timeout::StatementTimer::start(10_000);
            Spi::connect(|c| {
                c.select(&sql, None, &[percent.into(), i64::from(limit).into()])
                    .or_raise("sampling the table")
                    .map(|r| {
                        (1..=n)
                            .map(|i| r.get::<String>(i).ok().flatten())
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
        })
    }));
    let rows = match read {
        Ok(rows) => rows,
        Err(e) => {
            // A cancel or the caller's own statement_timeout ends the call;
            // pg_retention's own timer (or any other error) only this table.
            if e.is_cancel()
                && !(crate::pg::timeout::last_timer_was_ours()
                    && crate::pg::timeout::last_timeout_fired())
            {
                e.rethrow()
            }
            return None;
        }
    };
    let mut counts = vec![Counts::default(); n];
    for row in rows {
        for (v, count) in row.into_iter().zip(counts.iter_mut()) {
            let Some(v) = v else {
                continue;
            };
            count.values += 1;
            if let Some(c) = Category::BY_CONTENT.iter().find(|c| c.matches(&v)) {
                Counts::add(&mut count.whole, *c);
            } else {
                if v.len() >= 12 && v.contains(' ') {
                    count.texts += 1;
                }
                let inside = embedded(&v);
                if !inside.is_empty() {
                    count.any_inside += 1;
                }
                for c in inside {
                    Counts::add(&mut count.inside, c);
                }
            }
        }
    }
    Some(counts)
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<f32>,
    String,
    Option<i64>,
);

/// The finding for one column, if any.
fn judge(t: &Table, col: &Column, counts: Option<&Counts>, sampled: bool) -> Option<Row> {
    // A boolean or a number of another kind is not the thing its name is
    // about (an `email_opt_in` flag).
    let named = if col.sampled || col.date_like {
        by_name(&col.name, col.date_like, col.text_like)
    } else {
        None
    };
    let share = |n: i64, of: i64| if of > 0 { n as f64 / of as f64 } else { 0.0 };
    let pct = |s: f64| format!("{:.0}%", s * 100.0);
    let row =
        |cat: Category, found_by: String, share: Option<f64>, confidence: &str, n: Option<i64>| {
            (
                t.name.clone(),
                col.name.clone(),
                col.type_name.clone(),
                cat.as_str().to_string(),
                found_by,
                share.map(|s| s as f32),
                confidence.to_string(),
                n,
            )
        };
    if let Some(c) = counts.filter(|c| c.values > 0) {
        // The shape most values have.
        let best = c
            .whole
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|(cat, n)| (*cat, share(*n, c.values)));
        if let Some((cat, s)) = best.filter(|(_, s)| *s >= 0.5) {
            let name_agrees = named.is_some_and(|(n, _)| n == cat);
            let confidence = if s >= 0.8 || name_agrees {
                "high"
            } else {
                "medium"
            };
            let how = if name_agrees {
                "name and content"
            } else {
                "content"
            };
            return Some(row(
                cat,
                format!("{how}: {} of {} sampled values", pct(s), c.values),
                Some(s),
                confidence,
                Some(c.values),
            ));
        }
        // Free text with personal data written into it.
        if c.texts > 0 {
            let containing = Category::BY_CONTENT
                .iter()
                .filter(|cat| Counts::of(&c.inside, **cat) > 0)
                .map(|cat| cat.as_str())
                .collect::<Vec<_>>();
            let n = c.any_inside;
            if !containing.is_empty() {
                let s = share(n, c.values);
                let named_text = named.is_some_and(|(n, _)| n == Category::FreeText);
                return Some(row(
                    Category::FreeText,
                    format!(
                        "{}: {} of {} sampled values contain {}",
                        if named_text {
                            "name and content"
                        } else {
                            "content"
                        },
                        pct(s),
                        c.values,
                        containing.join(", ")
                    ),
                    Some(s),
                    if named_text || s >= 0.1 {
                        "high"
                    } else {
                        "medium"
                    },
                    Some(c.values),
                ));
            }
        }
    }
    let (cat, strength) = named?;
    let sampled_values = counts.map(|c| c.values).filter(|n| *n > 0);
    // A name whose category the values could show, but they do not.
    if let (true, Some(n)) = (cat.by_content(), sampled_values) {
        if n >= 5 {
            let s = share(Counts::of(&counts?.whole, cat), n);
            return Some(row(
                cat,
                format!("name only: {} of {n} sampled values have the shape", pct(s)),
                Some(s),
                "low",
                Some(n),
            ));
        }
    }
    let confidence = match strength {
        NameMatch::Specific => "medium",
        NameMatch::Generic => "low",
    };
    let how = if !sampled {
        "name (the table was not sampled: you may not read it all, or reading it failed)"
    } else if col.sampled && cat == Category::FreeText {
        "name (no personal data seen in the sample)"
    } else {
        "name"
    };
    Some(row(cat, how.to_string(), None, confidence, sampled_values))
}

/// Finds columns that look like personal data, in the tables of schemas
/// matching `schema_filter` (a LIKE pattern; every schema but the
/// system's and pg_retention's when NULL), reading at most `sample_rows`
/// rows per table.
#[pg_extern(name = "_discover")]
#[allow(clippy::type_complexity)]
fn discover(
    schema_filter: Option<&str>,
    sample_rows: i32,
) -> TableIterator<
    'static,
    (
        name!(target, String),
        name!(column_name, String),
        name!(data_type, String),
        name!(category, String),
        name!(found_by, String),
        name!(share, Option<f32>),
        name!(confidence, String),
        name!(sampled, Option<i64>),
    ),
> {
    security::require_reader("discover personal data");
    if !(1..=100_000).contains(&sample_rows) {
        crate::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "sample_rows must be between 1 and 100000",
            "The sample bounds the rows read per table, e.g. sample_rows => 1000.",
        )
    }
    let me = security::current_role();
    let mut out = Vec::new();
    for mut t in tables(schema_filter) {
        // Read as the owner only what the caller could read itself.
        t.readable = t.readable && !security::row_security_binds(me, t.oid);
        let cols = columns(t.oid);
        let to_read: Vec<&Column> = cols.iter().filter(|c| c.sampled).collect();
        let counts = if t.readable && !to_read.is_empty() {
            sample(&t, &to_read, sample_rows)
        } else {
            None
        };
        let sampled = t.readable && (to_read.is_empty() || counts.is_some());
        for col in &cols {
            let c = counts.as_ref().and_then(|cs| {
                to_read
                    .iter()
                    .position(|x| x.name == col.name)
                    .map(|i| &cs[i])
            });
            if let Some(row) = judge(&t, col, c, sampled) {
                out.push(row);
            }
        }
    }
    TableIterator::new(out)
}
