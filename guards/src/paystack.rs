//! Paystack's webhook signature: the `x-paystack-signature` header is the lowercase hex
//! HMAC-SHA512 of the raw request body, keyed with the account's secret key.
//!
//! It is checked over the raw bytes before the body is parsed (Paystack's own JavaScript sample
//! re-serialises the parsed JSON, which breaks on any difference in spacing or key order), and
//! compared in constant time. The header is untrusted text: [`verify_webhook`] refuses anything
//! that is not one HMAC-SHA512 in hex and never panics
//! (`fuzz/fuzz_targets/paystack_webhook.rs`). The portal verifies with it; the local stand-in
//! signs with [`webhook_signature`].

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha512;

/// The header Paystack puts the signature in (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-paystack-signature";

/// The networks Paystack's webhooks come from (test and live alike; its docs, confirmed in the
/// research notes). For [`crate::payfast::ip_in_networks`].
pub const WEBHOOK_SOURCE_NETWORKS: [(std::net::Ipv4Addr, u8); 3] = [
    (std::net::Ipv4Addr::new(52, 31, 139, 75), 32),
    (std::net::Ipv4Addr::new(52, 49, 173, 169), 32),
    (std::net::Ipv4Addr::new(52, 214, 14, 220), 32),
];

/// An HMAC-SHA512 in hex is this long.
const SIGNATURE_HEX_LEN: usize = 128;

/// Why a Paystack webhook's signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaystackSignatureError {
    /// No `x-paystack-signature` header.
    Missing,
    /// Not 128 hex digits.
    Malformed,
    /// Not the HMAC of this body under any configured secret key.
    NoMatch,
}

impl fmt::Display for PaystackSignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PaystackSignatureError::Missing => "missing x-paystack-signature header",
            PaystackSignatureError::Malformed => "malformed x-paystack-signature header",
            PaystackSignatureError::NoMatch => "the x-paystack-signature does not match the body",
        })
    }
}

impl std::error::Error for PaystackSignatureError {}

fn mac(secret_key: &str, body: &[u8]) -> Hmac<Sha512> {
    // The key is configuration, not input; HMAC takes keys of any length.
    let mut mac = Hmac::<Sha512>::new_from_slice(secret_key.as_bytes()).expect("any key length");
    mac.update(body);
    mac
}

/// The `x-paystack-signature` value for `body`: lowercase hex HMAC-SHA512 keyed with the secret
/// key (`sk_test_...` / `sk_live_...`), over the exact bytes sent.
pub fn webhook_signature(secret_key: &str, body: &[u8]) -> String {
    hex::encode(mac(secret_key, body).finalize().into_bytes())
}

/// Verifies an `x-paystack-signature` header over the raw body against each secret key given
/// (two while keys are being rolled: a retried webhook may still carry the old key's signature).
/// Surrounding whitespace is ignored and hex may be either case; the comparison is constant
/// time. Returns the index of the key that matched.
pub fn verify_webhook<S: AsRef<str>>(
    header: Option<&str>,
    body: &[u8],
    secret_keys: &[S],
) -> Result<usize, PaystackSignatureError> {
    let header = header.ok_or(PaystackSignatureError::Missing)?.trim();
    if header.len() != SIGNATURE_HEX_LEN {
        return Err(PaystackSignatureError::Malformed);
    }
    let received = hex::decode(header).map_err(|_| PaystackSignatureError::Malformed)?;
    secret_keys
        .iter()
        .position(|key| mac(key.as_ref(), body).verify_slice(&received).is_ok())
        .ok_or(PaystackSignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The research notes' fake key and vectors W1 to W3, computed with Python's hmac module.
    const KEY: &str = "sk_test_0000000000000000000000000000000000000000";
    const W1: &str = r#"{"event":"charge.success","data":{"id":302961,"domain":"test","status":"success","reference":"INV-0042-a1","amount":123450,"currency":"ZAR","channel":"card","gateway_response":"Successful","paid_at":"2024-01-01T10:00:00.000Z","metadata":{"invoice_id":"INV-0042"},"customer":{"email":"zoe@example.co.za"}}}"#;
    const W1_SIG: &str = "bbc6ef3e42e8d8a295c9fae5b7647bbd99897af912f1b07ae84f0375f306abb767bfef61c5fa706f50c9cef0a68b49018b27c1163f74855c04261edc3de5229a";
    const W1_NEWLINE_SIG: &str = "f312e1cd2a290983a404b2027367c4fbb0aa54439dfca6441d7bf4958e0b97f2c46fd36dc08fce2b150106b01299cedb1580e424c046f7d26bf674b149f15002";
    const W2: &str = r#"{"event":"refund.processed","data":{"status":"processed","transaction_reference":"INV-0042-a1","refund_reference":"132013318360","amount":"5000","currency":"ZAR","processor":"mpgs_zen","customer":{"first_name":"Zoe","last_name":"OBrien","email":"zoe@example.co.za"},"integration":412829,"domain":"test"}}"#;
    const W2_SIG: &str = "be1e88223b93b1b417cdb1ceebc012948db5878ad040f9132435bac882fe09d3b334a775f940131b18a36fcb2a987deadeab8c2918fdb83e6322b5ddecce00f1";
    const W3_SIG: &str = "3f29ad814928a984af4e93755436d3434d165264aa91a51fae00353f3b3a8bc6b6d802a9e92c17629e92be35d357d6b71917d307a551da3b7299c485a90ba771";

    #[test]
    fn signatures_match_the_known_vectors() {
        assert_eq!(webhook_signature(KEY, W1.as_bytes()), W1_SIG);
        assert_eq!(
            webhook_signature(KEY, format!("{W1}\n").as_bytes()),
            W1_NEWLINE_SIG
        );
        assert_eq!(webhook_signature(KEY, W2.as_bytes()), W2_SIG);
        assert_eq!(webhook_signature(KEY, b"{}"), W3_SIG);
    }

    #[test]
    fn the_known_vectors_verify_and_a_changed_byte_does_not() {
        assert_eq!(verify_webhook(Some(W1_SIG), W1.as_bytes(), &[KEY]), Ok(0));
        assert_eq!(verify_webhook(Some(W2_SIG), W2.as_bytes(), &[KEY]), Ok(0));
        assert_eq!(verify_webhook(Some(W3_SIG), b"{}", &[KEY]), Ok(0));
        // A trailing newline is a different body.
        assert_eq!(
            verify_webhook(Some(W1_SIG), format!("{W1}\n").as_bytes(), &[KEY]),
            Err(PaystackSignatureError::NoMatch)
        );
        assert_eq!(
            verify_webhook(
                Some(W1_SIG),
                W1.replace("123450", "123451").as_bytes(),
                &[KEY]
            ),
            Err(PaystackSignatureError::NoMatch)
        );
        assert_eq!(
            verify_webhook(Some(W1_SIG), W1.as_bytes(), &["sk_test_other"]),
            Err(PaystackSignatureError::NoMatch)
        );
    }

    #[test]
    fn either_key_of_a_rollover_verifies() {
        let keys = ["sk_test_new", KEY];
        assert_eq!(verify_webhook(Some(W3_SIG), b"{}", &keys), Ok(1));
        let none: [&str; 0] = [];
        assert_eq!(
            verify_webhook(Some(W3_SIG), b"{}", &none),
            Err(PaystackSignatureError::NoMatch)
        );
    }

    #[test]
    fn headers_are_read_leniently_but_refused_when_not_one_hmac() {
        let upper = W3_SIG.to_ascii_uppercase();
        assert_eq!(verify_webhook(Some(&upper), b"{}", &[KEY]), Ok(0));
        assert_eq!(
            verify_webhook(Some(&format!(" {W3_SIG}\t")), b"{}", &[KEY]),
            Ok(0)
        );
        assert_eq!(
            verify_webhook(None, b"{}", &[KEY]),
            Err(PaystackSignatureError::Missing)
        );
        for bad in [
            "",
            &W3_SIG[..127],
            &format!("{W3_SIG}00"),
            &format!("{}zz", &W3_SIG[..126]),
            &format!("sha512={}", &W3_SIG[..121]),
        ] {
            assert_eq!(
                verify_webhook(Some(bad), b"{}", &[KEY]),
                Err(PaystackSignatureError::Malformed),
                "{bad}"
            );
        }
        // Multi-byte characters of the right byte length are malformed hex, not a panic.
        let odd = "é".repeat(64);
        assert_eq!(
            verify_webhook(Some(&odd), b"{}", &[KEY]),
            Err(PaystackSignatureError::Malformed)
        );
    }
}
