//! What only the PostgreSQL backend promises: nodes with their own connection pools share one database
//! without racing each other (quotas, compare-and-set transitions, job claims, first-start migrations),
//! connection trouble is `Unavailable`, and values PostgreSQL cannot store are `Invalid`.
//! (The conformance suite runs on PostgreSQL too: `tests/conformance.rs`.)

use std::collections::HashSet;

use chrono::Utc;
use ims_catalog::postgres::PostgresCatalog;
use ims_catalog::{AuditEvent, Catalog, CatalogError, Image, ImageStatus, Job};
use ims_testkit::postgres::PostgresCluster;
use tokio::task::JoinSet;
use uuid::Uuid;

/// How many nodes (catalogs with their own pools) race in each test.
const NODES: usize = 8;

fn event(action: &str) -> AuditEvent {
    AuditEvent::new("req-test", action, "test".into())
}

fn image(owner: &str, name: &str) -> Image {
    let mut img = Image::new(Uuid::new_v4(), owner, Utc::now());
    img.name = Some(name.to_string());
    img
}

/// A fresh database and `n` catalogs on it, each with its own connection pool (as `n` nodes would have).
async fn nodes(n: usize) -> (PostgresCluster, String, Vec<Catalog>) {
    let server = PostgresCluster::shared_or_start().await.expect("a PostgreSQL server");
    let url = server.fresh_database().await.expect("a fresh database");
    let mut catalogs = Vec::new();
    for _ in 0..n {
        catalogs.push(Catalog::connect(&url).await.expect("connect a node"));
    }
    (server, url, catalogs)
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let server = PostgresCluster::shared_or_start().await.unwrap();
    let url = server.fresh_database().await.unwrap();
    let mut starts = JoinSet::new();
    for _ in 0..NODES {
        let url = url.clone();
        starts.spawn(async move { PostgresCatalog::connect(&url).await.map(|_| ()) });
    }
    while let Some(started) = starts.join_next().await {
        started.unwrap().expect("every node opens the catalog");
    }
    let db = PostgresCatalog::connect(&url).await.unwrap();
    assert_eq!(db.audit_count().await.unwrap(), 0);
    // `postgresql://` names the same database.
    let alias = url.replacen("postgres://", "postgresql://", 1);
    let catalog = Catalog::connect(&alias).await.unwrap();
    assert!(catalog.identity.is_empty().await.unwrap());
}

#[tokio::test]
async fn concurrent_creations_on_many_nodes_never_pass_the_quota() {
    const QUOTA: u64 = 5;
    let (_server, _url, catalogs) = nodes(NODES).await;
    let mut creations = JoinSet::new();
    for (node, catalog) in catalogs.iter().enumerate() {
        for attempt in 0..3 {
            let catalog = catalog.clone();
            creations.spawn(async move {
                let img = image("p1", &format!("node{node}-{attempt}"));
                catalog.images.create_within_quota(&img, QUOTA, &event("image.create")).await
            });
        }
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(result) = creations.join_next().await {
        match result.unwrap() {
            Ok(()) => created += 1,
            Err(CatalogError::LimitExceeded(_)) => refused += 1,
            Err(other) => panic!("a creation failed with {other:?}"),
        }
    }
    assert_eq!((created, refused), (QUOTA, 3 * NODES as u64 - QUOTA));
    for catalog in &catalogs {
        assert_eq!(catalog.images.usage("p1").await.unwrap().image_count, QUOTA, "every node sees the same count");
    }
}

#[tokio::test]
async fn concurrent_transitions_on_many_nodes_have_one_winner() {
    let (_server, _url, catalogs) = nodes(NODES).await;
    let mut img = image("p1", "contested");
    img.disk_format = Some("raw".into());
    img.container_format = Some("bare".into());
    catalogs[0].images.create(&img, &event("image.create")).await.unwrap();

    for round in 0..5 {
        // Every node reads the image and tries to move it from where it is to `saving` (round 0) or
        // between active and deactivated; only one compare-and-set can hold.
        let current = catalogs[0].images.get(img.id).await.unwrap();
        let (from, to) = match current.status {
            ImageStatus::Queued => (ImageStatus::Queued, ImageStatus::Saving),
            ImageStatus::Saving | ImageStatus::Deactivated => (current.status, ImageStatus::Active),
            ImageStatus::Active => (ImageStatus::Active, ImageStatus::Deactivated),
            other => panic!("unexpected status {other}"),
        };
        let mut attempts = JoinSet::new();
        for (node, catalog) in catalogs.iter().enumerate() {
            let catalog = catalog.clone();
            let mut next = current.clone();
            next.status = to;
            next.name = Some(format!("round{round}-node{node}"));
            next.updated_at = Utc::now();
            attempts.spawn(async move {
                let result = catalog.images.save(&next, &[from], &event("image.update")).await;
                (next.name, result)
            });
        }
        let mut winners = Vec::new();
        while let Some(attempt) = attempts.join_next().await {
            match attempt.unwrap() {
                (name, Ok(())) => winners.push(name),
                (_, Err(CatalogError::Conflict(_))) => {}
                (_, Err(other)) => panic!("a loser got {other:?} instead of Conflict"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one transition wins: {winners:?}");
        let stored = catalogs[NODES - 1].images.get(img.id).await.unwrap();
        assert_eq!((stored.status, stored.name), (to, winners.pop().unwrap()));
    }
}

#[tokio::test]
async fn workers_on_many_nodes_claim_each_job_once() {
    const JOBS: usize = 40;
    let (_server, _url, catalogs) = nodes(NODES).await;
    for i in 0..JOBS {
        let job = Job::new(format!("job-{i:03}"), "convert", "p1", serde_json::json!({}), Utc::now());
        catalogs[0].jobs.create(&job, &event("job.create")).await.unwrap();
    }
    let mut workers = JoinSet::new();
    for (node, catalog) in catalogs.iter().enumerate() {
        let catalog = catalog.clone();
        workers.spawn(async move {
            let worker = format!("node-{node}");
            let mut claimed = Vec::new();
            while let Some(job) = catalog.jobs.claim_next(&worker, &["convert"], Utc::now()).await.unwrap() {
                assert_eq!(job.claimed_by.as_deref(), Some(worker.as_str()));
                claimed.push(job.id);
            }
            claimed
        });
    }
    let mut all = Vec::new();
    while let Some(claimed) = workers.join_next().await {
        all.extend(claimed.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), JOBS, "every job is claimed");
    assert_eq!(distinct.len(), JOBS, "no job is claimed twice");
}

#[tokio::test]
async fn text_postgres_cannot_store_is_invalid_and_changes_nothing() {
    let (_server, url, catalogs) = nodes(1).await;
    let catalog = &catalogs[0];
    let bad = image("p1", "nul\0byte");
    match catalog.images.create(&bad, &event("image.create")).await {
        Err(CatalogError::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
    match catalog.images.get(bad.id).await {
        Err(CatalogError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    let db = PostgresCatalog::connect(&url).await.unwrap();
    assert_eq!(db.audit_count().await.unwrap(), 0, "nothing was audited");
}

#[tokio::test]
async fn bad_urls_are_invalid_and_unreachable_servers_unavailable() {
    match PostgresCatalog::connect("postgres://u@h:notaport/db").await {
        Err(CatalogError::Invalid(m)) => assert!(!m.contains("notaport/db"), "the URL is not echoed: {m}"),
        other => panic!("expected Invalid, got {:?}", other.err()),
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    match Catalog::connect(&format!("postgres://postgres:secret@127.0.0.1:{port}/ims")).await {
        Err(CatalogError::Unavailable(m)) => assert!(!m.contains("secret"), "no password in {m}"),
        other => panic!("expected Unavailable, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_lost_server_is_unavailable() {
    // A private cluster: this test stops it.
    let server = PostgresCluster::start().await.unwrap();
    let url = server.fresh_database().await.unwrap();
    let catalog = Catalog::connect(&url).await.unwrap();
    let img = image("p1", "before");
    catalog.images.create(&img, &event("image.create")).await.unwrap();
    drop(server);
    match catalog.images.get(img.id).await {
        Err(CatalogError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match catalog.images.create(&image("p1", "after"), &event("image.create")).await {
        Err(CatalogError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
