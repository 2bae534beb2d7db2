//! Encrypted images: created with `__system__cmkid`, stored encrypted, readable only while the key is enabled.


use ims_client::{Client, PatchOp, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{chunk_files, pattern, raw_image, status, TestServer};

const MARKER: &[u8] = b"ENCRYPTION-TEST-MARKER-41d9";

/// About `len` bytes of text full of the marker (compressible, so zstd runs before encryption), with
/// a random part in the middle (stored raw, then encrypted).
fn marked_data(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len / 2 {
        out.extend_from_slice(MARKER);
        out.extend_from_slice(format!(" line {i}\n").as_bytes());
        i += 1;
    }
    out.extend(pattern(len / 4, 7));
    while out.len() < len {
        out.extend_from_slice(MARKER);
        i += 1;
        out.extend_from_slice(format!(" line {i}\n").as_bytes());
    }
    out
}


fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn encrypted_image(client: &Client, name: &str, key: &str, data: &[u8]) -> String {
    let mut create = raw_image(name);
    create.properties.insert("__system__cmkid".into(), key.into());
    let image = client.create_image(&create).await.unwrap();
    assert_eq!(image.properties.get("__system__cmkid").and_then(Value::as_str), Some(key));
    client.upload_bytes(&image.id, data.to_vec()).await.unwrap();
    image.id
}

async fn download(client: &Client, id: &str) -> Vec<u8> {
    client.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn encrypted_chunks_hold_no_plaintext_and_read_back() {
    let s = TestServer::start().await;
    let t = s.tenant("enc-a", Role::Member).await;
    let key = s.admin.create_kms_key("enc-a-key", None).await.unwrap();
    let data = marked_data(5 << 20);
    let id = encrypted_image(&t.client, "secret", &key.id, &data).await;
    assert_eq!(download(&t.client, &id).await, data);
    let range = t.client.download(&id, Some((1_000_000, Some(2_999_999)))).await.unwrap().bytes().await.unwrap();
    assert_eq!(&range[..], &data[1_000_000..3_000_000]);
    let image = t.client.get_image(&id).await.unwrap();
    assert_eq!(image.size, Some(data.len() as u64));

    let files = chunk_files(&s.data_dir);
    assert!(files.len() >= 3, "{} chunk objects", files.len());
    for file in &files {
        let content = std::fs::read(file).unwrap();
        assert!(content[0] & 0x80 != 0, "{} is not encrypted", file.display());
        assert!(!contains(&content, MARKER), "{} holds plaintext", file.display());
        assert!(!contains(&content, &data[(5 << 20) / 2 + 100..(5 << 20) / 2 + 164]), "{} holds plaintext", file.display());
    }

    // The same bytes as a plaintext image: other objects, stored as before (codec tags 0 to 2, no encryption bit).
    let plain = t.client.create_image(&raw_image("plain")).await.unwrap();
    t.client.upload_bytes(&plain.id, data.clone()).await.unwrap();
    let after = chunk_files(&s.data_dir);
    assert_eq!(after.len(), 2 * files.len());
    assert!(after.difference(&files).all(|f| std::fs::read(f).unwrap()[0] < 0x80));
    assert_eq!(download(&t.client, &plain.id).await, data);
}

#[tokio::test]
async fn dedup_within_a_key_domain_only() {
    let s = TestServer::start().await;
    let key_a = s.admin.create_kms_key("key-a", None).await.unwrap();
    let key_b = s.admin.create_kms_key("key-b", None).await.unwrap();
    let a = s.tenant("dedup-a", Role::Member).await;
    let b = s.tenant("dedup-b", Role::Member).await;
    let data = marked_data(4 << 20);

    encrypted_image(&a.client, "a1", &key_a.id, &data).await;
    let first = chunk_files(&s.data_dir);
    encrypted_image(&a.client, "a2", &key_a.id, &data).await;
    assert_eq!(chunk_files(&s.data_dir), first, "same project, same key: nothing new stored");

    let b1 = encrypted_image(&b.client, "b1", &key_b.id, &data).await;
    let with_b = chunk_files(&s.data_dir);
    assert_eq!(with_b.len(), 2 * first.len(), "another project under another key shares no chunk object");
    assert!(first.is_subset(&with_b));
    encrypted_image(&b.client, "b2", &key_a.id, &data).await;
    assert_eq!(chunk_files(&s.data_dir).len(), 3 * first.len(), "the same key in another project is another domain");
    assert_eq!(download(&b.client, &b1).await, data);
}

#[tokio::test]
async fn a_disabled_key_makes_its_images_unreadable_until_enabled() {
    let s = TestServer::start().await;
    let t = s.tenant("disable", Role::Member).await;
    let key = s.admin.create_kms_key("switch", None).await.unwrap();
    let other = s.admin.create_kms_key("other", None).await.unwrap();
    let data = marked_data(3 << 20);
    let id = encrypted_image(&t.client, "locked", &key.id, &data).await;
    let untouched = encrypted_image(&t.client, "other", &other.id, &data).await;
    let plain = t.client.create_image(&raw_image("plain")).await.unwrap();
    t.client.upload_bytes(&plain.id, data.clone()).await.unwrap();
    let files = chunk_files(&s.data_dir);

    s.admin.disable_kms_key(&key.id).await.unwrap();
    let r = t.client.raw(Method::GET, &format!("/v2/images/{id}/file")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "403 Forbidden");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&key.id) && message.contains("disabled"), "{message}");
    assert_eq!(status(s.admin.download(&id, None).await), 403, "admins too");
    assert_eq!(t.client.get_image(&id).await.unwrap().status, "active", "the record stays as it was");
    assert_eq!(download(&t.client, &untouched).await, data, "other keys' images are readable");
    assert_eq!(download(&t.client, &plain.id).await, data, "plaintext images are readable");
    assert_eq!(chunk_files(&s.data_dir), files, "nothing was deleted");

    // New images under a disabled key are refused; so are uploads to existing ones, which stay queued.
    let mut create = raw_image("new");
    create.properties.insert("__system__cmkid".into(), key.id.clone());
    s.admin.enable_kms_key(&key.id).await.unwrap();
    let waiting = t.client.create_image(&create).await.unwrap();
    s.admin.disable_kms_key(&key.id).await.unwrap();
    assert_eq!(status(t.client.create_image(&create).await), 403);
    assert_eq!(status(t.client.upload_bytes(&waiting.id, data.clone()).await), 403);
    assert_eq!(t.client.get_image(&waiting.id).await.unwrap().status, "queued");
    assert_eq!(chunk_files(&s.data_dir), files, "nothing was stored");

    s.admin.enable_kms_key(&key.id).await.unwrap();
    assert_eq!(download(&t.client, &id).await, data);
    t.client.upload_bytes(&waiting.id, data.clone()).await.unwrap();
    assert_eq!(download(&t.client, &waiting.id).await, data);
}

#[tokio::test]
async fn encryption_requests_are_validated_and_fixed_at_creation() {
    let s = TestServer::start().await;
    let t = s.tenant("fixed", Role::Member).await;
    let key = s.admin.create_kms_key("fixed-key", None).await.unwrap();
    let other = s.admin.create_kms_key("other-key", None).await.unwrap();

    let mut unknown = raw_image("unknown");
    unknown.properties.insert("__system__cmkid".into(), "no-such-key".into());
    assert_eq!(status(t.client.create_image(&unknown).await), 400);
    assert!(t.client.list_images(&Default::default()).await.unwrap().images.is_empty(), "nothing was created");

    let mut create = raw_image("fixed");
    create.properties.insert("__system__cmkid".into(), key.id.clone());
    let image = t.client.create_image(&create).await.unwrap();
    for op in [PatchOp::replace("__system__cmkid", other.id.clone()), PatchOp::remove("__system__cmkid")] {
        assert_eq!(status(t.client.update_image(&image.id, &[op]).await), 403);
    }
    let plain = t.client.create_image(&raw_image("plain")).await.unwrap();
    assert_eq!(status(t.client.update_image(&plain.id, &[PatchOp::add("__system__cmkid", key.id.clone())]).await), 403);

    // The IMS API refuses the same change in its own error form.
    let r = t
        .client
        .raw(Method::PATCH, &format!("/v2/cloudimages/{}", image.id))
        .header("content-type", "application/json")
        .body(json!([{"op": "replace", "path": "/__system__cmkid", "value": other.id}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "IMG.0003");
    let image = t.client.get_image(&image.id).await.unwrap();
    assert_eq!(image.properties.get("__system__cmkid").and_then(Value::as_str), Some(key.id.as_str()));
}
