//! The payments port: what the domain asks of a payment provider (a hosted checkout for one
//! attempt, its status, recent checkouts for reconciliation, refunds, a connection test). Stripe
//! implements it in `server::integrations::stripe`. The booking, hold, receipt, refund policy and
//! reconciliation logic is written once against it in `domain::payments`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A Checkout Session to create for one payment attempt.
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    pub payment_id: i64,
    pub booking_id: i64,
    pub customer_id: i64,
    pub customer_email: String,
    /// What the customer sees on the payment page, e.g. "Deposit: Massage on Mon 30 Nov".
    pub description: String,
    pub amount_cents: i64,
    /// ISO 4217, upper case as stored (`ZAR`); the gateway sends it as Stripe expects.
    pub currency: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub success_url: String,
    pub cancel_url: String,
    /// Derived from the booking and the attempt, so a retried call creates one session.
    pub idempotency_key: String,
}

/// What the portal needs to know about a Checkout Session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFacts {
    pub id: String,
    /// `open`, `complete` or `expired`.
    pub status: String,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: String,
    pub url: Option<String>,
    pub payment_intent: Option<String>,
    pub amount_total: Option<i64>,
    /// Lower case, as Stripe sends it.
    pub currency: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub payment_id: Option<i64>,
    pub booking_id: Option<i64>,
}

/// A refund to make.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    pub payment_intent: String,
    pub amount_cents: i64,
    pub refund_id: i64,
    pub idempotency_key: String,
}

/// A refund Stripe made.
#[derive(Clone, Debug)]
pub struct RefundDone {
    pub id: String,
    pub status: String,
    pub amount_cents: i64,
}

/// Why a gateway call failed: the ports' one classification (retry, or manual review).
pub type GatewayError = super::CallError;

/// The payment provider (Stripe through async-stripe, in the server crate).
#[async_trait]
pub trait Gateway: Send + Sync {
    /// "Stripe (live)", "Stripe (test mode)" or "local Stripe stand-in at http://127.0.0.1:2526".
    fn describe(&self) -> String;
    async fn create_checkout(&self, req: &CheckoutRequest) -> Result<SessionFacts, GatewayError>;
    async fn retrieve_checkout(&self, id: &str) -> Result<SessionFacts, GatewayError>;
    /// Checkout Sessions created since `since` (unix seconds), newest first, at most `limit`.
    async fn recent_checkouts(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<SessionFacts>, GatewayError>;
    async fn refund(&self, req: &RefundRequest) -> Result<RefundDone, GatewayError>;
    /// A harmless call (the balance) that proves the key and the address work.
    async fn test_connection(&self) -> Result<String, GatewayError>;
}

/// The gateway when payments are not configured at all (never the case with the embedded
/// default, which always has the stand-in): every call fails with a clear message.
pub struct NoGateway;

#[async_trait]
impl Gateway for NoGateway {
    fn describe(&self) -> String {
        "not configured".into()
    }
    async fn create_checkout(&self, _: &CheckoutRequest) -> Result<SessionFacts, GatewayError> {
        Err(GatewayError::Permanent(
            "payments are not configured".into(),
        ))
    }
    async fn retrieve_checkout(&self, _: &str) -> Result<SessionFacts, GatewayError> {
        Err(GatewayError::Permanent(
            "payments are not configured".into(),
        ))
    }
    async fn recent_checkouts(&self, _: i64, _: usize) -> Result<Vec<SessionFacts>, GatewayError> {
        Ok(Vec::new())
    }
    async fn refund(&self, _: &RefundRequest) -> Result<RefundDone, GatewayError> {
        Err(GatewayError::Permanent(
            "payments are not configured".into(),
        ))
    }
    async fn test_connection(&self) -> Result<String, GatewayError> {
        Err(GatewayError::Permanent(
            "payments are not configured".into(),
        ))
    }
}
