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
    /// The worker holding a `RUNNING` job (none while it waits or once it ended).
    pub claimed_by: Option<String>,
    /// The holder's last sign of life; a running job whose heartbeat is too old is taken over.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// A waiting job is not claimed before this instant (backoff after a transient error); none: at once.
    pub run_after: Option<DateTime<Utc>>,
    /// The job this one is a sub-job of.
    pub parent_id: Option<String>,
    /// What a successful job produced (a JSON value), none before.
    pub result: Option<serde_json::Value>,
    /// A caller asked to cancel the job while it ran; its worker stops at its next heartbeat.
    pub cancel_requested: bool,
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
            claimed_by: None,
            heartbeat_at: None,
            run_after: None,
            parent_id: None,
            result: None,
            cancel_requested: false,
        }
    }

    /// The same job as a sub-job of `parent_id`.
    pub fn with_parent(mut self, parent_id: &str) -> Job {
        self.parent_id = Some(parent_id.to_string());
        self
    }
}

/// Which jobs [`crate::JobRepository::list`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only jobs of this project.
    pub project_id: Option<String>,
    /// Only jobs in one of these statuses (any status when empty).
    pub statuses: Vec<JobStatus>,
    /// Only sub-jobs of this job.
    pub parent_id: Option<String>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// The end a worker gives a job it holds ([`crate::JobRepository::finish`]).
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// `SUCCESS` with this result; progress becomes 100 and any earlier error is cleared.
    Success { result: serde_json::Value },
    /// `FAIL` with an error code and a human reason.
    Fail { code: String, reason: String },
    /// Back to `INIT` (claimable again from `run_after`), recording the error that caused the retry.
    Retry { run_after: DateTime<Utc>, code: String, reason: String },
    /// Back to `INIT` at once, without an error: the worker is stopping (shutdown) and hands the job back.
    Release,
}

/// A change of an image stored in the same transaction as a new job
/// ([`crate::JobRepository::create_with_image`]).
#[derive(Debug, Clone, Copy)]
pub enum ImageChange<'a> {
    /// Insert this new image (as [`crate::ImageRepository::create`]).
    Create(&'a crate::Image),
    /// Replace the stored image if its status is one of `expected` (as [`crate::ImageRepository::save`]).
    Save { image: &'a crate::Image, expected: &'a [crate::ImageStatus] },
}
