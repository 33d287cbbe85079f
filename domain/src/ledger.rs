//! The integration ledger, enqueue side and admin queries.
//!
//! Every outbound effect (an email, a CRM call, a refund, a storage clean-up) is a row in `jobs`,
//! inserted with [`enqueue`] on the same connection or transaction as the business change that
//! causes it: if that transaction rolls back, the job never existed; if it commits, the job will
//! run. The idempotency key is unique, so enqueueing the same effect twice leaves one job.
//! The worker (in the server crate) claims, runs and finishes jobs; this module also holds the
//! queries and actions of the admin's integration-health area.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, Value};

use crate::audit;
use crate::db::{self, col, now_ms};
pub use crate::jobs::{Integration, NewJob, RetryPolicy, Subject};
use model::{AuditRow, IntegrationHealth, JobAttemptRow, JobDetail, JobFilter, JobPage, JobRow};

/// Inserts `job` on `conn` (use the transaction of the change that causes it). Returns the new
/// job's id, or `None` when a job with the same idempotency key already exists.
#[tracing::instrument(skip_all, err)]
pub async fn enqueue<C: ConnectionTrait>(conn: &C, job: NewJob) -> Result<Option<i64>, DbErr> {
    let now = now_ms();
    let policy = job.integration.policy();
    let row = db::query_one(
        conn,
        "INSERT INTO jobs (kind, integration, subject_type, subject_id, idempotency_key, payload, \
         status, attempts, max_attempts, run_after, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        vec![
            job.kind.into(),
            job.integration.as_str().into(),
            job.subject.kind.into(),
            job.subject.id.into(),
            job.idempotency_key.into(),
            job.payload.to_string().into(),
            policy.max_attempts.into(),
            job.run_after_ms.unwrap_or(now).into(),
            now.into(),
            now.into(),
        ],
    )
    .await?;
    row.map(|r| col::<i64>(&r, "id")).transpose()
}

const JOB_COLUMNS: &str = "id, kind, integration, subject_type, subject_id, status, attempts, \
    max_attempts, run_after, last_error, created_at, updated_at";

/// Largest page the job list serves, whatever the client asks.
pub const MAX_PER_PAGE: u32 = 100;

fn filter_sql(filter: &JobFilter) -> (String, Vec<Value>) {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut values: Vec<Value> = Vec::new();
    if let Some(i) = filter.integration.as_deref().filter(|s| !s.is_empty()) {
        clauses.push("integration = ?".into());
        values.push(i.into());
    }
    match filter.status.as_deref().filter(|s| !s.is_empty()) {
        Some("failed") => clauses.push("(status = 'manual_review' OR (status IN ('queued', 'running') AND attempts > 0 AND last_error IS NOT NULL))".into()),
        Some("waiting") => clauses.push("status IN ('queued', 'running')".into()),
        Some(s) => {
            clauses.push("status = ?".into());
            values.push(s.into());
        }
        None => {}
    }
    if let Some(s) = filter.subject.as_deref().filter(|s| !s.is_empty()) {
        match s.split_once(':') {
            Some((t, id)) => {
                clauses.push("subject_type = ? AND subject_id = ?".into());
                values.push(t.into());
                values.push(id.into());
            }
            None => {
                clauses.push("subject_type = ?".into());
                values.push(s.into());
            }
        }
    }
    if let Some(h) = filter.since_hours.filter(|h| *h > 0) {
        clauses.push("created_at >= ?".into());
        values.push((now_ms() - i64::from(h) * 3_600_000).into());
    }
    (clauses.join(" AND "), values)
}

/// Jobs matching `filter`, newest first.
#[tracing::instrument(skip_all, err)]
pub async fn list_jobs(
    db: &DatabaseConnection,
    filter: &JobFilter,
    page: u32,
    per_page: u32,
) -> Result<JobPage, DbErr> {
    let per_page = per_page.clamp(1, MAX_PER_PAGE);
    let page = page.max(1);
    let (where_sql, values) = filter_sql(filter);
    let total: i64 = match db::query_one(
        db,
        &format!("SELECT COUNT(*) AS n FROM jobs WHERE {where_sql}"),
        values.clone(),
    )
    .await?
    {
        Some(r) => col(&r, "n")?,
        None => 0,
    };
    let mut page_values = values;
    page_values.push(i64::from(per_page).into());
    page_values.push((i64::from(page - 1) * i64::from(per_page)).into());
    let rows = db::query(
        db,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {where_sql} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"),
        page_values,
    )
    .await?;
    Ok(JobPage {
        jobs: rows
            .iter()
            .map(|r| JobRow::from_query_result(r, ""))
            .collect::<Result<_, _>>()?,
        total,
        page,
        per_page,
    })
}

/// A job with every attempt and the admin actions taken on it.
#[tracing::instrument(skip_all, err)]
pub async fn job_detail(db: &DatabaseConnection, id: i64) -> Result<Option<JobDetail>, DbErr> {
    let Some(r) = db::query_one(
        db,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"),
        vec![id.into()],
    )
    .await?
    else {
        return Ok(None);
    };
    let job = JobRow::from_query_result(&r, "")?;
    let attempts = db::query(
        db,
        "SELECT attempt, started_at, duration_ms, outcome, error FROM job_attempts WHERE job_id = ? ORDER BY attempt, id",
        vec![id.into()],
    )
    .await?
    .iter()
    .map(|a| {
        Ok(JobAttemptRow {
            attempt: col(a, "attempt")?,
            started_at_ms: col(a, "started_at")?,
            duration_ms: col(a, "duration_ms")?,
            outcome: col(a, "outcome")?,
            error: col(a, "error")?,
        })
    })
    .collect::<Result<Vec<_>, DbErr>>()?;
    let audit: Vec<AuditRow> = audit::for_subject(db, "job", &id.to_string()).await?;
    let description = describe(&job);
    Ok(Some(JobDetail {
        job,
        description,
        attempts,
        audit,
    }))
}

/// A plain sentence for what a job does.
pub fn describe(job: &JobRow) -> String {
    let what = crate::jobs::describe_kind(&job.kind);
    format!(
        "{what} ({} {} via {})",
        job.subject_type, job.subject_id, job.integration
    )
}

/// Queue and attempt figures of one integration, read by [`health`].
#[derive(Default)]
struct HealthFigures {
    depth: i64,
    oldest: Option<i64>,
    in_review: i64,
    retrying: i64,
    failures: i64,
    last_success: Option<i64>,
    last_failure: Option<i64>,
}

/// The health of each integration, worst first. Two grouped queries for all integrations (one
/// over the jobs still open, one over the attempts), not seven subqueries per integration: the
/// admin layout's banner and the health page both call this on every admin page view.
#[tracing::instrument(skip_all, err)]
pub async fn health(db: &DatabaseConnection) -> Result<Vec<IntegrationHealth>, DbErr> {
    let now = now_ms();
    let mut figures: std::collections::HashMap<String, HealthFigures> =
        std::collections::HashMap::new();
    for r in db::query(
        db,
        "SELECT integration, \
           SUM(CASE WHEN status IN ('queued', 'running') THEN 1 ELSE 0 END) AS depth, \
           MIN(CASE WHEN status IN ('queued', 'running') AND run_after <= ? THEN created_at END) AS oldest, \
           SUM(CASE WHEN status = 'manual_review' THEN 1 ELSE 0 END) AS in_review, \
           SUM(CASE WHEN status IN ('queued', 'running') AND attempts > 0 AND last_error IS NOT NULL THEN 1 ELSE 0 END) AS retrying \
         FROM jobs WHERE status IN ('queued', 'running', 'manual_review') GROUP BY integration",
        vec![now.into()],
    )
    .await?
    {
        let f = figures.entry(col(&r, "integration")?).or_default();
        f.depth = col(&r, "depth")?;
        f.oldest = col(&r, "oldest")?;
        f.in_review = col(&r, "in_review")?;
        f.retrying = col(&r, "retrying")?;
    }
    for r in db::query(
        db,
        "SELECT j.integration AS integration, \
           SUM(CASE WHEN a.outcome <> 'succeeded' AND a.started_at >= ? THEN 1 ELSE 0 END) AS failures, \
           MAX(CASE WHEN a.outcome = 'succeeded' THEN a.started_at END) AS last_success, \
           MAX(CASE WHEN a.outcome <> 'succeeded' THEN a.started_at END) AS last_failure \
         FROM job_attempts a JOIN jobs j ON j.id = a.job_id GROUP BY j.integration",
        vec![(now - 86_400_000).into()],
    )
    .await?
    {
        let f = figures.entry(col(&r, "integration")?).or_default();
        f.failures = col(&r, "failures")?;
        f.last_success = col(&r, "last_success")?;
        f.last_failure = col(&r, "last_failure")?;
    }
    let mut out = Vec::new();
    for integration in Integration::ALL {
        let name = integration.as_str();
        let HealthFigures {
            depth,
            oldest,
            in_review,
            retrying,
            failures,
            last_success,
            last_failure,
        } = figures.remove(name).unwrap_or_default();
        let failing_now = last_failure.is_some_and(|f| last_success.is_none_or(|s| f > s));
        let (state, reason) = if in_review > 0 {
            ("failing", format!("{in_review} job(s) need manual review"))
        } else if failing_now && retrying > 0 {
            (
                "failing",
                format!("the latest attempts failed; {retrying} job(s) waiting to retry"),
            )
        } else if retrying > 0 || oldest.is_some_and(|o| now - o > 300_000) {
            (
                "degraded",
                format!("{retrying} job(s) retrying; {depth} waiting"),
            )
        } else {
            (
                "healthy",
                if depth > 0 {
                    format!("{depth} job(s) waiting")
                } else {
                    "nothing waiting".into()
                },
            )
        };
        out.push(IntegrationHealth {
            integration: name.into(),
            state: state.into(),
            reason,
            queue_depth: depth,
            oldest_waiting_ms: oldest,
            failures_24h: failures,
            in_review,
            last_success_ms: last_success,
        });
    }
    let rank = |s: &str| match s {
        "failing" => 0,
        "degraded" => 1,
        _ => 2,
    };
    out.sort_by_key(|h| rank(&h.state));
    Ok(out)
}

/// Why an admin action on a job was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no such job")]
    NotFound,
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<ActionError> for model::error::AppError {
    fn from(err: ActionError) -> Self {
        use model::error::AppError;
        match err {
            ActionError::NotFound => AppError::NotFound,
            ActionError::NotAllowed(m) => AppError::Conflict(m),
            ActionError::Db(e) => e.into(),
        }
    }
}

/// "Retry now": a waiting, failed or in-review job runs at once, with a fresh set of attempts
/// when it had reached manual review. Safe to click twice: a job already queued to run now is
/// left as it is; a running or finished job is refused.
#[tracing::instrument(skip_all)]
pub async fn retry_now(db: &DatabaseConnection, id: i64, actor: i64) -> Result<(), ActionError> {
    let txn = db::begin_write(db).await?;
    let status: String = match db::query_one(
        &txn,
        "SELECT status FROM jobs WHERE id = ?",
        vec![id.into()],
    )
    .await?
    {
        Some(r) => col(&r, "status")?,
        None => return Err(ActionError::NotFound),
    };
    match status.as_str() {
        "queued" | "manual_review" => {
            let now = now_ms();
            db::execute(
                &txn,
                "UPDATE jobs SET status = 'queued', run_after = ?, updated_at = ?, \
                 max_attempts = CASE WHEN status = 'manual_review' THEN attempts + max_attempts ELSE max_attempts END \
                 WHERE id = ? AND status IN ('queued', 'manual_review')",
                vec![now.into(), now.into(), id.into()],
            )
            .await?;
            audit::record(
                &txn,
                Some(actor),
                "job.retry",
                "job",
                &id.to_string(),
                &format!("retry now (was {status})"),
            )
            .await?;
        }
        "running" => {
            return Err(ActionError::NotAllowed(
                "the job is running right now".into(),
            ));
        }
        other => {
            return Err(ActionError::NotAllowed(format!(
                "the job is already {}",
                other.replace('_', " ")
            )));
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Retries every failed job matching `filter` (waiting-to-retry or in manual review). Returns how
/// many were rescheduled.
#[tracing::instrument(skip_all, err)]
pub async fn retry_all(
    db: &DatabaseConnection,
    filter: &JobFilter,
    actor: i64,
) -> Result<u64, DbErr> {
    let mut f = filter.clone();
    f.status = Some("failed".into());
    let (where_sql, mut values) = filter_sql(&f);
    let now = now_ms();
    let txn = db::begin_write(db).await?;
    let ids: Vec<i64> = db::query(
        &txn,
        &format!("SELECT id FROM jobs WHERE {where_sql} AND status IN ('queued', 'manual_review')"),
        values.clone(),
    )
    .await?
    .iter()
    .map(|r| col(r, "id"))
    .collect::<Result<_, _>>()?;
    let mut update_values: Vec<Value> = vec![now.into(), now.into()];
    update_values.append(&mut values);
    let n = db::execute(
        &txn,
        &format!(
            "UPDATE jobs SET run_after = ?, updated_at = ?, \
             max_attempts = CASE WHEN status = 'manual_review' THEN attempts + max_attempts ELSE max_attempts END, \
             status = 'queued' WHERE {where_sql} AND status IN ('queued', 'manual_review')"
        ),
        update_values,
    )
    .await?;
    let detail = format!(
        "bulk retry of {} job(s): {}",
        ids.len(),
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    audit::record(
        &txn,
        Some(actor),
        "job.retry_bulk",
        "jobs",
        "filter",
        &detail,
    )
    .await?;
    txn.commit().await?;
    Ok(n)
}

/// Closes a job by hand: `resolved` (the admin dealt with it outside the portal) or `cancelled`
/// (the effect must not happen). Needs a note. Safe to click twice: the second click is refused
/// with the job's current state and changes nothing.
#[tracing::instrument(skip_all)]
pub async fn close(
    db: &DatabaseConnection,
    id: i64,
    actor: i64,
    cancel: bool,
    note: &str,
) -> Result<(), ActionError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(ActionError::NotAllowed(
            "write a short note saying why".into(),
        ));
    }
    let note: String = note.chars().take(500).collect();
    let (new_status, action) = if cancel {
        ("cancelled", "job.cancel")
    } else {
        ("resolved", "job.resolve")
    };
    let txn = db::begin_write(db).await?;
    let now = now_ms();
    let changed = db::execute(
        &txn,
        "UPDATE jobs SET status = ?, finished_at = ?, updated_at = ?, locked_by = NULL, locked_until = NULL \
         WHERE id = ? AND status IN ('queued', 'manual_review')",
        vec![new_status.into(), now.into(), now.into(), id.into()],
    )
    .await?;
    if changed == 0 {
        let status: Option<String> = db::query_one(
            &txn,
            "SELECT status FROM jobs WHERE id = ?",
            vec![id.into()],
        )
        .await?
        .map(|r| col(&r, "status"))
        .transpose()?;
        return Err(match status {
            None => ActionError::NotFound,
            Some(s) => ActionError::NotAllowed(format!(
                "the job is {} and cannot be {new_status} now",
                s.replace('_', " ")
            )),
        });
    }
    audit::record(&txn, Some(actor), action, "job", &id.to_string(), &note).await?;
    txn.commit().await?;
    Ok(())
}

/// Queue depth per integration and status, for `/metrics`.
#[tracing::instrument(skip_all, err)]
pub async fn depth_by_integration(
    db: &DatabaseConnection,
) -> Result<Vec<(String, String, i64)>, DbErr> {
    db::query(
        db,
        "SELECT integration, status, COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running', 'manual_review') GROUP BY integration, status",
        vec![],
    )
    .await?
    .iter()
    .map(|r| Ok((col(r, "integration")?, col(r, "status")?, col(r, "n")?)))
    .collect()
}

/// Failed attempts per integration in the last 24 hours, for `/metrics`.
#[tracing::instrument(skip_all, err)]
pub async fn failures_by_integration(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    db::query(
        db,
        "SELECT j.integration AS integration, COUNT(*) AS n FROM job_attempts a JOIN jobs j ON j.id = a.job_id \
         WHERE a.outcome <> 'succeeded' AND a.started_at >= ? GROUP BY j.integration",
        vec![(now_ms() - 86_400_000).into()],
    )
    .await?
    .iter()
    .map(|r| Ok((col(r, "integration")?, col(r, "n")?)))
    .collect()
}

/// The admin banner: a sentence when something needs an admin, else `None`.
#[tracing::instrument(skip_all, err)]
pub async fn admin_alert(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    let review: i64 = match db::query_one(
        db,
        "SELECT COUNT(*) AS n FROM jobs WHERE status = 'manual_review'",
        vec![],
    )
    .await?
    {
        Some(r) => col(&r, "n")?,
        None => 0,
    };
    let failing: Vec<String> = health(db)
        .await?
        .into_iter()
        .filter(|h| h.state == "failing")
        .map(|h| h.integration)
        .collect();
    Ok(match (review, failing.is_empty()) {
        (0, true) => None,
        (n, true) => Some(format!("{n} integration job(s) need manual review.")),
        (0, false) => Some(format!("Failing: {}.", failing.join(", "))),
        (n, false) => Some(format!(
            "Failing: {}. {n} job(s) need manual review.",
            failing.join(", ")
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_and_stops_at_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_ms: 1_000,
            cap_ms: 10_000,
        };
        assert_eq!(p.delay_ms(1, 0.0, None), 1_000);
        assert_eq!(p.delay_ms(2, 0.0, None), 2_000);
        assert_eq!(p.delay_ms(3, 0.0, None), 4_000);
        assert_eq!(p.delay_ms(5, 0.0, None), 10_000);
        assert_eq!(p.delay_ms(30, 0.0, None), 10_000);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_under_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_ms: 1_000,
            cap_ms: 10_000,
        };
        assert_eq!(p.delay_ms(1, 1.0, None), 1_100);
        assert_eq!(p.delay_ms(1, -1.0, None), 900);
        assert_eq!(p.delay_ms(9, 1.0, None), 10_000);
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_ms: 1_000,
            cap_ms: 10_000,
        };
        assert_eq!(p.delay_ms(1, 0.0, Some(30_000)), 30_000);
        assert_eq!(p.delay_ms(3, 0.0, Some(10)), 4_000);
    }
}
