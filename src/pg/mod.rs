//! PostgreSQL plumbing: no product rule lives here.
//!
//! Each module is one mechanism the product modules build on:
//! - `ident`: the one quoting helper for identifiers, and relation names;
//! - `params`: bind parameters handed out as `$n` by a builder, never
//!   numbered by hand;
//! - `plans`: statements kept prepared for the session;
//! - `security`: the one execution context (as whom, under which settings)
//!   every statement on an application table runs in;
//! - `subxact`: the one subtransaction helper;
//! - `locks`: the advisory-lock class and keys, and the session's run locks;
//! - `secrets`: the database's keys, created on first use;
//! - `timeout`: statement timers that tell their own expiry from the
//!   caller's.

pub mod ident;
pub mod locks;
pub mod params;
pub mod plans;
pub mod secrets;
pub mod security;
pub mod subxact;
pub mod timeout;
