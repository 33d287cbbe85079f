//! Document jobs: removing a deleted document's object (then its row), the hourly clean-up of
//! objects no row refers to, reporting rows whose object is missing, probing storage after a
//! failed upload, reminders for requested documents, and the retention purge for closed accounts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use domain::PortalSettings;
use domain::db::{self, now_ms};
use domain::documents as docs;
use domain::ledger::{self, NewJob, Subject};
use sea_orm::DatabaseConnection;

use domain::ports::storage::{DocumentStore, StorageError};

/// The document store, as the jobs hold it.
type Storage = std::sync::Arc<dyn DocumentStore>;
use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

const HOUR_MS: i64 = 3_600_000;

/// Objects younger than this are never orphans: their upload may still be recording its row.
pub const ORPHAN_AGE_MS: i64 = HOUR_MS;

fn storage_error(e: StorageError) -> JobError {
    JobError::transient(format!("storage: {e}"))
}

/// `storage.delete_object`: removes the object of a deleted document, then the row. An object
/// already gone counts as removed, so a rerun is harmless; a storage failure is retried.
pub struct DeleteObject {
    pub db: DatabaseConnection,
    pub storage: Storage,
}

#[async_trait]
impl JobHandler<jobs::DeleteObject> for DeleteObject {
    async fn run(&self, p: jobs::DeleteObject, _job: &ClaimedJob) -> Result<(), JobError> {
        self.storage
            .delete(&p.object_key)
            .await
            .map_err(storage_error)?;
        db::execute(
            &self.db,
            "DELETE FROM documents WHERE id = ? AND status = 'deleting'",
            vec![p.document_id.into()],
        )
        .await?;
        Ok(())
    }
}

/// The job that puts a document whose object is missing in front of admins (manual review).
pub fn missing_job(document_id: i64, object_key: &str) -> NewJob {
    NewJob::of(
        &domain::jobs::MissingObject {
            message: format!(
                "document {document_id}'s file ({object_key}) is missing from storage: restore it from a backup, or delete the document"
            ),
        },
        Subject::new("document", document_id),
        format!("storage.missing:document:{document_id}"),
    )
}

/// `storage.missing_object`: always goes to manual review with its message.
pub struct MissingObject;

#[async_trait]
impl JobHandler<jobs::MissingObject> for MissingObject {
    async fn run(&self, p: jobs::MissingObject, _job: &ClaimedJob) -> Result<(), JobError> {
        Err(JobError::permanent(p.message))
    }
}

/// `storage.cleanup` (hourly): deletes objects under `documents/` that no row refers to and that
/// are older than an hour (an upload that crashed between storing and recording, or a refused
/// object whose deletion failed), and reports rows older than an hour whose object is missing.
pub struct Cleanup {
    pub db: DatabaseConnection,
    pub storage: Storage,
}

/// What one clean-up did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub orphans_removed: usize,
    pub missing_reported: usize,
}

/// The clean-up itself: objects and rows younger than `min_age_ms` are left alone (the job passes
/// [`ORPHAN_AGE_MS`]; tests pass less).
pub async fn cleanup(
    db: &DatabaseConnection,
    storage: &Storage,
    min_age_ms: i64,
) -> Result<CleanupReport, JobError> {
    let now = now_ms();
    let objects = storage
        .list(docs::KEY_PREFIX)
        .await
        .map_err(storage_error)?;
    let rows: HashMap<String, (i64, i64)> = docs::all_object_keys(db)
        .await?
        .into_iter()
        .map(|(id, key, created)| (key, (id, created)))
        .collect();
    let mut report = CleanupReport::default();
    for object in &objects {
        let (key, modified) = (&object.key, object.last_modified_ms);
        if !rows.contains_key(key) && now - modified >= min_age_ms {
            storage.delete(key).await.map_err(storage_error)?;
            tracing::info!(%key, "removed an orphaned document object");
            report.orphans_removed += 1;
        }
    }
    let present: HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let stored = db::query(
        db,
        "SELECT id, object_key FROM documents WHERE status = 'stored' AND created_at <= ?",
        vec![(now - min_age_ms).into()],
    )
    .await?;
    for r in stored {
        let id: i64 = db::col(&r, "id")?;
        let key: String = db::col(&r, "object_key")?;
        if !present.contains(key.as_str()) {
            tracing::error!(
                document_id = id,
                "a document's object is missing from storage"
            );
            if ledger::enqueue(db, missing_job(id, &key)).await?.is_some() {
                report.missing_reported += 1;
            }
        }
    }
    Ok(report)
}

#[async_trait]
impl JobHandler<jobs::StorageCleanup> for Cleanup {
    async fn run(&self, _payload: jobs::StorageCleanup, _job: &ClaimedJob) -> Result<(), JobError> {
        cleanup(&self.db, &self.storage, ORPHAN_AGE_MS)
            .await
            .map(|_| ())
    }
}

/// `storage.check`: after an upload or download failed, probes storage until it answers, so the
/// integration health area shows the failure while it lasts.
pub struct Check {
    pub storage: Storage,
}

#[async_trait]
impl JobHandler<jobs::StorageCheck> for Check {
    async fn run(&self, _payload: jobs::StorageCheck, _job: &ClaimedJob) -> Result<(), JobError> {
        match self.storage.head("documents/.health-check").await {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// `documents.request_reminder`: reminds the customer of an open request before it is due.
pub struct RequestReminder {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
}

#[async_trait]
impl JobHandler<jobs::RequestReminder> for RequestReminder {
    async fn run(&self, p: jobs::RequestReminder, _job: &ClaimedJob) -> Result<(), JobError> {
        docs::send_reminder(&self.db, &self.settings, p.request_id).await?;
        Ok(())
    }
}

/// `documents.retention` (hourly): marks documents of accounts closed longer than the retention
/// period for deletion; each gets its own `storage.delete_object` job.
pub struct Retention {
    pub db: DatabaseConnection,
}

#[async_trait]
impl JobHandler<jobs::DocumentsRetention> for Retention {
    async fn run(
        &self,
        _payload: jobs::DocumentsRetention,
        _job: &ClaimedJob,
    ) -> Result<(), JobError> {
        let n = docs::apply_retention(&self.db).await?;
        if n > 0 {
            tracing::info!(
                documents = n,
                "documents of closed accounts marked for deletion"
            );
        }
        Ok(())
    }
}

/// Enqueues this hour's clean-up and retention run (once, whichever worker gets there first).
pub async fn schedule(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let hour = now_ms() / HOUR_MS;
    let subject = || Subject::new("documents", hour);
    ledger::enqueue(
        db,
        NewJob::of(
            &domain::jobs::StorageCleanup {},
            subject(),
            format!("storage.cleanup:{hour}"),
        ),
    )
    .await?;
    ledger::enqueue(
        db,
        NewJob::of(
            &domain::jobs::DocumentsRetention {},
            subject(),
            format!("documents.retention:{hour}"),
        ),
    )
    .await?;
    Ok(())
}
