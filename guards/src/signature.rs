//! Webhook signatures: Stripe's `Stripe-Signature` header ([`verify_signature`], [`sign`]) and
//! HubSpot's v3 request signature ([`hubspot_signature`], compared with [`same`]).
//!
//! Both are checked over the raw body before the body is parsed, so nothing unauthenticated is
//! ever read. The headers are untrusted text: parsing them must refuse, never panic, whatever
//! they hold (`fuzz/fuzz_targets/webhook_signature.rs` holds them to that).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------------
// Stripe.

/// Why a webhook's signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    NoMatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "missing Stripe-Signature header",
            SignatureError::Malformed => "malformed Stripe-Signature header",
            SignatureError::Stale => "timestamp outside the tolerance",
            SignatureError::NoMatch => "no signature matches any configured secret",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Whether timestamp `t` is within `tolerance` of `now` (either side, same unit). Any `i64` is
/// accepted: a timestamp read from a header can be anything, and `now - t` could overflow. A
/// negative tolerance accepts nothing.
pub fn within_tolerance(now: i64, t: i64, tolerance: i64) -> bool {
    u64::try_from(tolerance).is_ok_and(|tolerance| now.abs_diff(t) <= tolerance)
}

/// Verifies a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=...][,v0=...]`) over the raw
/// body: HMAC-SHA256 keyed with the endpoint secret over `"<t>.<body>"`, compared in constant
/// time against every `v1` signature and every configured secret (two during a rotation), and
/// the timestamp within `tolerance_secs` of `now` (see [`within_tolerance`]). Returns the
/// timestamp.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => timestamp = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                if let Ok(bytes) = hex::decode(v) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoMatch);
    }
    if !within_tolerance(now, t, tolerance_secs) {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for sig in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|_| SignatureError::Malformed)?;
            mac.update(t.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(sig).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::NoMatch)
}

/// Signs `body` as Stripe does (for the stand-in and tests).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------------------------------------
// HubSpot.

/// HubSpot's v3 webhook signature: base64 of HMAC-SHA256 keyed with the app's client secret over
/// `method + uri + body + timestamp`. Compare it with the received one using [`same`].
pub fn hubspot_signature(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64(&mac.finalize().into_bytes())
}

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Constant-time comparison of two signatures (the time depends only on the lengths).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // A vector computed independently with Python's hmac module:
    // hmac.new(b"whsec_test_secret", b"1700000000.{\"id\":\"evt_1\"}", hashlib.sha256).hexdigest()
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const SECRET: &str = "whsec_test_secret";
    const SIG: &str = "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";

    #[test]
    fn known_vector_verifies() {
        let header = format!("t=1700000000,v1={SIG}");
        assert_eq!(
            verify_signature(Some(&header), BODY, &[SECRET.into()], 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
        assert_eq!(sign(SECRET, 1_700_000_000, BODY), header);
    }

    #[test]
    fn refusals_name_their_reason() {
        let good = sign(SECRET, 1_700_000_000, BODY);
        let now = 1_700_000_000;
        assert_eq!(
            verify_signature(None, BODY, &[SECRET.into()], now, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some("garbage"), BODY, &[SECRET.into()], now, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(Some(&good), BODY, &[SECRET.into()], now + 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(
                Some(&good),
                b"{\"id\":\"evt_2\"}",
                &[SECRET.into()],
                now,
                300
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(Some(&good), BODY, &["whsec_other".into()], now, 300),
            Err(SignatureError::NoMatch)
        );
        // Only v1 counts: a v0 (test-mode legacy) signature alone is not accepted.
        let v0 = good.replace("v1=", "v0=");
        assert_eq!(
            verify_signature(Some(&v0), BODY, &[SECRET.into()], now, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            SignatureError::Stale.to_string(),
            "timestamp outside the tolerance"
        );
    }

    #[test]
    fn rotation_accepts_either_secret_and_any_v1() {
        let now = 1_700_000_000;
        let old = sign("whsec_old", now, BODY);
        let new_sig = sign("whsec_new", now, BODY);
        let both = format!(
            "{new_sig},v1={}",
            old.split("v1=").nth(1).unwrap_or_default()
        );
        let secrets = vec!["whsec_new".to_string(), "whsec_old".to_string()];
        assert!(verify_signature(Some(&old), BODY, &secrets, now, 300).is_ok());
        assert!(verify_signature(Some(&new_sig), BODY, &secrets, now, 300).is_ok());
        assert!(verify_signature(Some(&both), BODY, &["whsec_old".into()], now, 300).is_ok());
    }

    /// `now - t` used to overflow (a panic in debug and fuzz builds, a wrong answer in release)
    /// for a header such as `t=-9223372036854775808`.
    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let header = sign(SECRET, t, BODY);
            assert_eq!(
                verify_signature(Some(&header), BODY, &[SECRET.into()], 1_700_000_000, 300),
                Err(SignatureError::Stale),
                "{header}"
            );
        }
        assert!(within_tolerance(i64::MAX, i64::MAX, 0));
        assert!(!within_tolerance(i64::MAX, i64::MIN, i64::MAX));
        assert!(!within_tolerance(0, 0, -1));
        assert!(within_tolerance(10, 7, 3) && within_tolerance(7, 10, 3));
        assert!(!within_tolerance(10, 6, 3));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn hubspot_v3_signature_known_vector() {
        // Computed independently with Python:
        // base64(hmac.new(b"secret", b"POSThttps://portal.example/webhooks/crm[]1700000000000", sha256).digest())
        assert_eq!(
            hubspot_signature(
                "secret",
                "POST",
                "https://portal.example/webhooks/crm",
                b"[]",
                "1700000000000"
            ),
            "Cc8YJ4CjWQzBYFuwRku5kVBsflZF8zQCmkOQ2J0hLjA="
        );
    }

    #[test]
    fn same_is_equality() {
        assert!(same("", "") && same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "ab") && !same("", "a"));
    }
}
