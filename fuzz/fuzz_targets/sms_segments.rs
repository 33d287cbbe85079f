//! SMS helpers (`guards::sms`): the GSM 03.38 / UCS-2 part counter, the opt-out keyword
//! check and the BulkSMS webhook parser, on arbitrary input.
//!
//! Input format: the whole input is the message text (read as UTF-8, invalid bytes replaced)
//! and, as raw bytes, a BulkSMS webhook body.
//!
//! Besides "never panics", it checks what the counter promises:
//! - at least one part; the parts hold the units (`parts * capacity >= units`), and no more
//!   parts than needed when each part may waste one unit to an unsplit pair;
//! - TEXT exactly when every character is GSM, and then the units are the septets (1 or 2 a
//!   character); UNICODE units are the UTF-16 length;
//! - a single part exactly when the units fit the single-part capacity;
//! - forcing TEXT counts the `?`-replaced text the same way.
#![no_main]

use guards::sms::{
    Encoding, MAX_SMS_WEBHOOK_MESSAGES, gsm_septets, is_gsm, opt_out_keyword,
    parse_bulksms_webhook, segments, segments_as, to_gsm_lossy,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s = segments(&text);
    assert!(s.parts >= 1);
    let capacity = s.capacity_per_part();
    assert!(s.parts * capacity >= s.units, "{s:?}");
    assert_eq!(
        s.parts == 1,
        s.units <= s.encoding.single_part_capacity(),
        "{s:?}"
    );
    if s.parts > 1 {
        // Each part loses at most one unit to a pair that did not fit.
        assert!(s.parts <= s.units.div_ceil(capacity - 1), "{s:?}");
    }
    match s.encoding {
        Encoding::Text => {
            assert!(is_gsm(&text));
            let septets: usize = text
                .chars()
                .map(|c| usize::from(gsm_septets(c).expect("GSM")))
                .sum();
            assert_eq!(s.units, septets);
        }
        Encoding::Unicode => {
            assert!(!is_gsm(&text));
            assert_eq!(s.units, text.encode_utf16().count());
        }
    }
    let lossy = to_gsm_lossy(&text);
    assert!(is_gsm(&lossy));
    assert_eq!(segments_as(&text, Encoding::Text), segments(&lossy));
    assert_eq!(
        segments_as(&text, Encoding::Unicode).units,
        text.encode_utf16().count()
    );

    if let Some(k) = opt_out_keyword(&text) {
        assert!(text.len() <= 64, "{k}");
    }

    if let Ok(hook) = parse_bulksms_webhook(data) {
        assert!(hook.messages.len() + hook.skipped <= MAX_SMS_WEBHOOK_MESSAGES);
        for m in &hook.messages {
            assert!(!m.id.is_empty());
            let _ = (m.state(), m.is_opt_out());
        }
    }
});
