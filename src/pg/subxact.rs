//! The one subtransaction helper.
//!
//! Invariant: whatever `f` does, the caller's memory context and resource
//! owner are restored; a subtransaction is either released (success) or
//! rolled back (ERROR), never left open. The caller decides what an ERROR
//! means: `attempt` hands it back, `run` raises it again after the rollback.

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// An ERROR caught from a subtransaction, kept to be examined or raised again.
pub struct Caught(Box<CaughtError>);

impl Caught {
    pub fn is_lock_timeout(&self) -> bool {
        match &*self.0 {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                r.sql_error_code() == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
            }
            _ => false,
        }
    }

    /// A query cancel: a statement timeout or a cancel request.
    pub fn is_cancel(&self) -> bool {
        match &*self.0 {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                r.sql_error_code() == PgSqlErrorCode::ERRCODE_QUERY_CANCELED
            }
            _ => false,
        }
    }

    /// The error's message (the primary text only).
    pub fn message(&self) -> String {
        match &*self.0 {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r.message().to_string(),
            _ => "an internal error".to_string(),
        }
    }

    pub fn rethrow(self) -> ! {
        self.0.rethrow()
    }
}

/// Runs `f` in a subtransaction: released when `f` succeeds, rolled back when
/// it raises an ERROR, which is then returned.
pub fn attempt<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> Result<R, Caught> {
    unsafe {
        let old_cxt = pg_sys::CurrentMemoryContext;
        let old_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(old_cxt);
        let result = PgTryBuilder::new(|| Ok(f()))
            .catch_others(|e| {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(old_cxt);
                pg_sys::CurrentResourceOwner = old_owner;
                Err(Caught(Box::new(e)))
            })
            .execute();
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(old_cxt);
            pg_sys::CurrentResourceOwner = old_owner;
        }
        result
    }
}

/// Runs `f` in a subtransaction that is rolled back when `f` raises an ERROR
/// (the error then goes on to the caller) and released otherwise.
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    match attempt(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => e.rethrow(),
    }
}
