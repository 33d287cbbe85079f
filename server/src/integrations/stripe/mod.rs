//! The Stripe integration: the payments port on async-stripe (Checkout Sessions, refunds and the
//! balance), the signed webhook ([`webhook`]), the job that applies its events ([`events`]) and
//! the `stripe.*` settings ([`settings`]). The same client talks to Stripe or to the local
//! stand-in; only the base URL and keys differ, and it cannot tell which.
//! Webhook signatures are verified in [`verify_signature`] (Stripe's documented scheme), which
//! lives in the `guards` crate with the other parsers of untrusted input and is re-exported here.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use domain::ports::payments::{
    CheckoutRequest, Gateway, GatewayError, RefundDone, RefundRequest, SessionFacts,
};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ListCheckoutSession, ProductData,
    RetrieveCheckoutSession,
};
use stripe_core::balance::RetrieveForMyAccountBalance;
use stripe_core::refund::CreateRefund;
use stripe_types::Currency;

pub mod events;
pub mod settings;
pub mod webhook;

pub use guards::signature::{SignatureError, sign, verify_signature};

/// Stripe through async-stripe.
pub struct StripeGateway {
    client: Client,
    base: String,
    live: bool,
}

impl StripeGateway {
    /// `base` is Stripe's API (`https://api.stripe.com/`) or the stand-in's address.
    pub fn new(secret_key: &str, base: &str, timeout: Duration) -> Result<Self, String> {
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        let client = ClientBuilder::new(secret_key)
            .url(base.clone())
            .timeout(timeout)
            .app_info("Stoep", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            base,
            live: secret_key.starts_with("sk_live_") || secret_key.starts_with("rk_live_"),
        })
    }
}

/// Sorts an async-stripe error for the ledger: Stripe's refusals (4xx other than 429) are
/// permanent with Stripe's own message; the rest is worth retrying.
pub fn classify(e: StripeError) -> GatewayError {
    match e {
        StripeError::Stripe(err, status) => {
            let message = format!(
                "Stripe answered {status}: {}{}",
                err.message
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", err.type_)),
                err.code
                    .as_ref()
                    .map(|c| format!(" ({c:?})"))
                    .unwrap_or_default()
            );
            if status == 429 || status >= 500 || status == 409 {
                GatewayError::Transient {
                    message,
                    retry_after_secs: None,
                }
            } else {
                GatewayError::Permanent(message)
            }
        }
        StripeError::Timeout => GatewayError::Transient {
            message: "Stripe did not answer in time".into(),
            retry_after_secs: None,
        },
        StripeError::ClientError(m) => GatewayError::Transient {
            message: format!("cannot reach Stripe: {m}"),
            retry_after_secs: None,
        },
        StripeError::JSONDeserialize(m) => GatewayError::Permanent(format!(
            "Stripe's answer was not what its API documents: {m}"
        )),
        StripeError::ConfigError(m) => {
            GatewayError::Permanent(format!("Stripe client configuration: {m}"))
        }
    }
}

fn key(k: &str) -> Result<RequestStrategy, GatewayError> {
    IdempotencyKey::new(k)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| GatewayError::Permanent(e.to_string()))
}

fn facts(s: &stripe_shared::CheckoutSession) -> SessionFacts {
    let meta = s.metadata.clone().unwrap_or_default();
    SessionFacts {
        id: s.id.to_string(),
        status: s
            .status
            .as_ref()
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default(),
        payment_status: s.payment_status.as_str().to_owned(),
        url: s.url.clone(),
        payment_intent: s.payment_intent.as_ref().map(|p| p.id().to_string()),
        amount_total: s.amount_total,
        currency: s.currency.as_ref().map(|c| c.to_string()),
        expires_at: Some(s.expires_at),
        payment_id: meta.get("payment_id").and_then(|v| v.parse().ok()),
        booking_id: meta.get("booking_id").and_then(|v| v.parse().ok()),
    }
}

#[async_trait]
impl Gateway for StripeGateway {
    fn describe(&self) -> String {
        if self.live {
            "Stripe (live mode)".into()
        } else {
            format!("Stripe (test mode) at {}", self.base.trim_end_matches('/'))
        }
    }

    async fn create_checkout(&self, req: &CheckoutRequest) -> Result<SessionFacts, GatewayError> {
        let currency = Currency::from_str(&req.currency.to_lowercase())
            .map_err(|_| GatewayError::Permanent(format!("unknown currency {}", req.currency)))?;
        let metadata: HashMap<String, String> = [
            ("payment_id", req.payment_id.to_string()),
            ("booking_id", req.booking_id.to_string()),
            ("customer_id", req.customer_id.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
        price.unit_amount = Some(req.amount_cents);
        price.product_data = Some(ProductData::new(req.description.clone()));
        let item = CreateCheckoutSessionLineItems {
            price_data: Some(price),
            quantity: Some(1),
            ..Default::default()
        };
        let mut pi = CreateCheckoutSessionPaymentIntentData::new();
        pi.metadata = Some(metadata.clone());
        let session = CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(vec![item])
            .metadata(metadata)
            .payment_intent_data(pi)
            .client_reference_id(req.booking_id.to_string())
            .customer_email(req.customer_email.clone())
            .expires_at(req.expires_at)
            .success_url(req.success_url.clone())
            .cancel_url(req.cancel_url.clone())
            .customize()
            .request_strategy(key(&req.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(facts(&session))
    }

    async fn retrieve_checkout(&self, id: &str) -> Result<SessionFacts, GatewayError> {
        let s = RetrieveCheckoutSession::new(id)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(facts(&s))
    }

    async fn recent_checkouts(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<SessionFacts>, GatewayError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        while out.len() < limit {
            let mut req = ListCheckoutSession::new()
                .created(stripe_types::RangeQueryTs::gte(since))
                .limit(100);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = req.send(&self.client).await.map_err(classify)?;
            out.extend(page.data.iter().map(facts));
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.to_string()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundDone, GatewayError> {
        let metadata: HashMap<String, String> =
            [("refund_id".to_owned(), req.refund_id.to_string())].into();
        let r = CreateRefund::new()
            .payment_intent(req.payment_intent.clone())
            .amount(req.amount_cents)
            .metadata(metadata)
            .customize()
            .request_strategy(key(&req.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(RefundDone {
            id: r.id.to_string(),
            status: r.status.as_ref().map(|s| s.to_string()).unwrap_or_default(),
            amount_cents: r.amount,
        })
    }

    async fn test_connection(&self) -> Result<String, GatewayError> {
        let b = RetrieveForMyAccountBalance::new()
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(format!(
            "{} answered: balance read ({} currencies, {} mode)",
            self.describe(),
            b.available.len(),
            if b.livemode { "live" } else { "test" }
        ))
    }
}
