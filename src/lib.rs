//! pg_retention: retention policies enforced inside PostgreSQL.
//!
//! The Rust side holds everything that needs care (expression validation,
//! role switching, the batch engine); `sql/` holds the public SQL surface:
//! tables, views, thin wrappers with documentation, the committing procedure
//! and the grants. Each module below is one concept of the product.

use pgrx::prelude::*;

mod audit;
mod engine;
mod erasure;
mod error;
mod expr;
mod gucs;
mod ident;
mod mask;
mod partition;
mod plans;
mod policy;
mod refs;
mod schedule;
mod security;
mod stage;
mod status;
mod timeout;
mod triggers;

::pgrx::pg_module_magic!();

/// Called once when a backend loads the library.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Errors raised inside SPI calls travel through Rust as panics; with
    // backtraces enabled in the server's environment, pgrx would attach a
    // Rust backtrace to the error's DETAIL. Users get the SQL error only.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    gucs::init();
}

// Tables, roles and sequences come first: every function depends on them.
extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
// Documented wrappers, the committing procedure, views and grants come last,
// after pgrx has created the Rust functions they call.
extension_sql_file!("../sql/api.sql", name = "api", finalize);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    // Unit tests live next to the code they test, in each module.
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
