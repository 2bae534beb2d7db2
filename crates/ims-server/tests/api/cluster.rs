//! Three nodes sharing one PostgreSQL catalog and one Garage bucket, each with its own port and data
//! directory: data written through one node is served by the others, a staged import is finished by another
//! node's job runner, quotas and shares hold under concurrent requests spread over the nodes, and a
//! PostgreSQL restart during traffic gives clean 503s and then service again without restarting a node.

use std::time::{Duration, Instant};

use futures::StreamExt;
use ims_client::{Client, Image, ListParams, MemberStatus, Role};
use ims_server::Settings;
use ims_testkit::garage::GarageCluster;
use ims_testkit::postgres::PostgresCluster;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{pattern, raw_image, status, Tenant, TestServer};

/// Nodes of one deployment: same catalog, same chunk store, same master key, own ports and data directories.
struct Cluster {
    nodes: Vec<TestServer>,
}

impl Cluster {
    /// Three nodes over a fresh database of `postgres` and a fresh bucket of `garage`.
    async fn start(postgres: &PostgresCluster, garage: &GarageCluster) -> Cluster {
        Self::start_with(postgres, garage, |_, _| {}).await
    }

    /// Like [`Cluster::start`]; `configure` may change node `i`'s settings (numbered from 0).
    async fn start_with(
        postgres: &PostgresCluster,
        garage: &GarageCluster,
        configure: impl Fn(usize, &mut Settings),
    ) -> Cluster {
        let database = postgres.fresh_database().await.unwrap();
        let bucket = garage.fresh_bucket().await.unwrap();
        let mut nodes: Vec<TestServer> = Vec::new();
        for i in 0..3 {
            // The first node creates the master key that seals the catalog's secrets; the others get a copy,
            // as an operator installs it on every node.
            let master_key = nodes.first().map(|first| first.data_dir.join("master.key"));
            let node = TestServer::start_with(|settings| {
                settings.database = Some(database.clone());
                settings.store = Some(garage.store_url(&bucket));
                settings.s3_access_key_id = Some(garage.access_key_id().to_string());
                settings.s3_secret_access_key = Some(garage.secret_access_key().to_string());
                if let Some(master_key) = &master_key {
                    std::fs::create_dir_all(&settings.data_dir).unwrap();
                    std::fs::copy(master_key, settings.data_dir.join("master.key")).unwrap();
                }
                configure(i, settings);
            })
            .await;
            nodes.push(node);
        }
        Cluster { nodes }
    }

    /// `tenant`'s client, pointed at node `i`.
    fn as_on(&self, tenant: &Tenant, i: usize) -> Client {
        Client::new(&self.nodes[i].url, tenant.client.token().expect("a token")).unwrap()
    }
}

/// Images from the shared Garage cluster of the test command, or three Garage nodes of this test.
async fn garage() -> GarageCluster {
    GarageCluster::shared_or_start(3).await.unwrap()
}

/// The sha256 of an image's file, streamed from `client`.
async fn downloaded_sha256(client: &Client, id: &str) -> String {
    let download = client.download(id, None).await.unwrap();
    assert_eq!(download.status, 200);
    let mut body = download.into_stream();
    let mut hasher = Sha256::new();
    while let Some(piece) = body.next().await {
        hasher.update(piece.unwrap());
    }
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_uploaded_through_one_node_is_served_by_every_node() {
    let (postgres, garage) = (PostgresCluster::shared_or_start().await.unwrap(), garage().await);
    let cluster = Cluster::start(&postgres, &garage).await;
    let owner = cluster.nodes[0].tenant("owner", Role::Member).await;

    let mut data = pattern(7 << 20, 41);
    data.extend(std::iter::repeat_n(0u8, 2 << 20));
    data.extend(pattern(54_321, 42));
    let sha256 = hex::encode(Sha256::digest(&data));
    let img = owner.client.create_image(&raw_image("spread")).await.unwrap();
    owner.client.upload_bytes(&img.id, data.clone()).await.unwrap();

    for i in 1..3 {
        let client = cluster.as_on(&owner, i);
        let shown = client.get_image(&img.id).await.unwrap();
        assert_eq!((shown.status.as_str(), shown.size), ("active", Some(data.len() as u64)), "node {i}");
        assert_eq!(downloaded_sha256(&client, &img.id).await, sha256, "same sha256 from node {i}");
        let (start, end) = (3_000_017u64, 8_500_003u64);
        let range = client.download(&img.id, Some((start, Some(end)))).await.unwrap();
        assert_eq!(range.status, 206);
        assert_eq!(range.bytes().await.unwrap().as_ref(), &data[start as usize..=end as usize], "node {i}");
    }

    // Deleted through node 3: gone on every node.
    cluster.as_on(&owner, 2).delete_image(&img.id).await.unwrap();
    for i in 0..3 {
        assert_eq!(status(cluster.as_on(&owner, i).get_image(&img.id).await), 404, "node {i}");
    }
}

/// Waits until the image leaves `uploading`/`importing`.
async fn settled(client: &Client, id: &str) -> Image {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let image = client.get_image(id).await.unwrap();
        if image.status != "importing" && image.status != "uploading" {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("image {id} is still importing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_staged_on_one_node_is_finished_by_another_nodes_runner() {
    let (postgres, garage) = (PostgresCluster::shared_or_start().await.unwrap(), garage().await);
    // Node 2 (index 1) runs no jobs: whatever runs the import is another node.
    let cluster = Cluster::start_with(&postgres, &garage, |i, settings| {
        if i == 1 {
            settings.job_workers = 0;
        }
    })
    .await;
    let owner = cluster.nodes[0].tenant("importer", Role::Member).await;
    let on_node2 = cluster.as_on(&owner, 1);
    let on_node3 = cluster.as_on(&owner, 2);

    let data = pattern(5 << 20, 43);
    let img = owner.client.create_image(&raw_image("staged-elsewhere")).await.unwrap();
    on_node2.stage(&img.id, data.clone().into(), Some(data.len() as u64)).await.unwrap();
    assert_eq!(on_node3.get_image(&img.id).await.unwrap().status, "uploading", "staged, seen from node 3");
    on_node2.import_image(&img.id, &json!({"method": {"name": "glance-direct"}})).await.unwrap();

    let done = settled(&on_node3, &img.id).await;
    assert_eq!(done.status, "active", "{done:?}");
    assert_eq!(done.size, Some(data.len() as u64));
    assert_eq!(downloaded_sha256(&on_node3, &img.id).await, hex::encode(Sha256::digest(&data)));
    let tasks = owner.client.image_tasks(&img.id).await.unwrap();
    let list = tasks["tasks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{tasks}");
    assert_eq!(list[0]["status"], "success", "{tasks}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_over_three_nodes_never_pass_the_quota() {
    let (postgres, garage) = (PostgresCluster::shared_or_start().await.unwrap(), garage().await);
    let cluster = Cluster::start(&postgres, &garage).await;
    let owner = cluster.nodes[0].tenant("quota-race", Role::Member).await;
    cluster.nodes[1].admin.set_private_image_quota(&owner.project_id, Some(10)).await.unwrap();

    let creates = (0..20).map(|n| {
        let client = cluster.as_on(&owner, n % 3);
        async move { client.create_image(&raw_image(&format!("racer-{n}"))).await.map_err(|e| e.status()) }
    });
    let results = futures::future::join_all(creates).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(created, 10, "{results:?}");
    assert!(refused.iter().all(|s| **s == Some(413)), "only quota refusals: {refused:?}");
    for i in 0..3 {
        let listed = cluster.as_on(&owner, i).list_all_images(&ListParams::default()).await.unwrap();
        assert_eq!(listed.len(), 10, "node {i} lists the same ten");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shares_made_on_any_node_are_seen_on_every_node() {
    let (postgres, garage) = (PostgresCluster::shared_or_start().await.unwrap(), garage().await);
    let cluster = Cluster::start(&postgres, &garage).await;
    let owner = cluster.nodes[0].tenant("sharer", Role::Member).await;
    let guest = cluster.nodes[1].tenant("guest", Role::Member).await;
    let shared = ims_client::CreateImage { visibility: Some("shared".into()), ..raw_image("shared") };
    let img = owner.client.create_image(&shared).await.unwrap();
    let data = pattern(1 << 20, 44);
    owner.client.upload_bytes(&img.id, data.clone()).await.unwrap();

    cluster.as_on(&owner, 1).add_member(&img.id, &guest.project_id).await.unwrap();
    assert_eq!(status(cluster.as_on(&owner, 2).add_member(&img.id, &guest.project_id).await), 409);
    cluster.as_on(&guest, 2).update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    for i in 0..3 {
        let listed = cluster.as_on(&guest, i).list_all_images(&ListParams::default()).await.unwrap();
        assert_eq!(listed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [img.id.as_str()], "node {i}");
    }
    let sha256 = hex::encode(Sha256::digest(&data));
    assert_eq!(downloaded_sha256(&cluster.as_on(&guest, 0), &img.id).await, sha256);

    // Concurrent member adds over the three nodes stop at the members-per-image quota.
    cluster.nodes[2].admin.set_project_quotas(&owner.project_id, None, Some(Some(5))).await.unwrap();
    let mut projects = Vec::new();
    for n in 0..12 {
        projects.push(cluster.nodes[n % 3].admin.create_project(&format!("member-{n}")).await.unwrap().id);
    }
    let adds = projects.iter().enumerate().map(|(n, project)| {
        let client = cluster.as_on(&owner, n % 3);
        let image = img.id.clone();
        async move { client.add_member(&image, project).await.map_err(|e| e.status()) }
    });
    let results = futures::future::join_all(adds).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4, "the guest is the fifth member: {results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|s| *s == Some(413)), "{results:?}");
    for i in 0..3 {
        assert_eq!(cluster.as_on(&owner, i).list_members(&img.id).await.unwrap().len(), 5, "node {i}");
    }
}

/// Status, `Retry-After` and body of `GET /v2/images` on `node`, and how long it took.
async fn list_images(node: &TestServer) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let response = node.raw(Method::GET, "/v2/images").send().await.unwrap();
    let code = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or(Value::Null);
    (code, retry_after, body, started.elapsed())
}

/// How long a request may take while the catalog is unreachable (the pool waits 5 s for a connection).
const BOUND_WHILE_DOWN: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_during_traffic_gives_503s_then_service_without_restarting_nodes() {
    // A server of this test's own: it is stopped and started again.
    let postgres = PostgresCluster::start().await.unwrap();
    let garage = garage().await;
    let cluster = Cluster::start(&postgres, &garage).await;
    let owner = cluster.nodes[0].tenant("through-restart", Role::Member).await;
    let img = owner.client.create_image(&raw_image("before")).await.unwrap();
    let data = pattern(2 << 20, 45);
    owner.client.upload_bytes(&img.id, data.clone()).await.unwrap();

    // Traffic on every node all along: each answer is a listing or a clean 503, never anything else.
    let stop_traffic = tokio_util::sync::CancellationToken::new();
    let mut traffic = tokio::task::JoinSet::new();
    for i in 0..3 {
        let (client, stop) = (cluster.as_on(&owner, i), stop_traffic.clone());
        traffic.spawn(async move {
            let (mut ok, mut unavailable) = (0u32, 0u32);
            while !stop.is_cancelled() {
                match client.list_all_images(&ListParams::default()).await {
                    Ok(images) => {
                        assert_eq!(images.len(), 1, "node {i}");
                        ok += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.status(), Some(503), "node {i}: {e}");
                        unavailable += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, unavailable)
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    postgres.stop().await.unwrap();
    for node in &cluster.nodes {
        let (code, retry_after, body, took) = list_images(node).await;
        assert_eq!(code, 503, "{body}");
        assert!(retry_after.is_some_and(|s| s.parse::<u32>().is_ok_and(|secs| secs > 0)), "a Retry-After hint");
        assert_eq!(body["code"], "503 Service Unavailable", "the Glance error form: {body}");
        assert_eq!(body["title"], "Service Unavailable", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert!(took < BOUND_WHILE_DOWN, "answered in {took:?}");
    }
    // A write refused while the catalog is down changes nothing once it is back.
    let refused = cluster.as_on(&owner, 1).create_image(&raw_image("during")).await;
    assert_eq!(status(refused), 503);
    // Data already in the store cannot be served without its manifest's record: also a clean 503.
    assert_eq!(status(cluster.as_on(&owner, 2).download(&img.id, None).await), 503);
    tokio::time::sleep(Duration::from_secs(1)).await;

    postgres.start_again().await.unwrap();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, _, body, _) = list_images(node).await;
            if code == 200 {
                break;
            }
            assert_eq!(code, 503, "node {i}: {body}");
            assert!(Instant::now() < deadline, "node {i} does not serve again: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_traffic.cancel();
    while let Some(counts) = traffic.join_next().await {
        let (ok, unavailable) = counts.unwrap();
        assert!(ok >= 2 && unavailable >= 1, "served before and after, refused between: {ok} ok, {unavailable} 503");
    }

    for i in 0..3 {
        let client = cluster.as_on(&owner, i);
        assert_eq!(downloaded_sha256(&client, &img.id).await, hex::encode(Sha256::digest(&data)), "node {i}");
        client.create_image(&raw_image(&format!("after-{i}"))).await.unwrap();
    }
    let names: Vec<String> = owner
        .client
        .list_all_images(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|image| image.name)
        .collect();
    assert!(!names.iter().any(|n| n == "during"), "the refused create left nothing: {names:?}");
    assert_eq!(names.len(), 4, "{names:?}");
}
