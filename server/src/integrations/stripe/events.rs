//! `payments.stripe_event`: applies one stored Stripe webhook event to the portal's payments,
//! through the domain (`domain::payments`), which is provider-neutral.

use std::sync::Arc;

use async_trait::async_trait;
use domain::PortalSettings;
use domain::db::{self, col, now_ms};
use domain::jobs;
use domain::payments::{self, SessionFacts};
use domain::worker::{ClaimedJob, JobError, JobHandler};
use sea_orm::DatabaseConnection;
use serde_json::Value;

use crate::jobs::payments::apply_error;

/// A Checkout Session as a webhook event carries it.
pub fn session_from_json(o: &Value) -> SessionFacts {
    let meta = &o["metadata"];
    SessionFacts {
        id: o["id"].as_str().unwrap_or_default().to_owned(),
        status: o["status"].as_str().unwrap_or_default().to_owned(),
        payment_status: o["payment_status"].as_str().unwrap_or_default().to_owned(),
        url: o["url"].as_str().map(str::to_owned),
        payment_intent: match &o["payment_intent"] {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => m.get("id").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        },
        amount_total: o["amount_total"].as_i64(),
        currency: o["currency"].as_str().map(str::to_owned),
        expires_at: o["expires_at"].as_i64(),
        payment_id: meta["payment_id"].as_str().and_then(|v| v.parse().ok()),
        booking_id: meta["booking_id"].as_str().and_then(|v| v.parse().ok()),
    }
}

/// `payments.stripe_event`: applies one stored webhook event. An event about something the
/// portal does not know yet fails transiently and is retried from the stored copy; after its
/// attempts it waits in manual review, never dropped.
pub struct StripeEvent {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
}

#[async_trait]
impl JobHandler<jobs::StripeEvent> for StripeEvent {
    async fn run(&self, p: jobs::StripeEvent, _job: &ClaimedJob) -> Result<(), JobError> {
        let row = db::query_one(
            &self.db,
            "SELECT event_type, payload, processed_at FROM stripe_events WHERE id = ?",
            vec![p.event_id.clone().into()],
        )
        .await?
        .ok_or_else(|| JobError::permanent(format!("event {} is not stored", p.event_id)))?;
        if col::<Option<i64>>(&row, "processed_at")?.is_some() {
            return Ok(());
        }
        let kind: String = col(&row, "event_type")?;
        let body: String = col(&row, "payload")?;
        let event: Value = serde_json::from_str(&body)
            .map_err(|e| JobError::permanent(format!("stored event is not JSON: {e}")))?;
        let o = &event["data"]["object"];
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let applied = match kind.as_str() {
            "checkout.session.completed"
            | "checkout.session.async_payment_succeeded"
            | "checkout.session.expired" => {
                payments::apply_session(&self.db, &self.settings, &session_from_json(o), false)
                    .await
            }
            "checkout.session.async_payment_failed" => {
                payments::apply_session(&self.db, &self.settings, &session_from_json(o), true).await
            }
            "payment_intent.payment_failed" => {
                payments::apply_payment_failed(
                    &self.db,
                    o["metadata"]["payment_id"]
                        .as_str()
                        .and_then(|v| v.parse().ok()),
                    &str_of(&o["id"]),
                    o["last_payment_error"]["message"]
                        .as_str()
                        .unwrap_or("the payment was declined"),
                )
                .await
            }
            "charge.refunded" => {
                let Some(amount) = o["amount_refunded"].as_i64() else {
                    return Err(JobError::permanent(
                        "charge.refunded without amount_refunded: not what Stripe's API documents",
                    ));
                };
                payments::apply_charge_refunded(&self.db, &str_of(&o["payment_intent"]), amount)
                    .await
            }
            "charge.dispute.created" => {
                payments::apply_dispute(
                    &self.db,
                    &str_of(&o["payment_intent"]),
                    &str_of(&o["id"]),
                    &str_of(&o["reason"]),
                    o["amount"].as_i64().unwrap_or(0),
                )
                .await
            }
            _ => Ok(payments::Applied::AlreadyKnown),
        }
        .map_err(apply_error)?;
        let outcome = match applied {
            payments::Applied::Changed(what) => what,
            payments::Applied::AlreadyKnown => "nothing new".into(),
        };
        db::execute(
            &self.db,
            "UPDATE stripe_events SET processed_at = ?, outcome = ? WHERE id = ?",
            vec![now_ms().into(), outcome.into(), p.event_id.into()],
        )
        .await?;
        Ok(())
    }
}
