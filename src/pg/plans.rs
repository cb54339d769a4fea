//! Statements that every batch runs, prepared once per session.
//!
//! A batch reads the policy, its run-log entry, holds and references and
//! writes its counts: about ten short catalogue statements. Parsing and
//! planning them anew each time cost about a seventh of a walked purge. Here
//! each is prepared on its first use and kept for the session
//! (`SPI_keepplan`). PostgreSQL's plan cache re-plans a kept statement by
//! itself when a table or function it uses changes, so a kept plan does not go
//! stale.
//!
//! Only statements with a fixed text belong here: never one that embeds a
//! policy's table, clock or filter, whose number has no bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};

/// A kept statement, the parameter types it was prepared for and whether
/// it may change data (a read-only one runs read-only).
///
/// Kept statements are never freed: they live until the backend exits, like
/// PL/pgSQL's cached plans, and are not handed to `SPI_freeplan` while the
/// backend is shutting down. One that is replaced (the same text with other
/// parameter types, which this extension never does) stays allocated.
struct Kept {
    types: Vec<pg_sys::Oid>,
    mutating: bool,
    statement: Rc<ManuallyDrop<OwnedPreparedStatement>>,
}

thread_local! {
    static KEPT: RefCell<HashMap<String, Kept>> = RefCell::new(HashMap::new());
}

/// The kept statement for `sql` with these parameter types, prepared now if
/// this session has not prepared it yet. The map is not borrowed while a
/// statement runs, so a statement may itself reach code that uses this one.
fn kept(
    c: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid],
    mutating: bool,
) -> SpiResult<Rc<ManuallyDrop<OwnedPreparedStatement>>> {
    let types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    let found = KEPT.with(|k| {
        k.borrow()
            .get(sql)
            .filter(|kept| kept.types == types && kept.mutating == mutating)
            .map(|kept| Rc::clone(&kept.statement))
    });
    if let Some(statement) = found {
        return Ok(statement);
    }
    let oids: Vec<PgOid> = types.iter().map(|t| PgOid::from(*t)).collect();
    let prepared = if mutating {
        c.prepare_mut(sql, &oids)?
    } else {
        c.prepare(sql, &oids)?
    };
    let statement = Rc::new(ManuallyDrop::new(prepared.keep()));
    KEPT.with(|k| {
        k.borrow_mut().insert(
            sql.to_string(),
            Kept {
                types,
                mutating,
                statement: Rc::clone(&statement),
            },
        )
    });
    Ok(statement)
}

/// Runs a read-only statement with a fixed text through its kept plan.
pub fn select<'conn>(
    c: &SpiClient<'conn>,
    sql: &str,
    args: &[DatumWithOid],
) -> SpiResult<SpiTupleTable<'conn>> {
    let statement = kept(c, sql, args, false)?;
    c.select(&**statement, None, args)
}

/// Runs a statement with a fixed text that changes data through its kept
/// plan.
pub fn update<'conn>(
    c: &mut SpiClient<'conn>,
    sql: &str,
    args: &[DatumWithOid],
) -> SpiResult<SpiTupleTable<'conn>> {
    let statement = kept(c, sql, args, true)?;
    c.update(&**statement, None, args)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// How many statements this session keeps.
    fn kept_count() -> usize {
        super::KEPT.with(|k| k.borrow().len())
    }

    #[pg_test]
    fn a_kept_statement_is_prepared_once_and_follows_table_changes() {
        Spi::run(
            "CREATE TABLE kept_t (a int, b text); INSERT INTO kept_t VALUES (1, 'one'), (2, 'two')",
        )
        .unwrap();
        let sql = "SELECT count(*)::int8 FROM kept_t WHERE a >= $1";
        let read = |from: i32| -> i64 {
            Spi::connect(|c| {
                super::select(c, sql, &[from.into()])
                    .unwrap()
                    .first()
                    .get::<i64>(1)
                    .unwrap()
                    .unwrap()
            })
        };
        let before = kept_count();
        assert_eq!(read(1), 2);
        assert_eq!(kept_count(), before + 1);
        assert_eq!(read(2), 1);
        assert_eq!(kept_count(), before + 1, "the second use prepares nothing");
        // A change to the table re-plans the kept statement, which then sees
        // the new column layout and rows.
        Spi::run("ALTER TABLE kept_t DROP COLUMN b; INSERT INTO kept_t VALUES (3)").unwrap();
        assert_eq!(read(1), 3);
        // Other parameter types prepare the statement again.
        let as_bigint = Spi::connect(|c| {
            super::select(c, sql, &[2_i64.into()])
                .unwrap()
                .first()
                .get::<i64>(1)
                .unwrap()
                .unwrap()
        });
        assert_eq!(as_bigint, 2);
        // A kept statement that changes data.
        let changed = Spi::connect_mut(|c| {
            super::update(
                c,
                "UPDATE kept_t SET a = a + 10 WHERE a < $1 RETURNING a",
                &[3.into()],
            )
            .unwrap()
            .len()
        });
        assert_eq!(changed, 2);
        assert_eq!(read(10), 2);
    }
}
