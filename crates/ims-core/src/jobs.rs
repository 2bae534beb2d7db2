//! Jobs: durable records of long work, as the IMS job API shows them.

use ims_catalog::{CatalogError, Job, JobStatus};
use serde_json::Value;
use uuid::Uuid;

use crate::{CoreError, Policy, RequestContext, Result};

/// Job use cases.
#[derive(Clone)]
pub struct JobService {
    catalog: ims_catalog::Catalog,
}

impl JobService {
    pub fn new(catalog: ims_catalog::Catalog) -> JobService {
        JobService { catalog }
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

    /// Records a new `INIT` job of the caller's project.
    pub(crate) async fn create(&self, ctx: &RequestContext, job_type: &str, params: Value) -> Result<Job> {
        let caller = Policy::require_caller(ctx)?;
        let id = Uuid::new_v4().simple().to_string();
        let job = Job::new(id, job_type, &caller.project_id, params, crate::now());
        self.catalog.jobs.create(&job, &ctx.event("job.create", format!("job:{}", job.id))).await?;
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
