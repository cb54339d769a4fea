//! Bind parameters handed out by a builder.
//!
//! A statement's values are never pasted into its text: each is bound here
//! and the builder hands back the placeholder (`$n`) to write instead. The
//! numbers follow the order of binding, so that conditions built by
//! different modules can be combined without agreeing on numbers first.

use pgrx::datum::DatumWithOid;
use std::fmt;

/// The placeholder of one bound parameter; displays as `$n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param(usize);

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0)
    }
}

/// The parameters of one statement (or of several statements that share
/// them), in binding order.
#[derive(Default)]
pub struct Params {
    args: Vec<DatumWithOid<'static>>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds a value; returns its placeholder.
    pub fn bind(&mut self, value: impl Into<DatumWithOid<'static>>) -> Param {
        self.args.push(value.into());
        Param(self.args.len())
    }

    /// Binds another value to a placeholder bound before.
    pub fn rebind(&mut self, at: Param, value: impl Into<DatumWithOid<'static>>) {
        self.args[at.0 - 1] = value.into();
    }

    /// The values, in placeholder order, for `Spi` calls.
    pub fn args(&self) -> &[DatumWithOid<'static>] {
        &self.args
    }

    /// A second set of the same parameters (the datums are shared, not
    /// copied: by-reference values live as long as the originals, which
    /// are allocated in the function's memory context).
    pub fn share(&self) -> Params {
        Params {
            args: self
                .args
                .iter()
                .map(|a| unsafe { DatumWithOid::new_from_datum(a.datum(), a.oid()) })
                .collect(),
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn placeholders_follow_binding_order() {
        let mut p = Params::new();
        let a = p.bind(40i64);
        let b = p.bind(2i64);
        let c = p.bind("x");
        assert_eq!(
            (a.to_string(), b.to_string(), c.to_string()),
            ("$1".into(), "$2".into(), "$3".into())
        );
        let n = Spi::get_one_with_args::<i64>(&format!("SELECT {a} + {b} + length({c})"), p.args())
            .unwrap()
            .unwrap();
        assert_eq!(n, 43);
        let shared = p.share();
        let m = Spi::get_one_with_args::<i64>(&format!("SELECT {a} - {b}"), &shared.args()[..2])
            .unwrap()
            .unwrap();
        assert_eq!(m, 38);
    }
}
