//! A statement timeout for one batch.
//!
//! PostgreSQL arms `statement_timeout` once per top-level statement, so a
//! setting changed inside `CALL retention.run()` would never apply to a
//! batch. The batch arms the server's own statement timer instead, unless a
//! statement timeout of the caller's is already running (which is then left
//! alone), and disarms it when the batch ends, also when it fails.

use std::ffi::c_int;

// The server's timeout API (utils/timeout.h); `STATEMENT_TIMEOUT` is the
// fourth TimeoutId in PostgreSQL 13 to 17.
extern "C-unwind" {
    fn enable_timeout_after(id: c_int, delay_ms: c_int);
    fn disable_timeout(id: c_int, keep_indicator: bool);
    fn get_timeout_active(id: c_int) -> bool;
    fn get_timeout_indicator(id: c_int, reset_indicator: bool) -> bool;
}
const STATEMENT_TIMEOUT: c_int = 3;

pub struct StatementTimer {
    armed: bool,
}

thread_local! {
    /// Whether the last batch's statement timer was pg_retention's own (as
    /// opposed to the caller's statement_timeout, already running).
    static LAST_WAS_OURS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether a statement timeout in the last batch came from the timer that
/// pg_retention armed for it. When the caller's own statement_timeout was
/// running, a timeout is the caller's: it ends the run, it is not retried.
pub fn last_timer_was_ours() -> bool {
    LAST_WAS_OURS.with(|c| c.get())
}

/// Whether the statement timer fired since this was last asked (a query
/// cancel then came from a statement timeout, not a cancel request).
pub fn last_timeout_fired() -> bool {
    unsafe { get_timeout_indicator(STATEMENT_TIMEOUT, true) }
}

impl StatementTimer {
    pub fn start(ms: i64) -> StatementTimer {
        let ms = ms.clamp(1, i32::MAX as i64) as c_int;
        unsafe {
            if get_timeout_active(STATEMENT_TIMEOUT) {
                LAST_WAS_OURS.with(|c| c.set(false));
                return StatementTimer { armed: false };
            }
            enable_timeout_after(STATEMENT_TIMEOUT, ms);
        }
        LAST_WAS_OURS.with(|c| c.set(true));
        StatementTimer { armed: true }
    }
}

impl Drop for StatementTimer {
    fn drop(&mut self) {
        if self.armed {
            // keep_indicator: a timeout that already fired must still be
            // reported as a statement timeout by the cancel it raised.
            unsafe { disable_timeout(STATEMENT_TIMEOUT, true) }
        }
    }
}
