//! Switches for the embedded stand-ins (the mail catcher, the Stripe stand-in; the CRM later), so
//! a demo or a test can make an integration fail on purpose and recover, without touching the
//! production code path that talks to it.

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
