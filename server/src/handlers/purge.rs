//! `system.purge`: the hourly retention job. Deletes expired sessions, used or expired one-time
//! tokens after 7 days, finished jobs (with their attempts and payloads) after 30 days, and
//! closed alerts after 30 days. Each run is idempotent.

use app::ssr::db::{self, now_ms};
use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::worker::{ClaimedJob, Handler, JobError};

pub struct Purge {
    pub db: DatabaseConnection,
}

const DAY_MS: i64 = 86_400_000;

#[async_trait]
impl Handler for Purge {
    async fn run(&self, _job: &ClaimedJob) -> Result<(), JobError> {
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
        Ok(())
    }
}

/// Enqueues this hour's purge (once, whichever worker gets there first).
pub async fn schedule(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use app::ssr::ledger::{self, Integration, NewJob, Subject};
    let hour = now_ms() / 3_600_000;
    ledger::enqueue(
        db,
        NewJob {
            kind: "system.purge",
            integration: Integration::System,
            subject: Subject::new("retention", hour),
            idempotency_key: format!("system.purge:{hour}"),
            payload: serde_json::json!({}),
            run_after_ms: None,
        },
    )
    .await?;
    Ok(())
}
