//! CRM jobs: the coalesced push of every changed customer (`crm.flush`), and the push of one
//! customer whose data the CRM refused (`crm.sync_customer`, which waits in manual review with
//! the CRM's message until an admin fixes the data and retries it).

use std::sync::Arc;

use async_trait::async_trait;
use domain::crm::{self, ContactSnapshot, CrmConnector, CrmError};
use domain::db::{self, now_ms};
use domain::ledger::{self, NewJob, Subject};
use sea_orm::DatabaseConnection;

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

/// Batches one flush job sends before handing over to a follow-up job.
const BATCHES_PER_JOB: usize = 20;

fn crm_error(e: CrmError) -> JobError {
    match e {
        CrmError::RateLimited {
            message,
            retry_after_secs,
        } => JobError::Transient {
            message,
            retry_after_ms: retry_after_secs.map(|s| s.max(1) as i64 * 1000),
        },
        CrmError::Transient(m) => JobError::transient(m),
        CrmError::Validation { message, .. } => JobError::permanent(message),
        CrmError::Permanent(m) => JobError::permanent(m),
    }
}

async fn snapshots(
    db: &DatabaseConnection,
    ids: &[i64],
    fields: &[String],
) -> Result<Vec<ContactSnapshot>, JobError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match crm::snapshot(db, *id, fields).await? {
            Some(s) => out.push(s),
            None => {
                // Not a customer (any more): nothing to send.
                db::execute(
                    db,
                    "DELETE FROM crm_sync WHERE customer_id = ?",
                    vec![(*id).into()],
                )
                .await?;
            }
        }
    }
    Ok(out)
}

async fn record(
    db: &DatabaseConnection,
    sent: &[ContactSnapshot],
    pushed: &[crm::Pushed],
) -> Result<(), JobError> {
    let txn = db::begin_write(db).await?;
    for s in sent {
        let crm_id = pushed
            .iter()
            .find(|p| p.customer_id == s.customer_id)
            .and_then(|p| p.crm_id.as_deref());
        crm::mark_pushed(&txn, s, crm_id).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// `crm.flush`: pushes every customer changed and not yet pushed, in batches the connector
/// accepts, within the connector's rate limit. Each snapshot is read fresh, so a burst of
/// changes to one customer is one upsert with the latest values, and a change made during the
/// call stays pending for the next flush.
pub struct Flush {
    pub db: DatabaseConnection,
    pub connector: Arc<dyn CrmConnector>,
    pub fields: Arc<Vec<String>>,
}

#[async_trait]
impl JobHandler<jobs::CrmFlush> for Flush {
    async fn run(&self, _payload: jobs::CrmFlush, job: &ClaimedJob) -> Result<(), JobError> {
        for _ in 0..BATCHES_PER_JOB {
            let ids = crm::pending(&self.db, self.connector.max_batch()).await?;
            if ids.is_empty() {
                return Ok(());
            }
            let batch = snapshots(&self.db, &ids, &self.fields).await?;
            if batch.is_empty() {
                continue;
            }
            match self.connector.push(&batch).await {
                Ok(pushed) => record(&self.db, &batch, &pushed).await?,
                Err(CrmError::Validation {
                    customer_id: Some(c),
                    message,
                }) if batch.iter().any(|s| s.customer_id == c) => {
                    // The CRM named the record: set it aside; the rest goes in the next round.
                    let txn = db::begin_write(&self.db).await?;
                    crm::block(&txn, c, &message).await?;
                    txn.commit().await?;
                }
                Err(CrmError::Validation { message, .. }) => {
                    // The batch was refused without naming a record: push one by one to find it.
                    for s in &batch {
                        match self.connector.push(std::slice::from_ref(s)).await {
                            Ok(p) => record(&self.db, std::slice::from_ref(s), &p).await?,
                            Err(CrmError::Validation { message: m, .. }) => {
                                let txn = db::begin_write(&self.db).await?;
                                crm::block(&txn, s.customer_id, &m).await?;
                                txn.commit().await?;
                            }
                            Err(e) => return Err(crm_error(e)),
                        }
                    }
                    tracing::info!(error = %message, "CRM refused a batch; pushed one by one");
                }
                Err(e) => return Err(crm_error(e)),
            }
        }
        // More than one job's share: hand over to a follow-up so others get a turn.
        ledger::enqueue(
            &self.db,
            NewJob::of(
                &domain::jobs::CrmFlush {},
                Subject::new("crm_batch", format!("more-{}", job.id)),
                format!("crm.flush:more:{}", job.id),
            )
            .at(now_ms()),
        )
        .await?;
        Ok(())
    }
}

/// `crm.sync_customer`: pushes one customer the CRM refused in a batch. While the CRM keeps
/// refusing, the job waits in manual review with the CRM's message; once an admin has fixed the
/// data, retrying it pushes and lifts the block.
pub struct SyncCustomer {
    pub db: DatabaseConnection,
    pub connector: Arc<dyn CrmConnector>,
    pub fields: Arc<Vec<String>>,
}

#[async_trait]
impl JobHandler<jobs::CrmSyncCustomer> for SyncCustomer {
    async fn run(&self, p: jobs::CrmSyncCustomer, _job: &ClaimedJob) -> Result<(), JobError> {
        let batch = snapshots(&self.db, &[p.customer_id], &self.fields).await?;
        if batch.is_empty() {
            return Ok(());
        }
        match self.connector.push(&batch).await {
            Ok(pushed) => record(&self.db, &batch, &pushed).await,
            Err(CrmError::Validation { message, .. }) => {
                db::execute(
                    &self.db,
                    "UPDATE crm_sync SET blocked_error = ? WHERE customer_id = ?",
                    vec![message.clone().into(), p.customer_id.into()],
                )
                .await?;
                Err(JobError::permanent(format!(
                    "{message}. Fix the customer's details in the portal, then retry this job."
                )))
            }
            Err(e) => Err(crm_error(e)),
        }
    }
}
