//! Recognising personal data by a column's name and by the shape of its
//! values: pure functions, no SQL. Every check here looks at one name or
//! one value and answers yes or no; the shares and confidences are decided
//! in `super`.

/// The kinds of personal data `retention.discover()` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Email,
    Phone,
    Iban,
    CreditCard,
    IpAddress,
    BirthDate,
    Name,
    StreetAddress,
    Postcode,
    NationalId,
    FreeText,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "e-mail",
            Category::Phone => "phone",
            Category::Iban => "IBAN",
            Category::CreditCard => "credit card",
            Category::IpAddress => "IP address",
            Category::BirthDate => "birth date",
            Category::Name => "name",
            Category::StreetAddress => "street address",
            Category::Postcode => "postcode",
            Category::NationalId => "national id",
            Category::FreeText => "free text",
        }
    }

    /// The categories a value's shape can show, in the order they are
    /// tried (the most specific first).
    pub const BY_CONTENT: [Category; 6] = [
        Category::Email,
        Category::Iban,
        Category::CreditCard,
        Category::NationalId,
        Category::IpAddress,
        Category::Phone,
    ];

    /// Whether the shape of a value can show this category.
    pub fn by_content(self) -> bool {
        Self::BY_CONTENT.contains(&self)
    }

    /// Whether one value has this category's shape.
    pub fn matches(self, v: &str) -> bool {
        match self {
            Category::Email => is_email(v),
            Category::Phone => is_phone(v),
            Category::Iban => is_iban(v),
            Category::CreditCard => is_card_number(v),
            Category::IpAddress => is_ip(v),
            Category::NationalId => is_tax_id(v),
            _ => false,
        }
    }
}

/// How confident a name match is: `Generic` for names that often mean
/// something else (a product's `name`, an `address` that is a URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMatch {
    Specific,
    Generic,
}

/// The column name's parts: lower case, split at `_`, `-`, spaces and
/// camelCase boundaries, and the whole name without separators.
fn name_parts(name: &str) -> (Vec<String>, String) {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch == '_' || ch == '-' || ch == ' ' || ch == '.' {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            tokens.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let compact = tokens.concat();
    (tokens, compact)
}

/// What a column's name says it holds (English and German names), if
/// anything. `date_like` and `text_like` are the column's type families:
/// a birth date is a date, an e-mail address is text.
pub fn by_name(name: &str, date_like: bool, text_like: bool) -> Option<(Category, NameMatch)> {
    let (tokens, compact) = name_parts(name);
    let token = |t: &str| tokens.iter().any(|x| x == t);
    let has = |stems: &[&str]| stems.iter().any(|s| compact.contains(s));
    // Identifiers and timestamps about a thing are not the thing: an
    // e-mail's `email_id`, a `phone_verified_at`.
    let last = tokens.last().map(String::as_str).unwrap_or("");
    let about = matches!(
        last,
        "id" | "ids"
            | "at"
            | "on"
            | "count"
            | "flag"
            | "verified"
            | "sent"
            | "type"
            | "status"
            | "hash"
    );
    if date_like {
        if has(&["birth", "geburt"]) || token("dob") {
            return Some((Category::BirthDate, NameMatch::Specific));
        }
        return None;
    }
    // National ids are often named `…_id` themselves.
    if has(&[
        "ssn",
        "socialsecurity",
        "taxid",
        "steuerid",
        "steueridentifikation",
        "nationalid",
        "passport",
        "personalausweis",
        "sozialversicherung",
        "svnr",
    ]) && text_like
    {
        return Some((Category::NationalId, NameMatch::Specific));
    }
    if about {
        return None;
    }
    if has(&["email", "emailaddress", "mailadresse"]) || token("mail") {
        return Some((Category::Email, NameMatch::Specific));
    }
    if has(&["ipaddress", "ipaddr", "remoteaddr", "clientip"]) || token("ip") {
        return Some((Category::IpAddress, NameMatch::Specific));
    }
    if has(&["iban"]) {
        return Some((Category::Iban, NameMatch::Specific));
    }
    if has(&["cardnumber", "creditcard", "kreditkarte", "ccnumber"]) || token("pan") {
        return Some((Category::CreditCard, NameMatch::Specific));
    }
    if has(&["phone", "telefon", "mobile", "mobil", "handy"]) || token("tel") || token("fax") {
        return Some((Category::Phone, NameMatch::Specific));
    }
    if has(&["zipcode", "postcode", "postalcode", "postleitzahl"]) || token("zip") || token("plz") {
        return Some((Category::Postcode, NameMatch::Specific));
    }
    if has(&[
        "street",
        "strasse",
        "straße",
        "anschrift",
        "addressline",
        "hausnummer",
        "housenumber",
    ]) {
        return Some((Category::StreetAddress, NameMatch::Specific));
    }
    if has(&["address", "adresse"]) && text_like {
        return Some((Category::StreetAddress, NameMatch::Generic));
    }
    if has(&[
        "firstname",
        "lastname",
        "surname",
        "givenname",
        "fullname",
        "familyname",
        "vorname",
        "nachname",
        "familienname",
        "customername",
        "kundenname",
    ]) {
        return Some((Category::Name, NameMatch::Specific));
    }
    if compact == "name" {
        return Some((Category::Name, NameMatch::Generic));
    }
    if text_like
        && tokens.iter().any(|t| {
            matches!(
                t.as_str(),
                "note"
                    | "notes"
                    | "comment"
                    | "comments"
                    | "remark"
                    | "remarks"
                    | "bemerkung"
                    | "notiz"
                    | "kommentar"
                    | "nachricht"
                    | "message"
                    | "freitext"
                    | "body"
            )
        })
    {
        return Some((Category::FreeText, NameMatch::Specific));
    }
    None
}

/// An e-mail address: one `@`, a local part of the usual characters, a
/// domain with a dot and a top level of at least two letters.
pub fn is_email(v: &str) -> bool {
    let v = v.trim();
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_alphanumeric() || "._%+-'".contains(c));
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    local_ok
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_alphabetic())
}

/// A telephone number: 7 to 15 digits, written with a leading `+` or `0`
/// or with the separators people use (` `, `-`, `/`, `(`, `)`, `.`).
pub fn is_phone(v: &str) -> bool {
    let v = v.trim();
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_digit() || " +-/().".contains(c))
    {
        return false;
    }
    let digits = v.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    let plus = v.starts_with('+') && v.matches('+').count() == 1;
    let separated = v.chars().any(|c| " -/().".contains(c));
    let leading_zero = v.starts_with('0');
    plus || (leading_zero && digits >= 8)
        || (separated && !v.contains('.') && v.starts_with(['(', '0']))
}

/// An IBAN with a valid ISO 13616 check (mod 97 = 1), spaces allowed.
pub fn is_iban(v: &str) -> bool {
    let s: String = v
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let b = s.as_bytes();
    if !(b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit())
    {
        return false;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let d = c.to_digit(36).unwrap_or(0);
        if d >= 10 {
            rem = (rem * 100 + d) % 97;
        } else {
            rem = (rem * 10 + d) % 97;
        }
    }
    rem == 1
}

/// A payment card number: 13 to 19 digits (spaces and dashes allowed),
/// starting as the major networks do (2 to 6), with a valid Luhn check.
pub fn is_card_number(v: &str) -> bool {
    let v = v.trim();
    if !v
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return false;
    }
    let digits: Vec<u32> = v.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || !(2..=6).contains(&digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An IPv4 or IPv6 address, with or without a prefix length.
pub fn is_ip(v: &str) -> bool {
    let v = v.trim();
    let addr = v.split_once('/').map(|(a, _)| a).unwrap_or(v);
    addr.parse::<std::net::IpAddr>().is_ok() && (addr.contains('.') || addr.contains(':'))
}

/// A German tax identification number (Steuer-ID): 11 digits, not
/// starting with 0, with a valid ISO 7064 MOD 11,10 check digit.
pub fn is_tax_id(v: &str) -> bool {
    let s: Vec<u32> = v
        .trim()
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_digit(10).unwrap_or(99))
        .collect();
    if s.len() != 11 || s.iter().any(|d| *d > 9) || s[0] == 0 {
        return false;
    }
    let mut product = 10u32;
    for d in &s[..10] {
        let mut sum = (d + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == s[10]
}

/// Personal data written into free text: which categories one value
/// contains (e-mail addresses, IBANs, card numbers, phone numbers).
pub fn embedded(v: &str) -> Vec<Category> {
    let mut found = Vec::new();
    if v.len() < 12 || !v.contains(' ') {
        return found;
    }
    let words: Vec<&str> = v
        .split(|c: char| c.is_whitespace() || ",;<>\"'[]{}".contains(c))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == ':' || c == '(' || c == ')'))
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| is_email(w)) {
        found.push(Category::Email);
    }
    // IBANs and card numbers are often written in groups of four; the
    // words they take are not read again as a phone number.
    let mut used = vec![false; words.len()];
    let take = |n: usize, ok: &dyn Fn(&[&str]) -> bool, used: &mut [bool]| -> bool {
        for start in 0..words.len().saturating_sub(n - 1) {
            let w = &words[start..start + n];
            if !used[start..start + n].iter().any(|u| *u) && ok(w) {
                used[start..start + n].iter_mut().for_each(|u| *u = true);
                return true;
            }
        }
        false
    };
    if (1..=9)
        .rev()
        .any(|n| take(n, &|w| is_iban(&w.concat()), &mut used))
    {
        found.push(Category::Iban);
    }
    if (1..=5)
        .rev()
        .any(|n| take(n, &|w| is_card_number(&w.concat()), &mut used))
    {
        found.push(Category::CreditCard);
    }
    if (1..=5).rev().any(|n| {
        take(
            n,
            &|w| {
                let joined = w.join(" ");
                is_phone(&joined) && (joined.starts_with('+') || joined.starts_with('0'))
            },
            &mut used,
        )
    }) {
        found.push(Category::Phone);
    }
    found
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn shapes_of_values() {
        for v in [
            "erika.mustermann@example.org",
            "a+b@sub.example.de",
            "o'brien@example.ie",
        ] {
            assert!(is_email(v), "{v}");
        }
        for v in [
            "erika@",
            "@example.org",
            "a@b",
            "a b@example.org",
            "x@example.1",
        ] {
            assert!(!is_email(v), "{v}");
        }
        for v in [
            "+49 170 1234567",
            "0170/1234567",
            "(030) 123 456 78",
            "+1-202-555-0143",
            "030 12345678",
        ] {
            assert!(is_phone(v), "{v}");
        }
        for v in ["1234567", "2024-11-30", "12.50", "99", "+49", "1.2.3.4"] {
            assert!(!is_phone(v), "{v}");
        }
        assert!(is_iban("DE89 3704 0044 0532 0130 00"));
        assert!(is_iban("GB82WEST12345698765432"));
        assert!(!is_iban("DE89 3704 0044 0532 0130 01"));
        assert!(is_card_number("4111 1111 1111 1111"));
        assert!(is_card_number("5500-0000-0000-0004"));
        assert!(!is_card_number("4111 1111 1111 1112"));
        assert!(!is_card_number("1111111111111117"));
        assert!(is_ip("192.168.0.1") && is_ip("2001:db8::1") && is_ip("10.0.0.0/8"));
        assert!(!is_ip("192.168.0") && !is_ip("12"));
        // A valid Steuer-ID and the same with another check digit.
        assert!(is_tax_id("86095742719"));
        assert!(!is_tax_id("86095742718"));
        assert!(!is_tax_id("06095742719"));
    }

    #[pg_test]
    fn names_of_columns() {
        let n = |name: &str| by_name(name, false, true).map(|(c, _)| c);
        assert_eq!(n("email"), Some(Category::Email));
        assert_eq!(n("customerEmail"), Some(Category::Email));
        assert_eq!(n("email_id"), None);
        assert_eq!(n("email_verified_at"), None);
        assert_eq!(n("Telefonnummer"), Some(Category::Phone));
        assert_eq!(n("hotel"), None);
        assert_eq!(n("ip_address"), Some(Category::IpAddress));
        assert_eq!(n("strasse"), Some(Category::StreetAddress));
        assert_eq!(n("PLZ"), Some(Category::Postcode));
        assert_eq!(n("vorname"), Some(Category::Name));
        assert_eq!(
            by_name("name", false, true),
            Some((Category::Name, NameMatch::Generic))
        );
        assert_eq!(n("steuer_id"), Some(Category::NationalId));
        assert_eq!(n("tax_id"), Some(Category::NationalId));
        assert_eq!(n("notes"), Some(Category::FreeText));
        assert_eq!(n("product_code"), None);
        assert_eq!(
            by_name("geburtsdatum", true, false).map(|(c, _)| c),
            Some(Category::BirthDate)
        );
        assert_eq!(by_name("created_at", true, false), None);
    }

    #[pg_test]
    fn personal_data_in_free_text() {
        let e = embedded("Customer called from +49 170 1234567, please write to erika@example.org");
        assert!(
            e.contains(&Category::Phone) && e.contains(&Category::Email),
            "{e:?}"
        );
        let e = embedded("Refund to DE89 3704 0044 0532 0130 00 approved");
        assert_eq!(e, vec![Category::Iban]);
        assert!(embedded("Delivered on time, 3 parcels, order 12345").is_empty());
    }
}
