//! Who may do what, and whose rights an action runs with.
//!
//! The extension's own tables belong to the role that created the extension
//! and are not writable by anyone else; the Rust entry points check the
//! caller's membership in `retention_admin` and then write those tables as the
//! extension owner. Row changes on a policy's target run as the policy's
//! owner, inside a security-restricted operation (as PostgreSQL does for
//! maintenance commands), so nobody can make the extension delete rows they
//! could not delete themselves.

use crate::error::{raise, OrRaise};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CString;

pub const ADMIN_ROLE: &str = "retention_admin";
pub const AUDITOR_ROLE: &str = "retention_auditor";

/// The OID of a role, or `None` when there is no such role.
pub fn role_oid(name: &str) -> Option<pg_sys::Oid> {
    let c = CString::new(name).ok()?;
    let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    if oid == pg_sys::InvalidOid {
        None
    } else {
        Some(oid)
    }
}

/// The role whose rights apply right now (SQL `current_user`).
pub fn current_role() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

/// The name of a role; the OID in text form if it no longer exists.
pub fn role_name(oid: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::GetUserNameFromId(oid, true);
        if p.is_null() {
            format!("{}", oid.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Whether `member` has the privileges of `role` (superusers have all).
pub fn has_privs_of(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    unsafe { pg_sys::has_privs_of_role(member, role) }
}

/// Refuses callers that are not members of `retention_admin`.
pub fn require_admin(action: &str) {
    let Some(admin) = role_oid(ADMIN_ROLE) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("role \"{ADMIN_ROLE}\" does not exist"),
            "Recreate it with CREATE ROLE retention_admin NOLOGIN, or reinstall the extension.",
        )
    };
    if !has_privs_of(current_role(), admin) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to {action}"),
            format!("Only members of {ADMIN_ROLE} may {action}: GRANT {ADMIN_ROLE} TO <role>."),
        )
    }
}

/// Refuses callers that are neither admins nor auditors.
pub fn require_reader(action: &str) {
    let me = current_role();
    let ok = [ADMIN_ROLE, AUDITOR_ROLE]
        .iter()
        .filter_map(|r| role_oid(r))
        .any(|r| has_privs_of(me, r));
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to {action}"),
            format!("Only members of {ADMIN_ROLE} or {AUDITOR_ROLE} may {action}."),
        )
    }
}

/// Refuses callers that may not change a policy owned by `owner`: they must
/// be admins and have the owner's privileges (be the owner, a member of the
/// owner role, or superuser).
pub fn require_policy_control(policy: &str, owner: pg_sys::Oid) {
    require_admin("change retention policies");
    if !has_privs_of(current_role(), owner) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be a member of role \"{}\" to change policy \"{policy}\"", role_name(owner)),
            "A policy can be changed or dropped by its owner, members of the owner role and superusers.",
        )
    }
}

/// Runs `f` with `search_path` pinned to `pg_catalog, pg_temp`, restoring
/// the caller's setting afterwards. Everything the extension executes with
/// someone else's rights runs this way, so that objects planted in the
/// caller's schemas (operators, functions) cannot be picked up by the
/// extension's statements or by a policy's clock and filter.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // While an ERROR unwinds, transaction abort restores GUCs itself.
            if !std::thread::panicking() {
                unsafe { pg_sys::AtEOXact_GUC(true, self.0) }
            }
        }
    }
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    let _restore = Restore(level);
    unsafe {
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
    f()
}

/// Runs `f` with the rights of `role`, restoring the previous user afterwards
/// (also when `f` raises an ERROR: the guard's Drop runs while the error
/// unwinds, and transaction abort restores the user id in any case).
fn with_user<R>(role: pg_sys::Oid, restricted: bool, f: impl FnOnce() -> R) -> R {
    struct Restore {
        uid: pg_sys::Oid,
        ctx: i32,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe { pg_sys::SetUserIdAndSecContext(self.uid, self.ctx) }
        }
    }
    with_pinned_search_path(|| {
        let mut uid = pg_sys::InvalidOid;
        let mut ctx: i32 = 0;
        unsafe { pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx) };
        let _restore = Restore { uid, ctx };
        let mut flags = ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32;
        if restricted {
            flags |= pg_sys::SECURITY_RESTRICTED_OPERATION as i32;
        }
        unsafe { pg_sys::SetUserIdAndSecContext(role, flags) };
        f()
    })
}

/// Runs `f` as a policy's owner, in a security-restricted operation.
pub fn as_policy_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    with_user(owner, true, f)
}

/// The role that owns the extension and its tables.
pub fn extension_owner() -> pg_sys::Oid {
    Spi::connect(|c| {
        crate::plans::select(
            c,
            "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_retention'",
            &[],
        )
        .and_then(|rows| match rows.is_empty() {
            true => Ok(None),
            false => rows.first().get::<pg_sys::Oid>(1),
        })
    })
    .or_raise("looking up the extension owner")
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "extension \"pg_retention\" is not installed in this database",
            "CREATE EXTENSION pg_retention;",
        )
    })
}

/// Runs `f` as the extension owner: used for writes to the extension's own
/// tables after the caller's rights have been checked.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    with_user(owner, false, f)
}
