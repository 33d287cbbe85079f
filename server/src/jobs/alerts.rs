//! Alerts: when a job reaches manual review or an integration starts failing, admins get one
//! digest email (not one per failure) and a banner in the admin area until it is dealt with.
//!
//! [`scan`] runs on every worker's housekeeping tick: it opens an alert for each new problem,
//! closes alerts whose problem is gone, and enqueues one `alerts.digest` job per minute at most
//! when some open alert has not been emailed yet. The unique idempotency key of that job (by
//! minute) and the unique open-alert index make it safe for several workers to scan at once.

use std::sync::Arc;

use async_trait::async_trait;
use domain::db::{self, col, now_ms};
use domain::ledger::{self, Integration, NewJob, Subject};
use domain::{PortalSettings, email as mail};
use sea_orm::{DatabaseConnection, DbErr};

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

/// Opens and closes alerts, and enqueues a digest when something new needs admins.
pub async fn scan(db: &DatabaseConnection) -> Result<(), DbErr> {
    let now = now_ms();
    let failing: Vec<String> = ledger::health(db)
        .await?
        .into_iter()
        .filter(|h| h.state == "failing")
        .map(|h| h.integration)
        .collect();
    let txn = db::begin_write(db).await?;
    db::execute(
        &txn,
        "INSERT INTO alert_state (kind, subject, opened_at) SELECT 'job', CAST(id AS TEXT), ? FROM jobs WHERE status = 'manual_review' \
         ON CONFLICT (kind, subject) WHERE closed_at IS NULL DO NOTHING",
        vec![now.into()],
    )
    .await?;
    db::execute(
        &txn,
        "UPDATE alert_state SET closed_at = ? WHERE kind = 'job' AND closed_at IS NULL \
         AND subject NOT IN (SELECT CAST(id AS TEXT) FROM jobs WHERE status = 'manual_review')",
        vec![now.into()],
    )
    .await?;
    for integration in Integration::ALL {
        let name = integration.as_str();
        if failing.iter().any(|f| f == name) {
            db::execute(
                &txn,
                "INSERT INTO alert_state (kind, subject, opened_at) VALUES ('integration', ?, ?) ON CONFLICT (kind, subject) WHERE closed_at IS NULL DO NOTHING",
                vec![name.into(), now.into()],
            )
            .await?;
        } else {
            db::execute(&txn, "UPDATE alert_state SET closed_at = ? WHERE kind = 'integration' AND subject = ? AND closed_at IS NULL", vec![now.into(), name.into()]).await?;
        }
    }
    let pending: i64 = db::query_one(
        &txn,
        "SELECT COUNT(*) AS n FROM alert_state WHERE closed_at IS NULL AND notified_at IS NULL",
        vec![],
    )
    .await?
    .map(|r| col(&r, "n"))
    .transpose()?
    .unwrap_or(0);
    if pending > 0 {
        let minute = now / 60_000;
        ledger::enqueue(
            &txn,
            NewJob::of(
                &domain::jobs::AlertsDigest {},
                Subject::new("alerts", minute),
                format!("alerts.digest:{minute}"),
            ),
        )
        .await?;
    }
    txn.commit().await
}

pub struct Digest {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
}

#[async_trait]
impl JobHandler<jobs::AlertsDigest> for Digest {
    async fn run(&self, _payload: jobs::AlertsDigest, job: &ClaimedJob) -> Result<(), JobError> {
        let txn = db::begin_write(&self.db).await?;
        let open = db::query(&txn, "SELECT id, kind, subject FROM alert_state WHERE closed_at IS NULL AND notified_at IS NULL ORDER BY opened_at, id", vec![]).await?;
        if open.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        let mut ids = Vec::new();
        for r in &open {
            let id: i64 = col(r, "id")?;
            let kind: String = col(r, "kind")?;
            let subject: String = col(r, "subject")?;
            ids.push(id);
            if kind == "job" {
                let detail = db::query_one(
                    &txn,
                    "SELECT kind, integration, last_error FROM jobs WHERE CAST(id AS TEXT) = ?",
                    vec![subject.clone().into()],
                )
                .await?;
                let line = match detail {
                    Some(d) => format!(
                        "Job #{subject} ({}, {}) needs manual review: {} — {}/admin/integrations/jobs/{subject}",
                        col::<String>(&d, "kind")?,
                        col::<String>(&d, "integration")?,
                        col::<Option<String>>(&d, "last_error")?.unwrap_or_default(),
                        self.settings.public_url
                    ),
                    None => format!("Job #{subject} needs manual review"),
                };
                lines.push(line);
            } else {
                lines.push(format!("The {subject} integration is failing — {}/admin/integrations?integration={subject}", self.settings.public_url));
            }
        }
        let admins = db::query(
            &txn,
            "SELECT id, email FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id",
            vec![],
        )
        .await?;
        for a in &admins {
            let admin_id: i64 = col(a, "id")?;
            let to: String = col(a, "email")?;
            let message = mail::templates::admin_digest(&self.settings, &lines);
            mail::enqueue(
                &txn,
                &self.settings,
                Some(admin_id),
                &to,
                message,
                &format!("digest:{}:{admin_id}", job.id),
            )
            .await?;
        }
        let now = now_ms();
        for id in ids {
            db::execute(
                &txn,
                "UPDATE alert_state SET notified_at = ? WHERE id = ?",
                vec![now.into(), id.into()],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
