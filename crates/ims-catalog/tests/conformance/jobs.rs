//! The job queue of the runner: claims, heartbeats, outcomes, cancellation, take-over, sub-jobs, and
//! jobs enqueued together with an image change.

use std::collections::BTreeSet;
use std::sync::Arc;

use ims_catalog::{ImageChange, ImageStatus, Job, JobFilter, JobOutcome, JobStatus};
use serde_json::json;

use crate::support::*;
use crate::Backend;

fn ev() -> ims_catalog::AuditEvent {
    event("job.create", "job")
}

fn job(id: &str, job_type: &str, at: i64) -> Job {
    Job::new(id.into(), job_type, "p1", json!({"n": id}), t(at))
}

pub async fn check_job_claims_oldest_of_known_types(b: &Backend) {
    let jobs = &b.catalog.jobs;
    jobs.create(&job("j2", "export", 2), &ev()).await.unwrap();
    jobs.create(&job("j1", "export", 1), &ev()).await.unwrap();
    jobs.create(&job("j0", "other", 0), &ev()).await.unwrap();
    assert!(jobs.claim_next("w1", &[], t(5)).await.unwrap().is_none(), "no types, no claim");
    let first = jobs.claim_next("w1", &["export"], t(5)).await.unwrap().expect("a claim");
    assert_eq!(first.id, "j1", "oldest first, other types skipped");
    assert_eq!(first.status, JobStatus::Running);
    assert_eq!(first.claimed_by.as_deref(), Some("w1"));
    assert_eq!(first.attempts, 1);
    assert_eq!(first.heartbeat_at, Some(t(5)));
    assert_eq!(first.begin_time, Some(t(5)));
    assert_eq!(jobs.get("j1").await.unwrap(), first, "the claim is stored as returned");
    let second = jobs.claim_next("w2", &["export", "other"], t(6)).await.unwrap().unwrap();
    assert_eq!(second.id, "j0");
    assert_eq!(jobs.claim_next("w2", &["export"], t(6)).await.unwrap().unwrap().id, "j2");
    assert!(jobs.claim_next("w3", &["export", "other"], t(7)).await.unwrap().is_none(), "all taken");
}

pub async fn check_job_concurrent_claims_never_share(b: &Backend) {
    let jobs = Arc::clone(&b.catalog.jobs);
    for i in 0..20 {
        jobs.create(&job(&format!("j{i:02}"), "export", i), &ev()).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let jobs = Arc::clone(&jobs);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = jobs.claim_next(&format!("w{w}"), &["export"], t(100)).await.unwrap() {
                assert_eq!(j.claimed_by, Some(format!("w{w}")));
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 20, "every job claimed once: {all:?}");
    assert_eq!(distinct.len(), 20);
}

pub async fn check_job_heartbeat_and_finish_need_the_holder(b: &Backend) {
    let jobs = &b.catalog.jobs;
    jobs.create(&job("j1", "export", 0), &ev()).await.unwrap();
    expect_conflict(jobs.heartbeat("j1", "w1", None, None, t(1)).await);
    jobs.claim_next("w1", &["export"], t(1)).await.unwrap().unwrap();
    let entities = json!({"image_id": "i1"});
    assert!(!jobs.heartbeat("j1", "w1", Some(40.0), Some(&entities), t(2)).await.unwrap());
    let stored = jobs.get("j1").await.unwrap();
    assert_eq!((stored.progress, stored.heartbeat_at, stored.entities.clone()), (40.0, Some(t(2)), entities));
    expect_invalid(jobs.heartbeat("j1", "w1", Some(140.0), None, t(2)).await);
    expect_conflict(jobs.heartbeat("j1", "w2", Some(50.0), None, t(3)).await);
    expect_conflict(jobs.finish("j1", "w2", &JobOutcome::Release, t(3)).await);
    expect_not_found(jobs.heartbeat("nope", "w1", None, None, t(3)).await);
    expect_not_found(jobs.finish("nope", "w1", &JobOutcome::Release, t(3)).await);
    assert_eq!(jobs.get("j1").await.unwrap().progress, 40.0, "refused writes change nothing");

    let done = jobs.finish("j1", "w1", &JobOutcome::Success { result: json!({"bytes": 7}) }, t(4)).await.unwrap();
    assert_eq!(done.status, JobStatus::Success);
    assert_eq!(done.progress, 100.0);
    assert_eq!(done.result, Some(json!({"bytes": 7})));
    assert_eq!(done.end_time, Some(t(4)));
    assert_eq!(done.claimed_by, None);
    assert_eq!(jobs.get("j1").await.unwrap(), done);
    expect_conflict(jobs.finish("j1", "w1", &JobOutcome::Release, t(5)).await);
    expect_conflict(jobs.heartbeat("j1", "w1", None, None, t(5)).await);
}

pub async fn check_job_fail_and_retry(b: &Backend) {
    let jobs = &b.catalog.jobs;
    jobs.create(&job("j1", "export", 0), &ev()).await.unwrap();
    jobs.claim_next("w1", &["export"], t(1)).await.unwrap().unwrap();
    let retry = JobOutcome::Retry { run_after: t(10), code: "IMG.0503".into(), reason: "store busy".into() };
    let waiting = jobs.finish("j1", "w1", &retry, t(2)).await.unwrap();
    assert_eq!(waiting.status, JobStatus::Init);
    assert_eq!(waiting.run_after, Some(t(10)));
    assert_eq!(waiting.error_code.as_deref(), Some("IMG.0503"));
    assert_eq!(waiting.claimed_by, None);
    assert!(jobs.claim_next("w2", &["export"], t(9)).await.unwrap().is_none(), "not before run_after");
    let again = jobs.claim_next("w2", &["export"], t(10)).await.unwrap().unwrap();
    assert_eq!((again.attempts, again.begin_time), (2, Some(t(1))), "attempts count, first begin kept");
    let failed = jobs
        .finish("j1", "w2", &JobOutcome::Fail { code: "IMG.0100".into(), reason: "bad file".into() }, t(11))
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Fail);
    assert_eq!((failed.error_code.as_deref(), failed.fail_reason.as_deref()), (Some("IMG.0100"), Some("bad file")));
    assert_eq!(failed.end_time, Some(t(11)));
    assert!(jobs.claim_next("w2", &["export"], t(20)).await.unwrap().is_none(), "final jobs are never claimed");

    jobs.create(&job("j2", "export", 0), &ev()).await.unwrap();
    jobs.claim_next("w1", &["export"], t(1)).await.unwrap().unwrap();
    let released = jobs.finish("j2", "w1", &JobOutcome::Release, t(2)).await.unwrap();
    assert_eq!((released.status, released.run_after, released.error_code), (JobStatus::Init, None, None));
    assert_eq!(jobs.claim_next("w2", &["export"], t(2)).await.unwrap().unwrap().attempts, 2);
}

pub async fn check_job_cancel(b: &Backend) {
    let jobs = &b.catalog.jobs;
    jobs.create(&job("waiting", "export", 0), &ev()).await.unwrap();
    let cancelled = jobs.request_cancel("waiting", "IMG.0700", "cancelled by alice", t(1)).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Fail, "a waiting job fails at once");
    assert_eq!(cancelled.error_code.as_deref(), Some("IMG.0700"));
    assert_eq!(cancelled.fail_reason.as_deref(), Some("cancelled by alice"));
    expect_conflict(jobs.request_cancel("waiting", "IMG.0700", "again", t(2)).await);
    expect_not_found(jobs.request_cancel("nope", "IMG.0700", "x", t(2)).await);

    jobs.create(&job("parent", "copy", 1), &ev()).await.unwrap();
    jobs.create(&job("child-a", "copy-part", 2).with_parent("parent"), &ev()).await.unwrap();
    jobs.create(&job("child-b", "copy-part", 3).with_parent("parent"), &ev()).await.unwrap();
    jobs.claim_next("w1", &["copy"], t(4)).await.unwrap().unwrap();
    jobs.claim_next("w2", &["copy-part"], t(4)).await.unwrap().unwrap();
    let flagged = jobs.request_cancel("parent", "IMG.0700", "stop", t(5)).await.unwrap();
    assert_eq!((flagged.status, flagged.cancel_requested), (JobStatus::Running, true), "a running job is flagged");
    assert!(jobs.request_cancel("parent", "IMG.0700", "stop", t(5)).await.unwrap().cancel_requested, "idempotent");
    assert!(jobs.heartbeat("parent", "w1", None, None, t(6)).await.unwrap(), "its worker learns it");
    assert!(jobs.heartbeat("child-a", "w2", None, None, t(6)).await.unwrap(), "running sub-jobs are flagged");
    assert_eq!(jobs.get("child-b").await.unwrap().status, JobStatus::Fail, "waiting sub-jobs fail at once");
}

pub async fn check_job_take_over_stale(b: &Backend) {
    let jobs = &b.catalog.jobs;
    jobs.create(&job("dead", "export", 0), &ev()).await.unwrap();
    jobs.create(&job("alive", "export", 1), &ev()).await.unwrap();
    jobs.create(&job("waiting", "export", 2), &ev()).await.unwrap();
    jobs.claim_next("w1", &["export"], t(10)).await.unwrap().unwrap();
    jobs.claim_next("w2", &["export"], t(10)).await.unwrap().unwrap();
    jobs.heartbeat("alive", "w2", Some(10.0), None, t(30)).await.unwrap();
    let taken = jobs.take_over_stale(t(20), t(40)).await.unwrap();
    assert_eq!(taken, vec!["dead".to_string()]);
    assert!(jobs.take_over_stale(t(20), t(40)).await.unwrap().is_empty(), "idempotent");
    let dead = jobs.get("dead").await.unwrap();
    assert_eq!((dead.status, dead.claimed_by, dead.attempts), (JobStatus::Init, None, 1));
    expect_conflict(jobs.heartbeat("dead", "w1", None, None, t(41)).await);
    expect_conflict(jobs.finish("dead", "w1", &JobOutcome::Success { result: json!(null) }, t(41)).await);
    let next = jobs.claim_next("w3", &["export"], t(42)).await.unwrap().unwrap();
    assert_eq!((next.id.as_str(), next.attempts), ("dead", 2), "taken over by another worker");
    assert_eq!(jobs.get("alive").await.unwrap().claimed_by.as_deref(), Some("w2"));
}

pub async fn check_job_list_and_sub_jobs(b: &Backend) {
    let jobs = &b.catalog.jobs;
    jobs.create(&job("a", "export", 0), &ev()).await.unwrap();
    jobs.create(&job("b", "export", 1).with_parent("a"), &ev()).await.unwrap();
    let mut other = job("c", "export", 2);
    other.project_id = "p2".into();
    jobs.create(&other, &ev()).await.unwrap();
    expect_not_found(jobs.create(&job("d", "export", 3).with_parent("missing"), &ev()).await);
    let ids = |v: Vec<Job>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = JobFilter { limit: 10, ..Default::default() };
    assert_eq!(ids(jobs.list(&all).await.unwrap()), ["c", "b", "a"], "newest first");
    let p1 = JobFilter { project_id: Some("p1".into()), ..all.clone() };
    assert_eq!(ids(jobs.list(&p1).await.unwrap()), ["b", "a"]);
    let children = JobFilter { parent_id: Some("a".into()), ..all.clone() };
    assert_eq!(ids(jobs.list(&children).await.unwrap()), ["b"]);
    jobs.claim_next("w", &["export"], t(5)).await.unwrap().unwrap();
    let running = JobFilter { statuses: vec![JobStatus::Running], ..all.clone() };
    assert_eq!(ids(jobs.list(&running).await.unwrap()), ["a"]);
    assert_eq!(ids(jobs.list(&JobFilter { limit: 1, ..all }).await.unwrap()), ["c"]);
}

pub async fn check_job_with_image_change_is_atomic(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "new");
    let j = job("j1", "copy", 0);
    c.jobs.create_with_image(&j, ImageChange::Create(&img), &ev()).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap().name.as_deref(), Some("new"));
    assert_eq!(c.jobs.get("j1").await.unwrap(), j);

    // A job id that exists: the image is not created either.
    let other = image("p1", "other");
    expect_conflict(c.jobs.create_with_image(&j, ImageChange::Create(&other), &ev()).await);
    expect_not_found(c.images.get(other.id).await);

    // Save with a status check: a mismatch stores neither the image nor the job.
    let mut importing = c.images.get(img.id).await.unwrap();
    importing.status = ImageStatus::Importing;
    let expected = [ImageStatus::Active];
    let change = ImageChange::Save { image: &importing, expected: &expected };
    expect_conflict(c.jobs.create_with_image(&job("j2", "import", 1), change, &ev()).await);
    expect_not_found(c.jobs.get("j2").await);
    assert_eq!(c.images.get(img.id).await.unwrap().status, ImageStatus::Queued);

    let expected = [ImageStatus::Queued];
    let change = ImageChange::Save { image: &importing, expected: &expected };
    c.jobs.create_with_image(&job("j2", "import", 1), change, &ev()).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap().status, ImageStatus::Importing);
    assert_eq!(c.jobs.get("j2").await.unwrap().job_type, "import");
}
