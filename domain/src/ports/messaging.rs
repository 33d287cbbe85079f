//! The messaging port: confirmations and reminders on the channels customers read (WhatsApp,
//! SMS) beside email. The WhatsApp Business Cloud API and BulkSMS implement it in
//! `server::integrations`. Which message goes on which channel, consent, opt-outs and the
//! fallback to email are the domain's.

use async_trait::async_trait;

use super::CallError;

/// A channel beside email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    WhatsApp,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WhatsApp => "whatsapp",
            Channel::Sms => "sms",
        }
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// E.164, e.g. `+27821234567`.
    pub to: String,
    /// The business's approved template for this kind of message (WhatsApp), with its language.
    pub template: Option<(String, String)>,
    /// The template's parameters in order.
    pub parameters: Vec<String>,
    /// The text itself (SMS, or WhatsApp inside the customer's service window).
    pub text: String,
    /// Stable per message, echoed back by delivery receipts where the provider allows.
    pub reference: String,
}

/// A delivery state, in the order a message normally goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryState {
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
}

/// One messaging provider.
#[async_trait]
pub trait MessageChannel: Send + Sync {
    fn channel(&self) -> Channel;
    fn describe(&self) -> String;
    /// Sends; `Ok` carries the provider's message id. A rejected template, an unknown number or
    /// an opted-out recipient is `Permanent` (the domain then falls back to email).
    async fn send(&self, message: &OutgoingMessage) -> Result<String, CallError>;
    async fn test_connection(&self) -> Result<String, CallError>;
}
