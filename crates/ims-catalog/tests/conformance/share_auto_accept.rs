//! The projects a project accepts shares from without answering.

use ims_catalog::Project;

use crate::support::*;
use crate::Backend;

fn ev() -> ims_catalog::AuditEvent {
    event("share.auto_accept", "project")
}

pub async fn check_share_auto_accept(b: &Backend) {
    let c = &b.catalog;
    let p = Project { id: "p1".into(), name: "one".into(), created_at: t(0) };
    c.identity.create_project(&p, &ev()).await.unwrap();

    assert!(!c.share_auto_accept.accepts("p1", "p2").await.unwrap());
    let before = b.audit.count().await;
    assert!(c.share_auto_accept.add("p1", "p3", t(1), &ev()).await.unwrap());
    assert!(c.share_auto_accept.add("p1", "p2", t(2), &ev()).await.unwrap());
    assert!(!c.share_auto_accept.add("p1", "p2", t(3), &ev()).await.unwrap(), "adding twice changes nothing");
    assert_eq!(b.audit.count().await, before + 2);
    assert_eq!(c.share_auto_accept.list("p1").await.unwrap(), ["p2", "p3"], "ordered by id");
    assert!(c.share_auto_accept.accepts("p1", "p2").await.unwrap());
    assert!(!c.share_auto_accept.accepts("p2", "p1").await.unwrap(), "one direction only");
    expect_not_found(c.share_auto_accept.add("nobody", "p1", t(4), &ev()).await);
    assert!(c.share_auto_accept.list("nobody").await.unwrap().is_empty());

    c.share_auto_accept.remove("p1", "p2", &ev()).await.unwrap();
    expect_not_found(c.share_auto_accept.remove("p1", "p2", &ev()).await);
    assert!(!c.share_auto_accept.accepts("p1", "p2").await.unwrap());

    // The list goes with its project.
    c.identity.delete_project("p1", &ev()).await.unwrap();
    assert!(c.share_auto_accept.list("p1").await.unwrap().is_empty());
}
