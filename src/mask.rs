//! The masking library: what the anonymise stage writes over personal data.
//!
//! Each strategy is a plain SQL function (`retention.mask_*`), usable on its
//! own and by the anonymise stage. `retention.mask_strategies` says for each
//! whether it anonymises (no way back) or only pseudonymises (reversible by
//! whoever holds the key, so the result is still personal data, GDPR
//! Recital 26). Deterministic strategies are IMMUTABLE, STRICT and PARALLEL
//! SAFE so that one set-based UPDATE can run them; noise is VOLATILE.

use crate::error::raise;
use crate::pg::secrets::{self, Secret};
use crate::pg::security;
use hmac::{Hmac, Mac};
use pgrx::datum::{Date, Inet, JsonB};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use sha2::Sha256;
use std::net::IpAddr;

/// What masked characters are replaced with when no fill is given.
const FILL: &str = "*";

fn fill_char(fill: &str) -> String {
    if fill.is_empty() {
        FILL.to_string()
    } else {
        fill.chars()
            .next()
            .map(String::from)
            .unwrap_or_else(|| FILL.to_string())
    }
}

/// Keeps `keep_start` leading and `keep_end` trailing characters and replaces
/// the others, one fill character per character. A value too short to hide
/// anything between the kept ends is masked entirely, so a short value is
/// never returned in clear.
pub fn partial(value: &str, keep_start: i32, keep_end: i32, fill: &str) -> String {
    let fill = fill_char(fill);
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let start = keep_start.max(0) as usize;
    let end = keep_end.max(0) as usize;
    if start + end >= n {
        return fill.repeat(n);
    }
    let mut out = String::with_capacity(value.len());
    out.extend(&chars[..start]);
    out.push_str(&fill.repeat(n - start - end));
    out.extend(&chars[n - end..]);
    out
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_partial(
    value: &str,
    keep_start: default!(i32, 1),
    keep_end: default!(i32, 0),
    fill: default!(&str, "'*'"),
) -> String {
    if keep_start < 0 || keep_end < 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "keep_start and keep_end must not be negative",
            "Give how many leading and trailing characters stay visible, e.g. keep_start => 2, keep_end => 0.",
        )
    }
    partial(value, keep_start, keep_end, fill)
}

/// Masks an e-mail address: the local part keeps its first character and
/// becomes a fixed-length run of fill characters (so its length is not
/// revealed); the domain is kept, or masked down to its top-level domain.
/// Text without exactly one '@' with text on both sides is masked as a whole.
pub fn email(value: &str, keep_domain: bool) -> String {
    let parts: Vec<&str> = value.split('@').collect();
    if parts.len() != 2 || parts[0].is_empty() || parts[1].is_empty() {
        return partial(value, 0, 0, FILL);
    }
    let first: String = parts[0].chars().take(1).collect();
    let local = format!("{first}***");
    let domain = if keep_domain {
        parts[1].to_string()
    } else {
        match parts[1].rsplit_once('.') {
            Some((_, tld)) if !tld.is_empty() => format!("***.{tld}"),
            _ => "***".to_string(),
        }
    };
    format!("{local}@{domain}")
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_email(value: &str, keep_domain: default!(bool, true)) -> String {
    email(value, keep_domain)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

thread_local! {
    /// The keyed HMAC state of the last key used: keying costs two SHA-256
    /// compressions, which a run with one key pays once instead of per row.
    static KEYED: std::cell::RefCell<Option<(Vec<u8>, Hmac<Sha256>)>> = const { std::cell::RefCell::new(None) };
}

/// HMAC-SHA-256 of the value under `key`, as 64 hex digits.
pub fn hmac_hex(value: &str, key: &[u8]) -> String {
    let mut mac = KEYED.with(|k| {
        let mut k = k.borrow_mut();
        match &*k {
            Some((cached, mac)) if cached.as_slice() == key => Some(mac.clone()),
            _ => {
                // HMAC accepts keys of any length, so this cannot fail.
                let mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
                *k = Some((key.to_vec(), mac.clone()));
                Some(mac)
            }
        }
    });
    let Some(mac) = mac.as_mut() else {
        return String::new();
    };
    mac.update(value.as_bytes());
    let bytes = mac.clone().finalize().into_bytes();
    let mut out = Vec::with_capacity(64);
    for b in bytes.iter() {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0x0f) as usize]);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Keyed hash of a value: the same input and key always give the same
/// output, so joins and counts survive. Whoever holds the key can test
/// guesses, so this pseudonymises; with a key that is thrown away it
/// anonymises.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_hmac(value: &str, key: &[u8]) -> String {
    if key.len() < 16 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the key must be at least 16 bytes long",
            "Use retention.pseudonym(value) for the database's own key.",
        )
    }
    hmac_hex(value, key)
}

/// The database's pseudonym key, created on first use.
pub fn pseudonym_key() -> Vec<u8> {
    secrets::get_or_create(Secret::Pseudonym)
}

thread_local! {
    /// The pseudonym key while a stage statement that needs it runs (see
    /// [`with_stage_key`]); `None` otherwise.
    static STAGE_KEY: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    /// The run's random key of the `hash_random` mask while a stage
    /// statement that needs it runs; `None` otherwise.
    static STAGE_RUN_KEY: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// The keys a stage statement needs: the pseudonym key (read from the
/// catalogue) and the run's random key of the `hash_random` mask. Neither is
/// ever a parameter of the statement (parameters can be logged, and shown
/// by extensions such as auto_explain).
#[derive(Default)]
pub struct StageKeys {
    pub pseudonym: bool,
    pub run_key: Option<Vec<u8>>,
}

/// Runs `f` (a stage statement) with the pseudonym key available to
/// `retention._stage_pseudonym` when `needed`. The key is never a parameter
/// of the statement: declared expressions and the key never meet.
pub fn with_stage_key<R>(keys: StageKeys, f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            STAGE_KEY.with(|k| *k.borrow_mut() = None);
            STAGE_RUN_KEY.with(|k| *k.borrow_mut() = None);
        }
    }
    if !keys.pseudonym && keys.run_key.is_none() {
        return f();
    }
    if keys.pseudonym {
        let key = pseudonym_key();
        STAGE_KEY.with(|k| *k.borrow_mut() = Some(key));
    }
    STAGE_RUN_KEY.with(|k| *k.borrow_mut() = keys.run_key);
    let _clear = Clear;
    f()
}

/// The `hash_random` mask inside a stage statement: the HMAC of `value`
/// under the run's random key, which is never stored and never a parameter
/// of the statement. Refused outside pg_retention's own stage statements.
#[pg_extern(name = "_stage_hash_random", volatile, strict, parallel_unsafe)]
fn stage_hash_random(value: &str) -> String {
    let key = STAGE_RUN_KEY.with(|k| k.borrow().clone());
    match key {
        Some(key) if crate::stage::stage_is_active() => hmac_hex(value, &key),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "retention._stage_hash_random() only works inside pg_retention's anonymise statements",
            "retention.mask_hash_random(value) hashes under a key of its own.",
        ),
    }
}

/// The pseudonym mask inside a stage statement: the HMAC of `value` under
/// the database's pseudonym key. Refused outside pg_retention's own stage
/// statements, so that nobody can compute pseudonyms of chosen values.
#[pg_extern(name = "_stage_pseudonym", volatile, strict, parallel_unsafe)]
fn stage_pseudonym(value: &str) -> String {
    let key = STAGE_KEY.with(|k| k.borrow().clone());
    match key {
        Some(key) if crate::stage::stage_is_active() => hmac_hex(value, &key),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "retention._stage_pseudonym() only works inside pg_retention's anonymise statements",
            "Members of retention_admin compute pseudonyms with retention.pseudonym(value).",
        ),
    }
}

/// Pseudonym of a value under the database's key (see mask_hmac). Volatile
/// because the first call creates the key.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn pseudonym(value: &str) -> String {
    security::require_admin("compute pseudonyms");
    hmac_hex(value, &pseudonym_key())
}

/// Replaces the database's pseudonym key with a new random one. Returns the
/// time of rotation. Pseudonyms computed before no longer match new ones.
#[pg_extern(volatile)]
fn rotate_pseudonym_key() -> pgrx::datum::TimestampWithTimeZone {
    security::require_admin("rotate the pseudonym key");
    secrets::rotate(Secret::Pseudonym)
}

/// Keyed hash under a fresh random key that is never stored: irreversible.
/// Equal inputs within one call of a statement do not map to equal outputs
/// across calls, so joins do not survive.
#[pg_extern(volatile, strict, parallel_safe)]
fn mask_hash_random(value: &str) -> String {
    hmac_hex(value, &secrets::random_key())
}

/// Days from 2000-01-01 to the first and last finite dates PostgreSQL accepts.
const FIRST_DATE: i32 = -2_451_545; // 4714-11-24 BC (Julian day 0)
const LAST_DATE: i32 = 2_147_483_494 - 2_451_545 - 1; // 5874897-12-31

/// Days since 2000-01-01 (PostgreSQL's date representation) to a
/// proleptic Gregorian (year, month, day), astronomical year numbering.
fn civil_from_days(days: i32) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, the start of a 400-year era.
    let z = days as i64 + 730_425; // days from 0000-03-01 to 2000-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// The inverse of `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 730_425
}

/// A date generalised to the first day of its month or year. Computed in
/// Rust on the date's day number: no calls back into the server per row.
pub fn generalise_date(value: Date, unit: &str) -> Date {
    if !value.is_finite() {
        return value;
    }
    let (y, m, _) = civil_from_days(value.into_inner());
    let days = match unit {
        "year" => days_from_civil(y, 1, 1),
        "month" => days_from_civil(y, m, 1),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown unit \"{unit}\""),
            "Use 'month' or 'year'.",
        ),
    };
    // The start of the month or year may lie before the first valid date
    // (4714-11-24 BC): fall back to that date, never to the unmasked value.
    Date::saturating_from_raw(days.clamp(FIRST_DATE as i64, LAST_DATE as i64) as i32)
}

#[pg_extern(immutable, strict, parallel_safe, name = "mask_generalise")]
fn mask_generalise_date(value: Date, unit: default!(&str, "'year'")) -> Date {
    generalise_date(value, unit)
}

/// A number generalised to the lower bound of its bucket of `width`
/// (e.g. age 37 with width 10 → 30; -3 with width 10 → -10).
#[pg_extern(immutable, strict, parallel_safe, name = "mask_generalise")]
fn mask_generalise_int(value: i64, width: i64) -> i64 {
    if width <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "width must be positive",
            "Give the bucket width, e.g. 10 for decades of age.",
        )
    }
    value.div_euclid(width).saturating_mul(width)
}

/// An IP address generalised to its network: the first `bits` bits kept
/// (IPv4 default 24, IPv6 default 48 when bits is NULL), the rest zero.
pub fn generalise_ip(value: &str, bits: Option<i32>) -> Option<String> {
    let addr_part = value.split('/').next().unwrap_or(value);
    let addr: IpAddr = addr_part.parse().ok()?;
    Some(match addr {
        IpAddr::V4(a) => {
            let b = bits.unwrap_or(24).clamp(0, 32) as u32;
            let mask: u32 = if b == 0 { 0 } else { u32::MAX << (32 - b) };
            let net = std::net::Ipv4Addr::from(u32::from(a) & mask);
            format!("{net}/{b}")
        }
        IpAddr::V6(a) => {
            let b = bits.unwrap_or(48).clamp(0, 128) as u32;
            let mask: u128 = if b == 0 { 0 } else { u128::MAX << (128 - b) };
            let net = std::net::Ipv6Addr::from(u128::from(a) & mask);
            format!("{net}/{b}")
        }
    })
}

#[pg_extern(immutable, parallel_safe, name = "mask_generalise")]
fn mask_generalise_inet(value: Option<Inet>, bits: default!(Option<i32>, "NULL")) -> Option<Inet> {
    let v = value?;
    match generalise_ip(&v.0, bits) {
        Some(s) => Some(Inet(s)),
        None => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "value is not an IP address",
            "mask_generalise(inet, bits) takes an IPv4 or IPv6 address.",
        ),
    }
}

/// A number moved by a random amount within ±`amount`.
#[pg_extern(volatile, strict, parallel_safe, name = "mask_noise")]
fn mask_noise_float(value: f64, amount: f64) -> f64 {
    let r = random_unit();
    value + (r * 2.0 - 1.0) * amount.abs()
}

/// An integer moved by a random amount within ±`amount`.
#[pg_extern(volatile, strict, parallel_safe, name = "mask_noise")]
fn mask_noise_int(value: i64, amount: i64) -> i64 {
    let span = amount.unsigned_abs().min(i64::MAX as u64 / 2) as i64;
    let r = random_unit();
    let delta = ((r * (2 * span + 1) as f64).floor() as i64 - span).clamp(-span, span);
    value.saturating_add(delta)
}

/// A date moved by a random number of days within ±`days`.
#[pg_extern(volatile, strict, parallel_safe, name = "mask_noise")]
fn mask_noise_date(value: Date, days: i32) -> Date {
    if !value.is_finite() {
        return value;
    }
    let delta = mask_noise_int(0, days as i64) as i32;
    let shifted = value.into_inner().saturating_add(delta);
    // Keep within the range of finite dates.
    Date::saturating_from_raw(shifted.clamp(FIRST_DATE, LAST_DATE))
}

fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    let ok = unsafe { pg_sys::pg_strong_random(b.as_mut_ptr() as *mut core::ffi::c_void, 8) };
    if !ok {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// A jsonb document without the given top-level keys.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_jsonb_drop(value: JsonB, keys: Vec<Option<String>>) -> JsonB {
    let mut v = value.0;
    if let serde_json::Value::Object(map) = &mut v {
        for k in keys.iter().flatten() {
            map.remove(k);
        }
    }
    JsonB(v)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn partial_edges() {
        assert_eq!(partial("Alexander", 2, 1, "*"), "Al******r");
        assert_eq!(partial("", 2, 1, "*"), "");
        assert_eq!(partial("ab", 2, 1, "*"), "**", "too short: nothing shown");
        assert_eq!(partial("Jürgen Groß", 1, 1, "#"), "J#########ß");
        assert_eq!(partial("日本語テキスト", 1, 0, ""), "日******");
        let long = "x".repeat(100_000);
        assert_eq!(
            partial(&long, 3, 3, "*")
                .chars()
                .filter(|c| *c == '*')
                .count(),
            99_994
        );
    }

    #[pg_test]
    fn email_edges() {
        assert_eq!(email("alice.smith@example.com", true), "a***@example.com");
        assert_eq!(email("alice.smith@example.com", false), "a***@***.com");
        assert_eq!(email("not-an-email", true), "************");
        assert_eq!(email("@example.com", true), "************");
        assert_eq!(email("a@b@c", true), "*****");
        assert_eq!(email("", true), "");
        assert_eq!(email("ünïcödé@bücher.de", true), "ü***@bücher.de");
        assert_eq!(email("x@localhost", false), "x***@***");
    }

    #[pg_test]
    fn hmac_is_keyed_and_deterministic() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let a = hmac_hex("alice@example.com", &k1);
        assert_eq!(a.len(), 64);
        assert_eq!(a, hmac_hex("alice@example.com", &k1));
        assert_ne!(a, hmac_hex("alice@example.com", &k2));
        assert_ne!(a, hmac_hex("alice@example.con", &k1));
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_hex("what do ya want for nothing?", b"Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[pg_test]
    fn sql_functions_are_strict_and_typed() {
        assert_eq!(
            Spi::get_one::<String>("SELECT retention.mask_email(NULL)").unwrap(),
            None
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT retention.mask_partial('0151 2345678', 4, 2)")
                .unwrap()
                .unwrap(),
            "0151******78"
        );
        assert_eq!(
            Spi::get_one::<Date>("SELECT retention.mask_generalise('1984-07-23'::date, 'year')")
                .unwrap()
                .unwrap(),
            Date::new(1984, 1, 1).unwrap()
        );
        assert_eq!(
            Spi::get_one::<Date>("SELECT retention.mask_generalise('1984-07-23'::date, 'month')")
                .unwrap()
                .unwrap(),
            Date::new(1984, 7, 1).unwrap()
        );
        assert!(Spi::get_one::<bool>(
            "SELECT retention.mask_generalise('infinity'::date) = 'infinity' AND retention.mask_generalise('4713-01-01 BC'::date) = '4713-01-01 BC'"
        ).unwrap().unwrap());
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.mask_generalise(37::bigint, 10)")
                .unwrap()
                .unwrap(),
            30
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT retention.mask_generalise(-3::bigint, 10)")
                .unwrap()
                .unwrap(),
            -10
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT retention.mask_generalise('192.168.17.42'::inet)::text")
                .unwrap()
                .unwrap(),
            "192.168.17.0/24"
        );
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT retention.mask_generalise('2001:db8:85a3::8a2e:370:7334'::inet)::text"
            )
            .unwrap()
            .unwrap(),
            "2001:db8:85a3::/48"
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT retention.mask_generalise('10.1.2.3'::inet, 8)::text")
                .unwrap()
                .unwrap(),
            "10.0.0.0/8"
        );
        assert_eq!(
            Spi::get_one::<String>(r#"SELECT retention.mask_jsonb_drop('{"name":"Al","ip":"1.2.3.4","n":1}', ARRAY['name','ip'])::text"#).unwrap().unwrap(),
            r#"{"n": 1}"#
        );
    }

    #[pg_test]
    fn date_generalisation_agrees_with_the_server() {
        // The day arithmetic is done in Rust; the server's date_trunc is the
        // reference, across BC dates, leap years and far future dates.
        let ok = Spi::get_one::<bool>(
            "SELECT bool_and(retention.mask_generalise(d::date, 'year') = date_trunc('year', d)::date
                         AND retention.mask_generalise(d::date, 'month') = date_trunc('month', d)::date)
               FROM (SELECT generate_series(timestamp '4000-01-01 BC', timestamp '9999-12-31', interval '7 days') AS d
                     UNION ALL VALUES (timestamp '2000-02-29'), (timestamp '1900-03-01'), (timestamp '0001-01-01'),
                                      (timestamp '0001-12-31 BC'), (timestamp '294276-12-31')) s",
        )
        .unwrap()
        .unwrap();
        assert!(ok);
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT retention.mask_generalise('5874897-12-31'::date, 'month')::text"
            )
            .unwrap()
            .unwrap(),
            "5874897-12-01"
        );
    }

    #[pg_test]
    fn noise_stays_within_bounds() {
        let ok = Spi::get_one::<bool>(
            "SELECT bool_and(retention.mask_noise(-100::bigint, 5) BETWEEN -105 AND -95)
                AND bool_and(retention.mask_noise(10.0::float8, 0.5) BETWEEN 9.5 AND 10.5)
                AND bool_and(retention.mask_noise('2000-01-10'::date, 3) BETWEEN '2000-01-07' AND '2000-01-13')
                AND count(DISTINCT retention.mask_noise(0::bigint, 1000)) > 1
               FROM generate_series(1, 200)",
        )
        .unwrap()
        .unwrap();
        assert!(ok);
    }

    #[pg_test]
    fn pseudonym_key_is_stable_hidden_and_rotatable() {
        let a = Spi::get_one::<String>("SELECT retention.pseudonym('alice@example.com')")
            .unwrap()
            .unwrap();
        let b = Spi::get_one::<String>("SELECT retention.pseudonym('alice@example.com')")
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
        let key =
            Spi::get_one::<Vec<u8>>("SELECT key FROM retention.secrets WHERE name = 'pseudonym'")
                .unwrap()
                .unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(a, hmac_hex("alice@example.com", &[0u8; 32]));
        Spi::run("SELECT retention.rotate_pseudonym_key()").unwrap();
        let c = Spi::get_one::<String>("SELECT retention.pseudonym('alice@example.com')")
            .unwrap()
            .unwrap();
        assert_ne!(a, c);
        // A pseudonym is not the key, and the key changed with rotation.
        let rotated =
            Spi::get_one::<Vec<u8>>("SELECT key FROM retention.secrets WHERE name = 'pseudonym'")
                .unwrap()
                .unwrap();
        assert_ne!(key, rotated);
        assert!(!c.contains(
            &rotated
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
    }

    #[pg_test]
    fn null_keys_and_out_of_range_dates_are_handled() {
        assert_eq!(
            Spi::get_one::<String>(
                r#"SELECT retention.mask_jsonb_drop('{"a":1,"b":2}', ARRAY['a', NULL])::text"#
            )
            .unwrap()
            .unwrap(),
            r#"{"b": 2}"#
        );
        // The year of 4714-12-01 BC starts before the first valid date: the
        // first valid date is returned, not the unmasked value.
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT retention.mask_generalise('4714-12-01 BC'::date, 'year')::text"
            )
            .unwrap()
            .unwrap(),
            "4714-11-24 BC"
        );
        assert!(Spi::get_one::<bool>(
            "SELECT bool_and(retention.mask_noise('5874897-12-31'::date, 5) <> 'infinity') FROM generate_series(1, 200)"
        ).unwrap().unwrap());
    }

    #[pg_test(error = "the key must be at least 16 bytes long")]
    fn short_keys_are_refused() {
        Spi::run("SELECT retention.mask_hmac('x', '\\x0102'::bytea)").unwrap();
    }
}
