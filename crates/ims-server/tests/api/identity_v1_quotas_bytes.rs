//! The `image_bytes` quota: total logical bytes of a project's images, set by admins through
//! `/identity/v1/projects/{project}/quotas`, shown by `/v2/info/usage` and `/v1/cloudimages/quota`, and
//! enforced atomically when an upload, import or copy activates an image.

use std::sync::Arc;

use ims_client::{Client, Role};
use ims_testkit::postgres::PostgresCluster;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, status, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

const MIB: u64 = 1 << 20;

async fn usage(client: &Client) -> Value {
    client.info_usage().await.unwrap()["usage"]["image_size_total"].clone()
}

async fn image_status(client: &Client, id: &str) -> (String, Option<u64>) {
    let image = client.get_image(id).await.unwrap();
    (image.status, image.size)
}

#[tokio::test]
async fn admins_set_the_byte_quota_and_every_surface_shows_it() {
    let s = TestServer::start().await;
    let t = s.tenant("bytes-show", Role::Member).await;
    let q = s.admin.project_quotas(&t.project_id).await.unwrap().image_bytes;
    assert_eq!((q.used, q.limit, q.default), (0, None, true), "no limit unless an admin sets one");
    assert_eq!(usage(&t.client).await, json!({"limit": -1, "usage": 0}));
    let own = t.client.own_byte_quota().await.unwrap();
    assert_eq!((own.used, own.quota), (0, -1));

    let image = t.client.create_image(&raw_image("one")).await.unwrap();
    t.client.upload_bytes(&image.id, pattern(MIB as usize + 17, 1)).await.unwrap();
    let q = s.admin.set_image_bytes_quota("bytes-show", Some(5 * MIB)).await.unwrap();
    assert_eq!((q.image_bytes.used, q.image_bytes.limit, q.image_bytes.default), (MIB + 17, Some(5 * MIB), false));
    assert_eq!(q.private_images.limit, 50, "the other quotas stay as they were");
    assert_eq!(usage(&t.client).await, json!({"limit": 5 * MIB, "usage": MIB + 17}));
    let own = t.client.own_byte_quota().await.unwrap();
    assert_eq!((own.used, own.quota), (MIB + 17, 5 * MIB as i64));
    assert_eq!(t.client.own_image_quota().await.unwrap().used, 1, "the image count entry stays first");

    // Bad values change nothing; members may not set quotas.
    for bad in [json!(-1), json!("5"), json!(1.5), json!((1u64 << 60) + 1)] {
        let r = s
            .raw(Method::PUT, &format!("/identity/v1/projects/{}/quotas", t.project_id))
            .json(&json!({"quotas": {"image_bytes": bad, "private_images": 3}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let q = s.admin.project_quotas(&t.project_id).await.unwrap();
    assert_eq!((q.image_bytes.limit, q.private_images.limit), (Some(5 * MIB), 50));
    assert_eq!(status(t.client.set_image_bytes_quota(&t.project_id, None).await), 403);

    let q = s.admin.set_image_bytes_quota(&t.project_id, None).await.unwrap();
    assert_eq!((q.image_bytes.limit, q.image_bytes.default), (None, true));
    assert_eq!(usage(&t.client).await["limit"], -1);
}

#[tokio::test]
async fn uploads_past_the_quota_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let t = s.tenant("bytes-upload", Role::Member).await;
    s.admin.set_image_bytes_quota(&t.project_id, Some(3 * MIB)).await.unwrap();
    let first = t.client.create_image(&raw_image("first")).await.unwrap();
    t.client.upload_bytes(&first.id, pattern(2 * MIB as usize, 2)).await.unwrap();

    // Declared too large: refused before any data is read, 413 in Glance's form.
    let second = t.client.create_image(&raw_image("second")).await.unwrap();
    let r = t
        .client
        .raw(Method::PUT, &format!("/v2/images/{}/file", second.id))
        .header("content-type", "application/octet-stream")
        .header("x-openstack-image-size", (MIB + 1).to_string())
        .body(pattern(MIB as usize + 1, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "413 Payload Too Large", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("quota") && message.contains(&(3 * MIB).to_string()), "{message}");
    assert_eq!(image_status(&t.client, &second.id).await, ("queued".to_string(), None));

    // Streamed with no declared size: stopped once past the quota.
    let pieces: Vec<Result<bytes::Bytes, std::io::Error>> =
        (0..4).map(|i| Ok(bytes::Bytes::from(pattern(MIB as usize / 2, 10 + i)))).collect();
    assert_eq!(status(t.client.upload_stream(&second.id, futures::stream::iter(pieces), None).await), 413);
    assert_eq!(image_status(&t.client, &second.id).await, ("queued".to_string(), None));
    assert_eq!(usage(&t.client).await["usage"], 2 * MIB, "only the first image counts");

    // Exactly up to the quota is within it; one byte more is not.
    t.client.upload_bytes(&second.id, pattern(MIB as usize, 4)).await.unwrap();
    let third = t.client.create_image(&raw_image("third")).await.unwrap();
    assert_eq!(status(t.client.upload_bytes(&third.id, vec![7u8]).await), 413);
    assert_eq!(image_status(&t.client, &third.id).await, ("queued".to_string(), None));

    // Deleting frees room; a lower quota keeps existing images but refuses new data.
    t.client.delete_image(&first.id).await.unwrap();
    t.client.upload_bytes(&third.id, vec![7u8]).await.unwrap();
    s.admin.set_image_bytes_quota(&t.project_id, Some(1)).await.unwrap();
    assert_eq!(image_status(&t.client, &second.id).await, ("active".to_string(), Some(MIB)));
    let fourth = t.client.create_image(&raw_image("fourth")).await.unwrap();
    assert_eq!(status(t.client.upload_bytes(&fourth.id, vec![1u8]).await), 413);
    // Another project is not limited by this one's quota.
    let other = s.tenant("bytes-other", Role::Member).await;
    let free = other.client.create_image(&raw_image("free")).await.unwrap();
    other.client.upload_bytes(&free.id, pattern(4 * MIB as usize, 5)).await.unwrap();
}

/// Ten concurrent uploads of 1 MiB at a 5 MiB quota: at most 5 MiB become active (exactly five uploads),
/// every other upload is refused (413) and leaves its image queued without data.
async fn concurrent_uploads_stay_within_the_quota(s: &TestServer) {
    let t: Tenant = s.tenant("bytes-race", Role::Member).await;
    s.admin.set_image_bytes_quota(&t.project_id, Some(5 * MIB)).await.unwrap();
    let client = Arc::new(t.client.clone());
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(client.create_image(&raw_image(&format!("race-{i}"))).await.unwrap().id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (client, id) = (Arc::clone(&client), id.clone());
            tokio::spawn(async move { client.upload_bytes(&id, pattern(MIB as usize, 100 + i as u64)).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(e) => assert_eq!(status::<()>(Err(e)), 413),
        }
    }
    let mut active_bytes = 0;
    for id in &ids {
        match image_status(&client, id).await {
            (status, Some(size)) if status == "active" => active_bytes += size,
            (status, size) => assert_eq!((status.as_str(), size), ("queued", None)),
        }
    }
    assert!(active_bytes <= 5 * MIB, "{active_bytes} bytes active");
    assert_eq!(active_bytes, accepted * MIB);
    // An upload is refused only once the others hold the whole quota: exactly five fit.
    assert_eq!(accepted, 5);
    assert_eq!(usage(&client).await["usage"], active_bytes);
}

#[tokio::test]
async fn concurrent_uploads_stay_within_the_quota_on_sqlite() {
    concurrent_uploads_stay_within_the_quota(&TestServer::start().await).await;
}

#[tokio::test]
async fn concurrent_uploads_stay_within_the_quota_on_postgres() {
    let postgres = PostgresCluster::shared_or_start().await.unwrap();
    let database = postgres.fresh_database().await.unwrap();
    concurrent_uploads_stay_within_the_quota(&TestServer::start_on_postgres(&database, |_| {}).await).await;
}

#[tokio::test]
async fn a_copy_past_the_quota_fails_its_job_with_the_quota_code() {
    let s = TestServer::start().await;
    let t = s.tenant("bytes-copy", Role::Member).await;
    let source = t.client.create_image(&raw_image("source")).await.unwrap();
    t.client.upload_bytes(&source.id, pattern(2 * MIB as usize, 6)).await.unwrap();
    s.admin.set_image_bytes_quota(&t.project_id, Some(3 * MIB)).await.unwrap();

    let (code, answer) = ims(&t, Method::POST, &format!("/v1/cloudimages/{}/copy", source.id), Some(json!({"name": "copy"}))).await;
    assert_eq!(code, 200, "{answer}");
    let job = wait_job(&t, answer["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "FAIL", "{job}");
    assert_eq!(job["error_code"], "IMG.0010", "{job}");
    assert!(job["fail_reason"].as_str().unwrap().contains("quota"), "{job}");
    let copy = job["entities"]["image_id"].as_str().unwrap();
    assert_eq!(image_status(&t.client, copy).await, ("queued".to_string(), None), "the copy holds no data");
    assert_eq!(usage(&t.client).await["usage"], 2 * MIB);

    // With room, the same copy succeeds.
    s.admin.set_image_bytes_quota(&t.project_id, Some(4 * MIB)).await.unwrap();
    let (_, answer) = ims(&t, Method::POST, &format!("/v1/cloudimages/{}/copy", source.id), Some(json!({"name": "copy"}))).await;
    let job = wait_job(&t, answer["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(usage(&t.client).await["usage"], 4 * MIB);
}

#[tokio::test]
async fn a_glance_import_past_the_quota_fails_its_task_and_leaves_no_data() {
    let s = TestServer::start().await;
    let t = s.tenant("bytes-import", Role::Member).await;
    s.admin.set_image_bytes_quota(&t.project_id, Some(3 * MIB)).await.unwrap();
    let first = t.client.create_image(&raw_image("first")).await.unwrap();
    t.client.upload_bytes(&first.id, pattern(MIB as usize, 7)).await.unwrap();

    // Staging data that cannot fit is refused at once.
    let staged = t.client.create_image(&raw_image("staged")).await.unwrap();
    assert_eq!(status(t.client.stage(&staged.id, pattern(2 * MIB as usize + 1, 8).into(), None).await), 413);
    assert_eq!(image_status(&t.client, &staged.id).await, ("queued".to_string(), None));
    // Staged within the quota, which then drops: the import's activation is refused.
    t.client.stage(&staged.id, pattern(2 * MIB as usize, 8).into(), Some(2 * MIB)).await.unwrap();
    s.admin.set_image_bytes_quota(&t.project_id, Some(2 * MIB)).await.unwrap();
    let r = t
        .client
        .raw(Method::POST, &format!("/v2/images/{}/import", staged.id))
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut task = Value::Null;
    for _ in 0..300 {
        task = t.client.image_tasks(&staged.id).await.unwrap()["tasks"][0].clone();
        if task["status"] == "failure" || task["status"] == "success" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(task["status"], "failure", "{task}");
    assert!(task["message"].as_str().unwrap_or_default().contains("quota"), "{task}");
    assert_eq!(image_status(&t.client, &staged.id).await, ("queued".to_string(), None));
    assert_eq!(usage(&t.client).await["usage"], MIB);
}
