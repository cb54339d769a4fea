//! The product's model: what the catalogue tables mean, as types.
//!
//! - `policy`: a policy as the engine reads it, and its lifecycle stages;
//! - `hold`: legal holds and every rule about what they keep, used by runs,
//!   the preview and erasure alike;
//! - `subject`: kinds of data subject and the map of tables that hold a
//!   subject's data;
//! - `refs`: foreign keys that reference a table, and the one order in
//!   which tables are changed (referencing tables first).
//!
//! Modules here read the catalogue and build SQL conditions; they never
//! change application rows themselves.

pub mod hold;
pub mod policy;
pub mod refs;
pub mod subject;
