//! The job runner: N workers per node claiming jobs from the catalog's queue (DESIGN section 5).
//!
//! Each worker loops: claim the oldest claimable job of a registered type, run its handler while a
//! heartbeat task records progress every `heartbeat_interval` and watches for cancellation, then record
//! the outcome. A transient error puts the job back in the queue after an exponential backoff; a job
//! whose worker stopped heartbeating for `stale_after` (its node died) is handed back to the queue by any
//! node's reaper and claimed again. On shutdown, running jobs are stopped and handed back.
//!
//! The runner also keeps the node registered in the catalog (`nodes`), heartbeating it with whether it runs
//! a job. An operator drains a node through the catalog: once its heartbeat sees the node draining, its
//! workers claim nothing more and its running jobs are stopped and handed back to the queue at once (not
//! left to finish: a drain must not wait for an hour-long conversion), so that other nodes take them; the
//! first heartbeat after that with no job running marks the node drained.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use ims_catalog::{Catalog, CatalogError, Job, JobOutcome, Node, NodeState};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::handler::{JobContext, JobError, JobHandlers, Reported, StopReason};

/// The error code of a job cancelled by a caller.
pub const CANCELLED_CODE: &str = "IMG.0409";
/// The error code of a job whose type no handler knows or whose handler failed unexpectedly.
pub const INTERNAL_CODE: &str = "IMG.0500";
/// A node silent for this long is removed from the catalog's node list by the other nodes.
pub const SILENT_NODE_FORGOTTEN_AFTER: Duration = Duration::from_secs(3600);

/// How a node runs jobs.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Jobs run at once on this node (0: the node runs none).
    pub workers: usize,
    /// How often an idle worker looks for work when nobody woke it.
    pub poll_interval: Duration,
    /// How often a running job's heartbeat (and progress) is stored.
    pub heartbeat_interval: Duration,
    /// A running job without a heartbeat for this long is taken over.
    pub stale_after: Duration,
    /// Attempts before a job that keeps failing transiently fails for good.
    pub max_attempts: i64,
    /// Delay before the first retry; doubled for each further attempt, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Default for RunnerSettings {
    fn default() -> RunnerSettings {
        RunnerSettings {
            workers: 2,
            poll_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            max_attempts: 5,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
        }
    }
}

impl RunnerSettings {
    /// The wait before retry number `attempts` (1 after the first failed attempt).
    pub fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.retry_base.saturating_mul(1u32 << doublings.min(20)).min(self.retry_max)
    }
}

/// Wakes idle workers of this node when a job was enqueued here (other nodes find it by polling).
#[derive(Clone, Default)]
pub struct JobWaker {
    notify: Arc<Notify>,
}

impl JobWaker {
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }
}

/// A node's job runner, before it starts.
pub struct JobRunner {
    catalog: Catalog,
    handlers: Arc<JobHandlers>,
    settings: RunnerSettings,
    waker: JobWaker,
    node: String,
    /// Where this node's API listens, as registered in the catalog.
    address: String,
    started_at: DateTime<Utc>,
    /// Set once the catalog says this node drains: workers claim nothing more, running jobs are handed back.
    draining: watch::Sender<bool>,
    /// Workers claiming or running a job right now.
    busy: AtomicUsize,
    /// Told of every job whose end this node's workers record.
    observer: Option<JobObserver>,
}

/// Called with the stored record of every job a worker of this node ended (`SUCCESS` or `FAIL`) or handed
/// back for a retry (`INIT`), right after the catalog recorded it; for metrics. Must not block.
pub type JobObserver = Arc<dyn Fn(&Job) + Send + Sync>;

/// Counts a worker as busy for as long as it lives.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn new(count: &'a AtomicUsize) -> Busy<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A started runner; [`RunningJobs::shutdown`] stops it.
pub struct RunningJobs {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl JobRunner {
    /// A runner over `catalog` running the job types of `handlers`, woken by `waker`.
    pub fn new(catalog: Catalog, handlers: JobHandlers, settings: RunnerSettings, waker: JobWaker) -> JobRunner {
        let node = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        JobRunner {
            catalog,
            handlers: Arc::new(handlers),
            settings,
            waker,
            node,
            address: String::new(),
            started_at: Utc::now(),
            draining: watch::channel(false).0,
            busy: AtomicUsize::new(0),
            observer: None,
        }
    }

    /// The same runner, telling `observer` of every job end it records.
    pub fn with_observer(mut self, observer: JobObserver) -> JobRunner {
        self.observer = Some(observer);
        self
    }

    /// The same runner, registering the node with `address` (where its API listens) in the catalog.
    pub fn with_address(mut self, address: impl Into<String>) -> JobRunner {
        self.address = address.into();
        self
    }

    /// This node's id in the catalog's node list; its workers are named `<id>/<n>`.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Starts the workers and the reaper of stale jobs.
    pub fn start(self) -> RunningJobs {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let shared = Arc::new(self);
        tracing::info!(node = %shared.node, workers = shared.settings.workers, "job runner started");
        tasks.spawn(Arc::clone(&shared).presence(stopped.clone()));
        if shared.settings.workers > 0 {
            tasks.spawn(Arc::clone(&shared).reap(stopped.clone()));
        }
        for n in 0..shared.settings.workers {
            let worker = format!("{}/{n}", shared.node);
            tasks.spawn(Arc::clone(&shared).work(worker, stopped.clone()));
        }
        RunningJobs { stop, tasks }
    }

    /// Registers this node, heartbeats it every `heartbeat_interval` (idle when it drains and no worker is
    /// busy), follows its drain, and removes it from the node list on shutdown.
    async fn presence(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut registered = false;
        loop {
            let now = Utc::now();
            if registered {
                // Idle only once the workers know of the drain: a worker that has not seen it yet is counted
                // busy before it claims (see `work`), so a drained node never starts a job.
                let idle = *self.draining.borrow() && self.busy.load(Ordering::SeqCst) == 0;
                match self.catalog.nodes.heartbeat(&self.node, now, idle).await {
                    Ok(state) => self.follow(state),
                    Err(CatalogError::NotFound(_)) => {
                        tracing::warn!(node = %self.node, "this node was forgotten after a long silence; registering again");
                        registered = false;
                    }
                    Err(e) => tracing::warn!(node = %self.node, error = %e, "node heartbeat failed"),
                }
            } else {
                let node = Node {
                    id: self.node.clone(),
                    address: self.address.clone(),
                    started_at: self.started_at,
                    heartbeat_at: now,
                    state: NodeState::Active,
                };
                match self.catalog.nodes.register(&node).await {
                    Ok(()) => registered = true,
                    Err(e) => tracing::warn!(node = %self.node, error = %e, "cannot register the node"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.heartbeat_interval) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
        if registered {
            if let Err(e) = self.catalog.nodes.deregister(&self.node).await {
                tracing::warn!(node = %self.node, error = %e, "cannot remove the node from the node list");
            }
        }
    }

    /// Applies the node state the catalog holds: anything but active stops claiming and running jobs.
    fn follow(&self, state: NodeState) {
        let draining = state != NodeState::Active;
        let changed = self.draining.send_if_modified(|current| std::mem::replace(current, draining) != draining);
        if changed {
            tracing::warn!(node = %self.node, %state, "the node drains: claiming no more jobs, handing running ones back");
        }
    }

    async fn reap(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let every = self.settings.stale_after / 2;
        loop {
            let forget_before = Utc::now() - SILENT_NODE_FORGOTTEN_AFTER.max(self.settings.stale_after);
            match self.catalog.nodes.forget_silent(forget_before).await {
                Ok(ids) if !ids.is_empty() => tracing::warn!(nodes = ?ids, "forgot nodes silent for long"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for silent nodes"),
            }
            let stale_before = Utc::now() - self.settings.stale_after;
            match self.catalog.jobs.take_over_stale(stale_before, Utc::now()).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(jobs = ?ids, "took over jobs whose worker stopped");
                    self.waker.wake();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for stale jobs"),
            }
            match crate::transfers::requeue_abandoned(&self.catalog, stale_before).await {
                Ok(ids) if !ids.is_empty() => tracing::warn!(images = ?ids, "returned to queued images whose upload's node stopped"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for abandoned uploads"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }

    async fn work(self: Arc<Self>, worker: String, mut stopped: watch::Receiver<bool>) {
        let types = self.handlers.job_types();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        loop {
            if *stopped.borrow() {
                return;
            }
            // Registered before claiming, so a wake between an empty claim and the wait is not lost.
            let woken = self.waker.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Busy before looking at the drain, so that the node is never reported idle between the two.
            let busy = Busy::new(&self.busy);
            if !*self.draining.borrow() {
                match self.catalog.jobs.claim_next(&worker, &types, Utc::now()).await {
                    Ok(Some(job)) => {
                        self.run(&worker, job, stopped.clone()).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(%worker, error = %e, "cannot claim a job"),
                }
            }
            drop(busy);
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }

    /// Runs one claimed job to its recorded end.
    async fn run(&self, worker: &str, job: Job, stopped: watch::Receiver<bool>) {
        let Some(handler) = self.handlers.get(&job.job_type) else {
            let reason = format!("no handler for job type {}", job.job_type);
            self.record(worker, &job, JobOutcome::Fail { code: INTERNAL_CODE.into(), reason }).await;
            return;
        };
        if job.attempts > self.settings.max_attempts {
            let reason = format!(
                "gave up after {} attempts; last error: {}",
                job.attempts - 1,
                job.fail_reason.as_deref().unwrap_or("the worker stopped")
            );
            let code = job.error_code.clone().unwrap_or_else(|| INTERNAL_CODE.into());
            handler.on_failed(&job, &code, &reason).await;
            self.record(worker, &job, JobOutcome::Fail { code, reason }).await;
            return;
        }
        tracing::info!(job = %job.id, job_type = %job.job_type, attempt = job.attempts, %worker, "job started");
        let (stop_tx, stop_rx) = watch::channel(None);
        let reported = Arc::new(Mutex::new(Reported::default()));
        let ctx = JobContext { progress: Arc::clone(&reported), stop: stop_rx };
        let beat = self.heartbeat(worker.to_string(), job.id.clone(), reported, stop_tx, stopped);
        let guarded = AssertUnwindSafe(handler.run(&job, &ctx)).catch_unwind();
        let result = tokio::select! {
            r = guarded => r.unwrap_or_else(|_| Err(JobError::failed(INTERNAL_CODE, "the job's handler panicked"))),
            _ = ctx.cancelled() => Err(JobError::Cancelled),
        };
        beat.abort();
        let stop = *ctx.stop.borrow();
        if stop != Some(StopReason::Lost) {
            self.flush(worker, &job.id, &ctx).await;
        }
        let outcome = match (result, stop) {
            (_, Some(StopReason::Lost)) => {
                tracing::warn!(job = %job.id, %worker, "job was taken over by another worker");
                return;
            }
            (Ok(result), _) => JobOutcome::Success { result },
            (Err(_), Some(StopReason::Shutdown)) => JobOutcome::Release,
            (Err(_), Some(StopReason::Drain)) => {
                tracing::info!(job = %job.id, %worker, "handing the job back: this node drains");
                JobOutcome::Release
            }
            (Err(JobError::Cancelled), _) => {
                JobOutcome::Fail { code: CANCELLED_CODE.into(), reason: "the job was cancelled".into() }
            }
            (Err(JobError::Failed { code, reason }), _) => JobOutcome::Fail { code, reason },
            (Err(JobError::Transient { code, reason }), _) if job.attempts < self.settings.max_attempts => {
                let wait = self.settings.backoff(job.attempts);
                let run_after = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                tracing::warn!(job = %job.id, %reason, ?wait, "job will be retried");
                JobOutcome::Retry { run_after, code, reason }
            }
            (Err(JobError::Transient { code, reason }), _) => {
                JobOutcome::Fail { code, reason: format!("{reason} (gave up after {} attempts)", job.attempts) }
            }
        };
        if let JobOutcome::Fail { code, reason } = &outcome {
            handler.on_failed(&job, code, reason).await;
        }
        self.record(worker, &job, outcome).await;
        // A retry may be due before any other wake.
        self.waker.wake();
    }

    /// Stores the progress and entities reported since the last heartbeat, so that the ended job shows them.
    async fn flush(&self, worker: &str, job_id: &str, ctx: &JobContext) {
        let (percent, entities) = {
            let mut r = ctx.progress.lock().unwrap_or_else(|e| e.into_inner());
            (r.percent, r.entities.take())
        };
        if percent.is_none() && entities.is_none() {
            return;
        }
        if let Err(e) = self.catalog.jobs.heartbeat(job_id, worker, percent, entities.as_ref(), Utc::now()).await {
            tracing::warn!(job = %job_id, error = %e, "cannot store the job's last progress");
        }
    }

    async fn record(&self, worker: &str, job: &Job, outcome: JobOutcome) {
        match self.catalog.jobs.finish(&job.id, worker, &outcome, Utc::now()).await {
            Ok(done) => {
                tracing::info!(job = %done.id, status = %done.status, error = ?done.error_code, "job ended");
                crate::audit::record_job_outcome(&self.catalog, &done, worker).await;
                if let Some(observer) = &self.observer {
                    observer(&done);
                }
            }
            Err(CatalogError::Conflict(e)) => tracing::warn!(job = %job.id, error = %e, "job changed hands"),
            Err(e) => tracing::error!(job = %job.id, error = %e, "cannot record the end of a job"),
        }
    }

    /// Heartbeats `job` until aborted; sets the stop reason on cancellation, shutdown, drain or loss.
    fn heartbeat(
        &self,
        worker: String,
        job_id: String,
        reported: Arc<Mutex<Reported>>,
        stop: watch::Sender<Option<StopReason>>,
        mut stopped: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let jobs = Arc::clone(&self.catalog.jobs);
        let every = self.settings.heartbeat_interval;
        let mut draining = self.draining.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.wait_for(|s| *s) => {
                        stop.send_replace(Some(StopReason::Shutdown));
                        return;
                    }
                    _ = draining.wait_for(|d| *d) => {
                        stop.send_replace(Some(StopReason::Drain));
                        return;
                    }
                }
                let (percent, entities) = {
                    let mut r = reported.lock().unwrap_or_else(|e| e.into_inner());
                    (r.percent, r.entities.take())
                };
                match jobs.heartbeat(&job_id, &worker, percent, entities.as_ref(), Utc::now()).await {
                    Ok(false) => {}
                    Ok(true) => {
                        stop.send_replace(Some(StopReason::Cancelled));
                        return;
                    }
                    Err(CatalogError::Conflict(_)) | Err(CatalogError::NotFound(_)) => {
                        stop.send_replace(Some(StopReason::Lost));
                        return;
                    }
                    Err(e) => {
                        // Keep going: a later heartbeat may pass; if none does, the job is taken over.
                        tracing::warn!(job = %job_id, error = %e, "heartbeat failed");
                        if let Some(entities) = entities {
                            reported.lock().unwrap_or_else(|e| e.into_inner()).entities.get_or_insert(entities);
                        }
                    }
                }
            }
        })
    }
}

impl RunningJobs {
    /// Stops claiming, stops the running jobs (handing them back to the queue) and waits for the workers.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a job worker panicked");
            }
        }
    }
}
