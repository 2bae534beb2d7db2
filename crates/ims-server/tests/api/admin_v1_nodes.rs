//! `/admin/v1/nodes`: two nodes over one PostgreSQL catalog and one file store register themselves; draining
//! one while the job queue is full hands every remaining job to the other node, and the drained node reports
//! `drained`. Admins only; unknown nodes are 404.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ims_client::{AuditFilter, Client, ImportImage, JobInfo, NodeInfo, Role};
use ims_testkit::postgres::PostgresCluster;

use crate::common::{pattern, status, Tenant, TestServer};

/// Import jobs queued before the drain.
const QUEUED_JOBS: usize = 16;

/// Two nodes sharing a fresh database, a store and the user buckets, each running one job at a time.
async fn two_nodes(postgres: &PostgresCluster, shared: &std::path::Path) -> Vec<TestServer> {
    let database = postgres.fresh_database().await.unwrap();
    let mut nodes: Vec<TestServer> = Vec::new();
    for _ in 0..2 {
        let master_key = nodes.first().map(|first| first.data_dir.join("master.key"));
        let node = TestServer::start_with(|settings| {
            settings.database = Some(database.clone());
            settings.store = Some(format!("file://{}", shared.join("store").display()));
            settings.buckets = Some(format!("file://{}", shared.join("buckets").display()));
            settings.job_workers = 1;
            settings.job_stale_after = 2;
            if let Some(master_key) = &master_key {
                std::fs::create_dir_all(&settings.data_dir).unwrap();
                std::fs::copy(master_key, settings.data_dir.join("master.key")).unwrap();
            }
        })
        .await;
        nodes.push(node);
    }
    nodes
}

/// The registered node serving `server` (nodes register when they start serving).
async fn node_of(server: &TestServer) -> NodeInfo {
    let address = server.url.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = server.admin.list_nodes().await.unwrap();
        if let Some(node) = nodes.into_iter().find(|n| n.address == address) {
            return node;
        }
        assert!(Instant::now() < deadline, "the node at {address} did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn import(tenant: &Tenant, name: String) -> String {
    let image = ImportImage { name, image_url: "imports:disk.raw".into(), min_disk: 1, ..Default::default() };
    tenant.client.create_image_from_file(&image).await.unwrap()
}

async fn job(client: &Client, id: &str) -> JobInfo {
    client.get_job(id).await.unwrap()
}

/// The worker that ended job `id`, from its `job.succeeded` audit event.
async fn finished_by(admin: &Client, id: &str) -> String {
    let filter = AuditFilter {
        action: Some("job.succeeded".into()),
        resource: Some(format!("job:{id}")),
        ..Default::default()
    };
    let events = admin.audit_events(&filter).await.unwrap().events;
    assert_eq!(events.len(), 1, "one end of job {id}: {events:?}");
    let detail = events[0].detail.clone().unwrap_or_default();
    detail.rsplit_once("worker ").unwrap_or_else(|| panic!("no worker in {detail:?}")).1.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_node_hands_every_remaining_job_to_the_other_node() {
    let postgres = PostgresCluster::shared_or_start().await.unwrap();
    let shared = tempfile::tempdir().unwrap();
    let nodes = two_nodes(&postgres, shared.path()).await;
    let (first, second) = (node_of(&nodes[0]).await, node_of(&nodes[1]).await);
    assert_ne!(first.id, second.id);
    assert_eq!((first.state.as_str(), second.state.as_str()), ("active", "active"));
    let listed = nodes[1].admin.list_nodes().await.unwrap();
    assert_eq!(listed.iter().map(|n| n.id.as_str()).collect::<BTreeSet<_>>(), [first.id.as_str(), second.id.as_str()].into());

    let tenant = nodes[0].tenant("drainer", Role::Member).await;
    tenant.client.put_object_bytes("imports", "disk.raw", pattern(12 << 20, 61)).await.unwrap();
    let mut jobs = Vec::new();
    for n in 0..QUEUED_JOBS {
        jobs.push(import(&tenant, format!("queued-{n}")).await);
    }

    // Once the first node works on the queue, drain it (through the other node: any node drains any).
    let on_first = format!("{}/", first.id);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut took_part = false;
        for id in &jobs {
            took_part |= job(&tenant.client, id).await.worker.is_some_and(|w| w.starts_with(&on_first));
        }
        if took_part {
            break;
        }
        assert!(Instant::now() < deadline, "the first node never ran a job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let draining = nodes[1].admin.drain_node(&first.id).await.unwrap();
    assert_eq!((draining.id.as_str(), draining.state.as_str()), (first.id.as_str(), "draining"));
    assert_eq!(nodes[0].admin.drain_node(&first.id).await.unwrap().state, "draining", "idempotent");

    // The drained node hands its job back at once and then reports drained.
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_of(&nodes[0]).await.state != "drained" {
        assert!(Instant::now() < deadline, "the node did not finish draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut remaining = Vec::new();
    for id in &jobs {
        if !["SUCCESS", "FAIL"].contains(&job(&tenant.client, id).await.status.as_str()) {
            remaining.push(id.clone());
        }
    }
    assert!(!remaining.is_empty(), "the queue was not empty when the node had drained");
    // A job queued through the drained node's API after the drain runs elsewhere too.
    let late = import(&tenant, "after-drain".into()).await;
    remaining.push(late.clone());
    jobs.push(late);

    let on_second = format!("{}/", second.id);
    for id in &jobs {
        let ended = tenant.client.wait_job(id, Duration::from_millis(100), Duration::from_secs(120), |_| {}).await.unwrap();
        assert_eq!(ended.status, "SUCCESS", "{ended:?}");
    }
    for id in &remaining {
        let worker = finished_by(&nodes[0].admin, id).await;
        assert!(worker.starts_with(&on_second), "job {id} ran on {worker}, not on the second node");
    }
    assert_eq!(node_of(&nodes[1]).await.state, "active");
    assert_eq!(node_of(&nodes[0]).await.state, "drained", "drained stays drained");
}

#[tokio::test]
async fn nodes_are_for_admins_and_unknown_nodes_are_404() {
    let server = TestServer::start().await;
    let node = node_of(&server).await;
    assert_eq!((node.state.as_str(), node.address.as_str()), ("active", server.url.trim_start_matches("http://")));
    let member = server.tenant("curious", Role::Member).await;
    assert_eq!(status(member.client.list_nodes().await), 403);
    assert_eq!(status(member.client.drain_node(&node.id).await), 403);
    assert_eq!(status(server.admin.drain_node("no-such-node").await), 404);
    assert_eq!(node_of(&server).await.state, "active", "refused drains change nothing");
}
