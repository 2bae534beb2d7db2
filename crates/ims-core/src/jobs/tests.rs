//! The runner against a real (in-memory SQLite) catalog.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use ims_catalog::{AuditEvent, Catalog, Job, JobStatus};
use serde_json::{json, Value};

use super::*;

fn fast() -> RunnerSettings {
    RunnerSettings {
        workers: 2,
        poll_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(30),
        stale_after: Duration::from_millis(300),
        max_attempts: 3,
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
    }
}

fn ev() -> AuditEvent {
    AuditEvent::new("req-test", "job.create", "job".into())
}

async fn enqueue(catalog: &Catalog, id: &str, job_type: &str) {
    let job = Job::new(id.into(), job_type, "p1", json!({}), Utc::now());
    catalog.jobs.create(&job, &ev()).await.unwrap();
}

/// Waits until the job is final (at most 10 s).
async fn ended(catalog: &Catalog, id: &str) -> Job {
    for _ in 0..500 {
        let job = catalog.jobs.get(id).await.unwrap();
        if job.status.is_final() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} did not end: {:?}", catalog.jobs.get(id).await.unwrap());
}

/// Fails transiently `failures` times, then reports progress and entities and succeeds.
#[derive(Default)]
struct Flaky {
    failures: usize,
    runs: AtomicUsize,
    failed: Mutex<Vec<String>>,
}

#[async_trait]
impl JobHandler for Flaky {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<Value, JobError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        if run < self.failures {
            return Err(JobError::transient("IMG.0503", format!("busy on run {run}")));
        }
        ctx.set_entities(json!({"image_id": job.id}));
        ctx.set_progress(50.0);
        tokio::time::sleep(Duration::from_millis(80)).await;
        Ok(json!({"runs": run + 1}))
    }

    async fn on_failed(&self, job: &Job, code: &str, _reason: &str) {
        self.failed.lock().unwrap().push(format!("{}:{code}", job.id));
    }
}

/// Runs until cancelled, reporting progress.
struct Endless;

#[async_trait]
impl JobHandler for Endless {
    async fn run(&self, _job: &Job, ctx: &JobContext) -> Result<Value, JobError> {
        let mut percent = 0.0;
        loop {
            ctx.check()?;
            percent = (percent + 1.0_f64).min(99.0);
            ctx.set_progress(percent);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn start(catalog: &Catalog, handlers: JobHandlers, settings: RunnerSettings) -> RunningJobs {
    JobRunner::new(catalog.clone(), handlers, settings, JobWaker::default()).start()
}

#[tokio::test]
async fn a_job_runs_with_progress_entities_and_result() {
    let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
    let mut handlers = JobHandlers::new();
    handlers.register("flaky", Arc::new(Flaky::default()));
    enqueue(&catalog, "j1", "flaky").await;
    enqueue(&catalog, "other", "unknown-type").await;
    let running = start(&catalog, handlers, fast());
    let job = ended(&catalog, "j1").await;
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(job.result, Some(json!({"runs": 1})));
    assert_eq!(job.entities, json!({"image_id": "j1"}), "entities reported at the end are stored");
    assert_eq!(job.progress, 100.0);
    assert_eq!(job.attempts, 1);
    running.shutdown().await;
    assert_eq!(catalog.jobs.get("other").await.unwrap().status, JobStatus::Init, "unknown types are left alone");
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff_then_give_up() {
    let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
    let recovering = Arc::new(Flaky { failures: 2, ..Default::default() });
    let hopeless = Arc::new(Flaky { failures: 100, ..Default::default() });
    let mut handlers = JobHandlers::new();
    handlers.register("recovering", recovering.clone());
    handlers.register("hopeless", hopeless.clone());
    enqueue(&catalog, "r", "recovering").await;
    enqueue(&catalog, "h", "hopeless").await;
    let running = start(&catalog, handlers, fast());
    let r = ended(&catalog, "r").await;
    assert_eq!((r.status, r.attempts, r.error_code.clone()), (JobStatus::Success, 3, None));
    let h = ended(&catalog, "h").await;
    assert_eq!(h.status, JobStatus::Fail);
    assert_eq!(h.error_code.as_deref(), Some("IMG.0503"));
    assert!(h.fail_reason.as_deref().unwrap().contains("gave up after 3 attempts"), "{:?}", h.fail_reason);
    assert_eq!(hopeless.runs.load(Ordering::SeqCst), 3, "max_attempts runs");
    assert_eq!(*hopeless.failed.lock().unwrap(), ["h:IMG.0503"], "on_failed runs once, at the end");
    assert!(recovering.failed.lock().unwrap().is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn a_running_job_can_be_cancelled() {
    let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
    let mut handlers = JobHandlers::new();
    handlers.register("endless", Arc::new(Endless));
    enqueue(&catalog, "e", "endless").await;
    let running = start(&catalog, handlers, fast());
    for _ in 0..200 {
        let job = catalog.jobs.get("e").await.unwrap();
        if job.status == JobStatus::Running && job.progress > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flagged = catalog.jobs.request_cancel("e", CANCELLED_CODE, "cancelled by alice", Utc::now()).await.unwrap();
    assert!(flagged.cancel_requested);
    let job = ended(&catalog, "e").await;
    assert_eq!(job.status, JobStatus::Fail);
    assert_eq!(job.error_code.as_deref(), Some(CANCELLED_CODE));
    assert!(job.progress > 0.0 && job.progress < 100.0, "progress was stored: {}", job.progress);
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_hands_running_jobs_back_and_stale_jobs_are_taken_over() {
    let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
    let endless = || {
        let mut handlers = JobHandlers::new();
        handlers.register("endless", Arc::new(Endless));
        handlers
    };
    enqueue(&catalog, "e", "endless").await;
    let running = start(&catalog, endless(), fast());
    for _ in 0..200 {
        if catalog.jobs.get("e").await.unwrap().status == JobStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.shutdown().await;
    let back = catalog.jobs.get("e").await.unwrap();
    assert_eq!((back.status, back.claimed_by.clone()), (JobStatus::Init, None), "handed back on shutdown");

    // A worker that claimed a job and died (no heartbeats): the reaper of a live node takes it over.
    let dead = catalog.jobs.claim_next("dead-node/0", &["flaky"], Utc::now()).await.unwrap();
    assert!(dead.is_none());
    enqueue(&catalog, "orphan", "flaky").await;
    let claimed = catalog.jobs.claim_next("dead-node/0", &["flaky"], Utc::now()).await.unwrap().unwrap();
    assert_eq!(claimed.id, "orphan");
    let mut handlers = JobHandlers::new();
    handlers.register("flaky", Arc::new(Flaky::default()));
    let running = start(&catalog, handlers, fast());
    let job = ended(&catalog, "orphan").await;
    assert_eq!((job.status, job.attempts), (JobStatus::Success, 2));
    running.shutdown().await;
}

#[tokio::test]
async fn a_draining_node_hands_its_job_back_claims_nothing_and_reports_drained() {
    use ims_catalog::NodeState;

    let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
    let mut endless = JobHandlers::new();
    endless.register("work", Arc::new(Endless));
    let first = JobRunner::new(catalog.clone(), endless, fast(), JobWaker::default()).with_address("10.0.0.1:9292");
    let first_id = first.node_id().to_string();
    let first = first.start();
    enqueue(&catalog, "running", "work").await;
    for _ in 0..200 {
        if catalog.jobs.get("running").await.unwrap().status == JobStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let node = catalog.nodes.get(&first_id).await.unwrap();
    assert_eq!((node.address.as_str(), node.state), ("10.0.0.1:9292", NodeState::Active));

    catalog.nodes.drain(&first_id).await.unwrap();
    enqueue(&catalog, "queued", "work").await;
    let mut state = NodeState::Draining;
    for _ in 0..200 {
        state = catalog.nodes.get(&first_id).await.unwrap().state;
        if state == NodeState::Drained {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, NodeState::Drained);
    for id in ["running", "queued"] {
        let job = catalog.jobs.get(id).await.unwrap();
        assert_eq!((job.status, job.claimed_by.clone()), (JobStatus::Init, None), "{id} waits for another node");
    }

    // Another node runs both; the drained one stays drained and its shutdown removes it from the list.
    let mut flaky = JobHandlers::new();
    flaky.register("work", Arc::new(Flaky::default()));
    let second = start(&catalog, flaky, fast());
    for id in ["running", "queued"] {
        assert_eq!(ended(&catalog, id).await.status, JobStatus::Success, "{id}");
    }
    assert_eq!(catalog.jobs.get("running").await.unwrap().attempts, 2, "handed back after one attempt");
    assert_eq!(catalog.nodes.get(&first_id).await.unwrap().state, NodeState::Drained);
    first.shutdown().await;
    assert!(catalog.nodes.get(&first_id).await.is_err(), "a node that stops leaves the list");
    assert_eq!(catalog.nodes.list().await.unwrap().len(), 1);
    second.shutdown().await;
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let s = RunnerSettings { retry_base: Duration::from_secs(5), retry_max: Duration::from_secs(60), ..fast() };
    let waits: Vec<u64> = (1..=6).map(|a| s.backoff(a).as_secs()).collect();
    assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
}
