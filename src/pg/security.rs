//! Who may do what, and whose rights an action runs with.
//!
//! The extension's own tables belong to the role that created the extension
//! and are not writable by anyone else; the Rust entry points check the
//! caller's rights and then write those tables as the extension owner, with
//! fixed statements on values of built-in types only.
//!
//! Statements on application tables run as the table's owner, inside a
//! security-restricted operation and under pinned settings
//! ([`as_table_owner`]), as PostgreSQL's maintenance commands do: code
//! attached to a table (triggers, row security, defaults, index
//! expressions, foreign-key actions) only ever runs with the rights of the
//! role that owns it. Before that, the rights of the role on whose behalf
//! the statement runs (a policy's owner, a subject kind's owner) are
//! checked, so nobody can make the extension delete rows they could not
//! delete themselves. Declared expressions may call built-in code only
//! (see `expr`), so running them as the table owner lends nobody's rights
//! to anybody.

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

/// Whether a role with this OID exists.
pub fn role_exists(oid: pg_sys::Oid) -> bool {
    unsafe { !pg_sys::GetUserNameFromId(oid, true).is_null() }
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

/// Refuses callers that are not admins with the privileges of `owner` (the
/// owner, a member of the owner role, or superuser): the rule for changing
/// a policy or a subject kind. `what` names the object, e.g. `policy "x"`.
fn require_owner_privileges(owner: pg_sys::Oid, action: &str, what: &str, hint: &str) {
    require_admin(action);
    if !has_privs_of(current_role(), owner) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "must be a member of role \"{}\" to change {what}",
                role_name(owner)
            ),
            hint,
        )
    }
}

/// Refuses callers that may not change a policy owned by `owner`.
pub fn require_policy_control(policy: &str, owner: pg_sys::Oid) {
    require_owner_privileges(
        owner,
        "change retention policies",
        &format!("policy \"{policy}\""),
        "A policy can be changed or dropped by its owner, members of the owner role and superusers.",
    )
}

/// Refuses callers that may not change a subject kind owned by `owner`.
pub fn require_kind_control(kind: &str, owner: pg_sys::Oid) {
    require_owner_privileges(
        owner,
        "change subject maps",
        &format!("subject kind \"{kind}\""),
        "A subject kind can be changed or dropped by its owner, members of the owner role and superusers.",
    )
}

/// The settings every statement the extension generates runs under, and
/// every declared expression is analysed and deparsed under: what SQL text
/// means (string literals, names, the zone of a `timestamp`, how dates,
/// intervals, floats and bytes are written) never depends on the session
/// that declared or runs it. A `timestamp` clock is read as UTC.
pub const PINNED_SETTINGS: &[(&str, &str)] = &[
    ("search_path", "pg_catalog, pg_temp"),
    ("standard_conforming_strings", "on"),
    ("backslash_quote", "safe_encoding"),
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("xmloption", "content"),
    ("xmlbinary", "base64"),
    ("transform_null_equals", "off"),
    ("array_nulls", "on"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("row_security", "on"),
];

/// Runs `f` with every setting of [`PINNED_SETTINGS`] pinned, restoring the
/// caller's settings afterwards (an ERROR in `f` restores them with the
/// (sub)transaction it aborts).
pub fn with_pinned_settings<R>(f: impl FnOnce() -> R) -> R {
    with_settings(PINNED_SETTINGS, f)
}

/// Runs `f` with only `search_path` pinned to `pg_catalog, pg_temp`: names
/// in declared text resolve as they will when the extension runs it, while
/// literals still mean what they meant in the declaring session.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&PINNED_SETTINGS[..1], f)
}

fn with_settings<R>(settings: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    with_settings_as(pg_sys::GucContext::PGC_USERSET, settings, f)
}

/// Runs `f` with `settings` in force, set in `context` (PGC_INTERNAL for
/// the extension's own read-only settings), restoring the previous values
/// afterwards; the one place that sets server settings for a scope.
pub fn with_settings_as<R>(
    context: pg_sys::GucContext::Type,
    settings: &[(&str, &str)],
    f: impl FnOnce() -> R,
) -> R {
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
    for (name, value) in settings {
        let (Ok(n), Ok(v)) = (CString::new(*name), CString::new(*value)) else {
            continue;
        };
        // Already in force (nested calls, or the session's own value): the
        // check and assign hooks need not run again.
        let current = unsafe { pg_sys::GetConfigOption(n.as_ptr(), true, false) };
        if !current.is_null() && unsafe { std::ffi::CStr::from_ptr(current) } == v.as_c_str() {
            continue;
        }
        unsafe {
            pg_sys::set_config_option(
                n.as_ptr(),
                v.as_ptr(),
                context,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                pgrx::PgLogLevel::ERROR as i32,
                false,
            );
        }
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
    with_pinned_settings(|| {
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

/// The role that owns a relation, or `None` when there is no such relation.
pub fn table_owner(rel: pg_sys::Oid) -> Option<pg_sys::Oid> {
    Spi::connect(|c| {
        crate::pg::plans::select(
            c,
            "SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1",
            &[rel.into()],
        )
        .and_then(|rows| match rows.is_empty() {
            true => Ok(None),
            false => rows.first().get::<pg_sys::Oid>(1),
        })
    })
    .or_raise("looking up a table owner")
}

/// Runs `f` as the owner of table `rel`, in a security-restricted operation
/// under the pinned settings, as PostgreSQL's own maintenance commands
/// (VACUUM, ANALYZE, REFRESH MATERIALIZED VIEW) do: the table's triggers,
/// row-security policies, defaults, index expressions and foreign-key
/// actions run with the rights of the role that wrote them, never with the
/// rights of whoever declared or runs a policy. Every statement that reads
/// or changes an application table runs inside this.
pub fn as_table_owner<R>(rel: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let Some(owner) = table_owner(rel) else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("table with OID {} does not exist", rel.to_u32()),
            "The table was dropped; drop or change the policy or subject map that names it.",
        )
    };
    with_user(owner, true, f)
}

/// Whether `role` holds every privilege of `privileges` (e.g. `SELECT`,
/// `DELETE`) on relation `rel`.
pub fn has_table_privileges(role: pg_sys::Oid, rel: pg_sys::Oid, privileges: &str) -> bool {
    Spi::connect(|c| {
        crate::pg::plans::select(
            c,
            "SELECT pg_catalog.has_table_privilege($1::oid, $2::oid, $3)",
            &[role.into(), rel.into(), privileges.into()],
        )
        .and_then(|rows| match rows.is_empty() {
            true => Ok(None),
            false => rows.first().get::<bool>(1),
        })
    })
    .or_raise("checking table privileges")
    .unwrap_or(false)
}

/// The first of `privileges` that `role` lacks on `rel`, if any.
pub fn missing_privilege<'a>(
    role: pg_sys::Oid,
    rel: pg_sys::Oid,
    privileges: &[&'a str],
) -> Option<&'a str> {
    privileges
        .iter()
        .find(|p| !has_table_privileges(role, rel, p))
        .copied()
}

/// Whether row security restricts what `role` sees of `rel`: the table has
/// row security enabled and `role` neither owns it (as a member of its
/// owner) nor bypasses row security. Functions that read a table as its
/// owner on a caller's behalf skip such tables: the owner would see rows
/// the caller may not.
pub fn row_security_binds(role: pg_sys::Oid, rel: pg_sys::Oid) -> bool {
    let rls = Spi::connect(|c| {
        crate::pg::plans::select(
            c,
            "SELECT c.relrowsecurity AND NOT pg_catalog.pg_has_role($1::oid, c.relowner, 'USAGE')
                    AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = $1::oid)
               FROM pg_catalog.pg_class c WHERE c.oid = $2::oid",
            &[role.into(), rel.into()],
        )
        .and_then(|rows| match rows.is_empty() {
            true => Ok(None),
            false => rows.first().get::<bool>(1),
        })
    })
    .or_raise("checking row security");
    rls.unwrap_or(false)
}

/// Why `role` may not read `rel` the way a function reading it as its
/// owner would (no SELECT, or row security that binds the role), if so.
pub fn cannot_read_as_owner(role: pg_sys::Oid, rel: pg_sys::Oid) -> Option<&'static str> {
    if !has_table_privileges(role, rel, "SELECT") {
        Some("lacks SELECT on")
    } else if row_security_binds(role, rel) {
        Some("is restricted by row security on")
    } else {
        None
    }
}

/// Whether the calling role may act on the data of a subject kind: it is a
/// member of the kind's owner, or holds DELETE on the kind's root table
/// (the right to erase that data itself).
pub fn entitled_to_kind(owner: pg_sys::Oid, root: pg_sys::Oid) -> bool {
    let me = current_role();
    has_privs_of(me, owner) || has_table_privileges(me, root, "DELETE")
}

/// Refuses callers not entitled to a kind's subjects (see [`entitled_to_kind`]).
pub fn require_kind_entitlement(kind: &str, owner: pg_sys::Oid, root: pg_sys::Oid, action: &str) {
    if !entitled_to_kind(owner, root) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to {action} for subject kind \"{kind}\""),
            format!(
                "Only members of role \"{}\" (the kind's owner) and roles with DELETE on the kind's root table may {action}.",
                role_name(owner)
            ),
        )
    }
}

/// The role that owns the extension and its tables.
pub fn extension_owner() -> pg_sys::Oid {
    Spi::connect(|c| {
        crate::pg::plans::select(
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
