//! PayFast's signatures and its ITN (Instant Transaction Notification), as pure functions.
//!
//! PayFast signs three different things three different ways, and all three are easy to get
//! subtly wrong, so they live here once, for the portal's client and the local stand-in alike:
//!
//! - the **checkout form** ([`checkout_signature`]): the fields in PayFast's documented order
//!   ([`CHECKOUT_FIELDS`], not the order they were posted in), blank values skipped, values
//!   trimmed, `&passphrase=` appended, MD5 in lowercase hex;
//! - the **ITN** ([`Itn::parse`], [`Itn::verify`], [`itn_signature`]): every field before
//!   `signature` *in the order received*, empty values kept, nothing trimmed, `&passphrase=`
//!   appended. That is why the ITN is parsed into a list of pairs and never into a map;
//! - the **REST API** headers ([`api_signature`]): headers, body and query fields plus the
//!   passphrase, sorted by key (the passphrase sorts in among them, it is not appended).
//!
//! Every value is encoded with PHP's `urlencode` ([`php_urlencode`]), which no Rust, Go, JS or
//! Python standard encoder reproduces exactly (`~`, `*`, `!'()` differ), because PayFast's
//! server is PHP. Signatures are compared in constant time ([`same_signature`]).
//!
//! The ITN body is untrusted: [`Itn::parse`] bounds its size and field count and refuses
//! malformed percent-encoding, non-UTF-8 values, odd field names and repeated fields, rather than
//! guessing. `fuzz/fuzz_targets/payfast_itn.rs` holds it to "refuse, never panic".
//!
//! The rules and the test vectors come from /work/research/payments.md (PayFast's docs, its PHP
//! SDK's fixtures, WooCommerce's gateway); where those sources disagree the documented
//! behaviour is chosen and the choice is noted where it is made.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use md5::{Digest, Md5};

/// The largest ITN body accepted. A real one is well under 4 KiB: about 25 fields, the longest
/// (`custom_str*`, `item_description`) 255 characters before encoding.
pub const MAX_ITN_BYTES: usize = 32 * 1024;
/// The most fields an ITN may carry (a real one has 25 to 27).
pub const MAX_ITN_FIELDS: usize = 64;

/// The checkout form's signed fields, in the order PayFast signs them (its "custom integration"
/// docs; the same list is in its PHP SDK and in django-payfast). Fields outside this list (such
/// as `setup`, or WooCommerce's `source`) are posted but not signed.
///
/// `notify_method` sits after `notify_url` as in the SDK; `fica_idnumber`, whose place the
/// sources do not agree on, is left out (so it would not be signed). The portal sends neither.
pub const CHECKOUT_FIELDS: [&str; 35] = [
    "merchant_id",
    "merchant_key",
    "return_url",
    "cancel_url",
    "notify_url",
    "notify_method",
    "name_first",
    "name_last",
    "email_address",
    "cell_number",
    "m_payment_id",
    "amount",
    "item_name",
    "item_description",
    "custom_int1",
    "custom_int2",
    "custom_int3",
    "custom_int4",
    "custom_int5",
    "custom_str1",
    "custom_str2",
    "custom_str3",
    "custom_str4",
    "custom_str5",
    "email_confirmation",
    "confirmation_address",
    "payment_method",
    "subscription_type",
    "billing_date",
    "recurring_amount",
    "frequency",
    "cycles",
    "subscription_notify_email",
    "subscription_notify_webhook",
    "subscription_notify_buyer",
];

/// The fields of an ITN in the order PayFast posts them (`token` and `billing_date` only for
/// recurring billing), `signature` last. Note `custom_str*` before `custom_int*`: the checkout
/// form has them the other way round.
pub const ITN_FIELDS: [&str; 25] = [
    "m_payment_id",
    "pf_payment_id",
    "payment_status",
    "item_name",
    "item_description",
    "amount_gross",
    "amount_fee",
    "amount_net",
    "custom_str1",
    "custom_str2",
    "custom_str3",
    "custom_str4",
    "custom_str5",
    "custom_int1",
    "custom_int2",
    "custom_int3",
    "custom_int4",
    "custom_int5",
    "name_first",
    "name_last",
    "email_address",
    "merchant_id",
    "token",
    "billing_date",
    "signature",
];

/// The networks PayFast's ITNs come from (its docs' "Ports and IP addresses", confirmed in the
/// research notes). Callers add their own (`127.0.0.1/32` for the stand-in) with
/// [`ip_in_networks`].
pub const ITN_SOURCE_NETWORKS: [(Ipv4Addr, u8); 5] = [
    (Ipv4Addr::new(197, 97, 145, 144), 28),
    (Ipv4Addr::new(41, 74, 179, 192), 27),
    (Ipv4Addr::new(102, 216, 36, 0), 28),
    (Ipv4Addr::new(102, 216, 36, 128), 28),
    (Ipv4Addr::new(144, 126, 193, 139), 32),
];

// ---------------------------------------------------------------------------------------------
// Errors.

/// Why PayFast input was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayfastError {
    /// The body is empty.
    Empty,
    /// The body is larger than [`MAX_ITN_BYTES`].
    TooLarge,
    /// More than [`MAX_ITN_FIELDS`] fields.
    TooManyFields,
    /// Not `application/x-www-form-urlencoded`: a piece without `=`, an empty piece, a bad
    /// `%` escape, a value that is not UTF-8, or a field name outside `[A-Za-z0-9_-]`.
    Malformed,
    /// A field appears twice (which copy would PayFast have signed?).
    DuplicateField,
    /// No `signature` field.
    MissingSignature,
    /// The signature does not match the fields.
    BadSignature,
}

impl fmt::Display for PayfastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayfastError::Empty => "empty PayFast body",
            PayfastError::TooLarge => "PayFast body too large",
            PayfastError::TooManyFields => "too many fields in the PayFast body",
            PayfastError::Malformed => "malformed form-urlencoded PayFast body",
            PayfastError::DuplicateField => "a field appears twice in the PayFast body",
            PayfastError::MissingSignature => "no signature in the PayFast body",
            PayfastError::BadSignature => "the PayFast signature does not match",
        })
    }
}

impl std::error::Error for PayfastError {}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// PHP's `urlencode`: `A-Z a-z 0-9 - _ .` stay, a space becomes `+`, every other byte of the
/// UTF-8 encoding becomes `%XX` with upper-case hex (so `~` is `%7E` and `*` is `%2A`, unlike
/// RFC 3986 encoders).
pub fn php_urlencode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// PHP's `trim` with its default characters: space, `\t`, `\n`, `\r`, `\0` and `\x0B`.
pub fn php_trim(value: &str) -> &str {
    value.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

/// Lowercase hex MD5 of `s`.
fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// Appends `key=urlencode(value)` to `out`, with a `&` first unless `out` is empty.
fn push_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(key);
    out.push('=');
    out.push_str(&php_urlencode(value));
}

/// Constant-time comparison of a received signature with a computed (lowercase hex) one. The
/// received one is compared case-insensitively (hex is hex); the time depends only on the
/// lengths.
pub fn same_signature(received: &str, computed: &str) -> bool {
    received.len() == computed.len()
        && received
            .bytes()
            .zip(computed.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x.to_ascii_lowercase() ^ y))
            == 0
}

// ---------------------------------------------------------------------------------------------
// The checkout form.

/// The string the checkout signature is the MD5 of: the signed fields in [`CHECKOUT_FIELDS`]
/// order (the first copy of each; any other field, `signature` included, is ignored), values
/// trimmed, blank ones dropped, each `key=urlencode(value)`, joined with `&`, then
/// `&passphrase=urlencode(trim(passphrase))` when a passphrase is set.
///
/// The docs keep a value of `"0"` while the PHP SDK drops it (`!empty()`); this follows the
/// docs. The portal never sends an optional field whose value is `"0"`, so both agree.
pub fn checkout_param_string<K: AsRef<str>, V: AsRef<str>>(
    fields: &[(K, V)],
    passphrase: Option<&str>,
) -> String {
    let mut out = String::new();
    for name in CHECKOUT_FIELDS {
        let value = fields
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| php_trim(v.as_ref()));
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            push_pair(&mut out, name, value);
        }
    }
    if let Some(passphrase) = passphrase.map(php_trim).filter(|p| !p.is_empty()) {
        push_pair(&mut out, "passphrase", passphrase);
    }
    out
}

/// The `signature` field of a checkout form: lowercase hex MD5 of [`checkout_param_string`].
/// Post the trimmed values, so that what PayFast receives is what was signed.
pub fn checkout_signature<K: AsRef<str>, V: AsRef<str>>(
    fields: &[(K, V)],
    passphrase: Option<&str>,
) -> String {
    md5_hex(&checkout_param_string(fields, passphrase))
}

/// Checks a posted checkout form's `signature` field as PayFast does.
pub fn verify_checkout<K: AsRef<str>, V: AsRef<str>>(
    fields: &[(K, V)],
    passphrase: Option<&str>,
) -> Result<(), PayfastError> {
    let received = fields
        .iter()
        .find(|(k, _)| k.as_ref() == "signature")
        .map(|(_, v)| php_trim(v.as_ref()))
        .ok_or(PayfastError::MissingSignature)?;
    if same_signature(received, &checkout_signature(fields, passphrase)) {
        Ok(())
    } else {
        Err(PayfastError::BadSignature)
    }
}

// ---------------------------------------------------------------------------------------------
// The ITN.

/// The string an ITN signature is the MD5 of, without the passphrase: every pair before the
/// first `signature`, in the given order, empty values kept, nothing trimmed, each
/// `key=urlencode(value)`, joined with `&`. It is also the body PayFast's
/// `/eng/query/validate` expects.
pub fn itn_param_string<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if k.as_ref() == "signature" {
            break;
        }
        push_pair(&mut out, k.as_ref(), v.as_ref());
    }
    out
}

/// The `signature` of an ITN with these pairs (in this order), as PayFast computes it:
/// lowercase hex MD5 of [`itn_param_string`] plus `&passphrase=urlencode(passphrase)` when a
/// passphrase is set. The docs' sample does not trim the passphrase here; neither does this.
pub fn itn_signature<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
    passphrase: Option<&str>,
) -> String {
    let mut s = itn_param_string(pairs);
    if let Some(passphrase) = passphrase.filter(|p| !p.is_empty()) {
        // A pair-less ITN still gets the separator, as PHP's string concatenation would.
        s.push_str("&passphrase=");
        s.push_str(&php_urlencode(passphrase));
    }
    md5_hex(&s)
}

/// An ITN body, parsed: its fields in the order received. Fields after `signature` are kept in
/// [`Itn::pairs`] but are not signed, so [`Itn::get`] does not see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Itn {
    pairs: Vec<(String, String)>,
    /// Index of the `signature` pair, if any.
    signature_at: Option<usize>,
}

impl Itn {
    /// Parses an `application/x-www-form-urlencoded` body, keeping the order. Refuses (never
    /// panics on) anything PayFast would not send: see [`PayfastError`]. A body without a
    /// `signature` parses (the validate endpoint receives those); [`Itn::verify`] refuses it.
    pub fn parse(body: &[u8]) -> Result<Itn, PayfastError> {
        if body.is_empty() {
            return Err(PayfastError::Empty);
        }
        if body.len() > MAX_ITN_BYTES {
            return Err(PayfastError::TooLarge);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in body.split(|&b| b == b'&') {
            if pairs.len() == MAX_ITN_FIELDS {
                return Err(PayfastError::TooManyFields);
            }
            let eq = piece
                .iter()
                .position(|&b| b == b'=')
                .ok_or(PayfastError::Malformed)?;
            let key = form_decode(&piece[..eq])?;
            let value = form_decode(&piece[eq + 1..])?;
            if !is_field_name(&key) {
                return Err(PayfastError::Malformed);
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(PayfastError::DuplicateField);
            }
            pairs.push((key, value));
        }
        let signature_at = pairs.iter().position(|(k, _)| k == "signature");
        Ok(Itn {
            pairs,
            signature_at,
        })
    }

    /// Every field, in the order received.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The fields the signature covers: those before `signature` (all of them without one).
    pub fn signed_pairs(&self) -> &[(String, String)] {
        &self.pairs[..self.signature_at.unwrap_or(self.pairs.len())]
    }

    /// A signed field's value (percent-decoded). Fields after `signature` are not looked at.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.signed_pairs()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The received `signature`, if any.
    pub fn signature(&self) -> Option<&str> {
        self.signature_at.map(|i| self.pairs[i].1.as_str())
    }

    /// The signed fields re-encoded ([`itn_param_string`]): what to POST to
    /// `/eng/query/validate`, and what the signature covers before the passphrase.
    pub fn param_string(&self) -> String {
        itn_param_string(self.signed_pairs())
    }

    /// Checks the signature: MD5 of [`Itn::param_string`] plus the passphrase, compared in
    /// constant time. This is only PayFast's first check; the source address
    /// ([`ip_in_networks`]), the amount ([`amount_matches`]) and the server confirmation
    /// (`/eng/query/validate`) are the caller's.
    pub fn verify(&self, passphrase: Option<&str>) -> Result<(), PayfastError> {
        let received = self.signature().ok_or(PayfastError::MissingSignature)?;
        if same_signature(received, &itn_signature(self.signed_pairs(), passphrase)) {
            Ok(())
        } else {
            Err(PayfastError::BadSignature)
        }
    }

    /// Whether `payment_status` is `COMPLETE`, the only status that means paid. The status is an
    /// open set (`CANCELLED` is documented, `FAILED` and `PENDING` are seen in other
    /// integrations): anything else is not paid.
    pub fn is_complete(&self) -> bool {
        self.get("payment_status") == Some("COMPLETE")
    }
}

/// Field names PayFast uses are ASCII letters, digits and `_` (the API's headers add `-`).
/// Anything else is refused: a name is signed as is, unencoded, so an `&` or `=` in it would
/// make two different bodies sign alike.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decodes one form-urlencoded component: `+` is a space, `%XX` a byte (either case of hex);
/// a `%` not followed by two hex digits, or a result that is not UTF-8, is malformed.
fn form_decode(raw: &[u8]) -> Result<String, PayfastError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex_digit(b));
                let lo = raw.get(i + 2).and_then(|&b| hex_digit(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(PayfastError::Malformed),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| PayfastError::Malformed)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts, addresses.

/// Parses a rand amount as PayFast writes it (`"1234.50"`, `"-2.30"`, also `"10"` and `"10.5"`)
/// into cents. `None` for anything else: thousands separators, a comma, more than two decimals,
/// more than twelve integer digits, an exponent, whitespace.
pub fn parse_rand(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    if whole.is_empty() || whole.len() > 12 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut cents = whole.parse::<i64>().ok()?.checked_mul(100)?;
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let f = frac.parse::<i64>().ok()?;
        cents += if frac.len() == 1 { f * 10 } else { f };
    }
    Some(if negative { -cents } else { cents })
}

/// Cents as PayFast writes rand: two decimals, `.`, no separators (`-230` is `"-2.30"`).
pub fn format_rand(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// PayFast's amount check: `amount_gross` within one cent of what was expected.
pub fn amount_matches(expected_cents: i64, amount_gross: &str) -> bool {
    parse_rand(amount_gross).is_some_and(|got| got.abs_diff(expected_cents) <= 1)
}

/// Whether `ip` is in one of `networks` (`(address, prefix length)`; IPv4-mapped IPv6
/// addresses count as IPv4). Use it with [`ITN_SOURCE_NETWORKS`] plus any of one's own.
pub fn ip_in_networks(ip: IpAddr, networks: &[(Ipv4Addr, u8)]) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    networks.iter().any(|&(net, len)| {
        let len = u32::from(len.min(32));
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        u32::from(v4) & mask == u32::from(net) & mask
    })
}

// ---------------------------------------------------------------------------------------------
// The REST API.

/// The string the API `signature` header is the MD5 of. `params` are the `merchant-id`,
/// `version` and `timestamp` headers, every body field and every query parameter; `testing`
/// (the sandbox switch) is left out, `passphrase` is added, and all are sorted by key
/// byte-wise (PHP `ksort`; equal keys keep their order), each `key=urlencode(value)`, joined
/// with `&`.
///
/// Empty values are skipped: the docs say "non-empty" (WooCommerce agrees; the PHP SDK keeps
/// them). The portal never sends empty, `"0"` or boolean values in API bodies, so every rule
/// agrees on what it sends.
pub fn api_param_string<K: AsRef<str>, V: AsRef<str>>(
    params: &[(K, V)],
    passphrase: Option<&str>,
) -> String {
    let mut all: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(k, v)| *k != "testing" && *k != "passphrase" && !v.is_empty())
        .collect();
    if let Some(passphrase) = passphrase.filter(|p| !p.is_empty()) {
        all.push(("passphrase", passphrase));
    }
    all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (k, v) in all {
        push_pair(&mut out, k, v);
    }
    out
}

/// The API `signature` header: lowercase hex MD5 of [`api_param_string`].
pub fn api_signature<K: AsRef<str>, V: AsRef<str>>(
    params: &[(K, V)],
    passphrase: Option<&str>,
) -> String {
    md5_hex(&api_param_string(params, passphrase))
}

/// Checks a received API `signature` header against `params`, in constant time.
pub fn verify_api_signature<K: AsRef<str>, V: AsRef<str>>(
    params: &[(K, V)],
    passphrase: Option<&str>,
    received: &str,
) -> bool {
    same_signature(received.trim(), &api_signature(params, passphrase))
}

/// South African Standard Time, PayFast's default offset (seconds east of UTC).
pub const SAST_OFFSET_SECS: i32 = 2 * 60 * 60;

/// Parses the API's `timestamp` header into Unix seconds: `YYYY-MM-DDTHH:MM:SS` followed by
/// `Z`, `±HH:MM`, `±HHMM` (PHP's `date("O")`, which the PHP SDK sends) or nothing, which PayFast
/// reads as GMT+2. Fractions of a second are not accepted. `None` for anything else.
pub fn parse_api_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let offset = match &s[19..] {
        "" => i64::from(SAST_OFFSET_SECS),
        "Z" => 0,
        rest => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = match rest.len() {
                6 if rest.as_bytes()[3] == b':' => (num(20, 22)?, num(23, 25)?),
                5 => (num(20, 22)?, num(22, 24)?),
                _ => return None,
            };
            if h > 14 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// `unix_secs` as the API's `timestamp` header in South African time: `2024-01-01T12:00:00+02:00`
/// (the docs' form; PayFast assumes GMT+2 without an offset, so the offset is always written).
pub fn format_api_timestamp(unix_secs: i64) -> String {
    let local = unix_secs.saturating_add(i64::from(SAST_OFFSET_SECS));
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+02:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSPHRASE: &str = "jt7NOE43FZPn";

    /// V3 in the research notes: a real ITN from PayFast's PHP SDK tests, no passphrase.
    const V3_BODY: &str = "m_payment_id=000000020&pf_payment_id=1579137&payment_status=COMPLETE&item_name=Order+%23000000020&item_description=&amount_gross=15.00&amount_fee=-2.30&amount_net=12.70&custom_str1=&custom_str2=&custom_str3=&custom_str4=&custom_str5=&custom_int1=&custom_int2=&custom_int3=&custom_int4=&custom_int5=&name_first=Tom&name_last=Tom&email_address=lindley%2Buser1%40appinlet.com&merchant_id=10027938";
    const V3_SIGNATURE: &str = "4078bca2c8987e0e0c4e7230f2f46323";

    /// V4: the SDK's other fixture, signed with the sandbox passphrase.
    const V4_BODY: &str = "m_payment_id=1234&pf_payment_id=1221576&payment_status=COMPLETE&item_name=Order%23123&item_description=&amount_gross=10.00&amount_fee=-0.23&amount_net=9.77&custom_str1=&custom_str2=&custom_str3=&custom_str4=&custom_str5=&custom_int1=&custom_int2=&custom_int3=&custom_int4=&custom_int5=&name_first=First&name_last=Last&email_address=test%40test.com&merchant_id=10000100";
    const V4_SIGNATURE: &str = "ac4c3e993d31b5b9d525dc0087051437";
    const V4_SIGNATURE_WITHOUT_PASSPHRASE: &str = "6b1f1c46e2c4cef9f841379a8f42bde2";

    fn v1_fields() -> Vec<(&'static str, &'static str)> {
        vec![
            // Deliberately not in PayFast's order: the signature must not depend on it.
            ("amount", "10.00"),
            ("merchant_id", "10000100"),
            ("merchant_key", "46f0cd694581a"),
            ("return_url", "http://www.yourdomain.co.za/return.php"),
            ("cancel_url", "http://www.yourdomain.co.za/cancel.php"),
            ("notify_url", "http://www.yourdomain.co.za/notify.php"),
            ("name_first", "First Name"),
            ("name_last", "Last Name"),
            ("email_address", "test@test.com"),
            ("m_payment_id", "1234"),
            ("item_name", "Order#123"),
        ]
    }

    fn v2_fields() -> Vec<(&'static str, &'static str)> {
        vec![
            ("merchant_id", "10000100"),
            ("merchant_key", "46f0cd694581a"),
            (
                "return_url",
                "https://portal.example.co.za/pay/return?inv=INV-0042&x=1",
            ),
            ("cancel_url", "https://portal.example.co.za/pay/cancel"),
            ("notify_url", "https://portal.example.co.za/hooks/payfast"),
            ("name_first", "  Zoë "),
            ("name_last", "O'Brien"),
            ("email_address", "zoe+billing@example.co.za"),
            ("cell_number", ""),
            ("m_payment_id", "INV-0042"),
            ("amount", "1234.50"),
            ("item_name", "Invoice INV-0042 (Widgets & Co)"),
            ("item_description", "2 x widget ~ 50% off *today*"),
            ("custom_int1", "42"),
            ("custom_str1", "tenant:7/abc"),
            ("email_confirmation", "1"),
            ("confirmation_address", "accounts@example.co.za"),
            ("payment_method", "cc"),
        ]
    }

    #[test]
    fn php_urlencode_matches_php_on_the_characters_other_encoders_get_wrong() {
        assert_eq!(php_urlencode("AZaz09-_."), "AZaz09-_.");
        assert_eq!(php_urlencode("a b"), "a+b");
        assert_eq!(
            php_urlencode("~*'()@/:+!"),
            "%7E%2A%27%28%29%40%2F%3A%2B%21"
        );
        assert_eq!(php_urlencode("ë"), "%C3%AB");
        assert_eq!(php_urlencode("\0\n"), "%00%0A");
        assert_eq!(php_urlencode(""), "");
    }

    #[test]
    fn php_trim_strips_phps_default_characters_only() {
        assert_eq!(php_trim(" \t\n\r\0\x0Bx y\x0B"), "x y");
        assert_eq!(php_trim("\u{a0}x"), "\u{a0}x");
    }

    #[test]
    fn checkout_signature_matches_the_docs_example_v1() {
        let fields = v1_fields();
        assert_eq!(
            checkout_param_string(&fields, Some(PASSPHRASE)),
            "merchant_id=10000100&merchant_key=46f0cd694581a&return_url=http%3A%2F%2Fwww.yourdomain.co.za%2Freturn.php&cancel_url=http%3A%2F%2Fwww.yourdomain.co.za%2Fcancel.php&notify_url=http%3A%2F%2Fwww.yourdomain.co.za%2Fnotify.php&name_first=First+Name&name_last=Last+Name&email_address=test%40test.com&m_payment_id=1234&amount=10.00&item_name=Order%23123&passphrase=jt7NOE43FZPn"
        );
        assert_eq!(
            checkout_signature(&fields, Some(PASSPHRASE)),
            "8317e2bbd1ae2a6f4f36837e83be4ca9"
        );
        assert_eq!(
            checkout_signature(&fields, None),
            "b8d38028a263acf34dfd2c6e8b62264c"
        );
        // An empty passphrase is no passphrase.
        assert_eq!(
            checkout_signature(&fields, Some("  ")),
            "b8d38028a263acf34dfd2c6e8b62264c"
        );
    }

    #[test]
    fn checkout_signature_trims_skips_blanks_and_encodes_like_php_v2() {
        let fields = v2_fields();
        assert_eq!(
            checkout_param_string(&fields, Some(PASSPHRASE)),
            "merchant_id=10000100&merchant_key=46f0cd694581a&return_url=https%3A%2F%2Fportal.example.co.za%2Fpay%2Freturn%3Finv%3DINV-0042%26x%3D1&cancel_url=https%3A%2F%2Fportal.example.co.za%2Fpay%2Fcancel&notify_url=https%3A%2F%2Fportal.example.co.za%2Fhooks%2Fpayfast&name_first=Zo%C3%AB&name_last=O%27Brien&email_address=zoe%2Bbilling%40example.co.za&m_payment_id=INV-0042&amount=1234.50&item_name=Invoice+INV-0042+%28Widgets+%26+Co%29&item_description=2+x+widget+%7E+50%25+off+%2Atoday%2A&custom_int1=42&custom_str1=tenant%3A7%2Fabc&email_confirmation=1&confirmation_address=accounts%40example.co.za&payment_method=cc&passphrase=jt7NOE43FZPn"
        );
        assert_eq!(
            checkout_signature(&fields, Some(PASSPHRASE)),
            "e78f1bdefcbaeeb0de464da4e57405b6"
        );
    }

    #[test]
    fn checkout_signature_ignores_unsigned_fields_and_a_second_copy() {
        let mut fields = v1_fields();
        fields.push(("setup", "{\"split\":1}"));
        fields.push(("source", "woo"));
        fields.push(("signature", "whatever"));
        fields.push(("amount", "99.00"));
        assert_eq!(
            checkout_signature(&fields, Some(PASSPHRASE)),
            "8317e2bbd1ae2a6f4f36837e83be4ca9"
        );
    }

    #[test]
    fn a_checkout_verifies_with_its_signature_and_not_when_tampered() {
        let mut fields: Vec<(String, String)> = v2_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let sig = checkout_signature(&fields, Some(PASSPHRASE));
        assert_eq!(
            verify_checkout(&fields, Some(PASSPHRASE)),
            Err(PayfastError::MissingSignature)
        );
        fields.push(("signature".into(), sig.to_ascii_uppercase()));
        assert_eq!(verify_checkout(&fields, Some(PASSPHRASE)), Ok(()));
        assert_eq!(
            verify_checkout(&fields, Some("other")),
            Err(PayfastError::BadSignature)
        );
        fields[10].1 = "1.00".into();
        assert_eq!(
            verify_checkout(&fields, Some(PASSPHRASE)),
            Err(PayfastError::BadSignature)
        );
    }

    #[test]
    fn itn_v3_from_the_sdk_verifies_without_a_passphrase() {
        let body = format!("{V3_BODY}&signature={V3_SIGNATURE}");
        let itn = Itn::parse(body.as_bytes()).expect("parses");
        assert_eq!(itn.param_string(), V3_BODY);
        assert_eq!(itn.verify(None), Ok(()));
        assert_eq!(
            itn.verify(Some(PASSPHRASE)),
            Err(PayfastError::BadSignature)
        );
        assert_eq!(itn.get("item_name"), Some("Order #000000020"));
        assert_eq!(itn.get("email_address"), Some("lindley+user1@appinlet.com"));
        assert_eq!(itn.get("item_description"), Some(""));
        assert!(itn.is_complete());
        assert_eq!(itn.signed_pairs().len(), 22);
        assert_eq!(itn_signature(itn.signed_pairs(), None), V3_SIGNATURE);
    }

    #[test]
    fn itn_v4_from_the_sdk_verifies_with_the_sandbox_passphrase() {
        let body = format!("{V4_BODY}&signature={V4_SIGNATURE}");
        let itn = Itn::parse(body.as_bytes()).expect("parses");
        assert_eq!(itn.verify(Some(PASSPHRASE)), Ok(()));
        assert_eq!(itn.verify(None), Err(PayfastError::BadSignature));
        assert_eq!(
            itn_signature(itn.signed_pairs(), None),
            V4_SIGNATURE_WITHOUT_PASSPHRASE
        );
        assert!(amount_matches(
            1000,
            itn.get("amount_gross").unwrap_or_default()
        ));
        assert!(!amount_matches(1002, "10.00"));
        assert!(amount_matches(1001, "10.00"));
    }

    #[test]
    fn itn_signature_depends_on_the_order_received() {
        let body = format!("{V4_BODY}&signature={V4_SIGNATURE}");
        let itn = Itn::parse(body.as_bytes()).expect("parses");
        let mut swapped = itn.signed_pairs().to_vec();
        swapped.swap(0, 1);
        assert_ne!(itn_signature(&swapped, Some(PASSPHRASE)), V4_SIGNATURE);
    }

    #[test]
    fn fields_after_the_signature_are_not_signed_and_not_read() {
        let body = format!("{V4_BODY}&signature={V4_SIGNATURE}&amount=1.00&extra=1");
        let itn = Itn::parse(body.as_bytes()).expect("parses");
        assert_eq!(itn.verify(Some(PASSPHRASE)), Ok(()));
        assert_eq!(itn.get("extra"), None);
        assert_eq!(itn.pairs().len(), 25);
    }

    #[test]
    fn tampered_or_unsigned_itns_are_refused() {
        let body = format!("{V4_BODY}&signature={V4_SIGNATURE}").replace("10.00", "11.00");
        let itn = Itn::parse(body.as_bytes()).expect("parses");
        assert_eq!(
            itn.verify(Some(PASSPHRASE)),
            Err(PayfastError::BadSignature)
        );
        let itn = Itn::parse(V4_BODY.as_bytes()).expect("parses");
        assert_eq!(
            itn.verify(Some(PASSPHRASE)),
            Err(PayfastError::MissingSignature)
        );
        assert_eq!(itn.param_string(), V4_BODY);
    }

    #[test]
    fn malformed_itn_bodies_are_refused_not_guessed() {
        for (body, want) in [
            (&b""[..], PayfastError::Empty),
            (b"a=1&&b=2", PayfastError::Malformed),
            (b"a=1&", PayfastError::Malformed),
            (b"novalue", PayfastError::Malformed),
            (b"a=%zz", PayfastError::Malformed),
            (b"a=%4", PayfastError::Malformed),
            (b"a=%ff", PayfastError::Malformed),
            (b"a=\xff", PayfastError::Malformed),
            (b"=1", PayfastError::Malformed),
            (b"a%26b=1", PayfastError::Malformed),
            (b"a b=1", PayfastError::Malformed),
            (b"a=1&a=2", PayfastError::DuplicateField),
        ] {
            assert_eq!(
                Itn::parse(body),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let big = vec![b'a'; MAX_ITN_BYTES + 1];
        assert_eq!(Itn::parse(&big), Err(PayfastError::TooLarge));
        let many: Vec<String> = (0..=MAX_ITN_FIELDS).map(|i| format!("f{i}=")).collect();
        assert_eq!(
            Itn::parse(many.join("&").as_bytes()),
            Err(PayfastError::TooManyFields)
        );
        let ok: Vec<String> = (0..MAX_ITN_FIELDS).map(|i| format!("f{i}=")).collect();
        assert!(Itn::parse(ok.join("&").as_bytes()).is_ok());
        // A value may hold `=`; either case of hex decodes.
        let itn = Itn::parse(b"a=b=c&d=%c3%ab%C3%AB").expect("parses");
        assert_eq!(itn.get("a"), Some("b=c"));
        assert_eq!(itn.get("d"), Some("ëë"));
    }

    #[test]
    fn api_signature_matches_ping_v5() {
        let headers = [
            ("merchant-id", "10000100"),
            ("version", "v1"),
            ("timestamp", "2024-01-01T12:00:00+02:00"),
        ];
        assert_eq!(
            api_param_string(&headers, Some(PASSPHRASE)),
            "merchant-id=10000100&passphrase=jt7NOE43FZPn&timestamp=2024-01-01T12%3A00%3A00%2B02%3A00&version=v1"
        );
        assert_eq!(
            api_signature(&headers, Some(PASSPHRASE)),
            "3d1a0d15f44e7a6113f6a906f39d94af"
        );
        // `testing` (the sandbox switch) is not signed.
        let mut with_testing = headers.to_vec();
        with_testing.push(("testing", "true"));
        assert!(verify_api_signature(
            &with_testing,
            Some(PASSPHRASE),
            "3d1a0d15f44e7a6113f6a906f39d94af"
        ));
        assert!(!verify_api_signature(
            &with_testing,
            None,
            "3d1a0d15f44e7a6113f6a906f39d94af"
        ));
    }

    #[test]
    fn api_signature_matches_refund_create_v6_and_history_v7() {
        let v6 = [
            ("merchant-id", "10000100"),
            ("version", "v1"),
            ("timestamp", "2024-01-01T12:00:00+02:00"),
            ("amount", "1000"),
            ("reason", "Product returned"),
            ("notify_buyer", "1"),
        ];
        assert_eq!(
            api_param_string(&v6, Some(PASSPHRASE)),
            "amount=1000&merchant-id=10000100&notify_buyer=1&passphrase=jt7NOE43FZPn&reason=Product+returned&timestamp=2024-01-01T12%3A00%3A00%2B02%3A00&version=v1"
        );
        assert_eq!(
            api_signature(&v6, Some(PASSPHRASE)),
            "8c91de9c9512a2ef0087d947c798f2c7"
        );
        let v7 = [
            ("merchant-id", "10000100"),
            ("version", "v1"),
            ("timestamp", "2024-01-01T12:00:00+02:00"),
            ("from", "2024-01-01"),
            ("to", "2024-01-31"),
        ];
        assert_eq!(
            api_signature(&v7, Some(PASSPHRASE)),
            "fafff7679f29423bbad98936a0b3b492"
        );
        // Empty values are skipped (the docs' rule).
        let mut with_empty = v7.to_vec();
        with_empty.push(("offset", ""));
        assert_eq!(
            api_signature(&with_empty, Some(PASSPHRASE)),
            "fafff7679f29423bbad98936a0b3b492"
        );
    }

    #[test]
    fn api_timestamps_parse_in_every_form_payfast_accepts() {
        // 2024-01-01T10:00:00Z
        let t = 1_704_103_200;
        assert_eq!(parse_api_timestamp("2024-01-01T12:00:00+02:00"), Some(t));
        assert_eq!(parse_api_timestamp("2024-01-01T12:00:00+0200"), Some(t));
        assert_eq!(parse_api_timestamp("2024-01-01T12:00:00"), Some(t));
        assert_eq!(parse_api_timestamp("2024-01-01T10:00:00Z"), Some(t));
        assert_eq!(parse_api_timestamp("2024-01-01T05:30:00-04:30"), Some(t));
        assert_eq!(format_api_timestamp(t), "2024-01-01T12:00:00+02:00");
        assert_eq!(
            parse_api_timestamp("2024-02-29T00:00:00Z"),
            Some(1_709_164_800)
        );
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01 12:00:00",
            "2024-13-01T12:00:00",
            "2023-02-29T12:00:00",
            "2024-01-01T24:00:00",
            "2024-01-01T12:00:00.5Z",
            "2024-01-01T12:00:00+2:00",
            "2024-01-01T12:00:00+15:00",
            "+024-01-01T12:00:00",
            "2024-01-01T12:00:00+02:0é",
        ] {
            assert_eq!(parse_api_timestamp(bad), None, "{bad}");
        }
        assert_eq!(format_api_timestamp(0), "1970-01-01T02:00:00+02:00");
        assert_eq!(
            format_api_timestamp(-86_400 * 366),
            "1968-12-31T02:00:00+02:00"
        );
    }

    #[test]
    fn rand_amounts_round_trip_in_cents() {
        assert_eq!(parse_rand("1234.50"), Some(123_450));
        assert_eq!(parse_rand("-2.30"), Some(-230));
        assert_eq!(parse_rand("10"), Some(1000));
        assert_eq!(parse_rand("10.5"), Some(1050));
        assert_eq!(parse_rand("0.01"), Some(1));
        for bad in [
            "",
            "-",
            ".5",
            "1.",
            "1.234",
            "1,000.00",
            "1 000",
            "+1",
            "1e3",
            " 1",
            "9999999999999",
        ] {
            assert_eq!(parse_rand(bad), None, "{bad}");
        }
        assert_eq!(format_rand(123_450), "1234.50");
        assert_eq!(format_rand(-230), "-2.30");
        assert_eq!(format_rand(5), "0.05");
        assert_eq!(format_rand(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn itn_sources_are_payfasts_networks_plus_ones_own() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        for good in [
            "197.97.145.144",
            "197.97.145.159",
            "41.74.179.223",
            "102.216.36.5",
            "102.216.36.143",
            "144.126.193.139",
            "::ffff:41.74.179.200",
        ] {
            assert!(ip_in_networks(ip(good), &ITN_SOURCE_NETWORKS), "{good}");
        }
        for bad in [
            "197.97.145.160",
            "41.74.179.191",
            "102.216.36.16",
            "144.126.193.140",
            "127.0.0.1",
            "::1",
        ] {
            assert!(!ip_in_networks(ip(bad), &ITN_SOURCE_NETWORKS), "{bad}");
        }
        let local = [(Ipv4Addr::LOCALHOST, 32)];
        assert!(ip_in_networks(ip("127.0.0.1"), &local));
        assert!(ip_in_networks(ip("8.8.8.8"), &[(Ipv4Addr::UNSPECIFIED, 0)]));
    }

    #[test]
    fn same_signature_is_case_insensitive_equality_of_hex() {
        assert!(same_signature("ABCdef", "abcdef"));
        assert!(!same_signature("abcdee", "abcdef"));
        assert!(!same_signature("abc", "abcdef"));
        assert!(same_signature("", ""));
    }
}
