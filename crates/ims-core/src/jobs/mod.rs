//! Jobs: durable records of long work, as the IMS job API shows them, and the runner that executes them.
//!
//! Use cases enqueue a job (alone, or in one transaction with the image change that asks for it) through
//! [`JobService`]; a node's [`JobRunner`] claims and runs it with the [`JobHandler`] registered for its
//! type in [`JobHandlers`]. New kinds of long work (Glance import tasks, ...) add a handler and register
//! it; nothing else in the runner changes.

mod handler;
mod runner;
#[cfg(test)]
mod tests;

use ims_catalog::{CatalogError, ImageChange, Job, JobFilter, JobStatus};
use serde_json::Value;
use uuid::Uuid;

use crate::{CoreError, Policy, RequestContext, Result};

pub use handler::{JobContext, JobError, JobHandler, JobHandlers, StopReason};
pub use runner::{JobObserver, JobRunner, JobWaker, RunnerSettings, RunningJobs, CANCELLED_CODE, INTERNAL_CODE};

/// Most jobs one list returns.
pub const MAX_JOB_LIST: u32 = 1000;

/// Job use cases.
#[derive(Clone)]
pub struct JobService {
    catalog: ims_catalog::Catalog,
    waker: JobWaker,
}

impl JobService {
    pub fn new(catalog: ims_catalog::Catalog) -> JobService {
        JobService { catalog, waker: JobWaker::default() }
    }

    /// Wakes this node's runner when a job is enqueued here; give it to [`JobRunner::new`].
    pub fn waker(&self) -> JobWaker {
        self.waker.clone()
    }

    /// A job of the caller's project (any job for admins); others' jobs are `NotFound`.
    pub async fn get(&self, ctx: &RequestContext, id: &str) -> Result<Job> {
        let caller = Policy::require_caller(ctx)?;
        let not_found = || CoreError::NotFound(format!("Job {id} not found"));
        let job = self.catalog.jobs.get(id).await.map_err(|e| match e {
            CatalogError::NotFound(_) => not_found(),
            other => other.into(),
        })?;
        if job.project_id != caller.project_id && !caller.is_admin() {
            return Err(not_found());
        }
        Ok(job)
    }

    /// The caller's project's jobs (every project's for admins with `all_projects`), newest first,
    /// optionally only those in `statuses` or the sub-jobs of `parent_id`, at most `limit` (capped).
    pub async fn list(
        &self,
        ctx: &RequestContext,
        statuses: Vec<JobStatus>,
        parent_id: Option<String>,
        all_projects: bool,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let caller = Policy::require_caller(ctx)?;
        if all_projects && !caller.is_admin() {
            return Err(CoreError::Forbidden("only admins list the jobs of every project".into()));
        }
        let filter = JobFilter {
            project_id: (!all_projects).then(|| caller.project_id.clone()),
            statuses,
            parent_id,
            limit: limit.clamp(1, MAX_JOB_LIST),
        };
        Ok(self.catalog.jobs.list(&filter).await?)
    }

    /// Cancels a job of the caller's project (any for admins): a waiting job fails at once, a running
    /// one stops at its worker's next heartbeat. `Conflict` if it already ended.
    pub async fn cancel(&self, ctx: &RequestContext, id: &str) -> Result<Job> {
        let job = self.get(ctx, id).await?;
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("readers cannot cancel jobs".into()));
        }
        let reason = format!("cancelled by {}", caller.user_name);
        self.catalog.jobs.request_cancel(&job.id, CANCELLED_CODE, &reason, crate::now()).await.map_err(|e| match e {
            CatalogError::Conflict(_) => CoreError::Conflict(format!("job {id} already ended ({})", job.status)),
            other => other.into(),
        })
    }

    /// A new `INIT` job of the caller's project with `params` and `entities` (not stored yet).
    pub fn new_job(&self, ctx: &RequestContext, job_type: &str, params: Value, entities: Value) -> Result<Job> {
        let caller = Policy::require_caller(ctx)?;
        let id = Uuid::new_v4().simple().to_string();
        // Full precision: jobs list newest first, and several are often made within a second.
        let mut job = Job::new(id, job_type, &caller.project_id, params, chrono::Utc::now());
        job.entities = entities;
        Ok(job)
    }

    /// Enqueues `job` for the runner.
    pub async fn enqueue(&self, ctx: &RequestContext, job: &Job) -> Result<()> {
        self.catalog.jobs.create(job, &ctx.event("job.create", format!("job:{}", job.id))).await?;
        log_enqueued(ctx, job);
        self.waker.wake();
        Ok(())
    }

    /// Enqueues `job` and applies `change` to an image in one transaction (both or neither).
    pub async fn enqueue_with_image(&self, ctx: &RequestContext, job: &Job, change: ImageChange<'_>) -> Result<()> {
        let event = ctx.event(&format!("job.create.{}", job.job_type), format!("job:{}", job.id));
        self.catalog.jobs.create_with_image(job, change, &event).await?;
        log_enqueued(ctx, job);
        self.waker.wake();
        Ok(())
    }

    /// Records a new `INIT` job of the caller's project, run by the caller itself (not the runner).
    pub(crate) async fn create(&self, ctx: &RequestContext, job_type: &str, params: Value) -> Result<Job> {
        let job = self.new_job(ctx, job_type, params, serde_json::json!({}))?;
        self.catalog.jobs.create(&job, &ctx.event("job.create", format!("job:{}", job.id))).await?;
        log_enqueued(ctx, &job);
        Ok(job)
    }

    /// Marks the job running (one more attempt).
    pub(crate) async fn start(&self, job: &mut Job) -> Result<()> {
        let now = crate::now();
        job.status = JobStatus::Running;
        job.attempts += 1;
        job.begin_time = Some(now);
        job.updated_at = now;
        Ok(self.catalog.jobs.update(job).await?)
    }

    /// Ends the job: `SUCCESS` without an error, else `FAIL` with its code and reason.
    pub(crate) async fn finish(&self, job: &mut Job, error: Option<(String, String)>) -> Result<()> {
        let now = crate::now();
        job.progress = 100.0;
        match error {
            None => job.status = JobStatus::Success,
            Some((code, reason)) => {
                job.status = JobStatus::Fail;
                job.error_code = Some(code);
                job.fail_reason = Some(reason);
            }
        }
        job.end_time = Some(now);
        job.updated_at = now;
        Ok(self.catalog.jobs.update(job).await?)
    }
}

/// Logs a new job with the id of the request that made it: the runner's lines name the job only, so this
/// line ties a job's run to its request.
fn log_enqueued(ctx: &RequestContext, job: &Job) {
    tracing::info!(job = %job.id, job_type = %job.job_type, request_id = %ctx.request_id, "job enqueued");
}
