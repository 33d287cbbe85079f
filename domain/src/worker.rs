//! The worker: claims due jobs from the integration ledger with a lease, runs their handlers with
//! a timeout, and records every attempt.
//!
//! Guarantees (see ARCHITECTURE.md): a job runs at least once after its transaction commits;
//! handlers are idempotent so a rerun repeats nothing that matters; on PostgreSQL several worker
//! processes never run one job at once (`FOR UPDATE SKIP LOCKED` in the claim); on SQLite one
//! process works the queue (the claim runs in a `BEGIN IMMEDIATE` transaction). A worker killed
//! mid-job loses its lease when `lease_secs` pass and the job runs again. A handler that errors,
//! panics or hangs past its timeout is retried with backoff or moved to manual review; the worker
//! keeps going and other jobs are not held up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::db::{self, col, now_ms};
use crate::jobs::Job;
use crate::ledger::Integration;
use async_trait::async_trait;
use rand::Rng;
use sea_orm::{DatabaseConnection, DbBackend, DbErr};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A job leased to this worker.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub integration: Integration,
    pub subject_type: String,
    pub subject_id: String,
    pub payload: String,
    /// This attempt's number (1 for the first run).
    pub attempt: i32,
    pub max_attempts: i32,
}

impl ClaimedJob {
    /// Decodes the payload; a payload that no longer parses (after an upgrade, say) is a permanent
    /// error with a clear message.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_str(&self.payload).map_err(|e| {
            JobError::permanent(format!(
                "the job's payload cannot be read by this version ({e}); fix or cancel the job"
            ))
        })
    }
}

/// How a handler failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobError {
    /// Worth retrying (timeouts, 4xx SMTP replies, HTTP 429 and 5xx). `retry_after_ms` carries a
    /// server's `Retry-After`.
    Transient {
        message: String,
        retry_after_ms: Option<i64>,
    },
    /// Retrying cannot help (bad address, validation error): straight to manual review.
    Permanent { message: String },
}

impl JobError {
    pub fn transient(message: impl Into<String>) -> Self {
        JobError::Transient {
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent {
            message: message.into(),
        }
    }
}

impl From<DbErr> for JobError {
    fn from(e: DbErr) -> Self {
        JobError::transient(format!("database error: {e}"))
    }
}

/// Runs one kind of job. Must be idempotent: it may run again after a crash or a lost lease.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError>;
}

/// Runs the jobs of kind `J`, given their payload already read. Must be idempotent.
#[async_trait]
pub trait JobHandler<J: Job>: Send + Sync {
    async fn run(&self, payload: J, job: &ClaimedJob) -> Result<(), JobError>;
}

/// A [`JobHandler`] as the registry stores it: reads the payload, then runs.
struct Typed<J, H> {
    handler: H,
    kind: std::marker::PhantomData<fn() -> J>,
}

#[async_trait]
impl<J: Job, H: JobHandler<J>> Handler for Typed<J, H> {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let payload: J = job.payload()?;
        self.handler.run(payload, job).await
    }
}

/// The handlers, by job kind.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    /// Registers the handler of the jobs of kind `J`.
    pub fn add<J: Job>(&mut self, handler: impl JobHandler<J> + 'static) -> &mut Self {
        self.handlers.insert(
            J::KIND,
            Arc::new(Typed {
                handler,
                kind: std::marker::PhantomData,
            }),
        );
        self
    }

    /// Registers a handler that reads its own payload, by kind (tests script handlers this way).
    pub fn register(&mut self, kind: &'static str, handler: impl Handler + 'static) -> &mut Self {
        self.handlers.insert(kind, Arc::new(handler));
        self
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<_> = self.handlers.keys().copied().collect();
        k.sort_unstable();
        k
    }
}

/// Worker settings (from configuration; tests shorten them).
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub job_timeout: Duration,
    pub lease: Duration,
    pub shutdown_grace: Duration,
}

/// A worker: one per process.
#[derive(Clone)]
pub struct Worker {
    db: DatabaseConnection,
    registry: Arc<Registry>,
    config: WorkerConfig,
    /// Unique per process and start: `hostname:pid:random`.
    id: Arc<str>,
    in_flight: Arc<AtomicUsize>,
    /// Called after each poll with nothing to do; lets `serve` hook housekeeping in.
    on_tick: Option<Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>>,
}

/// What happened to one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    TransientError,
    PermanentError,
    Panicked,
    TimedOut,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::TransientError => "transient_error",
            Outcome::PermanentError => "permanent_error",
            Outcome::Panicked => "panicked",
            Outcome::TimedOut => "timed_out",
        }
    }
}

impl Worker {
    pub fn new(db: DatabaseConnection, registry: Registry, config: WorkerConfig) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let id = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::thread_rng().r#gen::<u32>()
        );
        Self {
            db,
            registry: Arc::new(registry),
            config,
            id: id.into(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            on_tick: None,
        }
    }

    /// Sets a housekeeping hook run about once per poll interval.
    pub fn with_tick(
        mut self,
        f: impl Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        self.on_tick = Some(Arc::new(f));
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets in-flight jobs finish within
    /// the grace period, and hands back the leases of any still running.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, kinds = ?self.registry.kinds(), "worker started");
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut db_failures: u32 = 0;
        let mut last_tick = Instant::now() - Duration::from_secs(3600);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            if last_tick.elapsed() >= Duration::from_secs(5) {
                last_tick = Instant::now();
                if let Err(e) = self.rescue_expired().await {
                    tracing::warn!(error = %e, "could not rescue expired leases");
                }
                if let Some(tick) = &self.on_tick {
                    tick().await;
                }
            }
            let free = self.config.concurrency.saturating_sub(tasks.len());
            let claimed = if free > 0 {
                match self.claim(free).await {
                    Ok(jobs) => {
                        db_failures = 0;
                        jobs
                    }
                    Err(e) => {
                        // The database may be restarting: back off, keep the process alive.
                        db_failures = db_failures.saturating_add(1);
                        let wait =
                            Duration::from_millis((250u64 << db_failures.min(6)).min(10_000));
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "worker cannot reach the database");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(wait) => continue,
                        }
                    }
                }
            } else {
                Vec::new()
            };
            let got = claimed.len();
            for job in claimed {
                let w = self.clone();
                tasks.spawn(async move { w.execute(job).await });
            }
            if got == 0 || got < free {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                }
            }
        }
        tracing::info!(worker = %self.id, in_flight = tasks.len(), "worker stopping");
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            match self.release_leases().await {
                Ok(n) => tracing::warn!(
                    released = n,
                    "stopped before some jobs finished; they were handed back to the queue"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "could not hand back leases; they will expire")
                }
            }
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// Claims and runs every due job until none is left (tests and `stoep worker --once`).
    pub async fn drain(&self) -> Result<usize, DbErr> {
        let mut total = 0;
        loop {
            self.rescue_expired().await?;
            let jobs = self.claim(self.config.concurrency).await?;
            if jobs.is_empty() {
                return Ok(total);
            }
            total += jobs.len();
            let mut set = JoinSet::new();
            for job in jobs {
                let w = self.clone();
                set.spawn(async move { w.execute(job).await });
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// Leases up to `n` due jobs to this worker.
    pub async fn claim(&self, n: usize) -> Result<Vec<ClaimedJob>, DbErr> {
        let now = now_ms();
        let lease_until = now + self.config.lease.as_millis() as i64;
        let backend = self.db.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', locked_by = ?, locked_until = ?, attempts = attempts + 1, updated_at = ? \
             WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= ? ORDER BY run_after, id LIMIT ?{lock}) \
             RETURNING id, kind, integration, subject_type, subject_id, payload, attempts, max_attempts"
        );
        let txn = db::begin_write(&self.db).await?;
        let rows = db::query(
            &txn,
            &sql,
            vec![
                self.id.to_string().into(),
                lease_until.into(),
                now.into(),
                now.into(),
                (n as i64).into(),
            ],
        )
        .await?;
        txn.commit().await?;
        rows.iter()
            .map(|r| {
                let integration: String = col(r, "integration")?;
                Ok(ClaimedJob {
                    id: col(r, "id")?,
                    kind: col(r, "kind")?,
                    integration: Integration::parse(&integration).unwrap_or(Integration::System),
                    subject_type: col(r, "subject_type")?,
                    subject_id: col(r, "subject_id")?,
                    payload: col(r, "payload")?,
                    attempt: col(r, "attempts")?,
                    max_attempts: col(r, "max_attempts")?,
                })
            })
            .collect()
    }

    /// Returns jobs whose lease expired (their worker died or hung) to the queue, recording the
    /// lost attempt; a job out of attempts goes to manual review.
    pub async fn rescue_expired(&self) -> Result<u64, DbErr> {
        let now = now_ms();
        let txn = db::begin_write(&self.db).await?;
        let expired = db::query(
            &txn,
            "SELECT id, attempts, max_attempts, locked_by, locked_until FROM jobs WHERE status = 'running' AND locked_until < ?",
            vec![now.into()],
        )
        .await?;
        let mut n = 0;
        for r in &expired {
            let id: i64 = col(r, "id")?;
            let attempts: i32 = col(r, "attempts")?;
            let max: i32 = col(r, "max_attempts")?;
            let by: Option<String> = col(r, "locked_by")?;
            let until: Option<i64> = col(r, "locked_until")?;
            let message = format!(
                "worker {} stopped responding and its lease expired; the job will run again",
                by.clone().unwrap_or_default()
            );
            let (status, run_after) = if attempts >= max {
                ("manual_review", now)
            } else {
                ("queued", now)
            };
            let changed = db::execute(
                &txn,
                "UPDATE jobs SET status = ?, run_after = ?, locked_by = NULL, locked_until = NULL, last_error = ?, updated_at = ? \
                 WHERE id = ? AND status = 'running' AND locked_until < ?",
                vec![status.into(), run_after.into(), message.clone().into(), now.into(), id.into(), now.into()],
            )
            .await?;
            if changed == 1 {
                n += 1;
                let started = until.unwrap_or(now) - self.config.lease.as_millis() as i64;
                db::execute(
                    &txn,
                    "INSERT INTO job_attempts (job_id, attempt, worker, started_at, duration_ms, outcome, error) VALUES (?, ?, ?, ?, ?, 'lease_expired', ?)",
                    vec![id.into(), attempts.into(), by.unwrap_or_default().into(), started.into(), (now - started).into(), message.into()],
                )
                .await?;
            }
        }
        txn.commit().await?;
        Ok(n)
    }

    /// Hands back this worker's running jobs without counting the interrupted attempt.
    async fn release_leases(&self) -> Result<u64, DbErr> {
        db::execute(
            &self.db,
            "UPDATE jobs SET status = 'queued', locked_by = NULL, locked_until = NULL, attempts = attempts - 1, run_after = ?, updated_at = ? \
             WHERE status = 'running' AND locked_by = ?",
            vec![now_ms().into(), now_ms().into(), self.id.to_string().into()],
        )
        .await
    }

    /// Runs one claimed job and records the outcome.
    pub async fn execute(&self, job: ClaimedJob) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let started_ms = now_ms();
        let started = Instant::now();
        let span = tracing::info_span!("job", id = job.id, kind = %job.kind, attempt = job.attempt);
        let result = match self.registry.handlers.get(job.kind.as_str()).cloned() {
            None => Err((
                Outcome::PermanentError,
                JobError::permanent(format!(
                    "no handler for job kind {:?} in this version of the portal",
                    job.kind
                )),
            )),
            Some(handler) => {
                let j = job.clone();
                let handle = tokio::spawn(tracing::Instrument::instrument(
                    async move { handler.run(&j).await },
                    span.clone(),
                ));
                let abort = handle.abort_handle();
                match tokio::time::timeout(self.config.job_timeout, handle).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e @ JobError::Permanent { .. }))) => {
                        Err((Outcome::PermanentError, e))
                    }
                    Ok(Ok(Err(e))) => Err((Outcome::TransientError, e)),
                    Ok(Err(join)) => {
                        let msg = if join.is_panic() {
                            "the handler crashed (panic); see the server log"
                        } else {
                            "the handler was cancelled"
                        };
                        Err((Outcome::Panicked, JobError::transient(msg)))
                    }
                    Err(_) => {
                        abort.abort();
                        Err((
                            Outcome::TimedOut,
                            JobError::transient(format!(
                                "timed out after {} s",
                                self.config.job_timeout.as_secs()
                            )),
                        ))
                    }
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let (outcome, error) = match result {
            Ok(()) => (Outcome::Succeeded, None),
            Err((o, e)) => (o, Some(e)),
        };
        let _enter = span.enter();
        match &error {
            None => tracing::info!(duration_ms, "job succeeded"),
            Some(e) => {
                tracing::warn!(duration_ms, outcome = outcome.as_str(), error = ?e, "job failed")
            }
        }
        drop(_enter);
        // Recording the outcome is retried: losing it would rerun an effect that already happened.
        for attempt in 0..5u32 {
            match self
                .finish(&job, outcome, error.as_ref(), started_ms, duration_ms)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(job = job.id, error = %e, "could not record the job's outcome; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    async fn finish(
        &self,
        job: &ClaimedJob,
        outcome: Outcome,
        error: Option<&JobError>,
        started_ms: i64,
        duration_ms: i64,
    ) -> Result<(), DbErr> {
        let now = now_ms();
        let txn = db::begin_write(&self.db).await?;
        let message = error.map(|e| match e {
            JobError::Transient { message, .. } | JobError::Permanent { message } => {
                clean_error(message)
            }
        });
        let (status, run_after, finished) = match (outcome, error) {
            (Outcome::Succeeded, _) => ("succeeded", now, Some(now)),
            (Outcome::PermanentError, _) => ("manual_review", now, None),
            (_, e) if job.attempt >= job.max_attempts => {
                let _ = e;
                ("manual_review", now, None)
            }
            (_, e) => {
                let retry_after = match e {
                    Some(JobError::Transient { retry_after_ms, .. }) => *retry_after_ms,
                    _ => None,
                };
                let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
                let delay = job
                    .integration
                    .policy()
                    .delay_ms(job.attempt, jitter, retry_after);
                ("queued", now + delay, None)
            }
        };
        let changed = db::execute(
            &txn,
            "UPDATE jobs SET status = ?, run_after = ?, finished_at = ?, last_error = ?, locked_by = NULL, locked_until = NULL, updated_at = ? \
             WHERE id = ? AND status = 'running' AND locked_by = ?",
            vec![status.into(), run_after.into(), finished.into(), message.clone().into(), now.into(), job.id.into(), self.id.to_string().into()],
        )
        .await?;
        if changed == 0 {
            // The lease expired while the handler ran and the job was rescued: the other run's
            // outcome is the one that counts. Record this attempt for the history all the same.
            tracing::warn!(
                job = job.id,
                "finished after losing the lease; outcome recorded as history only"
            );
        }
        db::execute(
            &txn,
            "INSERT INTO job_attempts (job_id, attempt, worker, started_at, duration_ms, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![job.id.into(), job.attempt.into(), self.id.to_string().into(), started_ms.into(), duration_ms.into(), outcome.as_str().into(), message.into()],
        )
        .await?;
        txn.commit().await
    }
}

/// Keeps error text readable and bounded: one line of at most 500 characters.
fn clean_error(message: &str) -> String {
    let one_line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.chars().take(500).collect()
}
