use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::CatalogError;

/// Where a job is in its life (the IMS API's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Init,
    Running,
    Success,
    Fail,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [JobStatus::Init, JobStatus::Running, JobStatus::Success, JobStatus::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Init => "INIT",
            JobStatus::Running => "RUNNING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Fail => "FAIL",
        }
    }

    /// SUCCESS and FAIL are final.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Fail)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| CatalogError::Invalid(format!("invalid job status {s:?}")))
    }
}

/// A durable unit of long work (DESIGN section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// What the job does, e.g. `batchAddMembers`.
    pub job_type: String,
    /// The project that asked for it (only it, and admins, may see the job).
    pub project_id: String,
    pub status: JobStatus,
    /// Percent done, 0 to 100.
    pub progress: f64,
    /// What the job works on and what it produced, as the IMS job API shows it (a JSON object).
    pub entities: serde_json::Value,
    /// The job's input, enough for a runner to (re)start it.
    pub params: serde_json::Value,
    pub error_code: Option<String>,
    pub fail_reason: Option<String>,
    /// How many times a runner started it.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub begin_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl Job {
    /// A new job in `INIT`.
    pub fn new(id: String, job_type: &str, project_id: &str, params: serde_json::Value, now: DateTime<Utc>) -> Job {
        Job {
            id,
            job_type: job_type.to_string(),
            project_id: project_id.to_string(),
            status: JobStatus::Init,
            progress: 0.0,
            entities: serde_json::json!({}),
            params,
            error_code: None,
            fail_reason: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            begin_time: None,
            end_time: None,
        }
    }
}
