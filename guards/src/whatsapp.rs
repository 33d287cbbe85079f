//! WhatsApp Business Cloud API webhooks: the `X-Hub-Signature-256` check
//! ([`verify_hub_signature`], and [`hub_signature`] for the stand-in and tests), the GET
//! verification handshake ([`handshake_challenge`]), and a parser of the event body
//! ([`parse_webhook`]) into plain structs: delivery statuses and inbound messages.
//!
//! Why here: every byte of a webhook is attacker-controlled until the signature is checked,
//! and the signature must be computed over the raw body exactly as received (Meta escapes
//! non-ASCII as `\uXXXX`, so re-serialised JSON would not match). So the portal verifies
//! first, then parses with [`parse_webhook`], which is bounded (body size, item count) and
//! never panics; `fuzz/fuzz_targets/whatsapp_webhook.rs` holds both to that.
//!
//! The parser keeps only what the portal acts on (spec A.5 of `research/messaging.md`):
//! statuses (`sent`/`delivered`/`read`/`failed` with their error codes) to move the outbox,
//! and inbound messages to reopen the 24-hour window and to notice opt-outs. Anything else on
//! the same URL (template status updates, account updates, other fields) is counted and
//! ignored: the portal should still answer 200 to it.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::json;

/// The header Meta signs webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The envelope's `object` for WhatsApp Business Account events.
pub const OBJECT: &str = "whatsapp_business_account";
/// The largest webhook body parsed. Meta batches at most a few hundred items; a real body is
/// kilobytes. A larger body is refused before parsing.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;
/// The most statuses, messages, errors and changes read from one body, together.
pub const MAX_WEBHOOK_ITEMS: usize = 2000;
/// The longest `hub.challenge` echoed (Meta's are about ten digits).
pub const MAX_CHALLENGE_BYTES: usize = 256;

// ---------------------------------------------------------------------------------------------
// Signatures.

/// Why a webhook's signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubSignatureError {
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// Not `sha256=` followed by 64 hex digits.
    Malformed,
    /// Well formed, but not this body's signature under the app secret.
    NoMatch,
}

impl std::fmt::Display for HubSignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HubSignatureError::Missing => "missing X-Hub-Signature-256 header",
            HubSignatureError::Malformed => "malformed X-Hub-Signature-256 header",
            HubSignatureError::NoMatch => "the signature does not match the body",
        })
    }
}

impl std::error::Error for HubSignatureError {}

/// The value of `X-Hub-Signature-256` for `body`: `sha256=` and the lowercase hex
/// HMAC-SHA256 of the raw bytes keyed with the app secret. Used by the stand-in and tests.
pub fn hub_signature(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(app_secret, body).finalize().into_bytes())
    )
}

fn mac(app_secret: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    mac
}

/// Verifies an `X-Hub-Signature-256` header over the raw body, in constant time. The `sha256=`
/// prefix is required (its scheme name in any case); the hex may be upper or lower case;
/// surrounding spaces are ignored. An empty app secret verifies nothing (a misconfiguration,
/// not a key).
pub fn verify_hub_signature(
    header: Option<&str>,
    body: &[u8],
    app_secret: &str,
) -> Result<(), HubSignatureError> {
    let header = header.ok_or(HubSignatureError::Missing)?.trim();
    let (scheme, hex_sig) = header.split_once('=').ok_or(HubSignatureError::Malformed)?;
    if !scheme.trim().eq_ignore_ascii_case("sha256") {
        return Err(HubSignatureError::Malformed);
    }
    let hex_sig = hex_sig.trim();
    if hex_sig.len() != 64 {
        return Err(HubSignatureError::Malformed);
    }
    let sig = hex::decode(hex_sig).map_err(|_| HubSignatureError::Malformed)?;
    if app_secret.is_empty() {
        return Err(HubSignatureError::NoMatch);
    }
    mac(app_secret, body)
        .verify_slice(&sig)
        .map_err(|_| HubSignatureError::NoMatch)
}

// ---------------------------------------------------------------------------------------------
// The verification handshake.

/// Why a verification handshake was refused (answer 403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// `hub.mode` is not `subscribe`.
    Mode,
    /// `hub.verify_token` is missing or not the configured one (or none is configured).
    Token,
    /// `hub.challenge` is missing, empty or longer than [`MAX_CHALLENGE_BYTES`].
    Challenge,
}

/// The GET handshake Meta makes when the callback URL is saved: with `hub.mode=subscribe` and
/// `hub.verify_token` equal to the configured token (compared in constant time), the answer is
/// 200 with exactly the `hub.challenge` string as a plain-text body, which this returns.
/// Anything else gets 403. The challenge is echoed as an opaque string: it looks numeric but
/// nothing promises that.
pub fn handshake_challenge<'a>(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&'a str>,
    expected_token: &str,
) -> Result<&'a str, HandshakeError> {
    if mode != Some("subscribe") {
        return Err(HandshakeError::Mode);
    }
    let token = verify_token.ok_or(HandshakeError::Token)?;
    if expected_token.is_empty() || !crate::signature::same(token, expected_token) {
        return Err(HandshakeError::Token);
    }
    match challenge {
        Some(c) if !c.is_empty() && c.len() <= MAX_CHALLENGE_BYTES => Ok(c),
        _ => Err(HandshakeError::Challenge),
    }
}

// ---------------------------------------------------------------------------------------------
// The event body.

/// Why a webhook body was refused (after its signature verified, answer 200 anyway and log it:
/// Meta retries anything else for days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookError {
    TooLarge,
    NotJson,
    /// Valid JSON, but not an object with `object: "whatsapp_business_account"`.
    NotWhatsApp,
    /// More than [`MAX_WEBHOOK_ITEMS`] items.
    TooMany,
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WebhookError::TooLarge => "webhook body too large",
            WebhookError::NotJson => "webhook body is not JSON",
            WebhookError::NotWhatsApp => "not a whatsapp_business_account webhook",
            WebhookError::TooMany => "too many items in one webhook body",
        })
    }
}

impl std::error::Error for WebhookError {}

/// A status's `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusKind {
    Sent,
    Delivered,
    Read,
    Failed,
    /// Any other value (`played`, `deleted`, ...): ignore it.
    Other(String),
}

impl StatusKind {
    fn parse(s: &str) -> StatusKind {
        match s {
            "sent" => StatusKind::Sent,
            "delivered" => StatusKind::Delivered,
            "read" => StatusKind::Read,
            "failed" => StatusKind::Failed,
            other => StatusKind::Other(other.to_owned()),
        }
    }

    /// `sent`, `delivered`, `read`, `failed` or the unknown value.
    pub fn as_str(&self) -> &str {
        match self {
            StatusKind::Sent => "sent",
            StatusKind::Delivered => "delivered",
            StatusKind::Read => "read",
            StatusKind::Failed => "failed",
            StatusKind::Other(s) => s,
        }
    }
}

/// An error item (`statuses[].errors[]`, `value.errors[]`, `messages[].errors[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorItem {
    /// Classify by this (131047 window closed, 131026 undeliverable, 131050 opted out, ...).
    /// 0 when missing or not an integer.
    pub code: i64,
    pub title: String,
    pub message: Option<String>,
    /// `error_data.details`: for logs.
    pub details: Option<String>,
}

/// A delivery status of a message the portal sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The wamid returned by the send.
    pub message_id: String,
    pub status: StatusKind,
    /// Unix seconds (Meta sends a string); `None` if missing or not a number.
    pub timestamp: Option<i64>,
    pub recipient_id: String,
    /// Echoed from the send, when it set one.
    pub biz_opaque_callback_data: Option<String>,
    /// `pricing.category` (`utility`, `marketing`, `service`, ...), when present.
    pub pricing_category: Option<String>,
    /// For `failed`: why.
    pub errors: Vec<ErrorItem>,
}

/// A message a customer sent to the business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The customer's number (`wa_id`, digits without `+`).
    pub from: String,
    /// Its wamid: deduplicate on it.
    pub id: String,
    /// Unix seconds: when the 24-hour window (re)opened.
    pub timestamp: Option<i64>,
    /// `text`, `button`, `interactive`, `image`, ... as sent.
    pub kind: String,
    /// `text.body` for text messages.
    pub text: Option<String>,
    /// `button.payload` (a template's quick-reply button), or the id of an interactive
    /// button or list reply.
    pub button_payload: Option<String>,
    /// The button's or list row's visible text.
    pub button_text: Option<String>,
    /// `context.id`: the message this replies to (a template, for a button tap).
    pub context_id: Option<String>,
    /// The sender's profile name from `value.contacts[]`, when given.
    pub profile_name: Option<String>,
    /// For `unsupported` and similar: why.
    pub errors: Vec<ErrorItem>,
}

impl Inbound {
    /// Whether the text is an opt-out keyword ([`crate::sms::opt_out_keyword`]'s list, shared
    /// with SMS). Button payloads are the portal's own to interpret (it defined them), so they
    /// are not looked at here; see [`Inbound::button_payload`].
    pub fn is_opt_out_text(&self) -> bool {
        self.text.as_deref().is_some_and(crate::sms::is_opt_out)
            || (self.kind == "button"
                && self
                    .button_text
                    .as_deref()
                    .is_some_and(crate::sms::is_opt_out))
    }
}

/// One `entry[].changes[]` with `field: "messages"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// `entry[].id`: the WhatsApp Business Account.
    pub waba_id: String,
    /// `value.metadata.phone_number_id`: routes the event to a tenant.
    pub phone_number_id: Option<String>,
    pub display_phone_number: Option<String>,
    pub statuses: Vec<Status>,
    pub messages: Vec<Inbound>,
    /// System-level `value.errors[]`: log them.
    pub errors: Vec<ErrorItem>,
}

/// A parsed webhook body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Webhook {
    /// The `messages` changes, in body order.
    pub changes: Vec<Change>,
    /// Changes of other fields (template status, account updates, ...), ignored.
    pub other_fields: usize,
    /// Status or message items without the fields the portal needs (id, status, from).
    pub skipped: usize,
}

impl Webhook {
    /// Every status, in body order.
    pub fn statuses(&self) -> impl Iterator<Item = &Status> {
        self.changes.iter().flat_map(|c| c.statuses.iter())
    }

    /// Every inbound message, in body order.
    pub fn messages(&self) -> impl Iterator<Item = &Inbound> {
        self.changes.iter().flat_map(|c| c.messages.iter())
    }
}

/// Parses a webhook body (verify its signature first). Bounded by [`MAX_WEBHOOK_BYTES`] and
/// [`MAX_WEBHOOK_ITEMS`]; unknown fields are ignored, and items without an id are skipped
/// (counted in [`Webhook::skipped`]) rather than failing the batch.
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, WebhookError> {
    let value = json::parse_bounded(body, MAX_WEBHOOK_BYTES).map_err(|e| match e {
        json::ParseFailure::TooLarge => WebhookError::TooLarge,
        json::ParseFailure::NotJson => WebhookError::NotJson,
    })?;
    let root = value.as_object().ok_or(WebhookError::NotWhatsApp)?;
    if root.get("object").and_then(Value::as_str) != Some(OBJECT) {
        return Err(WebhookError::NotWhatsApp);
    }
    let mut out = Webhook::default();
    let mut budget = MAX_WEBHOOK_ITEMS;
    let mut spend = |n: usize| -> Result<(), WebhookError> {
        budget = budget.checked_sub(n).ok_or(WebhookError::TooMany)?;
        Ok(())
    };
    for entry in json::items(root.get("entry")) {
        let Some(entry) = entry.as_object() else {
            out.skipped += 1;
            continue;
        };
        let waba_id = json::text(entry.get("id")).unwrap_or_default();
        for change in json::items(entry.get("changes")) {
            spend(1)?;
            let Some(change) = change.as_object() else {
                out.skipped += 1;
                continue;
            };
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                out.other_fields += 1;
                continue;
            }
            let Some(value) = change.get("value").and_then(Value::as_object) else {
                out.skipped += 1;
                continue;
            };
            let statuses = json::items(value.get("statuses"));
            let messages = json::items(value.get("messages"));
            let errors = json::items(value.get("errors"));
            spend(statuses.len() + messages.len() + errors.len())?;
            let metadata = value.get("metadata").and_then(Value::as_object);
            let mut parsed = Change {
                waba_id: waba_id.clone(),
                phone_number_id: metadata.and_then(|m| json::text(m.get("phone_number_id"))),
                display_phone_number: metadata
                    .and_then(|m| json::text(m.get("display_phone_number"))),
                errors: error_items(errors),
                ..Change::default()
            };
            for s in statuses {
                match parse_status(s) {
                    Some(s) => parsed.statuses.push(s),
                    None => out.skipped += 1,
                }
            }
            let contacts = json::items(value.get("contacts"));
            for m in messages {
                match parse_inbound(m, contacts) {
                    Some(m) => parsed.messages.push(m),
                    None => out.skipped += 1,
                }
            }
            out.changes.push(parsed);
        }
    }
    Ok(out)
}

fn error_items(items: &[Value]) -> Vec<ErrorItem> {
    items
        .iter()
        .filter_map(Value::as_object)
        .map(|e| ErrorItem {
            code: json::int(e.get("code")).unwrap_or(0),
            title: json::text(e.get("title")).unwrap_or_default(),
            message: json::text(e.get("message")),
            details: e
                .get("error_data")
                .and_then(Value::as_object)
                .and_then(|d| json::text(d.get("details"))),
        })
        .collect()
}

fn parse_status(v: &Value) -> Option<Status> {
    let s = v.as_object()?;
    let message_id = json::id(s.get("id"))?;
    let status = StatusKind::parse(&json::text(s.get("status"))?);
    Some(Status {
        message_id,
        status,
        timestamp: json::unix_secs(s.get("timestamp")),
        recipient_id: json::text(s.get("recipient_id")).unwrap_or_default(),
        biz_opaque_callback_data: json::text(s.get("biz_opaque_callback_data")),
        pricing_category: s
            .get("pricing")
            .and_then(Value::as_object)
            .and_then(|p| json::text(p.get("category"))),
        errors: error_items(json::items(s.get("errors"))),
    })
}

fn field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    o.get(name).and_then(Value::as_object)
}

fn parse_inbound(v: &Value, contacts: &[Value]) -> Option<Inbound> {
    let m = v.as_object()?;
    let from = json::id(m.get("from"))?;
    let id = json::id(m.get("id"))?;
    let kind = json::text(m.get("type")).unwrap_or_default();
    let text = field(m, "text").and_then(|t| json::text(t.get("body")));
    let (button_payload, button_text) = if let Some(b) = field(m, "button") {
        (json::text(b.get("payload")), json::text(b.get("text")))
    } else if let Some(i) = field(m, "interactive") {
        let reply = field(i, "button_reply").or_else(|| field(i, "list_reply"));
        (
            reply.and_then(|r| json::text(r.get("id"))),
            reply.and_then(|r| json::text(r.get("title"))),
        )
    } else {
        (None, None)
    };
    let profile_name = contacts
        .iter()
        .filter_map(Value::as_object)
        .find(|c| json::text(c.get("wa_id")).as_deref() == Some(from.as_str()))
        .and_then(|c| field(c, "profile"))
        .and_then(|p| json::text(p.get("name")));
    Some(Inbound {
        from,
        id,
        timestamp: json::unix_secs(m.get("timestamp")),
        kind,
        text,
        button_payload,
        button_text,
        context_id: field(m, "context").and_then(|c| json::id(c.get("id"))),
        profile_name,
        errors: error_items(json::items(m.get("errors"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test_app_secret";
    const STATUS_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"27600000000","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.TEST1","status":"delivered","timestamp":"1750857384","recipient_id":"27821234567"}]},"field":"messages"}]}]}"#;
    const STOP_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"27600000000","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Thandi"},"wa_id":"27821234567"}],"messages":[{"from":"27821234567","id":"wamid.IN1","timestamp":"1750857400","type":"text","text":{"body":"STOP"}}]},"field":"messages"}]}]}"#;

    #[test]
    fn signatures_match_the_spec_vectors() {
        let vectors: [(&str, &[u8], &str); 6] = [
            (
                "secret",
                b"test",
                "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914",
            ),
            (
                SECRET,
                b"",
                "517bc4c7d1d8d400868e0ad6f64b77098b818a2f2595004253a1922302a602c0",
            ),
            (
                SECRET,
                STATUS_BODY.as_bytes(),
                "cac598658ccc49894376f28cf47815a5199e3071c7580e1e880de0c832d0319b",
            ),
            (
                SECRET,
                STOP_BODY.as_bytes(),
                "7c7e11d284f1ffd43cf21704f3b9ccaed65a9217f634021323a7740e4a19b42d",
            ),
            (
                SECRET,
                br#"{"text":"caf\u00e9 \ud83d\ude00"}"#,
                "885d452e9e5a3de2f60e6efbab79b3cde429867db038c95c655c4d2ae67b9c7e",
            ),
            (
                SECRET,
                "{\"text\":\"café 😀\"}".as_bytes(),
                "29395fb9a98d79e0bf32cc3e5a678aff00b35000ecdae9bcbd7cab9d15fc0c75",
            ),
        ];
        assert_eq!(STATUS_BODY.len(), 342);
        assert_eq!(STOP_BODY.len(), 413);
        for (key, body, hex) in vectors {
            let header = format!("sha256={hex}");
            assert_eq!(hub_signature(key, body), header);
            assert_eq!(verify_hub_signature(Some(&header), body, key), Ok(()));
            let upper = format!("sha256={}", hex.to_ascii_uppercase());
            assert_eq!(verify_hub_signature(Some(&upper), body, key), Ok(()));
        }
    }

    #[test]
    fn signature_refusals_name_their_reason() {
        let body = STATUS_BODY.as_bytes();
        let good = hub_signature(SECRET, body);
        let hex_only = good.trim_start_matches("sha256=");
        assert_eq!(
            verify_hub_signature(None, body, SECRET),
            Err(HubSignatureError::Missing)
        );
        assert_eq!(
            verify_hub_signature(Some(hex_only), body, SECRET),
            Err(HubSignatureError::Malformed)
        );
        assert_eq!(
            verify_hub_signature(Some(&good.replace("sha256", "sha1")), body, SECRET),
            Err(HubSignatureError::Malformed)
        );
        assert_eq!(
            verify_hub_signature(Some(&good[..good.len() - 2]), body, SECRET),
            Err(HubSignatureError::Malformed)
        );
        assert_eq!(
            verify_hub_signature(
                Some(&format!("{}zz", &good[..good.len() - 2])),
                body,
                SECRET
            ),
            Err(HubSignatureError::Malformed)
        );
        assert_eq!(
            verify_hub_signature(Some(&good), b"{}", SECRET),
            Err(HubSignatureError::NoMatch)
        );
        assert_eq!(
            verify_hub_signature(Some(&good), body, "other"),
            Err(HubSignatureError::NoMatch)
        );
        assert_eq!(
            verify_hub_signature(Some(&hub_signature("", body)), body, ""),
            Err(HubSignatureError::NoMatch)
        );
        // The scheme name in capitals, and spaces around, are tolerated.
        let loud = format!(" SHA256={} ", hex_only);
        assert_eq!(verify_hub_signature(Some(&loud), body, SECRET), Ok(()));
        // Re-serialising the JSON (here: unescaping) breaks the signature, as it must.
        let escaped = br#"{"text":"caf\u00e9"}"#;
        let sig = hub_signature(SECRET, escaped);
        assert_eq!(
            verify_hub_signature(Some(&sig), "{\"text\":\"café\"}".as_bytes(), SECRET),
            Err(HubSignatureError::NoMatch)
        );
    }

    #[test]
    fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
        let ok = handshake_challenge(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(ok, Ok("1158201444"));
        assert_eq!(
            handshake_challenge(Some("unsubscribe"), Some("tok"), Some("1"), "tok"),
            Err(HandshakeError::Mode)
        );
        assert_eq!(
            handshake_challenge(Some("subscribe"), Some("nope"), Some("1"), "tok"),
            Err(HandshakeError::Token)
        );
        assert_eq!(
            handshake_challenge(Some("subscribe"), None, Some("1"), "tok"),
            Err(HandshakeError::Token)
        );
        assert_eq!(
            handshake_challenge(Some("subscribe"), Some(""), Some("1"), ""),
            Err(HandshakeError::Token)
        );
        assert_eq!(
            handshake_challenge(Some("subscribe"), Some("tok"), None, "tok"),
            Err(HandshakeError::Challenge)
        );
        let long = "9".repeat(MAX_CHALLENGE_BYTES + 1);
        assert_eq!(
            handshake_challenge(Some("subscribe"), Some("tok"), Some(&long), "tok"),
            Err(HandshakeError::Challenge)
        );
    }

    #[test]
    fn statuses_parse_from_the_spec_example() {
        let hook = parse_webhook(STATUS_BODY.as_bytes()).expect("parses");
        let statuses: Vec<_> = hook.statuses().collect();
        assert_eq!(statuses.len(), 1);
        let s = statuses[0];
        assert_eq!(s.message_id, "wamid.TEST1");
        assert_eq!(s.status, StatusKind::Delivered);
        assert_eq!(s.timestamp, Some(1_750_857_384));
        assert_eq!(s.recipient_id, "27821234567");
        assert_eq!(
            hook.changes[0].phone_number_id.as_deref(),
            Some("106540352242922")
        );
        assert_eq!(hook.changes[0].waba_id, "102290129340398");
    }

    #[test]
    fn an_inbound_stop_is_an_opt_out() {
        let hook = parse_webhook(STOP_BODY.as_bytes()).expect("parses");
        let m: Vec<_> = hook.messages().collect();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].from, "27821234567");
        assert_eq!(m[0].id, "wamid.IN1");
        assert_eq!(m[0].timestamp, Some(1_750_857_400));
        assert_eq!(m[0].kind, "text");
        assert_eq!(m[0].text.as_deref(), Some("STOP"));
        assert_eq!(m[0].profile_name.as_deref(), Some("Thandi"));
        assert!(m[0].is_opt_out_text());
    }

    #[test]
    fn failed_statuses_buttons_and_other_fields_parse() {
        let body = br#"{"object":"whatsapp_business_account","entry":[
          {"id":"1","changes":[
            {"field":"message_template_status_update","value":{"event":"APPROVED"}},
            {"field":"messages","value":{
              "statuses":[
                {"id":"wamid.F","status":"failed","timestamp":1750857390,"recipient_id":"27821234567",
                 "errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message",
                   "error_data":{"details":"more than 24 hours"}}]},
                {"id":"wamid.P","status":"played","timestamp":"x"},
                {"status":"sent"}],
              "messages":[
                {"from":"27821234567","id":"wamid.B","timestamp":"1750857401","type":"button",
                 "button":{"payload":"STOP_PROMOTIONS","text":"Stop promotions"},
                 "context":{"from":"27600000000","id":"wamid.T"}},
                {"from":"27821234567","id":"wamid.I","type":"interactive",
                 "interactive":{"type":"button_reply","button_reply":{"id":"opt_out","title":"Unsubscribe"}}}],
              "errors":[{"code":131000,"title":"Something went wrong"}]}}]}]}"#;
        let hook = parse_webhook(body).expect("parses");
        assert_eq!(hook.other_fields, 1);
        assert_eq!(hook.skipped, 1);
        let statuses: Vec<_> = hook.statuses().collect();
        assert_eq!(statuses[0].status, StatusKind::Failed);
        assert_eq!(statuses[0].timestamp, Some(1_750_857_390));
        assert_eq!(statuses[0].errors[0].code, 131_047);
        assert_eq!(
            statuses[0].errors[0].details.as_deref(),
            Some("more than 24 hours")
        );
        assert_eq!(statuses[1].status, StatusKind::Other("played".into()));
        assert_eq!(statuses[1].status.as_str(), "played");
        assert_eq!(statuses[1].timestamp, None);
        let m: Vec<_> = hook.messages().collect();
        assert_eq!(m[0].button_payload.as_deref(), Some("STOP_PROMOTIONS"));
        assert_eq!(m[0].context_id.as_deref(), Some("wamid.T"));
        assert!(!m[0].is_opt_out_text());
        assert_eq!(m[1].button_payload.as_deref(), Some("opt_out"));
        assert_eq!(m[1].button_text.as_deref(), Some("Unsubscribe"));
        assert_eq!(hook.changes[0].errors[0].code, 131_000);
    }

    #[test]
    fn hostile_bodies_are_refused_not_a_panic() {
        assert_eq!(parse_webhook(b""), Err(WebhookError::NotJson));
        assert_eq!(parse_webhook(b"[]"), Err(WebhookError::NotWhatsApp));
        assert_eq!(
            parse_webhook(br#"{"object":"page","entry":[]}"#),
            Err(WebhookError::NotWhatsApp)
        );
        assert_eq!(
            parse_webhook(br#"{"object":"whatsapp_business_account","entry":7}"#),
            Ok(Webhook::default())
        );
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(parse_webhook(deep.as_bytes()), Err(WebhookError::NotJson));
        let big = vec![b' '; MAX_WEBHOOK_BYTES + 1];
        assert_eq!(parse_webhook(&big), Err(WebhookError::TooLarge));
        let many = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{"statuses":[{}{{}}]}}}}]}}]}}"#,
            "{},".repeat(MAX_WEBHOOK_ITEMS)
        );
        assert_eq!(parse_webhook(many.as_bytes()), Err(WebhookError::TooMany));
    }
}
