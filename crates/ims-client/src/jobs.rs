//! Jobs (`/jobs/v1/...`): long work (imports, exports, copies) and its progress.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Result};

/// A job as `/jobs/v1` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: String,
    pub job_type: String,
    pub project_id: String,
    /// INIT, RUNNING, SUCCESS or FAIL.
    pub status: String,
    /// Percent done.
    pub progress: f64,
    pub entities: Value,
    pub result: Option<Value>,
    pub error_code: Option<String>,
    pub fail_reason: Option<String>,
    pub attempts: i64,
    pub parent_id: Option<String>,
    pub cancel_requested: bool,
    /// The worker (`<node id>/<n>`) running the job; none while it waits and after it ended.
    #[serde(default)]
    pub worker: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub begin_time: Option<String>,
    pub end_time: Option<String>,
}

impl JobInfo {
    /// SUCCESS or FAIL.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "SUCCESS" | "FAIL")
    }
}

#[derive(Deserialize)]
struct Jobs {
    jobs: Vec<JobInfo>,
}

#[derive(Deserialize)]
struct OneJob {
    job: JobInfo,
}

impl Client {
    /// `GET /jobs/v1`: the caller's project's jobs (every project's with `all_projects`, admin), newest
    /// first, optionally only those in `status` (comma-separated statuses).
    pub async fn list_jobs(&self, status: Option<&str>, all_projects: bool, limit: Option<u32>) -> Result<Vec<JobInfo>> {
        let mut url = self.url(&["jobs", "v1"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(status) = status {
                q.append_pair("status", status);
            }
            if all_projects {
                q.append_pair("all_projects", "true");
            }
            if let Some(limit) = limit {
                q.append_pair("limit", &limit.to_string());
            }
        }
        let body: Jobs = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.jobs)
    }

    /// `GET /jobs/v1/{job_id}`.
    pub async fn get_job(&self, job_id: &str) -> Result<JobInfo> {
        let body: OneJob = self.execute_json(self.request(Method::GET, self.url(&["jobs", "v1", job_id]))).await?;
        Ok(body.job)
    }

    /// `POST /jobs/v1/{job_id}/cancel` (202): a waiting job fails at once, a running one shortly.
    pub async fn cancel_job(&self, job_id: &str) -> Result<JobInfo> {
        let url = self.url(&["jobs", "v1", job_id, "cancel"]);
        let body: OneJob = self.execute_json(self.request(Method::POST, url)).await?;
        Ok(body.job)
    }

    /// Polls the job every `every` until it is final or `timeout` passes, calling `on_progress` with each
    /// state seen; returns the last state (final unless the timeout passed).
    pub async fn wait_job(
        &self,
        job_id: &str,
        every: Duration,
        timeout: Duration,
        mut on_progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.get_job(job_id).await?;
            on_progress(&job);
            if job.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::time::sleep(every).await;
        }
    }
}
