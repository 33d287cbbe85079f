//! Webhook signatures (`guards::signature`): Stripe's `Stripe-Signature` header and HubSpot's v3
//! signature, on arbitrary input.
//!
//! Input format (so seeds can be written by hand): the first line is the `Stripe-Signature`
//! header (no header at all when that line is not UTF-8), the rest after the first `\n` is the
//! raw body. The same pieces go through HubSpot's signature, base64 and the constant-time compare.
//!
//! Besides "never panics", it checks what the functions promise:
//! - an accepted header carries a correct `v1` signature of this body under a configured secret,
//!   and its timestamp is within the tolerance;
//! - a header made by `sign` for this body verifies exactly when its timestamp is within the
//!   tolerance (any `i64` timestamp), under either secret of a rotation, also with junk `v1`
//!   values beside it; under a secret that is not configured it never does;
//! - HubSpot's signature is 44 characters of padded base64 (32 bytes), `base64` agrees with the
//!   `base64` crate, and `same` agrees with `==`.
#![no_main]

use base64::Engine as _;
use guards::signature::{
    SignatureError, base64, hubspot_signature, same, sign, verify_signature, within_tolerance,
};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_100;
const TOLERANCE: i64 = 300;
/// Two secrets, as during a rotation.
const SECRETS: [&str; 2] = ["whsec_test_secret", "whsec_old"];

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = std::str::from_utf8(line).ok();
    let secrets: Vec<String> = SECRETS.iter().map(|s| (*s).to_owned()).collect();

    // The header as received.
    match verify_signature(header, body, &secrets, NOW, TOLERANCE) {
        Ok(t) => {
            assert!(
                within_tolerance(NOW, t, TOLERANCE),
                "accepted a stale t={t}"
            );
            let received = header
                .expect("accepted without a header")
                .to_ascii_lowercase();
            assert!(
                SECRETS
                    .iter()
                    .any(|s| received.contains(v1_of(&sign(s, t, body)))),
                "accepted {received:?} without a correct signature of the body"
            );
        }
        Err(SignatureError::Missing) => assert!(header.is_none()),
        Err(_) => {}
    }

    // Headers made by `sign`, at a timestamp taken from the input (any i64, extremes included)
    // and at one always within the tolerance.
    let mut raw = [0u8; 8];
    for (r, b) in raw.iter_mut().zip(line) {
        *r = *b;
    }
    let wild_t = i64::from_le_bytes(raw);
    let near_t = NOW - (wild_t.rem_euclid(2 * TOLERANCE + 1) - TOLERANCE);
    let junk: String = String::from_utf8_lossy(line).replace(',', "");
    for (t, secret) in [
        (wild_t, SECRETS[0]),
        (near_t, SECRETS[1]),
        (near_t, SECRETS[0]),
    ] {
        let expected = if within_tolerance(NOW, t, TOLERANCE) {
            Ok(t)
        } else {
            Err(SignatureError::Stale)
        };
        let signed = sign(secret, t, body);
        assert_eq!(
            verify_signature(Some(&signed), body, &secrets, NOW, TOLERANCE),
            expected
        );
        // Other `v1` values beside the right one (Stripe sends several during its own rotations)
        // and unknown schemes change nothing.
        let crowded = format!("v0=00,{signed},v1={junk}, v9={junk}");
        assert_eq!(
            verify_signature(Some(&crowded), body, &secrets, NOW, TOLERANCE),
            expected
        );
        // A secret that is not configured never verifies.
        let other = sign("whsec_not_configured", t, body);
        assert!(verify_signature(Some(&other), body, &secrets, NOW, TOLERANCE).is_err());
    }
    assert_eq!(
        verify_signature(
            Some(&sign(SECRETS[0], near_t, body)),
            body,
            &[],
            NOW,
            TOLERANCE
        ),
        Err(SignatureError::NoMatch)
    );

    // HubSpot: any method, URL, body and timestamp.
    let text = String::from_utf8_lossy(line);
    let rest = String::from_utf8_lossy(body);
    let (method, uri) = text.split_at(text.char_indices().nth(4).map_or(text.len(), |(i, _)| i));
    let sig = hubspot_signature(&rest, method, uri, body, &text);
    assert_eq!(sig.len(), 44, "{sig}");
    assert!(sig.ends_with('=') && !sig[..43].contains('='), "{sig}");
    assert_eq!(sig, hubspot_signature(&rest, method, uri, body, &text));
    assert_eq!(
        base64(body),
        base64::engine::general_purpose::STANDARD.encode(body)
    );
    assert_eq!(
        base64(line),
        base64::engine::general_purpose::STANDARD.encode(line)
    );
    assert_eq!(same(&text, &rest), text == rest);
    assert_eq!(same(&sig, &text), sig == text);
    assert!(same(&text, &text.clone()));
});

/// The hex signature of a header made by `sign`.
fn v1_of(header: &str) -> &str {
    header.split_once(",v1=").map_or("", |(_, v)| v)
}
