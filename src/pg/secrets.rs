//! The database's keys (`retention.secrets`), created on first use.
//!
//! Invariants: keys are read and written as the extension owner only (the
//! table is readable by nobody else); a key never becomes a parameter of a
//! statement that runs declared text; a key created by two sessions at once
//! is the same for both (the first insert wins, both read it back).

use crate::error::{raise, OrRaise};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The keys pg_retention keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    /// The key of `retention.pseudonym()` and the `pseudonym` mask.
    Pseudonym,
    /// The key of subjects' blind indexes.
    BlindIndex,
}

impl Secret {
    fn name(self) -> &'static str {
        match self {
            Secret::Pseudonym => "pseudonym",
            Secret::BlindIndex => "blind_index",
        }
    }
}

/// 32 random bytes from the server's strong random source.
pub fn random_key() -> Vec<u8> {
    let mut buf = vec![0u8; 32];
    let ok =
        unsafe { pg_sys::pg_strong_random(buf.as_mut_ptr() as *mut core::ffi::c_void, buf.len()) };
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "could not generate a random key",
            "The server's random source failed; retry.",
        )
    }
    buf
}

/// A new stored key, made by the server inside the statement: a key bound
/// as a parameter could be written to the server log (auto_explain logs
/// nested statements' parameters from PostgreSQL 16 on). Two version-4
/// UUIDs from the server's strong random source: 32 bytes, 244 of their
/// bits random.
const NEW_KEY: &str = "pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex')";

/// The key, created (random) on first use.
pub fn get_or_create(secret: Secret) -> Vec<u8> {
    let name = secret.name();
    crate::pg::security::as_extension_owner(|| {
        let read = || {
            Spi::get_one_with_args::<Vec<u8>>(
                "SELECT (SELECT key FROM retention.secrets WHERE name = $1)",
                &[name.into()],
            )
            .or_raise("reading a key")
        };
        if let Some(k) = read() {
            return k;
        }
        Spi::run_with_args(
            &format!("INSERT INTO retention.secrets (name, key) VALUES ($1, {NEW_KEY}) ON CONFLICT (name) DO NOTHING"),
            &[name.into()],
        )
        .or_raise("storing a key");
        read().unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "a key could not be stored",
                "Retry.",
            )
        })
    })
}

/// Replaces the key with a new random one; returns the time of rotation.
pub fn rotate(secret: Secret) -> TimestampWithTimeZone {
    crate::pg::security::as_extension_owner(|| {
        Spi::get_one_with_args::<TimestampWithTimeZone>(
            &format!(
                "INSERT INTO retention.secrets (name, key) VALUES ($1, {NEW_KEY})
                 ON CONFLICT (name) DO UPDATE SET key = excluded.key, created_at = pg_catalog.now()
                 RETURNING created_at"
            ),
            &[secret.name().into()],
        )
        .or_raise("rotating a key")
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "key rotation returned nothing",
                "Retry.",
            )
        })
    })
}
