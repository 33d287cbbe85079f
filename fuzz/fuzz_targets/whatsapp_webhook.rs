//! WhatsApp webhooks (`guards::whatsapp`): the `X-Hub-Signature-256` check, the GET handshake
//! and the event-body parser, on arbitrary input.
//!
//! Input format (so seeds can be written by hand): the first line is the
//! `X-Hub-Signature-256` header (no header at all when that line is not UTF-8), the rest after
//! the first `\n` is the raw body.
//!
//! Besides "never panics", it checks what the functions promise:
//! - a header that verifies is `sha256=` and this body's HMAC under the app secret, in some
//!   letter case;
//! - `hub_signature` of the body verifies, in lower and upper case, and without its `sha256=`
//!   prefix never does; under another secret it never does;
//! - a parsed body holds no more than `MAX_WEBHOOK_ITEMS` items and only ids within bounds;
//! - the handshake echoes the challenge only for mode `subscribe` and the exact token.
#![no_main]

use guards::whatsapp::{
    HubSignatureError, MAX_CHALLENGE_BYTES, MAX_WEBHOOK_ITEMS, handshake_challenge, hub_signature,
    parse_webhook, verify_hub_signature,
};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "test_app_secret";

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = std::str::from_utf8(line).ok();

    // The header as received.
    match verify_hub_signature(header, body, SECRET) {
        Ok(()) => {
            let got = header
                .expect("verified without a header")
                .trim()
                .to_ascii_lowercase();
            assert_eq!(
                got,
                hub_signature(SECRET, body),
                "accepted a wrong signature"
            );
        }
        Err(HubSignatureError::Missing) => assert!(header.is_none()),
        Err(_) => {}
    }

    // Signatures made for this body.
    let signed = hub_signature(SECRET, body);
    assert_eq!(signed.len(), "sha256=".len() + 64);
    assert_eq!(verify_hub_signature(Some(&signed), body, SECRET), Ok(()));
    let upper = format!("sha256={}", signed["sha256=".len()..].to_ascii_uppercase());
    assert_eq!(verify_hub_signature(Some(&upper), body, SECRET), Ok(()));
    assert_eq!(
        verify_hub_signature(Some(&signed["sha256=".len()..]), body, SECRET),
        Err(HubSignatureError::Malformed)
    );
    assert_eq!(
        verify_hub_signature(Some(&signed), body, "another_secret"),
        Err(HubSignatureError::NoMatch)
    );
    // A secret taken from the input signs and verifies too.
    let text = String::from_utf8_lossy(line);
    if !text.is_empty() {
        let theirs = hub_signature(&text, body);
        assert_eq!(verify_hub_signature(Some(&theirs), body, &text), Ok(()));
    }

    // The body, parsed whole.
    if let Ok(hook) = parse_webhook(body) {
        let statuses = hook.statuses().count();
        let messages = hook.messages().count();
        assert!(statuses + messages <= MAX_WEBHOOK_ITEMS);
        for s in hook.statuses() {
            assert!(!s.message_id.is_empty() && s.message_id.len() <= 256);
            let _ = s.status.as_str();
        }
        for m in hook.messages() {
            assert!(!m.id.is_empty() && !m.from.is_empty());
            let _ = m.is_opt_out_text();
        }
    }

    // The handshake, with the pieces of the first line as mode, token and challenge.
    let mut pieces = text.splitn(3, ' ');
    let (mode, token, challenge) = (pieces.next(), pieces.next(), pieces.next());
    if let Ok(echo) = handshake_challenge(mode, token, challenge, "verify-me") {
        assert_eq!(mode, Some("subscribe"));
        assert_eq!(token, Some("verify-me"));
        assert_eq!(Some(echo), challenge);
        assert!(!echo.is_empty() && echo.len() <= MAX_CHALLENGE_BYTES);
    }
});
