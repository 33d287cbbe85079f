//! Paystack webhook signatures (`guards::paystack`) on arbitrary input.
//!
//! Input format (so seeds can be written by hand): the first line is the `x-paystack-signature`
//! header (no header at all when that line is not UTF-8), the rest after the first `\n` is the
//! raw body.
//!
//! Besides "never panics", it checks what the functions promise:
//! - an accepted header is, trimmed and ignoring case, the HMAC-SHA512 of this body under the
//!   key whose index is returned;
//! - `webhook_signature` is 128 lowercase hex digits, verifies under its key (also upper-cased
//!   or padded with spaces), under either key of a rollover, and never under another key;
//! - a header of the wrong length is `Malformed`, never `NoMatch`.
#![no_main]

use guards::paystack::{PaystackSignatureError, verify_webhook, webhook_signature};
use libfuzzer_sys::fuzz_target;

/// Two keys, as during a rollover.
const KEYS: [&str; 2] = [
    "sk_test_0000000000000000000000000000000000000000",
    "sk_test_old",
];

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = std::str::from_utf8(line).ok();

    match verify_webhook(header, body, &KEYS) {
        Ok(i) => {
            let want = webhook_signature(KEYS[i], body);
            let got = header.expect("accepted without a header").trim();
            assert!(got.eq_ignore_ascii_case(&want), "accepted {got:?}");
        }
        Err(PaystackSignatureError::Missing) => assert!(header.is_none()),
        Err(PaystackSignatureError::NoMatch) => {
            assert_eq!(header.map(|h| h.trim().len()), Some(128));
        }
        Err(PaystackSignatureError::Malformed) => {}
    }

    // Signatures made for this body, with the input's text as a key too.
    let text = String::from_utf8_lossy(line).into_owned();
    for key in [KEYS[0], KEYS[1], text.as_str()] {
        let sig = webhook_signature(key, body);
        assert_eq!(sig.len(), 128);
        assert!(
            sig.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(verify_webhook(Some(&sig), body, &[key]), Ok(0));
        assert_eq!(
            verify_webhook(
                Some(&format!(" {}\t", sig.to_ascii_uppercase())),
                body,
                &[key]
            ),
            Ok(0)
        );
        let other = format!("{key}x");
        assert_eq!(
            verify_webhook(Some(&sig), body, &[other.as_str()]),
            Err(PaystackSignatureError::NoMatch)
        );
    }
    let old = webhook_signature(KEYS[1], body);
    assert_eq!(verify_webhook(Some(&old), body, &KEYS), Ok(1));
    let none: [&str; 0] = [];
    assert_eq!(
        verify_webhook(Some(&old), body, &none),
        Err(PaystackSignatureError::NoMatch)
    );
});
