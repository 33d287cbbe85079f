//! The ports: one trait per kind of integration. The domain talks only to these; the concrete
//! clients (Stripe, HubSpot, SMTP, object storage, and the calendars, messaging and accounting
//! systems the portal connects next) implement them in `server::integrations`, and the local
//! stand-ins implement nothing here: they speak the real services' wire protocols, so the same
//! client talks to either.
//!
//! Every port call that can fail says how, in the ledger's terms ([`CallError`]): worth retrying
//! (with the other system's `Retry-After` when it sent one) or not (with the other system's
//! message, which goes to manual review).

pub mod accounting;
pub mod calendar;
pub mod console;
pub mod crm;
pub mod mail;
pub mod messaging;
pub mod payments;
pub mod storage;

pub use console::StandinConsole;

/// Why a call to another system failed, sorted the way the ledger needs it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth retrying: a timeout, a connection error, 429 or 5xx. `retry_after_secs` is the
    /// other system's own `Retry-After`, when it sent one.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// Retrying will not help: the request was refused, with this message from the other system.
    #[error("{0}")]
    Permanent(String),
}

impl CallError {
    pub fn transient(message: impl Into<String>) -> Self {
        CallError::Transient {
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        CallError::Permanent(message.into())
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, CallError::Permanent(_))
    }
}
