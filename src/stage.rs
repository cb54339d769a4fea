//! Lifecycle stages (mark → anonymise → purge), masks and restriction.
//!
//! A policy's stages are columns of `retention.policies` (one stage per
//! action); the masks of its anonymise stage are rows of `retention.masks`.
//! Both are validated here against the target table when declared, and
//! turned into SQL (quoted identifiers, bind parameters) by `mask_plan`.

use crate::error::{raise, OrRaise};
use crate::ident;
use crate::policy::{self, Policy};
use crate::security;
use pgrx::datum::{DatumWithOid, Interval, JsonB};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::Value;
use std::cell::Cell;

thread_local! {
    /// Set while the engine's own mark or anonymise statement runs, so that
    /// the restriction trigger lets it through.
    static STAGE_ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as a stage statement (see `STAGE_ACTIVE`), with the setting
/// `retention.stage_write` on, so that triggers can tell pg_retention's own
/// writes from the application's (`retention.touch()` does: the extension's
/// stages never move a clock).
pub fn as_stage<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STAGE_ACTIVE.with(|s| s.set(false));
        }
    }
    STAGE_ACTIVE.with(|s| s.set(true));
    let _reset = Reset;
    security::with_settings_as(
        pg_sys::GucContext::PGC_INTERNAL,
        &[("retention.stage_write", "on")],
        f,
    )
}

/// Whether a pg_retention stage statement is running in this backend.
pub fn stage_is_active() -> bool {
    STAGE_ACTIVE.with(|s| s.get())
}

/// Normalises an action name; `anonymize` is accepted for `anonymise`.
pub fn action_name(action: &str) -> &'static str {
    match action.trim().to_ascii_lowercase().as_str() {
        "mark" => "mark",
        "anonymise" | "anonymize" => "anonymise",
        "purge" => "purge",
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "unknown stage action \"{}\"",
                action.chars().take(40).collect::<String>()
            ),
            "The actions are 'mark', 'anonymise' (or 'anonymize') and 'purge'.",
        ),
    }
}

/// Checks that the policy's stage ages increase mark < anonymise < purge
/// once `action` gets `age`.
pub fn check_order(policy_id: i64, action: &str, age: Interval) {
    let ok = Spi::get_one_with_args::<bool>(
        "SELECT (m IS NULL OR a IS NULL OR m < a) AND (a IS NULL OR pu IS NULL OR a < pu)
                AND (m IS NULL OR pu IS NULL OR m < pu)
           FROM (SELECT CASE WHEN $2 = 'mark' THEN $3 ELSE mark_after END AS m,
                        CASE WHEN $2 = 'anonymise' THEN $3 ELSE anonymise_after END AS a,
                        CASE WHEN $2 = 'purge' THEN $3 ELSE purge_after END AS pu
                   FROM retention.policies WHERE id = $1) s",
        &[policy_id.into(), action.into(), age.into()],
    )
    .or_raise("checking stage order")
    .unwrap_or(false);
    if !ok {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the {action} stage at this age breaks the stage order"),
            "Stage ages must increase: mark < anonymise < purge (e.g. 30 days, 2 years, 10 years).",
        )
    }
}

/// A column of the target: its type and whether it may be NULL.
struct Column {
    ty: pg_sys::Oid,
    typmod: i32,
    not_null: bool,
    type_name: String,
}

fn column(target: pg_sys::Oid, table: &str, name: &str) -> Column {
    let row =
        Spi::connect(|c| {
            c.select(
            "SELECT atttypid, atttypmod, attnotnull, pg_catalog.format_type(atttypid, atttypmod)
               FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            None,
            &[target.into(), name.into()],
        )
        .or_raise("reading a column")
        .next()
        .map(|r| Column {
            ty: r.get::<pg_sys::Oid>(1).or_raise("reading a column").unwrap_or(pg_sys::InvalidOid),
            typmod: r.get::<i32>(2).or_raise("reading a column").unwrap_or(-1),
            not_null: r.get::<bool>(3).or_raise("reading a column").unwrap_or(false),
            type_name: r.get::<String>(4).or_raise("reading a column").unwrap_or_default(),
        })
        });
    row.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{name}\" of {table} does not exist"),
            "Name an existing column of the policy's target table.",
        )
    })
}

/// Checks a marker or tracking column: timestamptz (NULL = not yet) or
/// boolean (NULL/false = not yet).
fn check_state_column(target: pg_sys::Oid, table: &str, name: &str, what: &str) -> pg_sys::Oid {
    let col = column(target, table, name);
    if col.ty == pg_sys::TIMESTAMPTZOID {
        if col.not_null {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_COLUMN_DEFINITION,
                format!("{what} column \"{name}\" must allow NULL"),
                "NULL means the stage has not been applied yet: ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL.",
            )
        }
    } else if col.ty != pg_sys::BOOLOID {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "{what} column \"{name}\" must be of type timestamptz or boolean, not {}",
                col.type_name
            ),
            format!("Add one, e.g. ALTER TABLE {table} ADD COLUMN {name} timestamptz."),
        )
    }
    col.ty
}

#[pg_extern(name = "_add_stage")]
fn add_stage(
    policy_name: &str,
    after: Option<Interval>,
    action: &str,
    column_name: Option<&str>,
) -> i64 {
    let p = policy::load_one(policy_name);
    security::require_policy_control(policy_name, p.owner);
    let action = action_name(action);
    let Some(after) = after else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "after must not be NULL",
            "Give the age at which the stage applies, e.g. interval '30 days'.",
        )
    };
    let after = policy::check_age("after", after);
    let already = match action {
        "mark" => p.mark.is_some(),
        "anonymise" => p.anonymise.is_some(),
        _ => p.purge,
    };
    if already {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("policy \"{policy_name}\" already has a {action} stage"),
            "A policy has one stage per action; drop it first with retention.drop_stage(policy, action).",
        )
    }
    check_order(p.id, action, after);
    if action == "purge" {
        policy::check_stored_minimum(p.id, after);
    }
    let table = policy::check_target(p.target);
    let owner_check = |privilege: &str, why: &str| {
        let ok = Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.has_table_privilege($1::oid, $2::oid, $3)",
            &[p.owner.into(), p.target.into(), privilege.into()],
        )
        .or_raise("checking table privileges")
        .unwrap_or(false);
        if !ok {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied: the policy owner needs {privilege} on {table} {why}"),
                format!("Stages run with the policy owner's rights: GRANT {privilege} ON {table} TO {}.", security::role_name(p.owner)),
            )
        }
    };
    let (column, column_type) = match action {
        "purge" => {
            if column_name.is_some() {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    "the purge stage takes no column",
                    "Leave column_name out for 'purge'.",
                )
            }
            owner_check("DELETE", "for a purge stage");
            (None, None)
        }
        _ => {
            let what = if action == "mark" {
                "marker"
            } else {
                "anonymised"
            };
            let Some(col) = column_name else {
                raise(
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("the {action} stage needs a column"),
                    format!(
                        "Name a timestamptz or boolean column that records the {action} stage, e.g. column_name => '{}'.",
                        if action == "mark" { "restricted_at" } else { "anonymised_at" }
                    ),
                )
            };
            let ty = check_state_column(p.target, &table, col, what);
            if p.key_columns
                .as_ref()
                .is_some_and(|k| k.iter().any(|c| c == col))
            {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("column \"{col}\" is part of the table's key"),
                    "Use a separate column to record the stage.",
                )
            }
            owner_check("UPDATE", &format!("for a {action} stage"));
            if let Some(note) = clock_trigger_note(p.target, &table) {
                pgrx::notice!("policy \"{policy_name}\": {note}");
            }
            (Some(col.to_string()), Some(ty))
        }
    };
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET
                 mark_after        = CASE WHEN $2 = 'mark' THEN $3 ELSE mark_after END,
                 marker_column     = CASE WHEN $2 = 'mark' THEN $4 ELSE marker_column END,
                 marker_type       = CASE WHEN $2 = 'mark' THEN $5::oid::regtype ELSE marker_type END,
                 anonymise_after   = CASE WHEN $2 = 'anonymise' THEN $3 ELSE anonymise_after END,
                 anonymised_column = CASE WHEN $2 = 'anonymise' THEN $4 ELSE anonymised_column END,
                 anonymised_type   = CASE WHEN $2 = 'anonymise' THEN $5::oid::regtype ELSE anonymised_type END,
                 purge_after       = CASE WHEN $2 = 'purge' THEN $3 ELSE purge_after END,
                 updated_at        = pg_catalog.now()
             WHERE id = $1",
            &[p.id.into(), action.into(), after.into(), column.into(), column_type.into()],
        )
        .or_raise("adding the stage")
    });
    p.id
}

#[pg_extern(name = "_drop_stage")]
fn drop_stage(policy_name: &str, action: &str) -> bool {
    let p = policy::load_one(policy_name);
    security::require_policy_control(policy_name, p.owner);
    let action = action_name(action);
    let had = match action {
        "mark" => p.mark.is_some(),
        "anonymise" => p.anonymise.is_some(),
        _ => p.purge,
    };
    if !had {
        return false;
    }
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE retention.policies SET
                 mark_after        = CASE WHEN $2 = 'mark' THEN NULL ELSE mark_after END,
                 marker_column     = CASE WHEN $2 = 'mark' THEN NULL ELSE marker_column END,
                 marker_type       = CASE WHEN $2 = 'mark' THEN NULL ELSE marker_type END,
                 anonymise_after   = CASE WHEN $2 = 'anonymise' THEN NULL ELSE anonymise_after END,
                 anonymised_column = CASE WHEN $2 = 'anonymise' THEN NULL ELSE anonymised_column END,
                 anonymised_type   = CASE WHEN $2 = 'anonymise' THEN NULL ELSE anonymised_type END,
                 purge_after       = CASE WHEN $2 = 'purge' THEN NULL ELSE purge_after END,
                 updated_at        = pg_catalog.now()
             WHERE id = $1",
            &[p.id.into(), action.into()],
        )
        .or_raise("dropping the stage")
    });
    true
}

// ---------------------------------------------------------------------------
// Masks
// ---------------------------------------------------------------------------

/// Type families the strategies know.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Family {
    Text,
    Date,
    Timestamp,
    Integer,
    Float,
    Numeric,
    Inet,
    Jsonb,
    Other,
}

fn family(ty: pg_sys::Oid) -> Family {
    match ty {
        t if t == pg_sys::TEXTOID || t == pg_sys::VARCHAROID || t == pg_sys::BPCHAROID => {
            Family::Text
        }
        t if t == pg_sys::DATEOID => Family::Date,
        t if t == pg_sys::TIMESTAMPOID || t == pg_sys::TIMESTAMPTZOID => Family::Timestamp,
        t if t == pg_sys::INT2OID || t == pg_sys::INT4OID || t == pg_sys::INT8OID => {
            Family::Integer
        }
        t if t == pg_sys::FLOAT4OID || t == pg_sys::FLOAT8OID => Family::Float,
        t if t == pg_sys::NUMERICOID => Family::Numeric,
        t if t == pg_sys::INETOID => Family::Inet,
        t if t == pg_sys::JSONBOID => Family::Jsonb,
        _ => Family::Other,
    }
}

pub const STRATEGIES: [&str; 10] = [
    "null",
    "constant",
    "default",
    "partial",
    "email",
    "pseudonym",
    "hash_random",
    "generalise",
    "noise",
    "jsonb_drop",
];

fn normalise_strategy(s: &str) -> &'static str {
    let s = s.trim().to_ascii_lowercase();
    let s = if s == "generalize" {
        "generalise".to_string()
    } else {
        s
    };
    STRATEGIES
        .iter()
        .find(|x| **x == s)
        .copied()
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "unknown masking strategy \"{}\"",
                    s.chars().take(40).collect::<String>()
                ),
                "SELECT strategy FROM retention.mask_strategies lists them.",
            )
        })
}

fn bad_option(strategy: &str, msg: String) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("invalid options for strategy {strategy}: {msg}"),
        "SELECT strategy, options FROM retention.mask_strategies shows what each strategy takes.",
    )
}

fn refuse_type(strategy: &str, col: &str, col_type: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        format!("strategy {strategy} cannot mask column \"{col}\" of type {col_type}"),
        "SELECT strategy, column_types FROM retention.mask_strategies shows which types each strategy takes.",
    )
}

fn opt_int(
    strategy: &str,
    o: &serde_json::Map<String, Value>,
    key: &str,
    default: Option<i64>,
) -> i64 {
    match o.get(key) {
        None | Some(Value::Null) => {
            default.unwrap_or_else(|| bad_option(strategy, format!("\"{key}\" is required")))
        }
        Some(v) => v
            .as_i64()
            .unwrap_or_else(|| bad_option(strategy, format!("\"{key}\" must be a whole number"))),
    }
}

fn opt_num(strategy: &str, o: &serde_json::Map<String, Value>, key: &str) -> f64 {
    match o.get(key) {
        None | Some(Value::Null) => bad_option(strategy, format!("\"{key}\" is required")),
        Some(v) => v
            .as_f64()
            .unwrap_or_else(|| bad_option(strategy, format!("\"{key}\" must be a number"))),
    }
}

fn opt_str(
    strategy: &str,
    o: &serde_json::Map<String, Value>,
    key: &str,
    default: Option<&str>,
) -> String {
    match o.get(key) {
        None | Some(Value::Null) => default
            .map(String::from)
            .unwrap_or_else(|| bad_option(strategy, format!("\"{key}\" is required"))),
        Some(Value::String(s)) => s.clone(),
        Some(_) => bad_option(strategy, format!("\"{key}\" must be a string")),
    }
}

fn opt_bool(strategy: &str, o: &serde_json::Map<String, Value>, key: &str, default: bool) -> bool {
    match o.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => bad_option(strategy, format!("\"{key}\" must be true or false")),
    }
}

/// One column's masking expression and the parameters it binds.
pub struct MaskExpr {
    pub sql: String,
    pub params: Vec<Param>,
}

/// A bind parameter of a mask expression.
pub enum Param {
    Int(i32),
    BigInt(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    TextArray(Vec<String>),
    RunKey,
}

impl Param {
    pub fn datum(&self, run_key: &[u8]) -> DatumWithOid<'static> {
        match self {
            Param::Int(v) => (*v).into(),
            Param::BigInt(v) => (*v).into(),
            Param::Float(v) => (*v).into(),
            Param::Bool(v) => (*v).into(),
            Param::Text(v) => v.clone().into(),
            Param::TextArray(v) => v.clone().into(),
            Param::RunKey => run_key.to_vec().into(),
        }
    }
}

/// Validates one mask and builds its expression. `$n` placeholders are
/// written as `{}` and numbered by the caller.
fn mask_expr(strategy: &str, options: &Value, col_name: &str, col: &Column) -> MaskExpr {
    let Value::Object(o) = options else {
        bad_option(strategy, "options must be a JSON object".into())
    };
    let allowed: &[&str] = match strategy {
        "constant" => &["value"],
        "partial" => &["keep_start", "keep_end", "fill"],
        "email" => &["keep_domain"],
        "generalise" => &["unit", "width", "bits", "keep"],
        "noise" => &["amount"],
        "jsonb_drop" => &["keys"],
        _ => &[],
    };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        bad_option(
            strategy,
            format!(
                "unknown option \"{}\"",
                k.chars().take(40).collect::<String>()
            ),
        )
    }
    let c = ident::quote(col_name);
    let fam = family(col.ty);
    let t = &col.type_name;
    let short_text = col.ty == pg_sys::VARCHAROID && col.typmod >= 4 && col.typmod - 4 < 64
        || col.ty == pg_sys::BPCHAROID && col.typmod >= 4 && col.typmod - 4 != 64;
    let e = |sql: String, params: Vec<Param>| MaskExpr { sql, params };
    match strategy {
        "null" => {
            if col.not_null {
                raise(
                    PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                    format!("column \"{col_name}\" is NOT NULL and cannot be masked with null"),
                    "Use constant, default or another strategy for this column.",
                )
            }
            e("NULL".into(), vec![])
        }
        "default" => e("DEFAULT".into(), vec![]),
        "constant" => {
            let v = match o.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => bad_option(strategy, "\"value\" is required".into()),
                Some(other) => other.to_string(),
            };
            // The value must be valid for the column's type (checked now).
            let typed = format!("SELECT CAST($1::text AS {t}) IS NOT NULL");
            let ok = crate::partition::try_in_subtransaction(std::panic::AssertUnwindSafe(|| {
                Spi::get_one_with_args::<bool>(&typed, &[v.as_str().into()])
                    .or_raise("checking the constant");
                true
            }))
            .unwrap_or(false);
            if !ok {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                    format!("the constant for column \"{col_name}\" is not a valid {t}"),
                    "Give {\"value\": ...} in the column's input format.",
                )
            }
            e(format!("CAST({{}}::text AS {t})"), vec![Param::Text(v)])
        }
        "partial" => {
            if fam != Family::Text {
                refuse_type(strategy, col_name, t)
            }
            let ks = opt_int(strategy, o, "keep_start", Some(1));
            let ke = opt_int(strategy, o, "keep_end", Some(0));
            if !(0..=1000).contains(&ks) || !(0..=1000).contains(&ke) {
                bad_option(
                    strategy,
                    "keep_start and keep_end must be between 0 and 1000".into(),
                )
            }
            let fill = opt_str(strategy, o, "fill", Some("*"));
            e(
                format!("retention.mask_partial({c}::text, {{}}, {{}}, {{}})"),
                vec![
                    Param::Int(ks as i32),
                    Param::Int(ke as i32),
                    Param::Text(fill),
                ],
            )
        }
        "email" => {
            if fam != Family::Text {
                refuse_type(strategy, col_name, t)
            }
            let kd = opt_bool(strategy, o, "keep_domain", true);
            e(
                format!("retention.mask_email({c}::text, {{}})"),
                vec![Param::Bool(kd)],
            )
        }
        "pseudonym" | "hash_random" => {
            if fam != Family::Text || short_text {
                refuse_type(strategy, col_name, t)
            }
            if strategy == "pseudonym" {
                // The key stays out of the statement (see mask::with_stage_key).
                e(format!("retention._stage_pseudonym({c}::text)"), vec![])
            } else {
                e(
                    format!("retention.mask_hmac({c}::text, {{}})"),
                    vec![Param::RunKey],
                )
            }
        }
        "generalise" => match fam {
            Family::Date | Family::Timestamp => {
                let unit = opt_str(strategy, o, "unit", Some("year"));
                if unit != "year" && unit != "month" {
                    bad_option(strategy, "\"unit\" must be 'month' or 'year'".into())
                }
                e(
                    format!("retention.mask_generalise({c}::date, {{}})"),
                    vec![Param::Text(unit)],
                )
            }
            Family::Integer | Family::Numeric => {
                let w = opt_int(strategy, o, "width", None);
                if w <= 0 {
                    bad_option(strategy, "\"width\" must be positive".into())
                }
                e(
                    format!("retention.mask_generalise(pg_catalog.floor({c})::bigint, {{}})"),
                    vec![Param::BigInt(w)],
                )
            }
            Family::Inet => {
                let bits = o.get("bits").map(|_| opt_int(strategy, o, "bits", None));
                if let Some(b) = bits {
                    if !(0..=128).contains(&b) {
                        bad_option(strategy, "\"bits\" must be between 0 and 128".into())
                    }
                }
                match bits {
                    Some(b) => e(
                        format!("retention.mask_generalise({c}, {{}})"),
                        vec![Param::Int(b as i32)],
                    ),
                    None => e(format!("retention.mask_generalise({c}, NULL::int)"), vec![]),
                }
            }
            Family::Text => {
                let keep = opt_int(strategy, o, "keep", Some(2));
                if !(0..=1000).contains(&keep) {
                    bad_option(strategy, "\"keep\" must be between 0 and 1000".into())
                }
                e(
                    format!("retention.mask_partial({c}::text, {{}}, 0, '*')"),
                    vec![Param::Int(keep as i32)],
                )
            }
            _ => refuse_type(strategy, col_name, t),
        },
        "noise" => {
            let amount = opt_num(strategy, o, "amount");
            if !(amount > 0.0) || !amount.is_finite() {
                bad_option(strategy, "\"amount\" must be a positive number".into())
            }
            match fam {
                Family::Integer => e(
                    format!("retention.mask_noise({c}::bigint, {{}})"),
                    vec![Param::BigInt(amount.round() as i64)],
                ),
                Family::Float | Family::Numeric => e(
                    format!("retention.mask_noise({c}::float8, {{}})"),
                    vec![Param::Float(amount)],
                ),
                Family::Date => e(
                    format!("retention.mask_noise({c}, {{}})"),
                    vec![Param::Int(amount.round().min(1_000_000.0) as i32)],
                ),
                _ => refuse_type(strategy, col_name, t),
            }
        }
        "jsonb_drop" => {
            if fam != Family::Jsonb {
                refuse_type(strategy, col_name, t)
            }
            let keys = match o.get("keys") {
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|k| {
                        k.as_str().map(String::from).unwrap_or_else(|| {
                            bad_option(strategy, "\"keys\" must be strings".into())
                        })
                    })
                    .collect(),
                _ => bad_option(
                    strategy,
                    "\"keys\" must be a non-empty array of strings".into(),
                ),
            };
            e(
                format!("retention.mask_jsonb_drop({c}, {{}})"),
                vec![Param::TextArray(keys)],
            )
        }
        _ => bad_option(strategy, "unknown strategy".into()),
    }
}

#[pg_extern(name = "_set_mask")]
fn set_mask(policy_name: &str, column_name: &str, strategy: &str, options: Option<JsonB>) {
    let p = policy::load_one(policy_name);
    security::require_policy_control(policy_name, p.owner);
    let strategy = normalise_strategy(strategy);
    let table = policy::check_target(p.target);
    let col = column(p.target, &table, column_name);
    let reserved = p
        .key_columns
        .as_ref()
        .is_some_and(|k| k.iter().any(|c| c == column_name))
        || p.mark.as_ref().is_some_and(|(c, _)| c == column_name)
        || p.anonymise.as_ref().is_some_and(|(c, _)| c == column_name);
    if reserved {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("column \"{column_name}\" cannot be masked"),
            "Key columns and the columns recording the mark and anonymise stages are not masked.",
        )
    }
    let options = options
        .map(|j| j.0)
        .unwrap_or(Value::Object(Default::default()));
    // Validated as batches will run it: as the table's owner (a constant is
    // cast to the column's type, whose domain checks are the table's code),
    // under the pinned settings (a date constant reads the same in both).
    security::as_table_owner(p.target, || {
        mask_expr(strategy, &options, column_name, &col)
    });
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO retention.masks (policy_id, column_name, strategy, options) VALUES ($1, $2, $3, $4)
             ON CONFLICT (policy_id, column_name) DO UPDATE SET strategy = excluded.strategy, options = excluded.options",
            &[p.id.into(), column_name.into(), strategy.into(), JsonB(options).into()],
        )
        .or_raise("storing the mask")
    });
}

#[pg_extern(name = "_drop_mask")]
fn drop_mask(policy_name: &str, column_name: &str) -> bool {
    let p = policy::load_one(policy_name);
    security::require_policy_control(policy_name, p.owner);
    security::as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH d AS (DELETE FROM retention.masks WHERE policy_id = $1 AND column_name = $2 RETURNING 1)
             SELECT count(*) > 0 FROM d",
            &[p.id.into(), column_name.into()],
        )
        .or_raise("dropping the mask")
        .unwrap_or(false)
    })
}

/// The SET list of a policy's anonymise stage with its parameters, which
/// are numbered from `first_param`. Masks are re-validated against the
/// table as it is now.
pub fn mask_plan(p: &Policy, table: &str, first_param: usize) -> (String, Vec<Param>) {
    let masks: Vec<(String, String, Value)> = Spi::connect(|c| {
        c.select(
            "SELECT column_name, strategy, options FROM retention.masks WHERE policy_id = $1 ORDER BY column_name",
            None,
            &[p.id.into()],
        )
        .or_raise("reading masks")
        .map(|r| {
            (
                r.get::<String>(1).or_raise("reading masks").unwrap_or_default(),
                r.get::<String>(2).or_raise("reading masks").unwrap_or_default(),
                r.get::<JsonB>(3).or_raise("reading masks").map(|j| j.0).unwrap_or(Value::Null),
            )
        })
        .collect()
    });
    let mut sets = Vec::new();
    let mut params = Vec::new();
    let mut n = first_param;
    for (name, strategy, options) in masks {
        let col = column(p.target, table, &name);
        let m = mask_expr(&strategy, &options, &name, &col);
        let mut sql = String::new();
        let mut parts = m.sql.split("{}");
        if let Some(first) = parts.next() {
            sql.push_str(first);
        }
        for part in parts {
            sql.push_str(&format!("${n}"));
            n += 1;
            sql.push_str(part);
        }
        sets.push(format!("{} = {sql}", ident::quote(&name)));
        params.extend(m.params);
    }
    (sets.join(", "), params)
}

/// Whether a plan's SET list uses the pseudonym key (see
/// `mask::with_stage_key`).
pub fn needs_pseudonym_key(sets: &str) -> bool {
    sets.contains("retention._stage_pseudonym(")
}

/// The application's own row-level BEFORE UPDATE triggers on `target` that
/// do not tell pg_retention's stage writes apart (their definition does not
/// mention `retention.stage_write`): if one of them resets the clock column
/// (a `last_update` maintained by the application), every mark or anonymise
/// stage restarts the row's retention period and the purge stage never
/// comes. Returns a note naming them, or None.
pub fn clock_trigger_note(target: pg_sys::Oid, table: &str) -> Option<String> {
    let names: Vec<String> = Spi::connect(|c| {
        c.select(
            "SELECT t.tgname::text FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D'
                AND (t.tgtype::int & 19) = 19
                AND t.tgfoid NOT IN ('retention.touch()'::pg_catalog.regprocedure,
                                     'retention.refuse_restricted_update()'::pg_catalog.regprocedure)
                AND pg_catalog.strpos(pg_catalog.pg_get_triggerdef(t.oid), 'retention.stage_write') = 0
              ORDER BY 1",
            None,
            &[target.into()],
        )
        .or_raise("reading triggers")
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
    });
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "BEFORE UPDATE trigger(s) {} on {table} also fire for the mark and anonymise stages' updates; if one sets the clock column, those stages restart the retention period and the purge stage never comes: add WHEN (current_setting('retention.stage_write', true) IS DISTINCT FROM 'on') to it",
        names.iter().map(|n| ident::quote(n)).collect::<Vec<_>>().join(", ")
    ))
}

// ---------------------------------------------------------------------------
// Restriction (GDPR Art. 18)
// ---------------------------------------------------------------------------

/// The marker column of the policy with a mark stage on `target`.
fn marker_of(target: pg_sys::Oid, table: &str) -> (String, pg_sys::Oid) {
    let markers: Vec<(String, pg_sys::Oid)> = policy::load(None)
        .into_iter()
        .filter(|p| p.target == target)
        .filter_map(|p| p.mark)
        .collect();
    match markers.as_slice() {
        [] => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("no policy on {table} has a mark stage"),
            "Add one first: retention.add_stage(policy, interval '30 days', 'mark', column_name => 'restricted_at').",
        ),
        [one] => one.clone(),
        [first, rest @ ..] => {
            if rest.iter().all(|m| m.0 == first.0) {
                first.clone()
            } else {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("policies on {table} mark rows in different columns"),
                    "Use one marker column per table.",
                )
            }
        }
    }
}

/// `marker IS NULL` / `marker IS NOT TRUE`: the row is not restricted.
fn not_marked(col: &str, ty: pg_sys::Oid) -> String {
    if ty == pg_sys::BOOLOID {
        format!("{} IS NOT TRUE", ident::quote(col))
    } else {
        format!("{} IS NULL", ident::quote(col))
    }
}

#[pg_extern(name = "_restrict")]
fn restrict(target: pg_sys::Oid) -> String {
    security::require_admin("restrict tables");
    let table = policy::check_target(target);
    let (col, ty) = marker_of(target, &table);
    let rls_on = Spi::get_one_with_args::<bool>(
        "SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = $1",
        &[target.into()],
    )
    .or_raise("reading the table")
    .unwrap_or(false);
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = 'retention_restricted')",
        &[target.into()],
    )
    .or_raise("reading row security policies")
    .unwrap_or(false);
    if exists {
        return format!("{table} is already restricted on column {col}");
    }
    // Runs as the caller, who must own the table (ALTER TABLE, CREATE
    // POLICY and CREATE TRIGGER check that themselves).
    security::with_pinned_search_path(|| {
        if !rls_on {
            Spi::run(&format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
                .or_raise("enabling row security");
            // Without RLS before, every row was visible: keep that for
            // unmarked rows.
            Spi::run(&format!(
                "CREATE POLICY retention_visible ON {table} AS PERMISSIVE FOR ALL USING (true) WITH CHECK (true)"
            ))
            .or_raise("creating a row security policy");
        }
        Spi::run(&format!(
            "CREATE POLICY retention_restricted ON {table} AS RESTRICTIVE FOR SELECT
                 USING ({} OR pg_catalog.pg_has_role('retention_admin', 'USAGE'))",
            not_marked(&col, ty)
        ))
        .or_raise("creating the restriction policy");
        Spi::run_with_args(
            &format!(
                "CREATE TRIGGER retention_restricted BEFORE UPDATE ON {table} FOR EACH ROW
                 EXECUTE FUNCTION retention.refuse_restricted_update({})",
                pgrx::spi::quote_literal(&col)
            ),
            &[],
        )
        .or_raise("creating the restriction trigger");
    });
    format!(
        "{table} restricted: rows with {col} set are hidden from other roles and cannot be updated"
    )
}

#[pg_extern(name = "_unrestrict")]
fn unrestrict(target: pg_sys::Oid) -> bool {
    security::require_admin("lift table restrictions");
    let table = policy::check_target(target);
    let had = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = 'retention_restricted')",
        &[target.into()],
    )
    .or_raise("reading row security policies")
    .unwrap_or(false);
    security::with_pinned_search_path(|| {
        Spi::run(&format!(
            "DROP POLICY IF EXISTS retention_restricted ON {table}"
        ))
        .or_raise("dropping the policy");
        Spi::run(&format!(
            "DROP TRIGGER IF EXISTS retention_restricted ON {table}"
        ))
        .or_raise("dropping the trigger");
        let visible = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1 AND polname = 'retention_visible')",
            &[target.into()],
        )
        .or_raise("reading row security policies")
        .unwrap_or(false);
        if visible {
            Spi::run(&format!("DROP POLICY retention_visible ON {table}"))
                .or_raise("dropping the policy");
            let others = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = $1)",
                &[target.into()],
            )
            .or_raise("reading row security policies")
            .unwrap_or(true);
            if !others {
                Spi::run(&format!("ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
                    .or_raise("disabling row security");
            }
        }
    });
    had
}

/// The due condition of a stage without its cutoff: rows not yet in the
/// stage's state.
pub fn pending_condition(state: &(String, pg_sys::Oid)) -> String {
    not_marked(&state.0, state.1)
}

/// The value that records a stage on a row.
pub fn state_value(state: &(String, pg_sys::Oid)) -> String {
    if state.1 == pg_sys::BOOLOID {
        format!("{} = true", ident::quote(&state.0))
    } else {
        format!("{} = pg_catalog.now()", ident::quote(&state.0))
    }
}
