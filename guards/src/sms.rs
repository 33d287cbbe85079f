//! SMS helpers on untrusted text: how many parts (and so how many credits) a message costs
//! ([`segments`]), the opt-out keywords a customer may reply ([`opt_out_keyword`], shared with
//! WhatsApp), and BulkSMS's webhook body ([`parse_bulksms_webhook`]).
//!
//! Why count parts ourselves: BulkSMS bills per part and, with `encoding: TEXT`, silently turns
//! every character outside GSM 03.38 into `?`. The portal picks the encoding and warns about
//! long messages before sending, so it needs the same rules the network applies (spec B.6 of
//! `research/messaging.md`): the GSM 7-bit basic table costs one septet a character, the
//! extension table two (an escape and the code), 160 septets fit one part and 153 each part of
//! a longer one; anything else is UCS-2, 70 UTF-16 units in one part or 67 per part. An escape
//! pair and a surrogate pair are never split across parts, which is why the part count is a
//! greedy packing and not a division. The counts are estimates: BulkSMS's `numberOfParts` and
//! `creditCost` are what it bills.
//!
//! Everything here is pure and panic-free on any input (`fuzz/fuzz_targets/sms_segments.rs`).

use serde_json::Value;

use crate::json;

// ---------------------------------------------------------------------------------------------
// GSM 03.38 and segment counting.

/// The encoding a message is sent in, named as BulkSMS's `encoding` field names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet (with its extension table).
    Text,
    /// UCS-2 (UTF-16 code units).
    Unicode,
}

impl Encoding {
    /// `"TEXT"` or `"UNICODE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Text => "TEXT",
            Encoding::Unicode => "UNICODE",
        }
    }

    /// Units (septets or UTF-16 units) that fit a single-part message.
    pub fn single_part_capacity(self) -> usize {
        match self {
            Encoding::Text => 160,
            Encoding::Unicode => 70,
        }
    }

    /// Units that fit each part of a concatenated message (the rest of the 140 bytes holds the
    /// concatenation header).
    pub fn multi_part_capacity(self) -> usize {
        match self {
            Encoding::Text => 153,
            Encoding::Unicode => 67,
        }
    }
}

/// What a message costs: its encoding, its length in that encoding's units, and its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets for [`Encoding::Text`], UTF-16 code units for [`Encoding::Unicode`].
    pub units: usize,
    /// At least 1 (an empty message is still one SMS).
    pub parts: usize,
}

impl Segments {
    /// The units each part can hold at this part count (160/70 for one part, 153/67 for more).
    pub fn capacity_per_part(&self) -> usize {
        if self.parts <= 1 {
            self.encoding.single_part_capacity()
        } else {
            self.encoding.multi_part_capacity()
        }
    }
}

/// The septets a character costs in GSM 03.38: 1 in the basic table, 2 in the extension table
/// (escape plus code), `None` when it has no GSM encoding. The escape character itself
/// (U+001B) is not text and has none.
pub fn gsm_septets(c: char) -> Option<u8> {
    match c {
        'A'..='Z' | 'a'..='z' | '0'..='9' => Some(1),
        ' ' | '!' | '"' | '#' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.'
        | '/' | ':' | ';' | '<' | '=' | '>' | '?' | '@' | '$' | '_' | '\n' | '\r' => Some(1),
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ'
        | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä'
        | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        '\u{0C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// Whether every character of `text` has a GSM 03.38 encoding.
pub fn is_gsm(text: &str) -> bool {
    text.chars().all(|c| gsm_septets(c).is_some())
}

/// `text` as BulkSMS sends it with `encoding: TEXT` and `auto-unicode` off: every character
/// without a GSM encoding becomes `?`.
pub fn to_gsm_lossy(text: &str) -> String {
    text.chars()
        .map(|c| if gsm_septets(c).is_some() { c } else { '?' })
        .collect()
}

/// The encoding, length and part count of `text`, choosing TEXT when every character is GSM
/// 03.38 and UNICODE otherwise (what `auto-unicode=true` does, and what the portal should send
/// explicitly).
pub fn segments(text: &str) -> Segments {
    let encoding = if is_gsm(text) {
        Encoding::Text
    } else {
        Encoding::Unicode
    };
    segments_as(text, encoding)
}

/// The length and part count of `text` sent in `encoding`. With [`Encoding::Text`], characters
/// without a GSM encoding count as the one-septet `?` they become.
pub fn segments_as(text: &str, encoding: Encoding) -> Segments {
    let cost = |c: char| -> usize {
        match encoding {
            Encoding::Text => usize::from(gsm_septets(c).unwrap_or(1)),
            Encoding::Unicode => c.len_utf16(),
        }
    };
    let units: usize = text.chars().map(cost).sum();
    let parts = if units <= encoding.single_part_capacity() {
        1
    } else {
        // Greedy packing: a character that does not fit whole starts the next part, so an
        // escape pair or a surrogate pair never straddles two parts.
        let capacity = encoding.multi_part_capacity();
        let mut parts = 1;
        let mut fill = 0;
        for c in text.chars() {
            let k = cost(c);
            if fill + k > capacity {
                parts += 1;
                fill = 0;
            }
            fill += k;
        }
        parts
    };
    Segments {
        encoding,
        units,
        parts,
    }
}

// ---------------------------------------------------------------------------------------------
// Opt-out keywords.

/// The replies that mean "stop messaging me", on SMS and WhatsApp alike, compared after
/// [`opt_out_keyword`]'s normalisation (so `OPTOUT` also matches "opt out").
///
/// The English words are the usual carrier set the spec lists (STOP, STOPALL, UNSUBSCRIBE,
/// CANCEL, END, QUIT, OPT OUT). The Afrikaans ones are our own small choice (no provider
/// defines them): "stop" is the same word, KANSELLEER is "cancel" and STAAK "cease". The list
/// is deliberately short and exact-match only: "please don't stop" must not opt anyone out.
pub const OPT_OUT_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "KANSELLEER",
    "STAAK",
];

/// Longer replies are never a keyword (and are not looked at further).
const MAX_KEYWORD_REPLY_BYTES: usize = 64;

/// The opt-out keyword a reply is, if it is one: the whole reply, ignoring case, all
/// whitespace and surrounding `.`, `!`, quotes (`"Stop."`, `" s t o p "`, `Opt out` all count;
/// `stop it` does not).
pub fn opt_out_keyword(text: &str) -> Option<&'static str> {
    if text.len() > MAX_KEYWORD_REPLY_BYTES {
        return None;
    }
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let trimmed = squeezed.trim_matches(|c: char| matches!(c, '.' | '!' | '"' | '\'' | '’'));
    let upper = trimmed.to_uppercase();
    OPT_OUT_KEYWORDS.iter().copied().find(|k| *k == upper)
}

/// Whether a reply is an opt-out keyword (see [`opt_out_keyword`]).
pub fn is_opt_out(text: &str) -> bool {
    opt_out_keyword(text).is_some()
}

// ---------------------------------------------------------------------------------------------
// BulkSMS webhooks.

/// The largest webhook body parsed. BulkSMS posts at most 10 messages per call (`MANY`), a few
/// kilobytes; a larger body is refused before parsing.
pub const MAX_SMS_WEBHOOK_BYTES: usize = 256 * 1024;
/// The most messages read from one body; more is refused as a whole.
pub const MAX_SMS_WEBHOOK_MESSAGES: usize = 1000;

/// Why a BulkSMS webhook body was refused. The portal should still answer 2xx to a body it
/// cannot use only if it means to drop it for good: BulkSMS discards on 4xx and retries on 5xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsWebhookError {
    TooLarge,
    NotJson,
    /// Valid JSON but not an array (BulkSMS always posts an array, `[]` when testing the URL).
    NotAnArray,
    TooMany,
}

impl std::fmt::Display for SmsWebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SmsWebhookError::TooLarge => "webhook body too large",
            SmsWebhookError::NotJson => "webhook body is not JSON",
            SmsWebhookError::NotAnArray => "webhook body is not a JSON array",
            SmsWebhookError::TooMany => "too many messages in one webhook body",
        })
    }
}

impl std::error::Error for SmsWebhookError {}

/// Whether a BulkSMS message is one we sent or one we received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsDirection {
    /// `type: SENT`: a delivery report for a message the portal sent.
    Sent,
    /// `type: RECEIVED`: a customer's reply.
    Received,
    /// Any other value, kept as received.
    Other(String),
}

/// What a status means for the portal's outbox (spec B.2's mapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsState {
    /// `ACCEPTED`, `SCHEDULED`.
    Queued,
    /// `SENT`, and `UNKNOWN` (not final: a later report may follow).
    Sent,
    Delivered,
    /// `FAILED.BLOCKED`: the recipient replied STOP or is on the blocked list (still billed).
    OptedOut,
    /// Any other `FAILED` (`EXPIRED`, `HANDSET_ERROR`, `NOT_SENT`, ...).
    Failed,
    /// No status, or one not in BulkSMS's list.
    Unrecognised,
}

impl SmsState {
    /// Delivered, failed and opted-out never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SmsState::Delivered | SmsState::Failed | SmsState::OptedOut
        )
    }
}

/// One message object of a BulkSMS webhook body (the same shape `GET /messages` returns),
/// reduced to what the portal uses. Unknown fields are ignored, as BulkSMS's spec requires.
#[derive(Clone, Debug, PartialEq)]
pub struct SmsMessage {
    /// BulkSMS's id: a digit string beyond 2^53, kept as text.
    pub id: String,
    pub direction: SmsDirection,
    /// The sender: the customer for RECEIVED, `""` or our sender id for SENT.
    pub from: String,
    /// The recipient: the customer for SENT (without `+`), our reply number for RECEIVED.
    pub to: String,
    pub body: Option<String>,
    /// `status.type` (`SENT`, `DELIVERED`, `FAILED`, ...), from `status.id` if only that is
    /// present.
    pub status_type: Option<String>,
    /// `status.subtype` (`BLOCKED`, `EXPIRED`, ...); `None` for the literal `"null"`.
    pub status_subtype: Option<String>,
    /// `submission.date`, ISO-8601 as sent.
    pub submission_date: Option<String>,
    /// For RECEIVED: BulkSMS's guess at the SENT message this replies to.
    pub related_sent_message_id: Option<String>,
    pub user_supplied_id: Option<String>,
    pub number_of_parts: Option<i64>,
    pub credit_cost: Option<f64>,
}

impl SmsMessage {
    /// The status as the portal's outbox sees it.
    pub fn state(&self) -> SmsState {
        let subtype = self.status_subtype.as_deref();
        match self.status_type.as_deref() {
            Some("ACCEPTED" | "SCHEDULED") => SmsState::Queued,
            Some("SENT" | "UNKNOWN") => SmsState::Sent,
            Some("DELIVERED") => SmsState::Delivered,
            Some("FAILED") if subtype == Some("BLOCKED") => SmsState::OptedOut,
            Some("FAILED") => SmsState::Failed,
            _ => SmsState::Unrecognised,
        }
    }

    /// For a RECEIVED message: whether its body is an opt-out keyword.
    pub fn is_opt_out(&self) -> bool {
        self.direction == SmsDirection::Received && self.body.as_deref().is_some_and(is_opt_out)
    }
}

/// A parsed BulkSMS webhook body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SmsWebhook {
    pub messages: Vec<SmsMessage>,
    /// Array items that were not usable message objects (not an object, or no id).
    pub skipped: usize,
}

/// Parses a BulkSMS webhook body (a JSON array of message objects; `[]` when BulkSMS tests the
/// URL). The body is untrusted and unsigned: check the URL's secret first, and cross-check the
/// ids against the outbox (or poll `GET /messages/{id}`) before trusting a status.
pub fn parse_bulksms_webhook(body: &[u8]) -> Result<SmsWebhook, SmsWebhookError> {
    let value = json::parse_bounded(body, MAX_SMS_WEBHOOK_BYTES).map_err(|e| match e {
        json::ParseFailure::TooLarge => SmsWebhookError::TooLarge,
        json::ParseFailure::NotJson => SmsWebhookError::NotJson,
    })?;
    let Value::Array(items) = value else {
        return Err(SmsWebhookError::NotAnArray);
    };
    if items.len() > MAX_SMS_WEBHOOK_MESSAGES {
        return Err(SmsWebhookError::TooMany);
    }
    let mut out = SmsWebhook::default();
    for item in &items {
        match parse_message(item) {
            Some(m) => out.messages.push(m),
            None => out.skipped += 1,
        }
    }
    Ok(out)
}

/// `from` and `to` are strings, but BulkSMS's submission shape also allows `{type, address}`.
fn address(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(o)) => json::text(o.get("address")).unwrap_or_default(),
        other => json::text(other).unwrap_or_default(),
    }
}

fn parse_message(item: &Value) -> Option<SmsMessage> {
    let o = item.as_object()?;
    let id = json::id(o.get("id"))?;
    let direction = match json::text(o.get("type")).as_deref() {
        Some("SENT") => SmsDirection::Sent,
        Some("RECEIVED") => SmsDirection::Received,
        Some(other) => SmsDirection::Other(other.to_owned()),
        None => SmsDirection::Other(String::new()),
    };
    let status = o.get("status").and_then(Value::as_object);
    let status_id = status.and_then(|s| json::text(s.get("id")));
    let from_id = |i: usize| -> Option<String> {
        status_id
            .as_deref()
            .and_then(|s| s.split('.').nth(i))
            .map(str::to_owned)
    };
    let status_type = status
        .and_then(|s| json::text(s.get("type")))
        .or_else(|| from_id(0));
    let status_subtype = status
        .and_then(|s| json::text(s.get("subtype")))
        .or_else(|| from_id(1))
        .filter(|s| s != "null" && !s.is_empty());
    let submission = o.get("submission").and_then(Value::as_object);
    Some(SmsMessage {
        id,
        direction,
        from: address(o.get("from")),
        to: address(o.get("to")),
        body: json::text(o.get("body")),
        status_type,
        status_subtype,
        submission_date: submission.and_then(|s| json::text(s.get("date"))),
        related_sent_message_id: json::id(o.get("relatedSentMessageId")),
        user_supplied_id: json::text(o.get("userSuppliedId")),
        number_of_parts: json::int(o.get("numberOfParts")),
        credit_cost: o.get("creditCost").and_then(Value::as_f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, encoding: Encoding, units: usize, parts: usize) {
        let s = segments(text);
        assert_eq!(
            (s.encoding, s.units, s.parts),
            (encoding, units, parts),
            "{text:?}"
        );
    }

    #[test]
    fn segment_counts_match_the_spec_vectors() {
        use Encoding::{Text, Unicode};
        let a = |n: usize| "a".repeat(n);
        let zhe = |n: usize| "Ж".repeat(n);
        check("", Text, 0, 1);
        check("Hello World!", Text, 12, 1);
        check(&a(160), Text, 160, 1);
        check(&a(161), Text, 161, 2);
        check(&a(306), Text, 306, 2);
        check(&a(307), Text, 307, 3);
        check(&a(459), Text, 459, 3);
        check(&a(460), Text, 460, 4);
        check(&"€".repeat(80), Text, 160, 1);
        check(&"€".repeat(81), Text, 162, 2);
        check(&format!("{}€", a(159)), Text, 161, 2);
        check(&format!("{}€{}", a(152), a(152)), Text, 306, 3);
        check(&format!("{}€{}", a(153), a(151)), Text, 306, 2);
        check("R150.00 due 01/02 @ Acme {ref} [x] ~ | ^ \\ €", Text, 53, 1);
        check("Line1\r\nLine2", Text, 12, 1);
        check("Ç", Text, 1, 1);
        check("ç", Unicode, 1, 1);
        check("`", Unicode, 1, 1);
        check("a\tb", Unicode, 3, 1);
        check("It’s ready", Unicode, 10, 1);
        check(
            "Dankie vir jou bestelling, Zoë! Ons sien jou môre.",
            Unicode,
            50,
            1,
        );
        check("Thanks 🙏", Unicode, 9, 1);
        check(&zhe(70), Unicode, 70, 1);
        check(&zhe(71), Unicode, 71, 2);
        check(&zhe(134), Unicode, 134, 2);
        check(&zhe(135), Unicode, 135, 3);
        check(&"😀".repeat(35), Unicode, 70, 1);
        check(&"😀".repeat(36), Unicode, 72, 2);
        check(&format!("{}😀{}", zhe(66), zhe(66)), Unicode, 134, 3);
        check(&format!("{}😀{}", zhe(67), zhe(65)), Unicode, 134, 2);
    }

    #[test]
    fn the_gsm_tables_have_127_basic_and_10_extension_characters() {
        let all = (0u32..0x1_0000).filter_map(char::from_u32);
        let (mut basic, mut ext) = (0, 0);
        for c in all {
            match gsm_septets(c) {
                Some(1) => basic += 1,
                Some(2) => ext += 1,
                Some(_) => panic!("{c:?}"),
                None => {}
            }
        }
        // 128 positions, one of them the escape (not a character).
        assert_eq!((basic, ext), (127, 10));
        assert_eq!(gsm_septets('\u{1B}'), None);
        assert_eq!(gsm_septets('$'), Some(1));
        assert_eq!(gsm_septets('¤'), Some(1));
    }

    #[test]
    fn text_encoding_turns_other_characters_into_question_marks() {
        assert_eq!(to_gsm_lossy("It’s môre 😀"), "It?s m?re ?");
        let s = segments_as("It’s 😀", Encoding::Text);
        assert_eq!((s.units, s.parts), (6, 1));
        assert_eq!(s.capacity_per_part(), 160);
        assert_eq!(segments("a".repeat(200).as_str()).capacity_per_part(), 153);
    }

    #[test]
    fn opt_out_keywords_ignore_case_spaces_and_punctuation() {
        for reply in [
            "STOP",
            "stop",
            " Stop. ",
            "S T O P",
            "Opt out",
            "optout",
            "unsubscribe!",
            "StopAll",
            "end",
            "Quit",
            "cancel",
            "Kanselleer",
            "\"STOP\"",
        ] {
            assert!(is_opt_out(reply), "{reply:?}");
        }
        for reply in [
            "stop it",
            "please don't stop",
            "",
            "Yes",
            "STOPPED",
            "en d?",
        ] {
            assert!(!is_opt_out(reply), "{reply:?}");
        }
        assert_eq!(opt_out_keyword("opt-out"), None);
        assert_eq!(opt_out_keyword("Opt Out"), Some("OPTOUT"));
        assert!(!is_opt_out(&format!("stop{}", " ".repeat(100))));
    }

    #[test]
    fn delivery_reports_parse_with_ids_as_strings() {
        let body = br#"[{"id":"1491381497934909440","type":"SENT","from":"","to":"27821234567",
            "body":"Hi","encoding":"TEXT","submission":{"id":"1-00000000002073112368","date":"2025-04-08T10:17:37Z"},
            "status":{"id":"DELIVERED.null","type":"DELIVERED","subtype":null},
            "relatedSentMessageId":null,"userSuppliedId":"ob-42","numberOfParts":1,"creditCost":1.0,"extra":{"x":1}},
            {"id":"1491381497934909441","type":"SENT","status":{"id":"FAILED.BLOCKED"}},
            {"id":1491381497934909442,"type":"RECEIVED","from":"27821234567","to":"27600000001","body":" stop ",
             "relatedSentMessageId":"1491381497934909440"},
            {"type":"SENT"}, 7]"#;
        let hook = parse_bulksms_webhook(body).expect("parses");
        assert_eq!(hook.skipped, 2);
        let [delivered, blocked, reply] = &hook.messages[..] else {
            panic!("{hook:?}")
        };
        assert_eq!(delivered.id, "1491381497934909440");
        assert_eq!(delivered.state(), SmsState::Delivered);
        assert_eq!(delivered.status_subtype, None);
        assert_eq!(delivered.user_supplied_id.as_deref(), Some("ob-42"));
        assert_eq!(delivered.number_of_parts, Some(1));
        assert_eq!(
            delivered.submission_date.as_deref(),
            Some("2025-04-08T10:17:37Z")
        );
        assert_eq!(blocked.state(), SmsState::OptedOut);
        assert!(blocked.state().is_final());
        assert_eq!(reply.id, "1491381497934909442");
        assert_eq!(reply.direction, SmsDirection::Received);
        assert!(reply.is_opt_out());
        assert_eq!(
            reply.related_sent_message_id.as_deref(),
            Some("1491381497934909440")
        );
        assert!(!delivered.is_opt_out());
    }

    #[test]
    fn malformed_webhook_bodies_are_refused_with_a_reason() {
        assert_eq!(parse_bulksms_webhook(b"[]"), Ok(SmsWebhook::default()));
        assert_eq!(
            parse_bulksms_webhook(b"{\"id\":\"1\"}"),
            Err(SmsWebhookError::NotAnArray)
        );
        assert_eq!(parse_bulksms_webhook(b"[{"), Err(SmsWebhookError::NotJson));
        let big = vec![b' '; MAX_SMS_WEBHOOK_BYTES + 1];
        assert_eq!(parse_bulksms_webhook(&big), Err(SmsWebhookError::TooLarge));
        let many = format!("[{}1]", "1,".repeat(MAX_SMS_WEBHOOK_MESSAGES));
        assert_eq!(
            parse_bulksms_webhook(many.as_bytes()),
            Err(SmsWebhookError::TooMany)
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse_bulksms_webhook(deep.as_bytes()),
            Err(SmsWebhookError::NotJson)
        );
    }
}
