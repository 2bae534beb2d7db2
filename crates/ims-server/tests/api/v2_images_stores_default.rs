//! Deleting an image from the default store (`DELETE /v2/stores/local/{id}`) while an extra store keeps
//! a copy: the image is read from that copy, the default store's garbage collection reclaims its chunks,
//! its last copy cannot be deleted, and `copy-image` to `local` brings it back.

use std::collections::BTreeSet;
use std::time::Duration;

use ims_server::config::StoreConfig;
use ims_store::{ChunkId, ChunkStore};
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{pattern, raw_image, TestServer};

async fn server() -> (TestServer, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { url: format!("file://{}", dir.path().display()), description: "Second chunk store".into() };
    let s = TestServer::start_with(|c| {
        c.stores.insert("second".into(), config);
    })
    .await;
    (s, dir)
}

async fn image_json(s: &TestServer, id: &str) -> Value {
    s.raw(Method::GET, &format!("/v2/images/{id}")).send().await.unwrap().json().await.unwrap()
}

/// Copies image `id` to `store` with `copy-image`, waiting until its `stores` field reads `expected`.
async fn copy_to(s: &TestServer, id: &str, store: &str, expected: &str) {
    let body = json!({"method": {"name": "copy-image"}, "stores": [store]});
    let r = s.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    for _ in 0..300 {
        if image_json(s, id).await["stores"] == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("image {id} did not reach stores {expected}: {}", image_json(s, id).await);
}

async fn delete_from(s: &TestServer, store: &str, id: &str) -> (u16, String) {
    let r = s.raw(Method::DELETE, &format!("/v2/stores/{store}/{id}")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn download(s: &TestServer, id: &str) -> Vec<u8> {
    s.admin.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

async fn present(store: &ChunkStore) -> BTreeSet<ChunkId> {
    store.list_chunks().await.unwrap().into_iter().map(|c| c.id).collect()
}

#[tokio::test]
async fn an_image_deleted_from_the_default_store_is_read_from_its_copy_until_copied_back() {
    let (s, _dir) = server().await;
    let local = ChunkStore::open(&format!("file://{}", s.data_dir.join("store").display())).unwrap();
    let data = pattern((6 << 20) + 333, 17);
    let img = s.admin.create_image(&raw_image("moved")).await.unwrap();
    s.admin.upload_bytes(&img.id, data.clone()).await.unwrap();
    let id = img.id;

    let (code, body) = delete_from(&s, "local", &id).await;
    assert_eq!(code, 409, "the only copy stays: {body}");
    assert!(body.contains("only copy"), "{body}");
    copy_to(&s, &id, "second", "local,second").await;

    let (code, body) = delete_from(&s, "local", &id).await;
    assert_eq!(code, 204, "{body}");
    let image = image_json(&s, &id).await;
    assert_eq!((image["stores"].as_str(), image["status"].as_str()), (Some("second"), Some("active")), "{image}");
    assert_eq!(delete_from(&s, "local", &id).await.0, 404, "no longer there");
    let (code, body) = delete_from(&s, "second", &id).await;
    assert_eq!(code, 409, "the last copy stays: {body}");

    // The default store's collection reclaims the image's chunks; it reads from the copy.
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert!(report.chunks_deleted > 0, "{report:?}");
    assert!(present(&local).await.is_empty(), "nothing else lived in the default store");
    assert_eq!(download(&s, &id).await, data, "read from the copy in the second store");
    let r = s.admin.download(&id, Some((1 << 20, Some((3 << 20) - 1)))).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[1 << 20..3 << 20], "ranges too");
    let verified = s.admin.store_verify(Some(&id)).await.unwrap();
    assert!(verified.is_clean() && verified.bytes_checked > 0, "verified in its copy: {verified:?}");

    // Copied back to the default store, the extra copy can go and the image reads from the default store.
    copy_to(&s, &id, "local", "local,second").await;
    let (code, body) = delete_from(&s, "second", &id).await;
    assert_eq!(code, 204, "{body}");
    assert_eq!(image_json(&s, &id).await["stores"], "local");
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert!(report.extra_stores["second"].chunks_deleted > 0, "the extra store's copy is reclaimed: {report:?}");
    assert!(!present(&local).await.is_empty());
    assert_eq!(download(&s, &id).await, data, "read from the default store again");
}

#[tokio::test]
async fn an_image_out_of_the_default_store_still_copies_but_makes_no_volume() {
    let (s, _dir) = server().await;
    let data = pattern(3 << 20, 23);
    let img = s.admin.create_image(&raw_image("source")).await.unwrap();
    s.admin.upload_bytes(&img.id, data.clone()).await.unwrap();
    copy_to(&s, &img.id, "second", "local,second").await;
    assert_eq!(delete_from(&s, "local", &img.id).await.0, 204);
    s.admin.store_gc(Some(0)).await.unwrap();

    // A copy within the region writes the bytes anew into the default store.
    let job_id = s.admin.copy_image(&img.id, "copied", None).await.unwrap();
    let job = s.admin.wait_job(&job_id, Duration::from_millis(50), Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(job.status, "SUCCESS", "{job:?}");
    let copied_id = job.entities["image_id"].as_str().unwrap().to_string();
    let copied = image_json(&s, &copied_id).await;
    assert_eq!((copied["status"].as_str(), copied["stores"].as_str()), (Some("active"), Some("local")), "{copied}");
    assert_eq!(download(&s, &copied_id).await, data);

    // A volume would share the image's chunks in the default store, which no longer holds them.
    match s.admin.create_volume("v", None, Some(&img.id)).await {
        Err(ims_client::ClientError::Http { status, message }) => {
            assert_eq!(status, 409, "{message}");
            assert!(message.contains("copy-image"), "the answer says how to bring it back: {message}");
        }
        other => panic!("a volume from an image out of the default store: {other:?}"),
    }
}
