//! Glance multiple stores: `/v2/info/stores` (and `/detail`), the images' `stores` field, `copy-image` to
//! a second store, and `DELETE /v2/stores/{store_id}/{image_id}`.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use ims_client::Role;
use ims_server::config::StoreConfig;
use ims_store::ChunkStore;
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{pattern, raw_image, TestServer};

/// A server with a second store, `second`, in its own directory (returned, with its URL).
async fn two_store_server() -> (TestServer, String, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let config = StoreConfig { url: url.clone(), description: "Second chunk store".into() };
    let s = TestServer::start_with(|c| {
        c.stores.insert("second".into(), config);
    })
    .await;
    (s, url, dir)
}

async fn json_of(s: &TestServer, method: Method, path: &str) -> (u16, Value) {
    let r = s.raw(method, path).send().await.unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn import(s: &TestServer, id: &str, body: Value) -> (u16, String) {
    let r = s.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An active raw image holding `data`.
async fn active_image(s: &TestServer, name: &str, data: &[u8]) -> String {
    let img = s.admin.create_image(&raw_image(name)).await.unwrap();
    s.admin.upload_bytes(&img.id, data.to_vec()).await.unwrap();
    img.id
}

/// The image's newest import task, once it ended.
async fn last_task(s: &TestServer, id: &str) -> Value {
    for _ in 0..300 {
        let tasks = s.admin.image_tasks(id).await.unwrap();
        let list = tasks["tasks"].as_array().unwrap().clone();
        let newest = list.iter().max_by_key(|t| t["created_at"].as_str().unwrap_or_default().to_string()).cloned();
        if let Some(task) = newest.filter(|t| matches!(t["status"].as_str(), Some("success" | "failure"))) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the copy of image {id} did not end");
}

async fn image_json(s: &TestServer, id: &str) -> Value {
    let (code, image) = json_of(s, Method::GET, &format!("/v2/images/{id}")).await;
    assert_eq!(code, 200, "{image}");
    image
}

/// The bytes of the only image copy held by the store at `url`, read through its manifest.
async fn only_copy_in(url: &str) -> Vec<u8> {
    let store = ChunkStore::open(url).unwrap();
    let manifests = store.list_manifests().await.unwrap();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let manifest = Arc::new(store.load_manifest(&manifests[0].id).await.unwrap());
    let size = manifest.size;
    let pieces: Vec<bytes::Bytes> = store.read_range(manifest, 0, size).try_collect().await.unwrap();
    pieces.concat()
}

#[tokio::test]
async fn info_stores_lists_the_default_store_then_the_configured_ones() {
    let (s, _url, _dir) = two_store_server().await;
    let (code, info) = json_of(&s, Method::GET, "/v2/info/stores").await;
    assert_eq!(code, 200);
    assert_eq!(info["stores"][0]["id"], "local");
    assert_eq!(info["stores"][0]["default"], true);
    assert_eq!(info["stores"][1], json!({"id": "second", "description": "Second chunk store"}));
    assert_eq!(info["stores"].as_array().unwrap().len(), 2);

    let (code, detail) = json_of(&s, Method::GET, "/v2/info/stores/detail").await;
    assert_eq!(code, 200);
    assert_eq!(detail["stores"][1]["type"], "file");
    assert_eq!(detail["stores"][1]["default"], false);
    let member = s.tenant("plain", Role::Member).await;
    let r = member.client.raw(Method::GET, "/v2/info/stores/detail").send().await.unwrap();
    assert_eq!(r.status(), 403, "the detail is for admins");
}

#[tokio::test]
async fn copy_image_copies_the_data_to_the_second_store_and_delete_removes_that_copy() {
    let (s, url, _dir) = two_store_server().await;
    let data = pattern((5 << 20) + 777, 3);
    let id = active_image(&s, "copied", &data).await;
    assert_eq!(image_json(&s, &id).await["stores"], "local");

    let (code, body) = import(&s, &id, json!({"method": {"name": "copy-image"}, "stores": ["second"]})).await;
    assert_eq!(code, 202, "{body}");
    let task = last_task(&s, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    let sent = task["result"]["chunks_copied"].as_u64().unwrap();
    assert!(sent >= 3, "a 5 MiB image has several chunks: {task}");
    let image = image_json(&s, &id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local,second");
    assert_eq!(image["os_glance_importing_to_stores"], "", "{image}");
    assert_eq!(only_copy_in(&url).await, data, "the second store holds the whole image");
    let download = s.admin.download(&id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(download.as_ref(), data.as_slice());

    // Already there: nothing to do.
    let (code, body) = import(&s, &id, json!({"method": {"name": "copy-image"}, "stores": ["second"]})).await;
    assert_eq!(code, 409, "{body}");

    // A second image sharing most chunks: only the changed ones are sent.
    let mut changed = data.clone();
    changed.extend_from_slice(&pattern(4096, 8));
    let id2 = active_image(&s, "derived", &changed).await;
    let (code, body) = import(&s, &id2, json!({"method": {"name": "copy-image"}, "all_stores": true})).await;
    assert_eq!(code, 202, "{body}");
    let task = last_task(&s, &id2).await;
    assert_eq!(task["status"], "success", "{task}");
    let sent2 = task["result"]["chunks_copied"].as_u64().unwrap();
    assert!(sent2 >= 1 && sent2 < sent, "only the changed tail is sent: {sent2} of {sent}");
    assert_eq!(image_json(&s, &id2).await["stores"], "local,second");

    // Removing one store's copy.
    let path = format!("/v2/stores/second/{id2}");
    assert_eq!(s.raw(Method::DELETE, &path).send().await.unwrap().status(), 204);
    assert_eq!(image_json(&s, &id2).await["stores"], "local");
    assert_eq!(s.raw(Method::DELETE, &path).send().await.unwrap().status(), 404, "no longer there");
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert_eq!(report.extra_stores["second"].manifests_removed, 1, "the store's collection reclaims it: {report:?}");
    assert_eq!(only_copy_in(&url).await, data, "the first image's copy stays");
    let local = format!("/v2/stores/local/{id2}");
    assert_eq!(s.raw(Method::DELETE, &local).send().await.unwrap().status(), 409, "an image's only copy stays");
    let unknown = format!("/v2/stores/nowhere/{id}");
    assert_eq!(s.raw(Method::DELETE, &unknown).send().await.unwrap().status(), 404);
    let download = s.admin.download(&id2, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(download.as_ref(), changed.as_slice());
}

#[tokio::test]
async fn bad_copy_requests_are_refused_and_change_nothing() {
    let (s, url, _dir) = two_store_server().await;
    let queued = s.admin.create_image(&raw_image("queued")).await.unwrap();
    let copy = json!({"method": {"name": "copy-image"}, "stores": ["second"]});
    let (code, body) = import(&s, &queued.id, copy.clone()).await;
    assert_eq!(code, 409, "a queued image has no data: {body}");

    let id = active_image(&s, "source", &pattern(1 << 20, 5)).await;
    let (code, body) = import(&s, &id, json!({"method": {"name": "copy-image"}, "stores": ["nowhere"]})).await;
    assert_eq!(code, 409, "unknown store: {body}");
    let (code, body) = import(&s, &id, json!({"method": {"name": "copy-image"}})).await;
    assert_eq!(code, 400, "no stores named: {body}");
    let (code, body) = import(&s, &id, json!({"method": {"name": "copy-image"}, "stores": ["second"], "all_stores": true})).await;
    assert_eq!(code, 400, "{body}");

    let other = s.tenant("other", Role::Member).await;
    let r = other.client.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&copy).send().await.unwrap();
    assert_eq!(r.status(), 404, "another project's private image");
    let r = other.client.raw(Method::DELETE, &format!("/v2/stores/second/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Uploads write to the default store only.
    let upload = |store: &'static str, id: String| {
        s.raw(Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .header("x-image-meta-store", store)
            .body(vec![1u8; 4096])
    };
    for store in ["second", "nowhere"] {
        let r = upload(store, queued.id.clone()).send().await.unwrap();
        assert_eq!(r.status(), 409, "upload to {store}");
        assert_eq!(s.admin.get_image(&queued.id).await.unwrap().status, "queued");
    }
    assert_eq!(upload("local", queued.id.clone()).send().await.unwrap().status(), 204);
    assert_eq!(image_json(&s, &queued.id).await["stores"], "local");

    let image = image_json(&s, &id).await;
    assert_eq!(image["stores"], "local");
    assert!(image.get("os_glance_importing_to_stores").is_none(), "refused requests record nothing: {image}");
    let store = ChunkStore::open(&url).unwrap();
    assert!(store.list_manifests().await.unwrap().is_empty(), "nothing was copied");
}

#[tokio::test]
async fn an_unknown_setting_of_a_store_stops_the_server_from_starting() {
    let err = ims_server::Settings::from_toml("[stores.second]\nurl = \"memory://\"\ncolour = \"blue\"\n");
    assert!(err.is_err(), "unknown keys are refused");
    let settings = ims_server::Settings::from_toml("[stores.second]\nurl = \"memory://\"\n").unwrap();
    assert_eq!(settings.stores["second"].url, "memory://");

    let dir = tempfile::tempdir().unwrap();
    let mut bad = ims_server::Settings { data_dir: dir.path().join("data"), ..Default::default() };
    bad.stores.insert("local".into(), StoreConfig { url: "memory://".into(), description: String::new() });
    let err = ims_server::Node::open(bad).await.err().expect("the default store's id is taken");
    assert!(format!("{err:#}").contains("stores.local"), "{err:#}");
}

#[tokio::test]
async fn a_store_that_fails_is_recorded_and_a_later_copy_completes() {
    let (s, url, dir) = two_store_server().await;
    let data = pattern(2 << 20, 11);
    let id = active_image(&s, "flaky", &data).await;
    // The second store's directory becomes a plain file: every write there fails.
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path(), b"not a directory").unwrap();
    let tolerant = json!({"method": {"name": "copy-image"}, "stores": ["second"], "all_stores_must_succeed": false});
    let (code, body) = import(&s, &id, tolerant.clone()).await;
    assert_eq!(code, 202, "{body}");
    let task = last_task(&s, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["result"]["failed_stores"], json!(["second"]), "{task}");
    let image = image_json(&s, &id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local");
    assert_eq!(image["os_glance_failed_import"], "second");
    assert_eq!(image["os_glance_importing_to_stores"], "", "{image}");

    std::fs::remove_file(dir.path()).unwrap();
    std::fs::create_dir(dir.path()).unwrap();
    let (code, body) = import(&s, &id, tolerant).await;
    assert_eq!(code, 202, "{body}");
    for _ in 0..300 {
        if image_json(&s, &id).await["stores"] == "local,second" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let image = image_json(&s, &id).await;
    assert_eq!(image["stores"], "local,second", "{image}");
    assert_eq!(image["os_glance_failed_import"], "", "{image}");
    assert_eq!(only_copy_in(&url).await, data);
}

#[tokio::test]
async fn an_import_to_several_stores_writes_the_default_store_then_copies() {
    let (s, url, dir) = two_store_server().await;
    let data = pattern((3 << 20) + 5, 21);
    let img = s.admin.create_image(&raw_image("everywhere")).await.unwrap();
    s.admin.stage(&img.id, data.clone().into(), Some(data.len() as u64)).await.unwrap();
    let (code, body) = import(&s, &img.id, json!({"method": {"name": "glance-direct"}, "all_stores": true})).await;
    assert_eq!(code, 202, "{body}");
    let task = last_task(&s, &img.id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["input"]["import_req"]["stores"], json!(["local", "second"]));
    let image = image_json(&s, &img.id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local,second");
    assert_eq!(only_copy_in(&url).await, data);

    // A store that fails, failures allowed: active in the default store, the failure recorded.
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path(), b"not a directory").unwrap();
    let other = s.admin.create_image(&raw_image("partly")).await.unwrap();
    s.admin.stage(&other.id, vec![9u8; 8192].into(), Some(8192)).await.unwrap();
    let request = json!({"method": {"name": "glance-direct"}, "stores": ["second"], "all_stores_must_succeed": false});
    let (code, body) = import(&s, &other.id, request).await;
    assert_eq!(code, 202, "{body}");
    let task = last_task(&s, &other.id).await;
    assert_eq!(task["status"], "success", "{task}");
    let image = image_json(&s, &other.id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local");
    assert_eq!(image["os_glance_failed_import"], "second");
    let download = s.admin.download(&other.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(download.as_ref(), vec![9u8; 8192].as_slice());
}
