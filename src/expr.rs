//! Declared expressions (a policy's clock and filter).
//!
//! A declared expression is SQL text that later becomes part of the engine's
//! statements, so it is accepted only when the server's own parser says it is
//! exactly one expression: parsed in PL/pgSQL-expression mode (the part of a
//! SELECT after the keyword), it must yield one SELECT with one unnamed target
//! and no other clause. Then it is analysed against the target table for its
//! type, for volatile functions and for sub-queries, all of which are refused.
//! The text is only ever embedded between a newline-delimited pair of
//! parentheses, so a trailing `--` comment cannot swallow what follows.

use crate::error::{raise, raise_detail};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CString;

/// What a declared expression is for; decides the accepted types.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Clock,
    Filter,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Clock => "clock",
            Role::Filter => "filter",
        }
    }
}

/// Embeds a validated expression in a statement.
pub fn embed(expr: &str) -> String {
    format!("(\n{expr}\n)")
}

/// Checks that `text` is one SQL expression and nothing else. Does not look at
/// any table.
pub fn check_single_expression(role: Role, text: &str) {
    let word = role.word();
    if text.trim().is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{word} must not be empty"),
            hint_for(role),
        )
    }
    let Ok(c) = CString::new(text) else {
        raise(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            format!("{word} contains a zero byte"),
            hint_for(role),
        )
    };
    let parsed = PgTryBuilder::new(|| unsafe {
        pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_PLPGSQL_EXPR)
    })
    .catch_others(|e| reraise(role, e))
    .execute();

    let why = unsafe { single_expression_problem(parsed) };
    if let Some(why) = why {
        raise_detail(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            format!("{word} is not a single SQL expression"),
            why,
            hint_for(role),
        )
    }
}

/// Returns why a raw parse tree is not exactly one bare expression.
unsafe fn single_expression_problem(list: *mut pg_sys::List) -> Option<&'static str> {
    if list.is_null() || pg_sys::list_length(list) != 1 {
        return Some("It contains more than one statement.");
    }
    let raw = pg_sys::list_nth(list, 0) as *mut pg_sys::RawStmt;
    let stmt = (*raw).stmt;
    if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_SelectStmt {
        return Some("It is not an expression.");
    }
    let s = stmt as *mut pg_sys::SelectStmt;
    let s = &*s;
    if s.op != pg_sys::SetOperation::SETOP_NONE {
        return Some("It contains UNION, INTERSECT or EXCEPT.");
    }
    if s.targetList.is_null() || pg_sys::list_length(s.targetList) != 1 {
        return Some("It must be exactly one expression, without commas at the top level.");
    }
    let target = pg_sys::list_nth(s.targetList, 0) as *mut pg_sys::ResTarget;
    if (*target).type_ != pg_sys::NodeTag::T_ResTarget || (*target).val.is_null() {
        return Some("It is not an expression.");
    }
    if !(*target).name.is_null() {
        return Some("It carries an alias (AS ...).");
    }
    if !s.fromClause.is_null()
        || !s.whereClause.is_null()
        || !s.groupClause.is_null()
        || !s.havingClause.is_null()
        || !s.windowClause.is_null()
        || !s.sortClause.is_null()
        || !s.limitCount.is_null()
        || !s.limitOffset.is_null()
        || !s.lockingClause.is_null()
        || !s.withClause.is_null()
        || !s.valuesLists.is_null()
        || !s.distinctClause.is_null()
        || !s.intoClause.is_null()
    {
        return Some("It contains a clause (FROM, WHERE, GROUP BY, ORDER BY, LIMIT, ...) after the expression.");
    }
    None
}

/// Re-raises a parser or analyser error as a declaration error about the
/// clock or filter, keeping the SQLSTATE and the server's message (which names
/// columns and types, never row data).
fn reraise<T>(role: Role, e: CaughtError) -> T {
    match e {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
            let code = report.sql_error_code();
            // A syntax error position refers to the declared text; the
            // server message is enough to find it.
            raise(
                code,
                format!("invalid {}: {}", role.word(), report.message()),
                hint_for(role),
            )
        }
        CaughtError::RustPanic { .. } => raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "invalid {}: the expression could not be checked",
                role.word()
            ),
            hint_for(role),
        ),
    }
}

fn hint_for(role: Role) -> &'static str {
    match role {
        Role::Clock => "The clock is one column or one expression of the target table of type timestamptz, timestamp or date, e.g. created_at or coalesce(closed_at, created_at).",
        Role::Filter => "The filter is one boolean expression over the target table's columns, e.g. status = 'closed'; sub-queries and volatile functions are not allowed.",
    }
}

/// A declared expression after validation: its type and the canonical text
/// to store and run.
pub struct Checked {
    pub ty: pg_sys::Oid,
    /// What the server deparses from the validated tree under the pinned
    /// settings: names resolved and qualified as validated, literals written
    /// in one fixed form. This, not the declared text, is stored and later
    /// embedded, so it means the same whatever session runs it.
    pub canonical: String,
}

/// Analyses a single expression against a table: its type, and refuses
/// unknown columns, sub-queries, volatile functions and anything that would
/// run code not built into the server (see [`user_code_in`]). The text is
/// parsed under the declaring session's settings (so its literals mean what
/// the declaring role meant) with names resolved in `pg_catalog` only, then
/// deparsed under the pinned settings into [`Checked::canonical`].
pub fn analyse(role: Role, text: &str, table: &str) -> Checked {
    check_single_expression(role, text);
    let sql = format!("SELECT {} FROM {table} LIMIT 0", embed(text));
    let Ok(c) = CString::new(sql) else {
        raise(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            format!("{} contains a zero byte", role.word()),
            hint_for(role),
        )
    };
    let node = PgTryBuilder::new(|| {
        crate::pg::security::with_pinned_search_path(|| unsafe {
            let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
            let raw = pg_sys::list_nth(list, 0) as *mut pg_sys::RawStmt;
            let query = pg_sys::parse_analyze_fixedparams(
                raw,
                c.as_ptr(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
            );
            let tle = pg_sys::list_nth((*query).targetList, 0) as *mut pg_sys::TargetEntry;
            let rte = pg_sys::list_nth((*query).rtable, 0) as *mut pg_sys::RangeTblEntry;
            (
                (*tle).expr as *mut pg_sys::Node,
                (*rte).relid,
                (*query).hasSubLinks
                    || (*query).hasAggs
                    || (*query).hasWindowFuncs
                    || (*query).hasTargetSRFs,
            )
        })
    })
    .catch_others(|e| reraise(role, e))
    .execute();
    let (node, relid, sublinks) = node;

    if sublinks {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{} must not contain sub-queries, aggregates, window or set-returning functions",
                role.word()
            ),
            hint_for(role),
        )
    }
    if unsafe { pg_sys::contain_volatile_functions(node) } {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{} must not call volatile functions", role.word()),
            "A row's due state must not change between preview and run; use stable or immutable functions only.",
        )
    }
    if let Some(what) = unsafe { user_code_in(node) } {
        raise_detail(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{} may only use functions, operators and types built into PostgreSQL", role.word()),
            format!("It uses {what}."),
            "Declared expressions run with the table owner's rights inside pg_retention's statements, so they cannot call code that any role wrote. Use built-in functions, or keep the value in a column.",
        )
    }
    let ty = unsafe { pg_sys::exprType(node) };
    let canonical = crate::pg::security::with_pinned_settings(|| unsafe {
        let name = pg_sys::get_rel_name(relid);
        let ctx = pg_sys::deparse_context_for(name, relid);
        let text = pg_sys::deparse_expression(node, ctx, false, false);
        std::ffi::CStr::from_ptr(text)
            .to_string_lossy()
            .into_owned()
    });
    Checked { ty, canonical }
}

/// The first piece of an analysed expression that would run code not built
/// into the server: a function or operator (or the input/output function
/// of a type) created after initdb, or a domain whose checks are. `None`
/// when the expression only uses built-in code.
///
/// # Safety
/// `node` must be an analysed expression tree.
pub unsafe fn user_code_in(node: *mut pg_sys::Node) -> Option<String> {
    struct Found(Option<String>);
    unsafe extern "C-unwind" fn user_function(
        func: pg_sys::Oid,
        ctx: *mut std::ffi::c_void,
    ) -> bool {
        if func.to_u32() >= pg_sys::FirstNormalObjectId {
            let found = &mut *(ctx as *mut Found);
            found.0 = Some(format!(
                "function {}",
                c_text(pg_sys::format_procedure(func))
            ));
            return true;
        }
        false
    }
    unsafe extern "C-unwind" fn walker(
        node: *mut pg_sys::Node,
        ctx: *mut std::ffi::c_void,
    ) -> bool {
        if node.is_null() {
            return false;
        }
        if pg_sys::check_functions_in_node(node, Some(user_function), ctx) {
            return true;
        }
        if (*node).type_ == pg_sys::NodeTag::T_CoerceToDomain {
            let d = node as *mut pg_sys::CoerceToDomain;
            if (*d).resulttype.to_u32() >= pg_sys::FirstNormalObjectId {
                let found = &mut *(ctx as *mut Found);
                found.0 = Some(format!(
                    "domain {}",
                    c_text(pg_sys::format_type_be((*d).resulttype))
                ));
                return true;
            }
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
    let mut found = Found(None);
    walker(node, &mut found as *mut Found as *mut std::ffi::c_void);
    found.0
}

unsafe fn c_text(p: *mut std::os::raw::c_char) -> String {
    if p.is_null() {
        return "?".into();
    }
    std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
}

/// The clock types the engine accepts.
pub fn is_clock_type(ty: pg_sys::Oid) -> bool {
    ty == pg_sys::TIMESTAMPTZOID || ty == pg_sys::TIMESTAMPOID || ty == pg_sys::DATEOID
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn accepts_plain_expressions() {
        check_single_expression(Role::Clock, "created_at");
        check_single_expression(Role::Clock, "coalesce(closed_at, created_at)");
        check_single_expression(Role::Filter, "status = 'closed' -- trailing comment");
        check_single_expression(Role::Filter, "a > 1 AND (b IS NULL OR c LIKE 'x;y%')");
    }

    #[pg_test(error = "invalid filter: syntax error at or near \";\"")]
    fn refuses_two_statements() {
        check_single_expression(Role::Filter, "true; DELETE FROM t");
    }

    #[pg_test(error = "filter is not a single SQL expression")]
    fn refuses_from_clause() {
        check_single_expression(Role::Filter, "true FROM pg_class");
    }

    #[pg_test(error = "clock is not a single SQL expression")]
    fn refuses_two_targets() {
        check_single_expression(Role::Clock, "a, b");
    }

    #[pg_test(error = "clock is not a single SQL expression")]
    fn refuses_alias() {
        check_single_expression(Role::Clock, "a AS b");
    }

    #[pg_test(error = "invalid filter: syntax error at or near \")\"")]
    fn refuses_unbalanced_parenthesis() {
        check_single_expression(Role::Filter, "true) OR (true");
    }

    #[pg_test(error = "filter must not be empty")]
    fn refuses_empty() {
        check_single_expression(Role::Filter, "   ");
    }

    #[pg_test]
    fn analyses_type() {
        Spi::run("CREATE TABLE public.t_expr (id int, created_at timestamptz, d date, s text)")
            .unwrap();
        assert_eq!(
            analyse(Role::Clock, "created_at", "public.t_expr").ty,
            pg_sys::TIMESTAMPTZOID
        );
        assert_eq!(
            analyse(Role::Clock, "d", "public.t_expr").ty,
            pg_sys::DATEOID
        );
        assert_eq!(
            analyse(Role::Filter, "s = 'x'", "public.t_expr").ty,
            pg_sys::BOOLOID
        );
        // Stored in the server's canonical form, with literals typed.
        assert_eq!(
            analyse(Role::Filter, "s IN ('x', 'y')", "public.t_expr").canonical,
            "(s = ANY (ARRAY['x'::text, 'y'::text]))"
        );
    }

    #[pg_test(error = "invalid clock: column \"nope\" does not exist")]
    fn refuses_missing_column() {
        Spi::run("CREATE TABLE public.t_expr2 (id int)").unwrap();
        analyse(Role::Clock, "nope", "public.t_expr2");
    }

    #[pg_test(error = "filter must not call volatile functions")]
    fn refuses_volatile() {
        Spi::run("CREATE TABLE public.t_expr3 (id int)").unwrap();
        analyse(Role::Filter, "random() < 0.5", "public.t_expr3");
    }

    #[pg_test(error = "filter may only use functions, operators and types built into PostgreSQL")]
    fn refuses_functions_some_role_wrote() {
        Spi::run("CREATE TABLE public.t_expr5 (id int)").unwrap();
        Spi::run("CREATE FUNCTION public.f_expr5(int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT true'")
            .unwrap();
        analyse(Role::Filter, "public.f_expr5(id)", "public.t_expr5");
    }

    /// Literals mean what they meant to the declaring session; the stored
    /// form reads the same under the pinned settings.
    #[pg_test]
    fn canonical_form_does_not_depend_on_session_settings() {
        Spi::run("CREATE TABLE public.t_expr6 (s text, at timestamptz)").unwrap();
        Spi::run("SET standard_conforming_strings = off").unwrap();
        Spi::run("SET escape_string_warning = off").unwrap();
        Spi::run("SET TimeZone = 'Pacific/Kiritimati'").unwrap();
        Spi::run("SET DateStyle = 'SQL, DMY'").unwrap();
        let c = analyse(
            Role::Filter,
            r"s = 'a\' OR true' AND at > '02/01/2020 00:00'",
            "public.t_expr6",
        )
        .canonical;
        Spi::run("RESET standard_conforming_strings").unwrap();
        Spi::run("RESET TimeZone").unwrap();
        Spi::run("RESET DateStyle").unwrap();
        assert_eq!(
            c,
            "((s = 'a'' OR true'::text) AND (at > '2020-01-01 10:00:00+00'::timestamp with time zone))"
        );
    }

    #[pg_test(
        error = "filter must not contain sub-queries, aggregates, window or set-returning functions"
    )]
    fn refuses_subquery() {
        Spi::run("CREATE TABLE public.t_expr4 (id int)").unwrap();
        analyse(Role::Filter, "id IN (SELECT 1)", "public.t_expr4");
    }
}
