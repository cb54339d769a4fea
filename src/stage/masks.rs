//! Masks of the anonymise stage: the strategies, their options, and the SQL
//! a stage or an erasure runs.
//!
//! A mask is validated against the column's type when declared and again
//! when used (the table may have changed); its values are bind parameters
//! (see `mask_plan`), and the pseudonym key never is one (see
//! `mask::with_stage_key`).

use super::{column, Column};
use crate::error::{raise, OrRaise};
use crate::pg::ident;
use crate::pg::params::Params;
use crate::pg::security;
use crate::policy::{self, Policy};
use pgrx::datum::{DatumWithOid, JsonB};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::Value;

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
    pub params: Vec<MaskValue>,
}

/// A bind parameter of a mask expression.
pub enum MaskValue {
    Int(i32),
    BigInt(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    TextArray(Vec<String>),
}

impl MaskValue {
    pub fn datum(&self) -> DatumWithOid<'static> {
        match self {
            MaskValue::Int(v) => (*v).into(),
            MaskValue::BigInt(v) => (*v).into(),
            MaskValue::Float(v) => (*v).into(),
            MaskValue::Bool(v) => (*v).into(),
            MaskValue::Text(v) => v.clone().into(),
            MaskValue::TextArray(v) => v.clone().into(),
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
    let e = |sql: String, params: Vec<MaskValue>| MaskExpr { sql, params };
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
            let ok = crate::pg::subxact::attempt(std::panic::AssertUnwindSafe(|| {
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
            e(format!("CAST({{}}::text AS {t})"), vec![MaskValue::Text(v)])
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
                    MaskValue::Int(ks as i32),
                    MaskValue::Int(ke as i32),
                    MaskValue::Text(fill),
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
                vec![MaskValue::Bool(kd)],
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
                // The run's key stays out of the statement too.
                e(format!("retention._stage_hash_random({c}::text)"), vec![])
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
                    vec![MaskValue::Text(unit)],
                )
            }
            Family::Integer | Family::Numeric => {
                let w = opt_int(strategy, o, "width", None);
                if w <= 0 {
                    bad_option(strategy, "\"width\" must be positive".into())
                }
                e(
                    format!("retention.mask_generalise(pg_catalog.floor({c})::bigint, {{}})"),
                    vec![MaskValue::BigInt(w)],
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
                        vec![MaskValue::Int(b as i32)],
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
                    vec![MaskValue::Int(keep as i32)],
                )
            }
            _ => refuse_type(strategy, col_name, t),
        },
        "noise" => {
            let amount = opt_num(strategy, o, "amount");
            if amount.is_nan() || amount <= 0.0 || !amount.is_finite() {
                bad_option(strategy, "\"amount\" must be a positive number".into())
            }
            match fam {
                Family::Integer => e(
                    format!("retention.mask_noise({c}::bigint, {{}})"),
                    vec![MaskValue::BigInt(amount.round() as i64)],
                ),
                Family::Float | Family::Numeric => e(
                    format!("retention.mask_noise({c}::float8, {{}})"),
                    vec![MaskValue::Float(amount)],
                ),
                Family::Date => e(
                    format!("retention.mask_noise({c}, {{}})"),
                    vec![MaskValue::Int(amount.round().min(1_000_000.0) as i32)],
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
                vec![MaskValue::TextArray(keys)],
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
        || p.mark.as_ref().is_some_and(|m| m.column == column_name)
        || p.anonymise
            .as_ref()
            .is_some_and(|a| a.column == column_name);
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

/// The SET list of a policy's anonymise stage, its parameters bound in
/// `params`. Masks are re-validated against the table as it is now. The
/// keys the list needs are given to the statement by `mask::with_stage_key`
/// (see [`stage_keys`]).
pub fn mask_plan(p: &Policy, table: &str, params: &mut Params) -> String {
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
    for (name, strategy, options) in masks {
        let col = column(p.target, table, &name);
        let m = mask_expr(&strategy, &options, &name, &col);
        let mut sql = String::new();
        let mut parts = m.sql.split("{}");
        if let Some(first) = parts.next() {
            sql.push_str(first);
        }
        let mut values = m.params.into_iter();
        for part in parts {
            let value = values.next().unwrap_or(MaskValue::Bool(false));
            sql.push_str(&params.bind(value.datum()).to_string());
            sql.push_str(part);
        }
        sets.push(format!("{} = {sql}", ident::quote(&name)));
    }
    sets.join(", ")
}

/// The keys a plan's SET list needs, the run's random key made by
/// `run_key` only when the list uses it.
pub fn stage_keys(sets: &str, run_key: impl FnOnce() -> Vec<u8>) -> crate::mask::StageKeys {
    crate::mask::StageKeys {
        pseudonym: needs_pseudonym_key(sets),
        run_key: sets.contains("retention._stage_hash_random(").then(run_key),
    }
}

/// Whether a plan's SET list uses the pseudonym key (see
/// `mask::with_stage_key`).
pub fn needs_pseudonym_key(sets: &str) -> bool {
    sets.contains("retention._stage_pseudonym(")
}
