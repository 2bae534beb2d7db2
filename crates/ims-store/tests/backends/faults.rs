//! A three-node Garage cluster with replication factor 3 keeps serving the chunk store while one node is
//! down, and everything still reads back verified once it is back. The cluster is always this test's own
//! (never the shared one): it stops nodes.

use std::sync::Arc;

use ims_store::ChunkStore;
use ims_testkit::garage::GarageCluster;
use sha2::{Digest, Sha256};

use crate::common::*;

/// A stored file: its saved manifest id and the sha256 it must read back with.
struct Stored {
    manifest_id: String,
    sha256: [u8; 32],
}

async fn store_file(store: &ChunkStore, size: usize, seed: u64) -> Stored {
    let mut data = random_bytes(size, seed);
    data[size / 3..size / 2].fill(0);
    let summary = write_in_pieces(store, &data, seed).await.unwrap();
    let manifest_id = store.save_manifest(&summary.manifest).await.unwrap();
    Stored { manifest_id, sha256: Sha256::digest(&data).into() }
}

async fn verify(store: &ChunkStore, files: &[Stored], when: &str) {
    for (i, file) in files.iter().enumerate() {
        let manifest = Arc::new(store.load_manifest(&file.manifest_id).await.unwrap());
        let data = read(store, &manifest, 0, manifest.size).await.unwrap();
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(sha256, file.sha256, "file {i} {when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_downloads_survive_one_node_of_three_down() {
    let mut cluster = GarageCluster::start(3).await.unwrap();
    let store = crate::open_bucket(&cluster, cluster.bucket());
    let mut files = vec![store_file(&store, 6 * MIB + 5, 70).await];

    // Node 0 serves the S3 endpoint; stop another one.
    cluster.stop_node(2).unwrap();
    files.push(store_file(&store, 5 * MIB + 3, 71).await);
    verify(&store, &files, "with node 2 down").await;

    cluster.start_node(2).await.unwrap();
    files.push(store_file(&store, 4 * MIB + 1, 72).await);
    verify(&store, &files, "after node 2 came back").await;

    // The restarted node now stands in for another: reads need it and node 0 only.
    cluster.stop_node(1).unwrap();
    verify(&store, &files, "with node 1 down after node 2 came back").await;
}
