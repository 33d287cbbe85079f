//! Switches for the embedded stand-ins (the mail catcher now; Stripe and the CRM later), so a demo
//! or a test can make an integration fail on purpose and recover, without touching the production
//! code path that talks to it.

use std::sync::atomic::{AtomicU8, Ordering};

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
