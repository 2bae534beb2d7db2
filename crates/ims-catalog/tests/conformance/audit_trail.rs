//! The audit trail as a hash chain: every event, written with a change or on its own, gets the next
//! position linked to the one before; queries filter and page; concurrent writers keep the chain linear.

use std::collections::BTreeSet;

use ims_catalog::audit_chain::GENESIS_HASH;
use ims_catalog::{AuditEvent, AuditQuery, AuditRecord, Project};

use crate::support::*;
use crate::Backend;

fn project(id: &str) -> Project {
    Project { id: id.into(), name: format!("name-{id}"), created_at: t(0) }
}

/// An event of `project` by `user` at `t(secs)`.
fn ev(action: &str, project: &str, user: &str, secs: i64) -> AuditEvent {
    let mut e = event(action, &format!("image:{action}-{secs}"));
    e.project_id = Some(project.into());
    e.user_id = Some(user.into());
    e.source_address = Some("192.0.2.7:50123".into());
    e.at = t(secs);
    e
}

async fn all(b: &Backend) -> Vec<AuditRecord> {
    b.catalog.audit.list(&AuditQuery::all(1000)).await.expect("list the trail")
}

pub async fn check_audit_chain_links_every_write(b: &Backend) {
    let c = &b.catalog;
    c.identity.create_project(&project("p1"), &ev("project.create", "p1", "u1", 1)).await.unwrap();
    let failed = ev("http.delete", "p1", "u1", 2).failed("403 You are not permitted to delete image x.");
    let recorded = c.audit.record(&failed).await.unwrap();
    assert_eq!(recorded.event, failed, "record returns the event as stored");
    c.identity.create_project(&project("p2"), &ev("project.create", "p2", "u2", 3)).await.unwrap();

    let trail = all(b).await;
    assert_eq!(trail.len(), 3);
    assert_eq!(trail.iter().map(|r| r.position).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(trail[0].prev_hash, GENESIS_HASH);
    assert_eq!(trail[1].prev_hash, trail[0].hash);
    assert_eq!(trail[2].prev_hash, trail[1].hash);
    assert_eq!(trail[1], recorded, "the stored row is what record returned");
    assert_eq!(trail[1].event.error.as_deref(), Some("403 You are not permitted to delete image x."));
    assert_eq!(trail[1].event.result, "failure");
    assert_eq!(trail[0].event.source_address.as_deref(), Some("192.0.2.7:50123"));
    let distinct: BTreeSet<_> = trail.iter().map(|r| r.hash.clone()).collect();
    assert_eq!(distinct.len(), 3);

    let v = c.audit.verify().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!((v.events, v.head_hash.as_str()), (3, trail[2].hash.as_str()));

    // A refused write adds nothing to the chain.
    assert!(c.identity.create_project(&project("p1"), &ev("project.create", "p1", "u1", 4)).await.is_err());
    assert_eq!(all(b).await.len(), 3);
}

pub async fn check_audit_empty_trail_verifies(b: &Backend) {
    let v = b.catalog.audit.verify().await.unwrap();
    assert!(v.is_intact());
    assert_eq!((v.events, v.head_hash.as_str()), (0, GENESIS_HASH));
    assert!(all(b).await.is_empty());
}

pub async fn check_audit_query_filters_and_pages(b: &Backend) {
    let a = &b.catalog.audit;
    a.record(&ev("image.create", "p1", "u1", 10)).await.unwrap();
    a.record(&ev("image.delete", "p1", "u2", 20)).await.unwrap();
    a.record(&ev("image.create", "p2", "u3", 30).failed("409 conflict")).await.unwrap();
    a.record(&ev("member.create", "p2", "u3", 40)).await.unwrap();
    a.record(&ev("imagex.create", "p1", "u1", 50)).await.unwrap();

    let positions = |records: Vec<AuditRecord>| records.iter().map(|r| r.position).collect::<Vec<_>>();
    let q = |f: fn(&mut AuditQuery)| {
        let mut query = AuditQuery::all(100);
        f(&mut query);
        query
    };
    let list = |query: AuditQuery| async move { positions(a.list(&query).await.unwrap()) };
    assert_eq!(list(q(|q| q.project_id = Some("p1".into()))).await, vec![1, 2, 5]);
    assert_eq!(list(q(|q| q.user_id = Some("u3".into()))).await, vec![3, 4]);
    assert_eq!(list(q(|q| q.action = Some("image.create".into()))).await, vec![1, 3]);
    assert_eq!(list(q(|q| q.action = Some("image.*".into()))).await, vec![1, 2, 3], "the prefix stops at the dot");
    assert_eq!(list(q(|q| q.resource = Some("image:image.delete-20".into()))).await, vec![2]);
    assert_eq!(list(q(|q| q.result = Some("failure".into()))).await, vec![3]);
    assert_eq!(list(q(|q| q.since = Some(t(20)))).await, vec![2, 3, 4, 5], "since is inclusive");
    assert_eq!(list(q(|q| q.until = Some(t(30)))).await, vec![1, 2], "until is exclusive");
    assert_eq!(
        list(q(|q| {
            q.project_id = Some("p2".into());
            q.result = Some("success".into());
        }))
        .await,
        vec![4]
    );

    // Paging, both directions.
    let page = |marker: Option<u64>, newest_first: bool| AuditQuery { marker, newest_first, ..AuditQuery::all(2) };
    assert_eq!(list(page(None, false)).await, vec![1, 2]);
    assert_eq!(list(page(Some(2), false)).await, vec![3, 4]);
    assert_eq!(list(page(Some(4), false)).await, vec![5]);
    assert_eq!(list(page(None, true)).await, vec![5, 4]);
    assert_eq!(list(page(Some(4), true)).await, vec![3, 2]);
    assert_eq!(list(page(Some(1), true)).await, Vec::<u64>::new());
}

pub async fn check_audit_concurrent_writers_keep_one_chain(b: &Backend) {
    const WRITERS: usize = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let catalog = b.catalog.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                catalog.audit.record(&ev("job.succeeded", "p1", "u1", i as i64)).await.map(drop)
            } else {
                catalog.identity.create_project(&project(&format!("p{i}")), &ev("project.create", "p1", "u1", i as i64)).await
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer task").expect("every write succeeds");
    }
    let trail = all(b).await;
    assert_eq!(trail.len(), WRITERS);
    assert_eq!(trail.iter().map(|r| r.position).collect::<Vec<_>>(), (1..=WRITERS as u64).collect::<Vec<_>>());
    let v = b.catalog.audit.verify().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.events, WRITERS as u64);
}
