//! Erasure jobs: the portal's own data (`privacy.erase`) and the CRM contact (`crm.erase`).

use std::sync::Arc;

use async_trait::async_trait;
use domain::crm::{CrmConnector, CrmError};
use domain::db;
use sea_orm::DatabaseConnection;

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

/// `privacy.erase`: erases or de-identifies the customer's personal information in the database.
pub struct Erase {
    pub db: DatabaseConnection,
}

#[async_trait]
impl JobHandler<jobs::PrivacyErase> for Erase {
    async fn run(&self, p: jobs::PrivacyErase, _job: &ClaimedJob) -> Result<(), JobError> {
        let txn = db::begin_write(&self.db).await?;
        domain::privacy::erase(&txn, p.customer_id).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// `crm.erase`: removes the CRM contact (HubSpot's GDPR delete), then the sync state.
pub struct CrmErase {
    pub db: DatabaseConnection,
    pub connector: Arc<dyn CrmConnector>,
}

#[async_trait]
impl JobHandler<jobs::CrmErase> for CrmErase {
    async fn run(&self, p: jobs::CrmErase, _job: &ClaimedJob) -> Result<(), JobError> {
        match self.connector.erase(p.customer_id).await {
            Ok(()) => {}
            Err(CrmError::RateLimited {
                message,
                retry_after_secs,
            }) => {
                return Err(JobError::Transient {
                    message,
                    retry_after_ms: retry_after_secs.map(|s| s as i64 * 1000),
                });
            }
            Err(CrmError::Transient(m)) => return Err(JobError::transient(m)),
            Err(CrmError::Validation { message, .. }) | Err(CrmError::Permanent(message)) => {
                return Err(JobError::permanent(message));
            }
        }
        db::execute(
            &self.db,
            "DELETE FROM crm_sync WHERE customer_id = ?",
            vec![p.customer_id.into()],
        )
        .await?;
        Ok(())
    }
}
