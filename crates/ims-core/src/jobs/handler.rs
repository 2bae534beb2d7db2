//! What a job type plugs into the runner: a [`JobHandler`], registered by type in [`JobHandlers`].
//!
//! A handler is the code of one job type (an export, an import, a Glance import task, ...). The runner
//! claims a job, hands it to the handler of its `job_type` with a [`JobContext`], and records what the
//! handler returns. Handlers must be restartable: after a crash, a take-over or a transient error the
//! same job is run again from the start (with `attempts` one higher), so a handler either finishes what
//! an earlier attempt left or redoes it, and never assumes it runs for the first time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ims_catalog::Job;
use serde_json::Value;
use tokio::sync::watch;

/// How a job attempt ended other than with success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// The job cannot succeed (bad input, wrong state): it fails with this IMS error code and human reason.
    #[error("{code}: {reason}")]
    Failed { code: String, reason: String },
    /// Something that may work later failed (a backend was unreachable): the runner retries the job after
    /// a backoff, up to its attempt limit, then fails it with `code` and `reason`.
    #[error("{code} (transient): {reason}")]
    Transient { code: String, reason: String },
    /// The handler stopped because its [`JobContext`] was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn failed(code: &str, reason: impl Into<String>) -> JobError {
        JobError::Failed { code: code.to_string(), reason: reason.into() }
    }

    pub fn transient(code: &str, reason: impl Into<String>) -> JobError {
        JobError::Transient { code: code.to_string(), reason: reason.into() }
    }
}

/// The code of one job type.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the work of `job` (its `params` say what) and returns its result, stored on the job as it
    /// succeeds. Reports progress and entities through `ctx`, and should check `ctx.is_cancelled()`
    /// between steps; the runner also stops awaiting it once the context is cancelled. Must be restartable
    /// (see the module documentation).
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<Value, JobError>;

    /// Called once after the job failed for good (an error, the attempt limit, or a cancellation), to
    /// undo what the failed job leaves behind (e.g. an importing image back to `queued`). Errors are
    /// logged only. The default does nothing.
    async fn on_failed(&self, _job: &Job, _code: &str, _reason: &str) {}
}

/// Every job type a runner can run, by `job_type`.
#[derive(Clone, Default)]
pub struct JobHandlers {
    by_type: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl JobHandlers {
    pub fn new() -> JobHandlers {
        JobHandlers::default()
    }

    /// Runs jobs of `job_type` with `handler` (replacing any earlier handler of that type).
    pub fn register(&mut self, job_type: &str, handler: Arc<dyn JobHandler>) {
        self.by_type.insert(job_type.to_string(), handler);
    }

    /// The handler of `job_type`, if registered.
    pub fn get(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.by_type.get(job_type).cloned()
    }

    /// The registered job types (the runner claims only these).
    pub fn job_types(&self) -> Vec<String> {
        self.by_type.keys().cloned().collect()
    }
}

/// Why a running job must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A caller cancelled the job: it fails.
    Cancelled,
    /// The node shuts down: the job goes back to the queue for another worker.
    Shutdown,
    /// The node drains: the job goes back to the queue for a node that does not.
    Drain,
    /// Another worker took the job over (this one was presumed dead): nothing more is recorded.
    Lost,
}

/// What a running handler sees of the runner: progress reporting and cancellation.
#[derive(Clone)]
pub struct JobContext {
    pub(super) progress: Arc<Mutex<Reported>>,
    pub(super) stop: watch::Receiver<Option<StopReason>>,
}

/// Progress and entities reported since the last heartbeat.
#[derive(Debug, Default)]
pub(super) struct Reported {
    pub(super) percent: Option<f64>,
    pub(super) entities: Option<Value>,
}

impl JobContext {
    /// Records the percent done (clamped to 0..=100); stored with the next heartbeat.
    pub fn set_progress(&self, percent: f64) {
        let percent = if percent.is_nan() { 0.0 } else { percent.clamp(0.0, 100.0) };
        self.lock().percent = Some(percent);
    }

    /// Records the job's entities (what the IMS job API shows); stored with the next heartbeat.
    pub fn set_entities(&self, entities: Value) {
        self.lock().entities = Some(entities);
    }

    /// Whether the job must stop (cancelled, node shutting down, or taken over).
    pub fn is_cancelled(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// `Err(JobError::Cancelled)` once the job must stop: `ctx.check()?` between steps.
    pub fn check(&self) -> Result<(), JobError> {
        if self.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Completes when the job must stop.
    pub async fn cancelled(&self) {
        let mut stop = self.stop.clone();
        // An error means the runner dropped the sender: it is gone, so stop too.
        let _ = stop.wait_for(|s| s.is_some()).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reported> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}
