//! The stand-ins' "phone": `/_standin/phone` on the WhatsApp and BulkSMS stand-ins shows every
//! message per recipient number as the customer's phone would (templates rendered with their
//! parameters), with its delivery state, and lets a tester answer as that customer (`STOP`,
//! a question, a tap on a quick-reply button). The answer reaches the portal as the provider's
//! inbound webhook, so opt-outs and the WhatsApp 24-hour window are testable end to end.
//!
//! This module holds what both share: the message record ([`PhoneMessage`]) and the page.
//! Each stand-in keeps its own messages and handles the forms (`POST /_standin/phone/reply`
//! with `number` and `text`; WhatsApp also `POST /_standin/phone/tap` with `message_id` and
//! `index`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::{esc, page};

/// The longest reply a tester may type (characters).
pub const MAX_REPLY_CHARS: usize = 1600;

/// One message on the phone, either way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhoneMessage {
    /// The provider's id (a wamid, a BulkSMS id).
    pub id: String,
    /// The customer's number, digits without `+`.
    pub number: String,
    /// Sent by the business (true) or by the customer (false).
    pub from_business: bool,
    /// Unix seconds.
    pub at: i64,
    /// What the phone shows (a template rendered with its parameters).
    pub text: String,
    /// What kind of message: `template invoice_ready (en)`, `text`, `SMS (TEXT, 1 part)`, ...
    pub label: String,
    /// The provider's status (`accepted`, `sent`, `delivered`, `read`, `failed`, or BulkSMS's
    /// `DELIVERED.null` ...); `received` for the customer's own messages.
    pub status: String,
    /// Why it failed, when it did (`131047 Re-engagement message`).
    pub error: Option<String>,
    /// Quick-reply buttons the customer can tap (WhatsApp templates).
    pub buttons: Vec<String>,
}

/// The phone page: one thread per number, oldest message first, each with a reply form.
/// `channel` names the stand-in ("WhatsApp", "SMS"); `alert` is shown at the top.
pub fn render(channel: &str, messages: &[PhoneMessage], alert: Option<&str>) -> String {
    let mut threads: BTreeMap<&str, Vec<&PhoneMessage>> = BTreeMap::new();
    for m in messages {
        threads.entry(m.number.as_str()).or_default().push(m);
    }
    let mut body = format!(
        "<h1>{channel} phone</h1><p class=\"note\">Every message the {channel} stand-in \
         carried, per customer number, as their phone shows it. Reply as the customer (for \
         example <code>STOP</code>): the portal receives it as an inbound webhook.</p>",
        channel = esc(channel)
    );
    if let Some(alert) = alert {
        body.push_str(&format!(
            "<div class=\"alert\" role=\"alert\">{}</div>",
            esc(alert)
        ));
    }
    body.push_str(
        "<form method=\"post\" action=\"/_standin/phone/reply\">\
         <h2>Message the business from a number</h2>\
         <label for=\"new-number\">Customer number (digits, with country code)</label>\
         <input id=\"new-number\" name=\"number\" inputmode=\"tel\" autocomplete=\"off\" required>\
         <label for=\"new-text\">Message</label>\
         <input id=\"new-text\" name=\"text\" autocomplete=\"off\" required>\
         <button class=\"secondary\" type=\"submit\">Send as the customer</button></form>",
    );
    if threads.is_empty() {
        body.push_str("<p>No messages yet.</p>");
    }
    for (number, list) in &threads {
        let anchor = format!("n{}", esc(number));
        body.push_str(&format!(
            "<section aria-labelledby=\"{anchor}\"><h2 id=\"{anchor}\">+{}</h2><table>\
             <thead><tr><th scope=\"col\">At (UTC)</th><th scope=\"col\">From</th>\
             <th scope=\"col\">Message</th><th scope=\"col\">Status</th></tr></thead><tbody>",
            esc(number)
        ));
        for m in list {
            let who = if m.from_business {
                "business"
            } else {
                "customer"
            };
            let mut status = esc(&m.status);
            if let Some(e) = &m.error {
                status.push_str(&format!("<br><span class=\"note\">{}</span>", esc(e)));
            }
            let mut buttons = String::new();
            for (i, label) in m.buttons.iter().enumerate() {
                buttons.push_str(&format!(
                    "<form method=\"post\" action=\"/_standin/phone/tap\">\
                     <input type=\"hidden\" name=\"message_id\" value=\"{id}\">\
                     <input type=\"hidden\" name=\"index\" value=\"{i}\">\
                     <button class=\"secondary\" type=\"submit\">Tap “{label}”</button></form>",
                    id = esc(&m.id),
                    label = esc(label),
                ));
            }
            body.push_str(&format!(
                "<tr><td>{at}</td><td>{who}</td><td><span class=\"note\">{label}</span><br>{text}{buttons}</td><td>{status}</td></tr>",
                at = esc(&format_utc(m.at)),
                label = esc(&m.label),
                text = esc(&m.text).replace('\n', "<br>"),
            ));
        }
        body.push_str(&format!(
            "</tbody></table><form method=\"post\" action=\"/_standin/phone/reply\">\
             <input type=\"hidden\" name=\"number\" value=\"{number}\">\
             <label for=\"reply-{number}\">Reply as +{number}</label>\
             <input id=\"reply-{number}\" name=\"text\" autocomplete=\"off\" required>\
             <button class=\"secondary\" type=\"submit\">Send reply</button></form></section>",
            number = esc(number),
        ));
    }
    page(&format!("{channel} phone"), &body, true)
}

/// A customer number typed into the phone page or given to a stand-in's `reply`: digits
/// only (a leading `+`, spaces and dashes are dropped), 7 to 15 of them.
pub fn clean_number(raw: &str) -> Option<String> {
    let digits: String = raw
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    (digits.len() >= 7 && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// `2025-03-01 14:30:05`.
pub(crate) fn format_utc(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

/// `2025-04-08T10:17:37Z` (BulkSMS's dates).
pub(crate) fn iso_utc(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "1970-01-01T00:00:00Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_cleaned_to_digits_or_refused() {
        assert_eq!(
            clean_number("+27 82-123 4567").as_deref(),
            Some("27821234567")
        );
        assert_eq!(clean_number("12345"), None);
        assert_eq!(clean_number("2782abc4567"), None);
        assert_eq!(clean_number(&"9".repeat(16)), None);
    }

    #[test]
    fn the_page_escapes_what_customers_typed() {
        let html = render(
            "SMS",
            &[PhoneMessage {
                id: "1".into(),
                number: "27821234567".into(),
                from_business: false,
                at: 0,
                text: "<script>alert(1)</script>".into(),
                label: "reply".into(),
                status: "received".into(),
                error: None,
                buttons: vec![],
            }],
            None,
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("+27821234567"));
        assert_eq!(iso_utc(1_744_107_457), "2025-04-08T10:17:37Z");
    }
}
