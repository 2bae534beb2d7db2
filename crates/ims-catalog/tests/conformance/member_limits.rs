//! Adding members within a per-image limit (the `members_per_image` quota).

use std::sync::Arc;

use ims_catalog::{CatalogError, Member, MemberStatus};

use crate::support::*;
use crate::Backend;

fn pending(image_id: uuid::Uuid, project: &str) -> Member {
    Member { image_id, member: project.into(), status: MemberStatus::Pending, created_at: t(1), updated_at: t(1) }
}

fn ev() -> ims_catalog::AuditEvent {
    event("member.create", "member")
}

pub async fn check_member_add_within_limit(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "shared");
    create(c, &img).await;
    c.members.add_within_limit(&pending(img.id, "p2"), 2, &ev()).await.unwrap();
    expect_conflict(c.members.add_within_limit(&pending(img.id, "p2"), 2, &ev()).await);
    c.members.add_within_limit(&pending(img.id, "p3"), 2, &ev()).await.unwrap();
    let before = b.audit.count().await;
    match c.members.add_within_limit(&pending(img.id, "p4"), 2, &ev()).await {
        Err(CatalogError::LimitExceeded(_)) => {}
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(b.audit.count().await, before, "a refused addition stores nothing");
    assert_eq!(c.members.list(img.id).await.unwrap().len(), 2);
    expect_not_found(c.members.add_within_limit(&pending(uuid::Uuid::new_v4(), "p2"), 2, &ev()).await);
}

pub async fn check_member_limit_holds_under_concurrency(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "popular");
    create(c, &img).await;
    let members = Arc::clone(&c.members);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (members, m) = (Arc::clone(&members), pending(img.id, &format!("q{i}")));
            tokio::spawn(async move { members.add_within_limit(&m, 10, &ev()).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => added += 1,
            Err(CatalogError::LimitExceeded(_)) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(added, 10);
    assert_eq!(c.members.list(img.id).await.unwrap().len(), 10);
}
