//! `system.noop`: does nothing and succeeds. It measures the queue itself (claim, run, record the
//! attempt) without any integration's cost: the job-throughput benchmark enqueues it, and an
//! operator can enqueue one to check that a worker is taking jobs.

use async_trait::async_trait;

use crate::worker::{ClaimedJob, Handler, JobError};

pub struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _job: &ClaimedJob) -> Result<(), JobError> {
        Ok(())
    }
}
