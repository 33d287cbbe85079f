//! PayFast (`guards::payfast`): ITN parsing and signatures, the checkout and API signatures,
//! and the amount and timestamp parsers, on arbitrary input.
//!
//! Input format (so seeds can be written by hand): the first line is the passphrase (an empty
//! line: none), the rest after the first `\n` is the raw ITN body. The first line also goes
//! through the amount and timestamp parsers.
//!
//! Besides "never panics", it checks what the functions promise:
//! - a parsed ITN has at most `MAX_ITN_FIELDS` fields, from a body of at most `MAX_ITN_BYTES`;
//!   re-encoding its signed fields and parsing that again gives the same fields (the validate
//!   call relies on it); `get` sees only fields before `signature`;
//! - an ITN that verifies carries exactly the signature `itn_signature` computes;
//! - fields signed by `itn_signature` (in their order, empties included) verify under that
//!   passphrase and not under another; the same for `checkout_signature` / `verify_checkout`
//!   and for `api_signature` / `verify_api_signature`;
//! - `php_urlencode` writes only `A-Za-z0-9-_.+%` and upper-case hex, and decodes back;
//! - `parse_rand` and `format_rand`, `parse_api_timestamp` and `format_api_timestamp` round-trip.
#![no_main]

use guards::payfast::{
    Itn, MAX_ITN_BYTES, MAX_ITN_FIELDS, PayfastError, api_signature, checkout_signature,
    format_api_timestamp, format_rand, itn_param_string, itn_signature, parse_api_timestamp,
    parse_rand, php_urlencode, same_signature, verify_api_signature, verify_checkout,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(line).into_owned();
    let passphrase = (!text.is_empty()).then_some(text.as_str());
    let other = format!("{text}x");

    // The body as received.
    match Itn::parse(body) {
        Ok(itn) => {
            assert!(body.len() <= MAX_ITN_BYTES && itn.pairs().len() <= MAX_ITN_FIELDS);
            let signed = itn.signed_pairs();
            assert!(signed.len() <= itn.pairs().len());
            if let Some((k, _)) = itn.pairs().get(signed.len()) {
                assert_eq!(k, "signature");
            }
            for (k, v) in signed {
                assert_eq!(
                    itn.get(k),
                    Some(v.as_str()),
                    "the first copy is the only one"
                );
            }
            // Re-encoded, the signed fields parse back to themselves.
            let again = itn.param_string();
            assert_eq!(again, itn_param_string(signed));
            // (Re-encoding can grow a body: a raw `~` becomes `%7E`.)
            if !signed.is_empty() && again.len() <= MAX_ITN_BYTES {
                let reparsed = Itn::parse(again.as_bytes()).expect("re-encoded fields parse");
                assert_eq!(reparsed.pairs(), signed);
            }
            match itn.verify(passphrase) {
                Ok(()) => {
                    let want = itn_signature(signed, passphrase);
                    assert!(
                        itn.signature()
                            .is_some_and(|s| s.eq_ignore_ascii_case(&want))
                    );
                }
                Err(PayfastError::MissingSignature) => assert!(itn.signature().is_none()),
                Err(e) => assert_eq!(e, PayfastError::BadSignature),
            }

            // Signed here, the same fields verify under this passphrase only.
            let sig = itn_signature(signed, passphrase);
            assert!(
                sig.len() == 32
                    && sig
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            let mut signed_body = again.clone();
            if !signed_body.is_empty() {
                signed_body.push('&');
            }
            signed_body.push_str("signature=");
            signed_body.push_str(&sig);
            if signed_body.len() <= MAX_ITN_BYTES && signed.len() < MAX_ITN_FIELDS {
                let resigned = Itn::parse(signed_body.as_bytes()).expect("a signed body parses");
                assert_eq!(resigned.verify(passphrase), Ok(()));
                assert_eq!(
                    resigned.verify(Some(&other)),
                    Err(PayfastError::BadSignature)
                );
            }

            // The same fields as a checkout form and as API parameters.
            let mut form: Vec<(String, String)> = signed.to_vec();
            form.push(("signature".into(), checkout_signature(signed, passphrase)));
            assert_eq!(verify_checkout(&form, passphrase), Ok(()));
            let api = api_signature(signed, passphrase);
            assert!(verify_api_signature(signed, passphrase, &api));
            assert!(verify_api_signature(
                signed,
                passphrase,
                &api.to_ascii_uppercase()
            ));
        }
        Err(PayfastError::Empty) => assert!(body.is_empty()),
        Err(PayfastError::TooLarge) => assert!(body.len() > MAX_ITN_BYTES),
        Err(_) => {}
    }

    // The encoder: PHP's alphabet, and it decodes back.
    let encoded = php_urlencode(&text);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+%".contains(&b))
    );
    for escape in encoded.split('%').skip(1) {
        let hex = escape
            .as_bytes()
            .get(..2)
            .expect("two hex digits after each %");
        assert!(
            hex.iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
        );
    }
    if encoded.len() + 2 <= MAX_ITN_BYTES {
        let decoded = Itn::parse(format!("k={encoded}").as_bytes()).expect("encoded text parses");
        assert_eq!(decoded.get("k"), Some(text.as_str()));
    }

    // Amounts and timestamps round-trip.
    if let Some(cents) = parse_rand(&text) {
        assert_eq!(parse_rand(&format_rand(cents)), Some(cents));
    }
    // Instants whose South African date has a four-digit year (0000-01-02 to 9999-12-30 UTC)
    // format and parse back; the format has no room for others.
    const FIRST: i64 = -62_167_219_200 + 86_400;
    const LAST: i64 = 253_402_300_799 - 86_400;
    if let Some(t) = parse_api_timestamp(&text)
        && (FIRST..=LAST).contains(&t)
    {
        assert_eq!(parse_api_timestamp(&format_api_timestamp(t)), Some(t));
    }
    let mut raw = [0u8; 8];
    for (r, b) in raw.iter_mut().zip(line) {
        *r = *b;
    }
    let t = FIRST + i64::from_le_bytes(raw).rem_euclid(LAST - FIRST + 1);
    assert_eq!(parse_api_timestamp(&format_api_timestamp(t)), Some(t));
    assert!(same_signature(&text, &text.to_ascii_lowercase()));
});
