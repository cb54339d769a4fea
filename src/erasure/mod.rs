//! The right to erasure (GDPR Art. 17).
//!
//! - `subjects`: declaring kinds of data subject and their maps;
//! - `requests`: filing, extending and refusing requests, with deadlines;
//! - `erase`: erasing one subject across the map, in one transaction,
//!   deepest tables first, keeping what a hold or a statutory minimum
//!   protects, and counting every row in one outcome;
//! - `proof`: certificates, the ledger and replay after a restore.
//!
//! A request names a subject by id; the id is kept only until the request is
//! processed, the blind index stays. The model these modules share (kinds,
//! maps, holds) is in `model::subject` and `model::hold`.

use crate::pg::security;
use pgrx::prelude::*;

mod access;
mod erase;
mod proof;
mod requests;
mod subjects;

pub use requests::{check_canonical_id, request_from_trigger};

#[pg_extern(name = "_blind", volatile, parallel_unsafe)]
fn blind_sql(kind: &str, subject_id: &str) -> String {
    security::require_admin("compute blind indexes");
    crate::model::subject::blind(kind, subject_id)
}
