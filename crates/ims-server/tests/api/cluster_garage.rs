//! Three nodes over one PostgreSQL catalog and a three-node Garage cluster of this test (replication factor
//! 3, so a write needs two nodes): with one Garage node killed in the middle of uploads and downloads through
//! every IMS node, they keep working; once it is back, nothing is lost: every image downloads with its sha256
//! unchanged from every node and `/admin/v1/store/verify` is clean.

use std::time::{Duration, Instant};

use futures::StreamExt;
use ims_client::{Client, Role};
use ims_testkit::garage::GarageCluster;
use ims_testkit::postgres::PostgresCluster;
use sha2::{Digest, Sha256};

use crate::common::{pattern, raw_image, Tenant, TestServer};

/// The Garage node stopped and started again (node 0 serves the S3 endpoint the IMS nodes use).
const STOPPED_GARAGE_NODE: usize = 2;

/// Three IMS nodes over a fresh database of `postgres` and a fresh bucket of `garage`.
async fn start_nodes(postgres: &PostgresCluster, garage: &GarageCluster) -> Vec<TestServer> {
    let database = postgres.fresh_database().await.unwrap();
    let bucket = garage.fresh_bucket().await.unwrap();
    let mut nodes: Vec<TestServer> = Vec::new();
    for _ in 0..3 {
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
        })
        .await;
        nodes.push(node);
    }
    nodes
}

fn on(node: &TestServer, tenant: &Tenant) -> Client {
    Client::new(&node.url, tenant.client.token().expect("a token")).unwrap()
}

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

/// Uploads `data` as a new image through `client`; its id and sha256.
async fn upload(client: &Client, name: String, data: Vec<u8>) -> (String, String) {
    let sha256 = hex::encode(Sha256::digest(&data));
    let img = client.create_image(&raw_image(&name)).await.unwrap();
    client.upload_bytes(&img.id, data).await.unwrap_or_else(|e| panic!("uploading {name}: {e}"));
    (img.id, sha256)
}

/// One round of traffic over every node at once: node `i` uploads a new image and downloads every image
/// of `known` (checking its sha256). Returns the new images.
async fn traffic(nodes: &[TestServer], owner: &Tenant, known: &[(String, String)], round: u64) -> Vec<(String, String)> {
    let work = nodes.iter().enumerate().map(|(i, node)| {
        let client = on(node, owner);
        async move {
            let data = pattern((3 << 20) + i * 77_777, round * 10 + i as u64);
            let uploaded = upload(&client, format!("round{round}-node{i}"), data).await;
            for (id, sha256) in known {
                assert_eq!(&downloaded_sha256(&client, id).await, sha256, "image {id} from node {i}");
            }
            uploaded
        }
    });
    futures::future::join_all(work).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_downloads_go_on_with_one_garage_node_down_and_nothing_is_lost() {
    let postgres = PostgresCluster::shared_or_start().await.unwrap();
    // This test stops a node: a cluster of its own, never the shared one.
    let mut garage = GarageCluster::start(3).await.unwrap();
    let nodes = start_nodes(&postgres, &garage).await;
    let owner = nodes[0].tenant("garage-outage", Role::Member).await;

    let mut images = traffic(&nodes, &owner, &[], 1).await;

    // Killed while a round of traffic runs, then a whole round with the node down.
    let stop = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        garage.stop_node(STOPPED_GARAGE_NODE).unwrap();
        Instant::now()
    };
    let round = async {
        let new = traffic(&nodes, &owner, &images, 2).await;
        (new, Instant::now())
    };
    let ((new, round_ended), stopped) = tokio::join!(round, stop);
    assert!(round_ended > stopped, "the Garage node stopped while the round ran");
    images.extend(new);
    let new = traffic(&nodes, &owner, &images, 3).await;
    images.extend(new);

    garage.start_node(STOPPED_GARAGE_NODE).await.unwrap();
    let new = traffic(&nodes, &owner, &images, 4).await;
    images.extend(new);

    let report = nodes[1].admin.store_verify(None).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(images.len(), 12);
    for (i, node) in nodes.iter().enumerate() {
        let client = on(node, &owner);
        for (id, sha256) in &images {
            let shown = client.get_image(id).await.unwrap();
            assert_eq!(shown.status, "active", "image {id} on node {i}");
            assert_eq!(&downloaded_sha256(&client, id).await, sha256, "image {id} from node {i}");
        }
    }
}
