//! What the IMS API adds: access keys, project quotas, resource tags, jobs, OS versions, and creation
//! within a quota.

use ims_catalog::{AccessKey, CatalogError, ImageStatus, Job, JobStatus, OsVersion, Project, ResourceTag, User};
use serde_json::json;

use crate::support::*;
use crate::Backend;

fn ev() -> ims_catalog::AuditEvent {
    event("ims.update", "ims")
}

async fn project_and_user(b: &Backend) {
    let id = &b.catalog.identity;
    id.create_project(&Project { id: "p1".into(), name: "one".into(), created_at: t(0) }, &ev()).await.unwrap();
    id.create_user(&User { id: "u1".into(), name: "alice".into(), created_at: t(0) }, &ev()).await.unwrap();
}

fn key(id: &str, project: Option<&str>, at: i64) -> AccessKey {
    AccessKey {
        id: id.into(),
        user_id: "u1".into(),
        project_id: project.map(str::to_string),
        sealed_secret: format!("sealed-{id}"),
        description: Some("d".into()),
        created_at: t(at),
        revoked: false,
    }
}

pub async fn check_access_keys(b: &Backend) {
    project_and_user(b).await;
    let id = &b.catalog.identity;
    let k1 = key("AK1", Some("p1"), 2);
    let k0 = key("AK0", None, 1);
    id.create_access_key(&k1, &ev()).await.unwrap();
    id.create_access_key(&k0, &ev()).await.unwrap();
    expect_conflict(id.create_access_key(&key("AK1", None, 3), &ev()).await);
    let mut orphan = key("AK9", None, 3);
    orphan.user_id = "nobody".into();
    expect_not_found(id.create_access_key(&orphan, &ev()).await);
    expect_not_found(id.create_access_key(&key("AK8", Some("nope"), 3), &ev()).await);

    assert_eq!(id.get_access_key("AK1").await.unwrap(), k1);
    expect_not_found(id.get_access_key("AK9").await);
    assert_eq!(id.list_access_keys(None).await.unwrap(), vec![k0.clone(), k1.clone()], "by creation time");
    assert_eq!(id.list_access_keys(Some("u1")).await.unwrap().len(), 2);
    assert!(id.list_access_keys(Some("u2")).await.unwrap().is_empty());

    id.revoke_access_key("AK1", &ev()).await.unwrap();
    id.revoke_access_key("AK1", &ev()).await.unwrap();
    assert!(id.get_access_key("AK1").await.unwrap().revoked);
    expect_not_found(id.revoke_access_key("AK9", &ev()).await);

    // Keys bound to a project go with it.
    id.delete_project("p1", &ev()).await.unwrap();
    expect_not_found(id.get_access_key("AK1").await);
    assert!(!id.get_access_key("AK0").await.unwrap().revoked);
}

pub async fn check_project_quotas(b: &Backend) {
    project_and_user(b).await;
    let id = &b.catalog.identity;
    assert_eq!(id.project_quota("p1", "private_images").await.unwrap(), None);
    id.set_project_quota("p1", "private_images", Some(3), &ev()).await.unwrap();
    id.set_project_quota("p1", "private_images", Some(5), &ev()).await.unwrap();
    assert_eq!(id.project_quota("p1", "private_images").await.unwrap(), Some(5));
    assert_eq!(id.project_quota("p1", "other").await.unwrap(), None);
    expect_not_found(id.set_project_quota("p9", "private_images", Some(1), &ev()).await);
    id.set_project_quota("p1", "private_images", None, &ev()).await.unwrap();
    assert_eq!(id.project_quota("p1", "private_images").await.unwrap(), None);
}

pub async fn check_create_within_quota(b: &Backend) {
    let c = &b.catalog;
    for i in 0..2 {
        c.images.create_within_quota(&image("p1", &format!("i{i}")), 2, &ev()).await.unwrap();
    }
    c.images.create_within_quota(&image("p2", "other project"), 2, &ev()).await.unwrap();
    let refused = image("p1", "third");
    let before = b.audit.count().await;
    match c.images.create_within_quota(&refused, 2, &ev()).await {
        Err(CatalogError::LimitExceeded(_)) => {}
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(b.audit.count().await, before, "a refused creation is not audited");
    expect_not_found(c.images.get(refused.id).await);

    // Deleted images do not count.
    let mut gone = list(c, &query(viewer("p1"))).await.pop().unwrap();
    gone.status = ImageStatus::Deleted;
    c.images.save(&gone, &[ImageStatus::Queued], &image_event(gone.id)).await.unwrap();
    c.images.create_within_quota(&refused, 2, &ev()).await.unwrap();

    // Concurrent creations never pass the limit together.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.images.create_within_quota(&image("p3", &format!("c{i}")), 3, &ev()).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
}

pub async fn check_resource_tags(b: &Backend) {
    let c = &b.catalog;
    let a = image("p1", "a");
    let bb = image("p1", "b");
    let other = image("p2", "c");
    for img in [&a, &bb, &other] {
        create(c, img).await;
    }
    let tags = c
        .resource_tags
        .change(a.id, &[ResourceTag::new("k2", "v2"), ResourceTag::new("k1", "v1")], &[], &ev())
        .await
        .unwrap();
    assert_eq!(tags, vec![ResourceTag::new("k1", "v1"), ResourceTag::new("k2", "v2")]);
    let tags = c
        .resource_tags
        .change(a.id, &[ResourceTag::new("k1", "new")], &["k2".into(), "absent".into()], &ev())
        .await
        .unwrap();
    assert_eq!(tags, vec![ResourceTag::new("k1", "new")]);
    assert_eq!(c.resource_tags.list(a.id).await.unwrap(), tags);
    assert!(c.resource_tags.list(bb.id).await.unwrap().is_empty());
    c.resource_tags.change(other.id, &[ResourceTag::new("x", "y")], &[], &ev()).await.unwrap();
    expect_not_found(c.resource_tags.change(uuid::Uuid::new_v4(), &[ResourceTag::new("x", "y")], &[], &ev()).await);

    let of = c.resource_tags.of_project("p1").await.unwrap();
    assert_eq!(of.len(), 2);
    let mine: Vec<_> = of.iter().map(|(i, t)| (i.id, t.clone())).collect();
    assert!(mine.contains(&(a.id, vec![ResourceTag::new("k1", "new")])));
    assert!(mine.contains(&(bb.id, vec![])));

    let mut deleted = a.clone();
    deleted.status = ImageStatus::Deleted;
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(a.id)).await.unwrap();
    assert_eq!(c.resource_tags.of_project("p1").await.unwrap().len(), 1, "deleted images are left out");
    expect_not_found(c.resource_tags.change(a.id, &[ResourceTag::new("x", "y")], &[], &ev()).await);
}

pub async fn check_jobs(b: &Backend) {
    let jobs = &b.catalog.jobs;
    let mut job = Job::new("job-1".into(), "batchAddMembers", "p1", json!({"images": ["a"]}), t(0));
    jobs.create(&job, &ev()).await.unwrap();
    expect_conflict(jobs.create(&job, &ev()).await);
    assert_eq!(jobs.get("job-1").await.unwrap(), job);
    expect_not_found(jobs.get("job-9").await);

    job.status = JobStatus::Running;
    job.begin_time = Some(t(1));
    job.attempts = 1;
    job.progress = 50.0;
    job.updated_at = t(1);
    jobs.update(&job).await.unwrap();
    assert_eq!(jobs.get("job-1").await.unwrap(), job);

    job.status = JobStatus::Fail;
    job.error_code = Some("IMG.0001".into());
    job.fail_reason = Some("boom".into());
    job.entities = json!({"image_id": "a", "sub_jobs_result": []});
    job.end_time = Some(t(2));
    jobs.update(&job).await.unwrap();
    assert_eq!(jobs.get("job-1").await.unwrap(), job);

    let mut again = job.clone();
    again.status = JobStatus::Success;
    expect_conflict(jobs.update(&again).await);
    assert_eq!(jobs.get("job-1").await.unwrap().status, JobStatus::Fail, "a final job stays final");
    let mut missing = job.clone();
    missing.id = "job-9".into();
    expect_not_found(jobs.update(&missing).await);
}

pub async fn check_os_versions(b: &Backend) {
    let id = &b.catalog.identity;
    assert!(id.list_os_versions().await.unwrap().is_empty());
    let v = |key: &str, platform: &str, bit: i64| OsVersion {
        os_version_key: key.into(),
        platform: platform.into(),
        os_version: key.into(),
        os_bit: bit,
        os_type: "Linux".into(),
    };
    id.put_os_version(&v("Zeta 1 64bit", "Zeta", 64), &ev()).await.unwrap();
    id.put_os_version(&v("Alpha 2 64bit", "Alpha", 64), &ev()).await.unwrap();
    id.put_os_version(&v("Alpha 2 64bit", "Alpha", 32), &ev()).await.unwrap();
    let all = id.list_os_versions().await.unwrap();
    assert_eq!(all, vec![v("Alpha 2 64bit", "Alpha", 32), v("Zeta 1 64bit", "Zeta", 64)]);
    match id.put_os_version(&v("Bad", "Bad", 16), &ev()).await {
        Err(CatalogError::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
}
