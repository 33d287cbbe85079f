//! `system.noop`: does nothing and succeeds. It measures the queue itself (claim, run, record the
//! attempt) without any integration's cost: the job-throughput benchmark enqueues it, and an
//! operator can enqueue one to check that a worker is taking jobs.

use async_trait::async_trait;

use domain::jobs;
use domain::worker::{ClaimedJob, JobError, JobHandler};

pub struct Noop;

#[async_trait]
impl JobHandler<jobs::Noop> for Noop {
    async fn run(&self, _payload: jobs::Noop, _job: &ClaimedJob) -> Result<(), JobError> {
        Ok(())
    }
}
