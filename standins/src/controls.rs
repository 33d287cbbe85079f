//! Switches for the embedded stand-ins (the mail catcher, Stripe, HubSpot, PayFast, Paystack,
//! WhatsApp, SMS, Google Calendar, Microsoft Graph and Xero), so a demo or a test can make an
//! integration fail on purpose and recover, without touching the production code path that
//! talks to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// How the local SMTP stand-in answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    /// Accept every message.
    Accept = 0,
    /// Answer `421 service not available` (a transient failure: the portal retries).
    Unavailable = 1,
    /// Answer `550 mailbox unavailable` to every recipient (a permanent failure: manual review).
    Reject = 2,
}

impl SmtpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpMode::Accept => "accept",
            SmtpMode::Unavailable => "unavailable",
            SmtpMode::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accept" => Some(SmtpMode::Accept),
            "unavailable" => Some(SmtpMode::Unavailable),
            "reject" => Some(SmtpMode::Reject),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub struct StandinControls {
    smtp: AtomicU8,
    /// Faults of the local Stripe stand-in (shared with it).
    pub stripe: Arc<StripeFaults>,
    /// Faults of the local CRM (HubSpot) stand-in (shared with it).
    pub crm: Arc<CrmFaults>,
    /// Faults of the local PayFast stand-in (shared with it).
    pub payfast: Arc<PayfastFaults>,
    /// Faults of the local Paystack stand-in (shared with it).
    pub paystack: Arc<PaystackFaults>,
    /// Faults of the local WhatsApp Cloud API stand-in (shared with it).
    pub whatsapp: Arc<WhatsAppFaults>,
    /// Faults of the local BulkSMS stand-in (shared with it).
    pub sms: Arc<SmsFaults>,
    /// Faults of the local Google Calendar stand-in (shared with it).
    pub google: Arc<CalendarFaults>,
    /// Faults of the local Microsoft Graph calendar stand-in (shared with it).
    pub graph: Arc<CalendarFaults>,
    /// Faults and "done in Xero" actions of the local Xero stand-in (shared with it).
    pub xero: Arc<XeroFaults>,
}

/// Takes one from a "next N calls" counter; `true` if there was one to take.
pub(crate) fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Faults of a stand-in's webhook outbox ([`crate::outbox`]), read at each delivery attempt.
#[derive(Debug, Default)]
pub struct WebhookFaults {
    /// While true, nothing is delivered (kept and sent once unpaused).
    pub paused: AtomicBool,
    /// The next N deliveries are lost: never sent and never retried (as a network loses them),
    /// so the portal's polling or timeouts are what notice.
    pub drop_next: AtomicU32,
    /// Each delivered webhook is sent this many extra times (at-least-once delivery).
    pub duplicate: AtomicU32,
    /// While true, the due webhooks go out in a random order instead of oldest first.
    pub shuffle: AtomicBool,
    /// Each delivery waits this long first (milliseconds).
    pub delay_ms: AtomicU64,
}

impl WebhookFaults {
    /// Back to normal delivery.
    pub fn reset(&self) {
        self.paused.store(false, Ordering::Relaxed);
        self.drop_next.store(0, Ordering::Relaxed);
        self.duplicate.store(0, Ordering::Relaxed);
        self.shuffle.store(false, Ordering::Relaxed);
        self.delay_ms.store(0, Ordering::Relaxed);
    }

    /// The active faults, in words (empty when none).
    pub fn describe_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if self.paused.load(Ordering::Relaxed) {
            parts.push("webhooks paused".to_string());
        }
        let n = self.drop_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} webhooks lost"));
        }
        let n = self.duplicate.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("each webhook sent {} times", n + 1));
        }
        if self.shuffle.load(Ordering::Relaxed) {
            parts.push("webhooks reordered".into());
        }
        let n = self.delay_ms.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("webhooks delayed {n} ms"));
        }
        parts
    }
}

/// Faults the local WhatsApp Cloud API stand-in can be told to produce, read at each API call
/// (and, for [`WhatsAppFaults::webhooks`], at each webhook delivery).
#[derive(Debug, Default)]
pub struct WhatsAppFaults {
    /// While true, every API call answers `503` with Graph error code 2 (service unavailable).
    pub api_down: AtomicBool,
    /// The next N API calls answer `500` with code 131000 ("Something went wrong").
    pub fail_next: AtomicU32,
    /// The next N sends are rate-limited (code 130429, or [`WhatsAppFaults::rate_limit_code`]).
    pub rate_limit_next: AtomicU32,
    /// The Graph code of those rate limits: 0 means 130429 (throughput); 80007 (WABA limit),
    /// 4 (app limit) and 131056 (pair limit) are the others Meta uses.
    pub rate_limit_code: AtomicU32,
    /// Answer those rate limits with HTTP 429 instead of Meta's documented 400.
    pub rate_limit_http_429: AtomicBool,
    /// Add `Retry-After: N` to those rate limits (0: none, as Meta documents).
    pub retry_after_secs: AtomicU32,
    /// While true, every template counts as REJECTED: sends get 132001.
    pub reject_templates: AtomicBool,
    /// A free-form message outside the 24-hour window fails with a synchronous `400` 131047
    /// instead of the usual `200` then a `failed` webhook.
    pub window_error_sync: AtomicBool,
    /// Faults of the status and inbound webhooks.
    pub webhooks: Arc<WebhookFaults>,
}

impl WhatsAppFaults {
    /// Back to normal service.
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next.store(0, Ordering::Relaxed);
        self.rate_limit_next.store(0, Ordering::Relaxed);
        self.rate_limit_code.store(0, Ordering::Relaxed);
        self.rate_limit_http_429.store(false, Ordering::Relaxed);
        self.retry_after_secs.store(0, Ordering::Relaxed);
        self.reject_templates.store(false, Ordering::Relaxed);
        self.window_error_sync.store(false, Ordering::Relaxed);
        self.webhooks.reset();
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls fail (500)"));
        }
        let n = self.rate_limit_next.load(Ordering::Relaxed);
        if n > 0 {
            let status = if self.rate_limit_http_429.load(Ordering::Relaxed) {
                429
            } else {
                400
            };
            parts.push(format!("next {n} sends rate-limited ({status})"));
        }
        if self.reject_templates.load(Ordering::Relaxed) {
            parts.push("templates rejected".into());
        }
        if self.window_error_sync.load(Ordering::Relaxed) {
            parts.push("window errors synchronous".into());
        }
        parts.extend(self.webhooks.describe_parts());
        if parts.is_empty() {
            "normal".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Faults the local BulkSMS stand-in can be told to produce, read at each API call (and, for
/// [`SmsFaults::webhooks`], at each delivery report).
#[derive(Debug, Default)]
pub struct SmsFaults {
    /// While true, every API call answers `503`.
    pub api_down: AtomicBool,
    /// The next N API calls answer `500`.
    pub fail_next: AtomicU32,
    /// The next N API calls answer `429` with `Retry-After`.
    pub rate_limit_next: AtomicU32,
    /// The `Retry-After` seconds sent with those 429s (0 means 1).
    pub retry_after_secs: AtomicU32,
    /// Faults of the delivery-report and received-message webhooks.
    pub webhooks: Arc<WebhookFaults>,
}

impl SmsFaults {
    /// Back to normal service.
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next.store(0, Ordering::Relaxed);
        self.rate_limit_next.store(0, Ordering::Relaxed);
        self.retry_after_secs.store(0, Ordering::Relaxed);
        self.webhooks.reset();
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls fail (500)"));
        }
        let n = self.rate_limit_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls rate-limited (429)"));
        }
        parts.extend(self.webhooks.describe_parts());
        if parts.is_empty() {
            "normal".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Faults the local CRM stand-in can be told to produce, read at each API call.
#[derive(Debug, Default)]
pub struct CrmFaults {
    /// While true, every API call answers `503` (the CRM is down).
    pub down: AtomicBool,
    /// The next N API calls answer `429` (HubSpot's rate-limit error) with `Retry-After`.
    pub rate_limit_next: AtomicU32,
    /// The `Retry-After` seconds sent with those 429s (0 means 1).
    pub retry_after_secs: AtomicU32,
    /// The next N API calls answer `500`.
    pub fail_next: AtomicU32,
    /// The next N API calls are held this many milliseconds before answering (to trip the
    /// client's timeout), see `slow_ms`.
    pub slow_next: AtomicU32,
    pub slow_ms: AtomicU64,
}

impl CrmFaults {
    pub fn reset(&self) {
        self.down.store(false, Ordering::Relaxed);
        self.rate_limit_next.store(0, Ordering::Relaxed);
        self.retry_after_secs.store(0, Ordering::Relaxed);
        self.fail_next.store(0, Ordering::Relaxed);
        self.slow_next.store(0, Ordering::Relaxed);
        self.slow_ms.store(0, Ordering::Relaxed);
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.down.load(Ordering::Relaxed) {
            parts.push("down (503)".to_string());
        }
        let n = self.rate_limit_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls rate-limited (429)"));
        }
        let n = self.fail_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls fail (500)"));
        }
        let n = self.slow_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls slow"));
        }
        if parts.is_empty() {
            "normal".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Faults the local Stripe stand-in can be told to produce. Every field is read at the moment
/// of the API call or webhook delivery it affects, so changes apply at once.
#[derive(Debug, Default)]
pub struct StripeFaults {
    /// While true, every API call answers `503` with a Stripe error body (Stripe is "down").
    pub api_down: AtomicBool,
    /// The next N API calls answer `500` with a Stripe `api_error` body, then normal service resumes.
    pub fail_next_api_calls: AtomicU32,
    /// While true, no webhook is delivered at all (events are kept and can be released later).
    pub webhooks_paused: AtomicBool,
    /// The next N webhook delivery attempts are dropped (never sent; counted as failed, retried later).
    pub drop_next_webhooks: AtomicU32,
    /// Each delivered webhook is sent this many extra times (duplicates).
    pub duplicate_webhooks: AtomicU32,
    /// Each delivery waits this long first (milliseconds).
    pub webhook_delay_ms: AtomicU64,
    /// While true, the events waiting to be delivered are sent in a shuffled order.
    pub shuffle_webhooks: AtomicBool,
}

impl StripeFaults {
    /// Back to normal service.
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next_api_calls.store(0, Ordering::Relaxed);
        self.webhooks_paused.store(false, Ordering::Relaxed);
        self.drop_next_webhooks.store(0, Ordering::Relaxed);
        self.duplicate_webhooks.store(0, Ordering::Relaxed);
        self.webhook_delay_ms.store(0, Ordering::Relaxed);
        self.shuffle_webhooks.store(false, Ordering::Relaxed);
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next_api_calls.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} API calls fail (500)"));
        }
        if self.webhooks_paused.load(Ordering::Relaxed) {
            parts.push("webhooks paused".into());
        }
        let n = self.drop_next_webhooks.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} webhooks dropped"));
        }
        let n = self.duplicate_webhooks.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("each webhook sent {} times", n + 1));
        }
        let n = self.webhook_delay_ms.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("webhooks delayed {n} ms"));
        }
        if self.shuffle_webhooks.load(Ordering::Relaxed) {
            parts.push("webhooks shuffled".into());
        }
        if parts.is_empty() {
            "normal".into()
        } else {
            parts.join(", ")
        }
    }
}

impl StandinControls {
    pub fn smtp_mode(&self) -> SmtpMode {
        match self.smtp.load(Ordering::Relaxed) {
            1 => SmtpMode::Unavailable,
            2 => SmtpMode::Reject,
            _ => SmtpMode::Accept,
        }
    }

    pub fn set_smtp_mode(&self, mode: SmtpMode) {
        self.smtp.store(mode as u8, Ordering::Relaxed);
    }
}

/// The delivery faults of a notification outbox ([`crate::deliveries`]): PayFast's ITNs,
/// Paystack's webhooks. Read at each delivery attempt.
#[derive(Debug, Default)]
pub struct NotificationFaults {
    /// While true, nothing is delivered (notifications wait and go out when it clears).
    pub paused: AtomicBool,
    /// The next N delivery attempts are dropped (never sent; retried like a failure).
    pub drop_next: AtomicU32,
    /// Each delivered notification is sent this many extra times.
    pub duplicate: AtomicU32,
    /// Each attempt waits this long first (milliseconds).
    pub delay_ms: AtomicU64,
    /// While true, the notifications due are sent in a random order.
    pub shuffle: AtomicBool,
}

impl NotificationFaults {
    /// Back to normal delivery.
    pub fn reset(&self) {
        self.paused.store(false, Ordering::Relaxed);
        self.drop_next.store(0, Ordering::Relaxed);
        self.duplicate.store(0, Ordering::Relaxed);
        self.delay_ms.store(0, Ordering::Relaxed);
        self.shuffle.store(false, Ordering::Relaxed);
    }

    /// Adds the active faults, in words, to `parts` (`noun`: "ITNs", "webhooks").
    fn describe_into(&self, noun: &str, parts: &mut Vec<String>) {
        if self.paused.load(Ordering::Relaxed) {
            parts.push(format!("{noun} paused"));
        }
        let n = self.drop_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} {noun} dropped"));
        }
        let n = self.duplicate.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("each of the {noun} sent {} times", n + 1));
        }
        let n = self.delay_ms.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("{noun} delayed {n} ms"));
        }
        if self.shuffle.load(Ordering::Relaxed) {
            parts.push(format!("{noun} shuffled"));
        }
    }
}

impl crate::deliveries::DeliveryFaults for NotificationFaults {
    fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
    fn take_drop(&self) -> bool {
        crate::deliveries::take_one(&self.drop_next)
    }
    fn duplicates(&self) -> u32 {
        self.duplicate.load(Ordering::SeqCst)
    }
    fn delay_ms(&self) -> u64 {
        self.delay_ms.load(Ordering::SeqCst)
    }
    fn shuffle(&self) -> bool {
        self.shuffle.load(Ordering::SeqCst)
    }
}

fn describe(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "normal".into()
    } else {
        parts.join(", ")
    }
}

/// Faults the local PayFast stand-in can be told to produce, read at each API call, validate
/// call and ITN attempt.
#[derive(Debug, Default)]
pub struct PayfastFaults {
    /// While true, every REST API call answers `503` (PayFast's API is down). The hosted page
    /// and the validate endpoint keep working, as they are other hosts at PayFast.
    pub api_down: AtomicBool,
    /// The next N API calls answer `500` ("Application Error").
    pub fail_next_api_calls: AtomicU32,
    /// While true, `/eng/query/validate` answers `INVALID` whatever it is sent.
    pub validate_invalid: AtomicBool,
    /// While true, `/eng/query/validate` holds each request (up to a minute, or until this is
    /// cleared) before answering, so the portal's call times out.
    pub validate_timeout: AtomicBool,
    /// The ITN outbox's faults.
    pub notifications: Arc<NotificationFaults>,
}

impl PayfastFaults {
    /// Back to normal service.
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next_api_calls.store(0, Ordering::Relaxed);
        self.validate_invalid.store(false, Ordering::Relaxed);
        self.validate_timeout.store(false, Ordering::Relaxed);
        self.notifications.reset();
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next_api_calls.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} API calls fail (500)"));
        }
        if self.validate_invalid.load(Ordering::Relaxed) {
            parts.push("validate answers INVALID".into());
        }
        if self.validate_timeout.load(Ordering::Relaxed) {
            parts.push("validate times out".into());
        }
        self.notifications.describe_into("ITNs", &mut parts);
        describe(parts)
    }
}

/// Faults the local Paystack stand-in can be told to produce, read at each API call, refund
/// and webhook attempt.
#[derive(Debug, Default)]
pub struct PaystackFaults {
    /// While true, every API call answers `503` with Paystack's error envelope.
    pub api_down: AtomicBool,
    /// The next N API calls answer `500`.
    pub fail_next_api_calls: AtomicU32,
    /// The next N refunds created end `failed` (with a `refund.failed` webhook).
    pub fail_next_refunds: AtomicU32,
    /// The next N refunds created stop at `needs-attention` (no webhook, as Paystack sends
    /// none for that status) until retried with the customer's bank details.
    pub needs_attention_next_refunds: AtomicU32,
    /// The webhook outbox's faults.
    pub webhooks: Arc<NotificationFaults>,
}

impl PaystackFaults {
    /// Back to normal service.
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next_api_calls.store(0, Ordering::Relaxed);
        self.fail_next_refunds.store(0, Ordering::Relaxed);
        self.needs_attention_next_refunds
            .store(0, Ordering::Relaxed);
        self.webhooks.reset();
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next_api_calls.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} API calls fail (500)"));
        }
        let n = self.fail_next_refunds.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} refunds fail"));
        }
        let n = self.needs_attention_next_refunds.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} refunds need attention"));
        }
        self.webhooks.describe_into("webhooks", &mut parts);
        describe(parts)
    }
}

/// Faults the calendar stand-ins ([`crate::google_calendar`], [`crate::microsoft_graph`]) can
/// be told to produce. The switches and counters are read at each API call; the epochs and the
/// pending action are "do it now" buttons: raising an epoch invalidates every token made before
/// it, and the pending calendar deletion happens at the next call or page view.
#[derive(Debug, Default)]
pub struct CalendarFaults {
    /// While true, every calendar API call answers `503`.
    pub api_down: AtomicBool,
    /// The next N API calls answer `500`.
    pub fail_next: AtomicU32,
    /// The next N API calls are rate-limited: Google's `403 rateLimitExceeded` (or `429` with
    /// [`CalendarFaults::rate_limit_429`]); Graph always answers `429`.
    pub rate_limit_next: AtomicU32,
    /// Google only: rate limits as `429` instead of `403`.
    pub rate_limit_429: AtomicBool,
    /// `Retry-After` seconds on those rate limits; 0 sends none (Google does not promise one;
    /// Graph always sends one, so 0 means 2 there).
    pub retry_after_secs: AtomicU32,
    /// Raise to revoke every grant made so far: refreshes answer `invalid_grant`, their access
    /// tokens `401`.
    pub grant_epoch: AtomicU32,
    /// Raise to expire every access token made so far (`401`; a refresh gets a new one).
    pub access_epoch: AtomicU32,
    /// Raise to expire every sync token / delta link made so far (`410`; a full sync recovers).
    pub sync_epoch: AtomicU32,
    /// Set to delete a secondary calendar (the first found) at the next call or page view.
    pub delete_calendar_next: AtomicBool,
    /// Google only: meeting links come back `pending` on insert and are filled in by the next
    /// GET; Graph only: `onlineMeeting` is null on create and filled in by the next GET.
    pub meeting_link_late: AtomicBool,
    /// Faults of the push notifications (Google channels, Graph subscriptions).
    pub webhooks: Arc<WebhookFaults>,
}

impl CalendarFaults {
    /// Back to normal service (epochs stay where they are: what was revoked stays revoked).
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next.store(0, Ordering::Relaxed);
        self.rate_limit_next.store(0, Ordering::Relaxed);
        self.rate_limit_429.store(false, Ordering::Relaxed);
        self.retry_after_secs.store(0, Ordering::Relaxed);
        self.delete_calendar_next.store(false, Ordering::Relaxed);
        self.meeting_link_late.store(false, Ordering::Relaxed);
        self.webhooks.reset();
    }

    /// Revokes every grant made so far.
    pub fn revoke_all_grants(&self) {
        self.grant_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Expires every access token made so far.
    pub fn expire_access_tokens(&self) {
        self.access_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Expires every sync token and delta link made so far.
    pub fn expire_sync_tokens(&self) {
        self.sync_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls fail (500)"));
        }
        let n = self.rate_limit_next.load(Ordering::Relaxed);
        if n > 0 {
            let retry = match self.retry_after_secs.load(Ordering::Relaxed) {
                0 => String::new(),
                s => format!(", Retry-After {s} s"),
            };
            parts.push(format!("next {n} calls rate-limited{retry}"));
        }
        if self.delete_calendar_next.load(Ordering::Relaxed) {
            parts.push("a calendar is about to be deleted".into());
        }
        if self.meeting_link_late.load(Ordering::Relaxed) {
            parts.push("meeting links late".into());
        }
        parts.extend(self.webhooks.describe_parts());
        describe(parts)
    }
}

/// Faults the local Xero stand-in can be told to produce, read at each Accounting API call,
/// plus two things a person would do in Xero itself ([`XeroFaults::edit_latest_invoice`],
/// [`XeroFaults::revoke_grants`]), which the stand-in carries out at its next call or within a
/// quarter of a second, whichever comes first.
#[derive(Debug, Default)]
pub struct XeroFaults {
    /// While true, every Accounting API call answers `503` (Xero's maintenance answer). The
    /// identity endpoints keep working, as they are another host at Xero.
    pub api_down: AtomicBool,
    /// The next N Accounting API calls answer `500`.
    pub fail_next: AtomicU32,
    /// The next N Accounting API calls answer `429` (`X-Rate-Limit-Problem: minute`), whatever
    /// the real counts say: a 429 storm.
    pub rate_limit_next: AtomicU32,
    /// The `Retry-After` seconds sent with those 429s (0 means 2).
    pub retry_after_secs: AtomicU32,
    /// The next N invoice writes (PUT or POST `/Invoices`) fail validation with "You have
    /// reached the limit of invoices you can approve", element by element as Xero reports it.
    pub fail_next_invoice_validation: AtomicU32,
    /// Each Accounting API call is held this long before it is answered (milliseconds), so
    /// calls overlap and the concurrent limit (5 in flight) can be reached.
    pub delay_ms: AtomicU64,
    /// Pending "edit in Xero" actions: each one changes the most recently written unpaid
    /// invoice (its due date and first line's description) and bumps its `UpdatedDateUTC`, as
    /// a bookkeeper editing it in Xero would.
    pub edit_latest_invoice: AtomicU32,
    /// When set, the user disconnects the app in Xero: every grant, token and connection is
    /// revoked (the portal's next call gets `401`, its next refresh `invalid_grant`).
    pub revoke_grants: AtomicBool,
    /// Faults of the webhook outbox (when a webhook URL is set).
    pub webhooks: Arc<NotificationFaults>,
}

impl XeroFaults {
    /// Back to normal service (pending actions are dropped too).
    pub fn reset(&self) {
        self.api_down.store(false, Ordering::Relaxed);
        self.fail_next.store(0, Ordering::Relaxed);
        self.rate_limit_next.store(0, Ordering::Relaxed);
        self.retry_after_secs.store(0, Ordering::Relaxed);
        self.fail_next_invoice_validation
            .store(0, Ordering::Relaxed);
        self.delay_ms.store(0, Ordering::Relaxed);
        self.edit_latest_invoice.store(0, Ordering::Relaxed);
        self.revoke_grants.store(false, Ordering::Relaxed);
        self.webhooks.reset();
    }

    /// A one-line description for the admin page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.api_down.load(Ordering::Relaxed) {
            parts.push("API down (503)".to_string());
        }
        let n = self.fail_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls fail (500)"));
        }
        let n = self.rate_limit_next.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} calls rate-limited (429)"));
        }
        let n = self.fail_next_invoice_validation.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("next {n} invoice writes fail validation"));
        }
        let n = self.delay_ms.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("calls delayed {n} ms"));
        }
        let n = self.edit_latest_invoice.load(Ordering::Relaxed);
        if n > 0 {
            parts.push(format!("{n} invoice edits in Xero pending"));
        }
        if self.revoke_grants.load(Ordering::Relaxed) {
            parts.push("grant revocation pending".into());
        }
        self.webhooks.describe_into("webhooks", &mut parts);
        describe(parts)
    }
}
