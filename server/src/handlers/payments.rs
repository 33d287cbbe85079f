//! Payment jobs: applying stored Stripe events, refunds, reconciliation with Stripe, and putting
//! payment problems in front of admins.

use std::sync::Arc;

use app::ssr::PortalSettings;
use app::ssr::db::{self, col, now_ms};
use app::ssr::ledger::{self, Integration, NewJob, Subject};
use app::ssr::payments::{self, ApplyError, Gateway, GatewayError, RefundRequest, SessionFacts};
use async_trait::async_trait;
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::Value;

use crate::worker::{ClaimedJob, Handler, JobError};

const DAY_MS: i64 = 86_400_000;

fn gateway_error(e: GatewayError) -> JobError {
    match e {
        GatewayError::Transient {
            message,
            retry_after_secs,
        } => JobError::Transient {
            message,
            retry_after_ms: retry_after_secs.map(|s| s as i64 * 1000),
        },
        GatewayError::Permanent(m) => JobError::permanent(m),
    }
}

fn apply_error(e: ApplyError) -> JobError {
    match e {
        ApplyError::NotYetKnown(m) => JobError::transient(format!(
            "kept for later: {m} (waiting for the portal to know it)"
        )),
        ApplyError::Db(e) => e.into(),
    }
}

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

#[derive(Deserialize)]
struct EventPayload {
    event_id: String,
}

#[async_trait]
impl Handler for StripeEvent {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let p: EventPayload = job.payload()?;
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

/// `payments.refund`: makes one recorded refund at Stripe, with an idempotency key per refund,
/// so running twice refunds once. Stripe's refusal goes to manual review with its message.
pub struct Refund {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
    pub gateway: Arc<dyn Gateway>,
}

#[derive(Deserialize)]
struct RefundPayload {
    refund_id: i64,
}

#[async_trait]
impl Handler for Refund {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let p: RefundPayload = job.payload()?;
        let r = db::query_one(
            &self.db,
            "SELECT r.status AS status, r.amount_cents AS amount_cents, p.payment_intent_id AS pi FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.id = ?",
            vec![p.refund_id.into()],
        )
        .await?
        .ok_or_else(|| JobError::permanent(format!("refund {} does not exist", p.refund_id)))?;
        if col::<String>(&r, "status")? != "pending" {
            return Ok(());
        }
        let Some(pi) = col::<Option<String>>(&r, "pi")? else {
            return Err(JobError::permanent(
                "the payment has no Stripe payment intent to refund",
            ));
        };
        let req = RefundRequest {
            payment_intent: pi,
            amount_cents: col(&r, "amount_cents")?,
            refund_id: p.refund_id,
            idempotency_key: format!("stoep-refund-{}", p.refund_id),
        };
        match self.gateway.refund(&req).await {
            Ok(done) => {
                payments::refund_succeeded(&self.db, &self.settings, p.refund_id, &done).await?;
                Ok(())
            }
            Err(e) => {
                payments::refund_failed(&self.db, p.refund_id, &e.to_string()).await?;
                Err(gateway_error(e))
            }
        }
    }
}

/// `payments.reconcile`: asks Stripe about every payment still open and every recent paid
/// session, applies what a lost webhook left behind, and reports what it cannot repair.
pub struct Reconcile {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
    pub gateway: Arc<dyn Gateway>,
}

#[async_trait]
impl Handler for Reconcile {
    async fn run(&self, _job: &ClaimedJob) -> Result<(), JobError> {
        let report = reconcile(&self.db, &self.settings, self.gateway.as_ref()).await?;
        tracing::info!(
            checked = report.checked,
            repaired = report.repaired,
            reported = report.reported,
            "payments reconciled with Stripe"
        );
        Ok(())
    }
}

/// What one reconciliation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub checked: usize,
    pub repaired: usize,
    pub reported: usize,
}

pub async fn reconcile(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    gateway: &dyn Gateway,
) -> Result<ReconcileReport, JobError> {
    let now = now_ms();
    let mut report = ReconcileReport::default();
    // 1. Every payment still waiting, asked about one by one.
    let waiting = payments::list(
        db,
        "status IN ('open', 'processing') AND checkout_session_id IS NOT NULL AND created_at > ?",
        vec![(now - 3 * DAY_MS).into()],
        1000,
    )
    .await?;
    for p in waiting {
        let Some(sid) = p.checkout_session_id.clone() else {
            continue;
        };
        report.checked += 1;
        match gateway.retrieve_checkout(&sid).await {
            Ok(facts) => {
                if let payments::Applied::Changed(_) =
                    payments::apply_session(db, settings, &facts, false)
                        .await
                        .map_err(apply_error)?
                {
                    report.repaired += 1;
                }
            }
            Err(GatewayError::Permanent(m)) => {
                let txn = db::begin_write(db).await?;
                payments::review(
                    &txn,
                    &format!("unknown-session:{sid}"),
                    &format!(
                        "Payment {} names Checkout Session {sid}, which Stripe does not know: {m}",
                        p.id
                    ),
                    p.id,
                )
                .await?;
                txn.commit().await?;
                report.reported += 1;
            }
            Err(e) => return Err(gateway_error(e)),
        }
    }
    // 2. Attempts whose session was never recorded (a crash or an outage mid-call) are closed.
    db::execute(
        db,
        "UPDATE payments SET status = 'failed', last_error = COALESCE(last_error, 'no payment page was created'), updated_at = ? WHERE status = 'creating' AND created_at < ?",
        vec![now.into(), (now - 10 * 60_000).into()],
    )
    .await?;
    // 3. Every recent session Stripe has: a paid one must match a paid payment.
    let recent = gateway
        .recent_checkouts(now / 1000 - 3 * 86_400, 1000)
        .await
        .map_err(gateway_error)?;
    for facts in recent {
        report.checked += 1;
        let known = payments::by_session(db, &facts.id).await?;
        if facts.payment_status == "paid" {
            if known.as_ref().is_some_and(|p| p.status == "paid") {
                continue;
            }
            if known.is_none() && facts.payment_id.is_none() {
                report_unmatched(db, &facts, "it carries no payment reference").await?;
                report.reported += 1;
                continue;
            }
            match payments::apply_session(db, settings, &facts, false).await {
                Ok(payments::Applied::Changed(_)) => report.repaired += 1,
                Ok(payments::Applied::AlreadyKnown) => {}
                Err(ApplyError::NotYetKnown(m)) => {
                    report_unmatched(db, &facts, &m).await?;
                    report.reported += 1;
                }
                Err(ApplyError::Db(e)) => return Err(e.into()),
            }
        } else if let Some(p) = known.filter(|p| p.status == "paid") {
            let txn = db::begin_write(db).await?;
            payments::review(
                &txn,
                &format!("not-paid:{}", facts.id),
                &format!(
                    "Payment {} is recorded as paid, but Stripe says Checkout Session {} is {}. Check it in the Stripe dashboard.",
                    p.id, facts.id, facts.payment_status
                ),
                p.id,
            )
            .await?;
            txn.commit().await?;
            report.reported += 1;
        }
    }
    Ok(report)
}

async fn report_unmatched(
    db: &DatabaseConnection,
    facts: &SessionFacts,
    why: &str,
) -> Result<(), JobError> {
    let txn = db::begin_write(db).await?;
    payments::review(
        &txn,
        &format!("unmatched:{}", facts.id),
        &format!(
            "Stripe has a paid Checkout Session {} ({} {}) that matches no payment in the portal: {why}. Find the customer and refund or link it.",
            facts.id,
            facts.amount_total.unwrap_or(0),
            facts.currency.clone().unwrap_or_default()
        ),
        facts.payment_id.unwrap_or(0),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Enqueues this period's reconciliation (once per period, whichever worker gets there first).
pub async fn schedule(db: &DatabaseConnection, every_minutes: u64) -> Result<(), sea_orm::DbErr> {
    let period = now_ms() / (every_minutes.max(1) as i64 * 60_000);
    ledger::enqueue(
        db,
        NewJob {
            kind: "payments.reconcile",
            integration: Integration::Payments,
            subject: Subject::new("reconciliation", period),
            idempotency_key: format!("payments.reconcile:{every_minutes}:{period}"),
            payload: serde_json::json!({}),
            run_after_ms: None,
        },
    )
    .await?;
    Ok(())
}

/// `payments.review`: a payment problem only a person can settle (a dispute, a payment that
/// matches nothing, a late payment refunded). It waits in manual review with its explanation;
/// an admin resolves it with a note once handled.
pub struct Review;

#[derive(Deserialize)]
struct ReviewPayload {
    message: String,
}

#[async_trait]
impl Handler for Review {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let p: ReviewPayload = job.payload()?;
        Err(JobError::permanent(p.message))
    }
}
