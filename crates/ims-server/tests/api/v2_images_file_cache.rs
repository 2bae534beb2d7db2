//! `GET /v2/images/{id}/file` and the node's chunk cache: ranged downloads are served from it when
//! repeated, full downloads do not fill it, and a disabled key cuts off cached plaintext too.
//!
//! Whether a read was served from memory is told by removing every chunk object from the store
//! directory: a read that still succeeds fetched nothing.

use std::path::Path;

use ims_client::{Client, Role};
use reqwest::Method;
use serde_json::Value;

use crate::common::{pattern, raw_image, status, TestServer};

const MIB: u64 = 1 << 20;

/// Removes every chunk object of the server's store; returns how many there were.
fn remove_chunk_objects(data_dir: &Path) -> usize {
    let root = data_dir.join("store").join("chunks");
    let mut removed = 0;
    for dir in std::fs::read_dir(&root).unwrap().flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            std::fs::remove_file(file.path()).unwrap();
            removed += 1;
        }
    }
    removed
}

/// Bytes `[start, end)` of image `id` through a `Range` request.
async fn range(client: &Client, id: &str, start: u64, end: u64) -> Result<Vec<u8>, ims_client::ClientError> {
    let response = client.download(id, Some((start, Some(end - 1)))).await?;
    Ok(response.bytes().await?.to_vec())
}

#[tokio::test]
async fn repeated_ranges_come_from_the_cache_and_full_downloads_leave_it_alone() {
    let s = TestServer::start().await;
    let data = pattern(24 * MIB as usize, 31);
    let image = s.admin.create_image(&raw_image("hot-ranges")).await.unwrap();
    s.admin.upload_bytes(&image.id, data.clone()).await.unwrap();
    let id = image.id;

    // A full download, then a small range. (The upload's inspection read the first chunks through
    // the cache; the ranges here are far from them: chunks are about 1 MiB.)
    let whole = s.admin.download(&id, None).await.unwrap().bytes().await.unwrap();
    assert!(whole[..] == data[..]);
    let hot = (20 * MIB + 4321, 20 * MIB + 300_000);
    assert_eq!(range(&s.admin, &id, hot.0, hot.1).await.unwrap(), &data[hot.0 as usize..hot.1 as usize]);

    assert!(remove_chunk_objects(&s.data_dir) >= 10);
    for _ in 0..2 {
        let again = range(&s.admin, &id, hot.0, hot.1).await.expect("the range is served from the cache");
        assert!(again == data[hot.0 as usize..hot.1 as usize]);
    }
    // The full download kept nothing: other bytes must be fetched, and they are gone.
    let cold = (12 * MIB, 12 * MIB + 64 * 1024);
    let err = range(&s.admin, &id, cold.0, cold.1).await.expect_err("the full download cached nothing");
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn a_disabled_key_makes_cached_plaintext_unreadable_until_enabled() {
    let s = TestServer::start().await;
    let t = s.tenant("cached-secret", Role::Member).await;
    let key = s.admin.create_kms_key("cached-secret-key", None).await.unwrap();
    let data = pattern(6 * MIB as usize, 32);
    let mut create = raw_image("cached-secret");
    create.properties.insert("__system__cmkid".into(), key.id.clone());
    let id = t.client.create_image(&create).await.unwrap().id;
    t.client.upload_bytes(&id, data.clone()).await.unwrap();

    let hot = (MIB + 17, 2 * MIB + 100_000);
    let expected = &data[hot.0 as usize..hot.1 as usize];
    assert_eq!(range(&t.client, &id, hot.0, hot.1).await.unwrap(), expected);
    assert!(remove_chunk_objects(&s.data_dir) >= 3);
    assert_eq!(range(&t.client, &id, hot.0, hot.1).await.unwrap(), expected, "cached");

    s.admin.disable_kms_key(&key.id).await.unwrap();
    let r = t.client.raw(Method::GET, &format!("/v2/images/{id}/file")).header("range", format!("bytes={}-{}", hot.0, hot.1 - 1));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&key.id) && message.contains("disabled"), "{message}");
    assert_eq!(status(range(&s.admin, &id, hot.0, hot.1).await), 403, "admins too");

    s.admin.enable_kms_key(&key.id).await.unwrap();
    assert_eq!(range(&t.client, &id, hot.0, hot.1).await.unwrap(), expected, "cached, and readable again");
}
