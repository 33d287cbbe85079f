//! Payment jobs, written once against the payments port: refunds, reconciliation, and putting
//! payment problems in front of admins. (Applying a provider's stored webhook events is the
//! provider's own job, in its integration folder.)

use model::PaymentStatus;
use std::sync::Arc;

use async_trait::async_trait;
use domain::PortalSettings;
use domain::db::{self, col, now_ms};
use domain::ledger::{self, NewJob, Subject};
use domain::payments::{self, ApplyError, Gateway, GatewayError, RefundRequest, SessionFacts};
use sea_orm::DatabaseConnection;

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

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

pub(crate) fn apply_error(e: ApplyError) -> JobError {
    match e {
        ApplyError::NotYetKnown(m) => JobError::transient(format!(
            "kept for later: {m} (waiting for the portal to know it)"
        )),
        ApplyError::Db(e) => e.into(),
    }
}

/// `payments.refund`: makes one recorded refund at Stripe, with an idempotency key per refund,
/// so running twice refunds once. Stripe's refusal goes to manual review with its message.
pub struct Refund {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
    pub gateway: Arc<dyn Gateway>,
}

#[async_trait]
impl JobHandler<jobs::Refund> for Refund {
    async fn run(&self, p: jobs::Refund, _job: &ClaimedJob) -> Result<(), JobError> {
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
impl JobHandler<jobs::Reconcile> for Reconcile {
    async fn run(&self, _payload: jobs::Reconcile, _job: &ClaimedJob) -> Result<(), JobError> {
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
    let waiting = payments::waiting_since(db, now - 3 * DAY_MS, 1000).await?;
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
            if known
                .as_ref()
                .is_some_and(|p| p.status == PaymentStatus::Paid)
            {
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
        } else if let Some(p) = known.filter(|p| p.status == PaymentStatus::Paid) {
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
        NewJob::of(
            &domain::jobs::Reconcile {},
            Subject::new("reconciliation", period),
            format!("payments.reconcile:{every_minutes}:{period}"),
        ),
    )
    .await?;
    Ok(())
}

/// `payments.review`: a payment problem only a person can settle (a dispute, a payment that
/// matches nothing, a late payment refunded). It waits in manual review with its explanation;
/// an admin resolves it with a note once handled.
pub struct Review;

#[async_trait]
impl JobHandler<jobs::PaymentReview> for Review {
    async fn run(&self, p: jobs::PaymentReview, _job: &ClaimedJob) -> Result<(), JobError> {
        Err(JobError::permanent(p.message))
    }
}
