//! The server on an S3 chunk store: images go to a fresh bucket of a Garage cluster (the shared one of the
//! test command, or one started for this test) and come back byte for byte.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use ims_testkit::garage::GarageCluster;
use object_store::path::Path;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use crate::common::{pattern, raw_image, status, TestServer};

async fn objects_under(store: &dyn ObjectStore, prefix: &str) -> usize {
    store.list(Some(&Path::from(prefix))).try_collect::<Vec<_>>().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_upload_download_and_delete_on_garage() {
    let cluster = GarageCluster::shared_or_start(1).await.unwrap();
    let bucket = cluster.object_store(cluster.bucket()).unwrap();
    let s = TestServer::start_on_s3(&cluster, cluster.bucket()).await;

    let mut data = pattern(9 << 20, 31);
    data.extend(std::iter::repeat_n(0u8, 4 << 20));
    data.extend(pattern(12_345, 32));
    let sha256 = hex::encode(Sha256::digest(&data));
    let img = s.admin.create_image(&raw_image("on-s3")).await.unwrap();
    // Streamed in odd-sized pieces, as a client sends a file.
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(1_000_003).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    s.admin.upload_stream(&img.id, futures::stream::iter(pieces), Some(data.len() as u64)).await.unwrap();
    let shown = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(shown.status, "active");
    assert_eq!(shown.size, Some(data.len() as u64));
    assert!(objects_under(bucket.as_ref(), "chunks").await >= 5, "the chunks are in the bucket");
    assert_eq!(objects_under(bucket.as_ref(), "manifests").await, 1);

    let download = s.admin.download(&img.id, None).await.unwrap();
    assert_eq!(download.status, 200);
    let mut body = download.into_stream();
    let mut hasher = Sha256::new();
    while let Some(piece) = body.next().await {
        hasher.update(piece.unwrap());
    }
    assert_eq!(hex::encode(hasher.finalize()), sha256, "same sha256 back");

    let (start, end) = (5_000_001u64, 11_000_017u64);
    let range = s.admin.download(&img.id, Some((start, Some(end)))).await.unwrap();
    assert_eq!(range.status, 206);
    assert_eq!(range.bytes().await.unwrap().as_ref(), &data[start as usize..=end as usize]);

    s.admin.delete_image(&img.id).await.unwrap();
    assert_eq!(status(s.admin.get_image(&img.id).await), 404);
    // The delete is acknowledged by a quorum of the three nodes; a listing served right after it may
    // still show the object for a moment.
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = objects_under(bucket.as_ref(), "manifests").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(left, 0, "the manifest is gone");
}
