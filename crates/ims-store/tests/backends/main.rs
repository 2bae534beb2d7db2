//! One conformance suite for the chunk store (`suite.rs`), run on every object store backend: memory, local
//! files, and S3 on a Garage cluster (the shared one of the test command, or one started for the test).
//! `faults.rs` adds what only a cluster can show: a node going down and coming back.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod suite;

use ims_store::{ChunkStore, StoreOptions};
use ims_testkit::garage::GarageCluster;

/// A fresh, empty store and whatever keeps it alive.
pub struct Backend {
    pub store: ChunkStore,
    _dir: Option<tempfile::TempDir>,
    _cluster: Option<GarageCluster>,
}

async fn memory() -> Backend {
    Backend { store: ChunkStore::open("memory://").unwrap(), _dir: None, _cluster: None }
}

async fn file() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path().join("store")).unwrap();
    Backend { store: ChunkStore::open(url.as_str()).unwrap(), _dir: Some(dir), _cluster: None }
}

/// A fresh bucket of a one-node Garage cluster (or of the shared cluster).
async fn garage_s3() -> Backend {
    let cluster = GarageCluster::shared_or_start(1).await.expect("a Garage cluster");
    let store = open_bucket(&cluster, cluster.bucket());
    Backend { store, _dir: None, _cluster: Some(cluster) }
}

/// The chunk store on `bucket` of `cluster`, opened by URL like the server does.
pub fn open_bucket(cluster: &GarageCluster, bucket: &str) -> ChunkStore {
    let options = StoreOptions {
        s3_access_key_id: Some(cluster.access_key_id().to_string()),
        s3_secret_access_key: Some(cluster.secret_access_key().to_string()),
    };
    ChunkStore::open_with(&cluster.store_url(bucket), &options).unwrap()
}

macro_rules! conformance {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let backend = super::$backend().await;
                    crate::suite::$test(backend.store.clone()).await;
                }
            )*
        }
    };
}

macro_rules! conformance_on {
    ($($backend:ident),*) => {
        $(
            conformance!($backend:
                round_trip_keeps_the_sha256,
                a_64_mib_file_with_zero_runs_round_trips,
                zero_files_store_nothing,
                second_write_of_the_same_data_stores_nothing,
                has_chunk_tells_stored_from_absent,
                manifests_save_load_and_delete,
                ranged_reads_at_odd_offsets,
                concurrent_writers_of_overlapping_data,
                damaged_or_missing_chunks_are_corrupt,
                a_stalled_read_holds_up_nothing,
            );
        )*
    };
}

conformance_on!(memory, file, garage_s3);

/// Wrong credentials fail at once with a backend error naming the request, and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_s3_refuses_a_wrong_secret() {
    let cluster = GarageCluster::shared_or_start(1).await.expect("a Garage cluster");
    let options = StoreOptions {
        s3_access_key_id: Some(cluster.access_key_id().to_string()),
        s3_secret_access_key: Some("not-the-secret-access-key".to_string()),
    };
    let store = ChunkStore::open_with(&cluster.store_url(cluster.bucket()), &options).unwrap();
    let started = std::time::Instant::now();
    let mut writer = store.writer();
    writer.write(bytes::Bytes::from(common::random_bytes(common::MIB, 80))).await.unwrap();
    match writer.finish().await {
        Err(ims_store::StoreError::Backend(message)) => assert!(message.contains("403") || message.contains("Forbidden"), "{message}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "refusals are not retried");
    let good = open_bucket(&cluster, cluster.bucket());
    assert_eq!(common::chunk_objects(&good).await, 0);
}
