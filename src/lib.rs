//! pg_retention: retention policies enforced inside PostgreSQL.
//!
//! The Rust side holds everything that needs care (expression validation,
//! role switching, the batch engine); `sql/` holds the public SQL surface:
//! tables, views, thin wrappers with documentation, the committing procedure
//! and the grants. Each module below is one concept of the product.

use pgrx::prelude::*;

mod audit;
mod cdc;
mod config;
mod discover;
mod engine;
mod erasure;
mod error;
mod expr;
mod gucs;
mod holds;
mod mask;
mod model;
mod partition;
mod pg;
mod policy;
mod preview;
mod schedule;
mod stage;
mod status;
mod triggers;
mod upgrade;

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
// The public SQL interface (sql/api/): thin, documented wrappers over the
// Rust entry points (named retention._*), the committing procedures, the
// views and, last, the grants. Each file follows the one before it and the
// Rust functions its SQL-standard bodies call (named here, so that pgrx
// creates them first); the wrappers call them with named arguments, so a
// parameter added, removed or reordered on either side fails CREATE
// EXTENSION instead of shifting.
extension_sql_file!(
    "../sql/api/policies.sql",
    name = "api_policies",
    requires = [
        policy::alter_policy,
        policy::create_policy,
        policy::acknowledge,
        policy::drop_policy,
        policy::set_paused
    ]
);
extension_sql_file!(
    "../sql/api/stages.sql",
    name = "api_stages",
    requires = [
        "api_policies",
        stage::add_stage,
        stage::drop_stage,
        stage::masks::drop_mask,
        stage::masks::set_mask,
        stage::restrict::restrict,
        stage::restrict::unrestrict,
        triggers::refuse_restricted_update
    ]
);
extension_sql_file!(
    "../sql/api/run.sql",
    name = "api_run",
    requires = [
        "api_stages",
        engine::run_batch,
        engine::run_close,
        engine::run_fail,
        engine::run_open,
        engine::run_retry,
        preview::preview,
        schedule::schedule,
        schedule::unschedule
    ]
);
extension_sql_file!(
    "../sql/api/erasure.sql",
    name = "api_erasure",
    requires = [
        "api_run",
        audit::audit_anchor,
        audit::verify_audit,
        erasure::access::access_certificate,
        erasure::access::deliver_access,
        erasure::erase::erase_subject,
        erasure::proof::erasure_certificate,
        erasure::proof::erasure_ledger,
        erasure::proof::reapply_erasures,
        erasure::requests::extend_request,
        erasure::requests::refuse_request,
        erasure::requests::request_access,
        erasure::requests::request_erasure,
        erasure::subjects::add_owned_table,
        erasure::subjects::add_subject_path,
        erasure::subjects::set_erasure_sweep,
        erasure::subjects::add_subject_table,
        erasure::subjects::drop_subject,
        erasure::subjects::register_subject,
        erasure::subjects::set_subject_table,
        erasure::subjects::subject_map,
        erasure::subjects::link_suggestions,
        holds::place_hold,
        holds::release_hold,
        triggers::request_erasure_trigger
    ]
);
extension_sql_file!(
    "../sql/api/views.sql",
    name = "api_views",
    requires = [
        "api_erasure",
        status::status,
        upgrade::library_version,
        config::export_config
    ]
);
extension_sql_file!(
    "../sql/api/masks.sql",
    name = "api_masks",
    requires = [
        "api_views",
        mask::mask_email,
        mask::mask_generalise_date,
        mask::mask_generalise_inet,
        mask::mask_generalise_int,
        mask::mask_hash_random,
        mask::mask_hmac,
        mask::mask_jsonb_drop,
        mask::mask_noise_date,
        mask::mask_noise_float,
        mask::mask_noise_int,
        mask::mask_partial,
        mask::pseudonym,
        mask::rotate_pseudonym_key
    ]
);
// The data map: discover and coverage.
extension_sql_file!(
    "../sql/api/datamap.sql",
    name = "api_datamap",
    requires = ["api_masks", discover::discover, discover::locate::locate]
);
// Policy-as-code: apply_config calls the functions of every file above.
extension_sql_file!(
    "../sql/api/config.sql",
    name = "api_config",
    requires = ["api_datamap"]
);
extension_sql_file!("../sql/api/grants.sql", name = "api_grants", finalize);

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
