//! CopyImageCrossRegion (`POST /v1/cloudimages/{id}/cross_region_copy`) between two IMS servers started
//! here, one configured with the other as region `region-b`; and the replication API it uses
//! (`/internal/v1/replication/...`).

use ims_client::Role;
use ims_server::config::RegionConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

/// The target region, a project `alice` in it, and the token of its service user (an admin).
struct TargetRegion {
    server: TestServer,
    alice: Tenant,
    service_token: String,
}

async fn target_region() -> TargetRegion {
    let server = TestServer::start().await;
    let alice = server.tenant("alice", Role::Member).await;
    let service = server.tenant("replication", Role::Admin).await;
    let service_token = service.client.token().unwrap().to_string();
    TargetRegion { server, alice, service_token }
}

/// A source region whose `region-b` is `target`, reached with `token`.
async fn source_region(target: &TestServer, token: &str) -> TestServer {
    let region = RegionConfig { endpoint: target.url.clone(), token: token.to_string() };
    TestServer::start_with(move |s| {
        s.regions.insert("region-b".into(), region);
    })
    .await
}

async fn upload(t: &Tenant, name: &str, data: &[u8]) -> ims_client::Image {
    let image = t.client.create_image(&raw_image(name)).await.unwrap();
    t.client.upload_bytes(&image.id, data.to_vec()).await.unwrap();
    t.client.get_image(&image.id).await.unwrap()
}

/// Starts a copy, waits for its job; returns (ShowJob answer, the job's result).
async fn copy(t: &Tenant, image_id: &str, body: Value) -> (Value, Value) {
    let (status, answer) = ims(t, Method::POST, &format!("/v1/cloudimages/{image_id}/cross_region_copy"), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let job_id = answer["job_id"].as_str().unwrap();
    let job = wait_job(t, job_id).await;
    let result = t.client.get_job(job_id).await.unwrap().result.unwrap_or(Value::Null);
    (job, result)
}

#[tokio::test]
async fn copies_an_image_and_then_only_the_chunks_the_target_lacks() {
    let target = target_region().await;
    let source = source_region(&target.server, &target.service_token).await;
    let alice = source.tenant("alice", Role::Member).await;

    let data = pattern(12 << 20, 41);
    let original = upload(&alice, "base", &data).await;
    let (job, first) = copy(&alice, &original.id, json!({"region": "region-b", "name": "base-copy", "description": "to b"})).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let copy_id = job["entities"]["image_id"].as_str().unwrap().to_string();
    assert_eq!(first["image_id"], copy_id.as_str());
    assert_eq!(first["chunks_sent"], first["chunks_total"], "the target had none of them: {first}");
    let first_bytes = first["bytes_sent"].as_u64().unwrap();
    assert!(first_bytes >= data.len() as u64 * 9 / 10, "incompressible data is sent whole: {first}");

    let copied = target.alice.client.get_image(&copy_id).await.unwrap();
    assert_eq!((copied.status.as_str(), copied.name.as_deref()), ("active", Some("base-copy")));
    assert_eq!(copied.checksum, original.checksum);
    assert_eq!(copied.os_hash_value, original.os_hash_value);
    assert_eq!(copied.size, Some(data.len() as u64));
    assert_eq!(copied.property("__originalimagename"), Some(original.id.as_str()));
    let downloaded = target.alice.client.download(&copy_id, None).await.unwrap().bytes().await.unwrap();
    assert!(downloaded == data, "the copy's data is the source's");
    assert!(source.admin.get_image(&copy_id).await.is_err(), "the copy exists in the target region only");

    // A second image sharing all but a few chunks with the first: only the changed chunks travel.
    let mut changed = data.clone();
    changed[6 << 20..(6 << 20) + 4096].copy_from_slice(&pattern(4096, 7));
    let second = upload(&alice, "changed", &changed).await;
    let (job, result) = copy(&alice, &second.id, json!({"region": "region-b", "name": "changed-copy"})).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let bytes_sent = result["bytes_sent"].as_u64().unwrap();
    let chunks_sent = result["chunks_sent"].as_u64().unwrap();
    assert!((1..=3).contains(&chunks_sent), "only the chunks around the change: {result}");
    assert!(bytes_sent * 3 < first_bytes, "{bytes_sent} bytes sent for a 4 KiB change of a {first_bytes} byte image");
    let second_copy = job["entities"]["image_id"].as_str().unwrap();
    let downloaded = target.alice.client.download(second_copy, None).await.unwrap().bytes().await.unwrap();
    assert!(downloaded == changed);
    assert_eq!(target.alice.client.get_image(second_copy).await.unwrap().checksum, second.checksum);
}

#[tokio::test]
async fn unknown_regions_wrong_credentials_and_unknown_projects_fail_with_their_codes() {
    let target = target_region().await;
    let source = source_region(&target.server, "not-a-valid-token").await;
    let alice = source.tenant("alice", Role::Member).await;
    let image = upload(&alice, "img", &pattern(300_000, 3)).await;
    let path = format!("/v1/cloudimages/{}/cross_region_copy", image.id);

    let (status, answer) = ims(&alice, Method::POST, &path, Some(json!({"region": "region-z", "name": "c"}))).await;
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("IMG.0107")), "{answer}");
    let (status, answer) = ims(&alice, Method::POST, &path, Some(json!({"region": "region-b"}))).await;
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("IMG.0001")), "{answer}");

    let (job, _) = copy(&alice, &image.id, json!({"region": "region-b", "name": "c"})).await;
    assert_eq!((job["status"].as_str(), job["error_code"].as_str()), (Some("FAIL"), Some("IMG.0108")), "{job}");

    // Encrypted images are refused at once: their keys do not leave the region.
    let key = source.admin.create_kms_key("xr-key", None).await.unwrap();
    let mut create = raw_image("secret");
    create.properties.insert("__system__cmkid".into(), key.id.clone().into());
    let secret = alice.client.create_image(&create).await.unwrap();
    alice.client.upload_bytes(&secret.id, pattern(100_000, 9)).await.unwrap();
    let path = format!("/v1/cloudimages/{}/cross_region_copy", secret.id);
    let (status, answer) = ims(&alice, Method::POST, &path, Some(json!({"region": "region-b", "name": "c"}))).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error_msg"].as_str().unwrap().contains("encrypted"), "{answer}");

    // A token the target knows but that is not an admin's is refused the same way.
    let member_region = source_region(&target.server, target.alice.client.token().unwrap()).await;
    let bob = member_region.tenant("bob", Role::Member).await;
    let image = upload(&bob, "img", &pattern(300_000, 4)).await;
    let (job, _) = copy(&bob, &image.id, json!({"region": "region-b", "name": "c"})).await;
    assert_eq!(job["error_code"], "IMG.0108", "{job}");

    // Valid credentials, but the target has no project named like the caller's ("bob").
    let good = source_region(&target.server, &target.service_token).await;
    let bob = good.tenant("bob", Role::Member).await;
    let image = upload(&bob, "img", &pattern(300_000, 5)).await;
    let (job, _) = copy(&bob, &image.id, json!({"region": "region-b", "name": "c"})).await;
    assert_eq!((job["status"].as_str(), job["error_code"].as_str()), (Some("FAIL"), Some("IMG.0109")), "{job}");
    // Named explicitly, an existing target project receives it.
    let (job, _) = copy(&bob, &image.id, json!({"region": "region-b", "name": "c", "project_name": "alice"})).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let copied = target.alice.client.get_image(job["entities"]["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!((copied.status.as_str(), copied.owner.as_deref()), ("active", Some(target.alice.project_id.as_str())));
}

#[tokio::test]
async fn the_replication_api_is_for_admins_and_verifies_chunks() {
    let target = target_region().await;
    let chunk = b"some chunk plaintext".to_vec();
    let id = ims_store::ChunkId::of(&chunk).to_hex();
    let mut object = vec![0u8]; // codec tag 0: the plaintext as is
    object.extend_from_slice(&chunk);
    let missing = json!({"chunks": [id]});

    let response = target.alice.client.raw(Method::POST, "/internal/v1/replication/chunks/missing").json(&missing).send().await.unwrap();
    assert_eq!(response.status(), 403, "members may not use the replication API");
    let response = target.server.raw(Method::POST, "/internal/v1/replication/chunks/missing").json(&missing).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"missing": [id]}));

    // An object that does not hash to its id (or to its length) is refused and not stored.
    let mut tampered = object.clone();
    tampered[1] ^= 1;
    for (body, length) in [(tampered, chunk.len()), (object.clone(), chunk.len() + 1)] {
        let path = format!("/internal/v1/replication/chunks/{id}?length={length}");
        let response = target.server.raw(Method::PUT, &path).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400);
    }
    let response = target.server.raw(Method::POST, "/internal/v1/replication/chunks/missing").json(&missing).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"missing": [id]}));

    let path = format!("/internal/v1/replication/chunks/{id}?length={}", chunk.len());
    let response = target.server.raw(Method::PUT, &path).body(object).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let response = target.server.raw(Method::POST, "/internal/v1/replication/chunks/missing").json(&missing).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"missing": []}));

    // Registration needs every chunk of the manifest.
    let absent = "ab".repeat(32);
    let manifest = json!({"size": chunk.len() + 10, "extents": [
        {"offset": 0, "length": chunk.len(), "chunk": id},
        {"offset": chunk.len(), "length": 10, "chunk": absent},
    ]});
    let image_id = uuid::Uuid::new_v4().to_string();
    let registration = json!({
        "image_id": image_id, "project_name": "alice", "name": "registered", "disk_format": "raw",
        "container_format": "bare", "min_disk": 0, "min_ram": 0, "tags": [], "properties": {},
        "size": chunk.len() + 10, "virtual_size": null, "checksum": null, "os_hash_algo": null,
        "os_hash_value": null, "manifest": manifest,
    });
    let response = target.server.raw(Method::POST, "/internal/v1/replication/images").json(&registration).send().await.unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.json::<Value>().await.unwrap()["missing"], json!([absent]));
    assert!(target.server.admin.get_image(&image_id).await.is_err(), "nothing was registered");

    // With every chunk present it registers, and registering again (a retried job) finds the same image.
    let mut registration = registration;
    registration["size"] = json!(chunk.len());
    registration["manifest"] = json!({"size": chunk.len(), "extents": [{"offset": 0, "length": chunk.len(), "chunk": id}]});
    registration["checksum"] = json!("0123456789abcdef0123456789abcdef");
    for _ in 0..2 {
        let response = target.server.raw(Method::POST, "/internal/v1/replication/images").json(&registration).send().await.unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"image_id": image_id, "status": "active"}));
    }
    let image = target.alice.client.get_image(&image_id).await.unwrap();
    assert_eq!((image.status.as_str(), image.size), ("active", Some(chunk.len() as u64)));
    let data = target.alice.client.download(&image_id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(&data[..], &chunk[..]);
    // The same id with other content is refused.
    registration["checksum"] = json!("ffffffffffffffffffffffffffffffff");
    let response = target.server.raw(Method::POST, "/internal/v1/replication/images").json(&registration).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn chunks_older_than_half_the_gc_grace_are_stored_again_when_asked_about() {
    let target = TestServer::start_with(|s| s.gc_grace = 2).await;
    let chunk = pattern(70_000, 12);
    let id = ims_store::ChunkId::of(&chunk);
    let mut object = vec![0u8];
    object.extend_from_slice(&chunk);
    let path = format!("/internal/v1/replication/chunks/{id}?length={}", chunk.len());
    assert_eq!(target.raw(Method::PUT, &path).body(object).send().await.unwrap().status(), 204);
    let file = target.data_dir.join("store").join(id.object_path().as_ref());
    let stored_at = std::fs::metadata(&file).unwrap().modified().unwrap();

    let missing = json!({"chunks": [id.to_hex()]});
    let ask = || async {
        let response = target.raw(Method::POST, "/internal/v1/replication/chunks/missing").json(&missing).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    };
    assert_eq!(ask().await, json!({"missing": []}));
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), stored_at, "a young chunk is left as it is");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(ask().await, json!({"missing": []}));
    let refreshed_at = std::fs::metadata(&file).unwrap().modified().unwrap();
    assert!(refreshed_at > stored_at, "a chunk past half the grace period is stored again");
    assert_eq!(std::fs::read(&file).unwrap()[1..], chunk[..], "with the same content");
}

#[tokio::test]
async fn the_regions_to_copy_to_are_listed_by_name_only() {
    let target = target_region().await;
    let source = source_region(&target.server, &target.service_token).await;
    let alice = source.tenant("alice", Role::Member).await;
    let (status, answer) = ims(&alice, Method::GET, "/v1/cloudimages/regions", None).await;
    assert_eq!((status, answer.clone()), (200, json!({"regions": [{"name": "region-b"}]})));
    assert!(!answer.to_string().contains(&target.service_token), "no credentials in the answer");
    let (status, answer) = ims(&target.alice, Method::GET, "/v1/cloudimages/regions", None).await;
    assert_eq!((status, answer), (200, json!({"regions": []})));
    let anonymous = reqwest::get(format!("{}/v1/cloudimages/regions", source.url)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
