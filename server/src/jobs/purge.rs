//! `system.purge`: the hourly retention job. Deletes expired sessions, used or expired one-time
//! tokens after 7 days, finished jobs (with their attempts and payloads) after 30 days, and
//! closed alerts after 30 days. Each run is idempotent.

use async_trait::async_trait;
use domain::db::{self, now_ms};
use sea_orm::DatabaseConnection;

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

pub struct Purge {
    pub db: DatabaseConnection,
    pub retention: crate::config::RetentionSettings,
}

const DAY_MS: i64 = 86_400_000;

#[async_trait]
impl JobHandler<jobs::SystemPurge> for Purge {
    async fn run(&self, _payload: jobs::SystemPurge, _job: &ClaimedJob) -> Result<(), JobError> {
        let now = now_ms();
        db::execute(
            &self.db,
            "DELETE FROM sessions WHERE expires_at <= ?",
            vec![now.into()],
        )
        .await?;
        db::execute(&self.db, "DELETE FROM user_tokens WHERE (used_at IS NOT NULL OR expires_at <= ?) AND created_at <= ?", vec![now.into(), (now - 7 * DAY_MS).into()]).await?;
        let cutoff = now - 30 * DAY_MS;
        db::execute(
            &self.db,
            "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'resolved', 'cancelled') AND finished_at <= ?)",
            vec![cutoff.into()],
        )
        .await?;
        db::execute(&self.db, "DELETE FROM jobs WHERE status IN ('succeeded', 'resolved', 'cancelled') AND finished_at <= ?", vec![cutoff.into()]).await?;
        db::execute(
            &self.db,
            "DELETE FROM alert_state WHERE closed_at IS NOT NULL AND closed_at <= ?",
            vec![cutoff.into()],
        )
        .await?;
        retention(&self.db, &self.retention, now).await?;
        Ok(())
    }
}

/// The configurable retention periods (docs/privacy.md): expired unpaid holds, never-confirmed
/// accounts that never booked, applied Stripe payloads and sent email bodies.
pub async fn retention(
    db: &DatabaseConnection,
    r: &crate::config::RetentionSettings,
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    let holds = now - i64::from(r.expired_holds_days) * DAY_MS;
    let txn = db::begin_write(db).await?;
    let unpaid = "SELECT id FROM bookings WHERE status = 'expired' AND updated_at <= ? \
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.booking_id = bookings.id)";
    db::execute(
        &txn,
        &format!("DELETE FROM booking_events WHERE booking_id IN ({unpaid})"),
        vec![holds.into()],
    )
    .await?;
    db::execute(&txn, &format!("DELETE FROM jobs WHERE subject_type = 'booking' AND status IN ('succeeded', 'cancelled', 'resolved') AND subject_id IN (SELECT CAST(id AS TEXT) FROM ({unpaid}) x)"), vec![holds.into()]).await?;
    db::execute(&txn, "DELETE FROM bookings WHERE status = 'expired' AND updated_at <= ? AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.booking_id = bookings.id)", vec![holds.into()]).await?;
    let stale = now - i64::from(r.unverified_accounts_days) * DAY_MS;
    let never = "SELECT id FROM users WHERE role = 'customer' AND email_verified_at IS NULL AND created_at <= ? \
        AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.customer_id = users.id) \
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.customer_id = users.id)";
    for table in [
        "user_tokens",
        "sessions",
        "recovery_codes",
        "calendar_tokens",
        "emails",
    ] {
        db::execute(
            &txn,
            &format!("DELETE FROM {table} WHERE user_id IN ({never})"),
            vec![stale.into()],
        )
        .await?;
    }
    db::execute(
        &txn,
        &format!("DELETE FROM crm_conflicts WHERE customer_id IN ({never})"),
        vec![stale.into()],
    )
    .await?;
    db::execute(
        &txn,
        &format!("DELETE FROM crm_sync WHERE customer_id IN ({never})"),
        vec![stale.into()],
    )
    .await?;
    db::execute(&txn, &format!("UPDATE audit_log SET detail = '(account removed: never confirmed)', ip = NULL WHERE actor_user_id IN ({never})"), vec![stale.into()]).await?;
    db::execute(
        &txn,
        &format!("UPDATE audit_log SET actor_user_id = NULL WHERE actor_user_id IN ({never})"),
        vec![stale.into()],
    )
    .await?;
    db::execute(&txn, "DELETE FROM users WHERE role = 'customer' AND email_verified_at IS NULL AND created_at <= ? \
        AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.customer_id = users.id) \
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.customer_id = users.id)", vec![stale.into()]).await?;
    let payloads = now - i64::from(r.integration_payloads_days) * DAY_MS;
    db::execute(&txn, "UPDATE stripe_events SET payload = '{}' WHERE processed_at IS NOT NULL AND received_at <= ? AND payload <> '{}'", vec![payloads.into()]).await?;
    db::execute(&txn, "UPDATE emails SET body_text = '', body_html = '', attachment_body = NULL WHERE status = 'sent' AND created_at <= ? AND body_text <> ''", vec![payloads.into()]).await?;
    txn.commit().await?;
    Ok(())
}

/// Enqueues this hour's purge (once, whichever worker gets there first).
pub async fn schedule(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use domain::ledger::{self, NewJob, Subject};
    let hour = now_ms() / 3_600_000;
    ledger::enqueue(
        db,
        NewJob::of(
            &domain::jobs::SystemPurge {},
            Subject::new("retention", hour),
            format!("system.purge:{hour}"),
        ),
    )
    .await?;
    Ok(())
}
