//! The mail transport port: hand one rendered message to a relay. SMTP (lettre) implements it in
//! `server::integrations::smtp`; the outbox, the templates and "at most once per row" are the
//! domain's (`domain::email`).

use async_trait::async_trait;

/// One message from the outbox, ready to send. Subjects and names were made header-safe when it
/// was rendered.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Fixed per outbox row, so a receiving system can tell copies apart.
    pub message_id: String,
    /// `(file name, content type, body)`, e.g. the booking's `.ics`.
    pub attachment: Option<(String, String, String)>,
}

/// A mail relay.
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// "smtp.example.com:587 (starttls)", "local mail catcher on 127.0.0.1:2525".
    fn describe(&self) -> String;
    /// Sends the message; `Ok` carries the relay's reply ("250 2.0.0 queued"). Error texts carry
    /// no addresses.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError>;
    /// Connects (and authenticates where configured), sends nothing.
    async fn test_connection(&self) -> Result<String, String>;
}

/// Why a message did not go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The message cannot be built (an invalid address): nothing was sent; fix the data.
    #[error("{0}")]
    Invalid(String),
    /// The relay refused it for good (5xx), with its reply.
    #[error("{0}")]
    Refused(String),
    /// The relay could not take it now (4xx, connection, timeout), with its reply.
    #[error("{0}")]
    Unavailable(String),
}
