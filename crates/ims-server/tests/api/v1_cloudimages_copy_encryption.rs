//! CopyImageInRegion with a `cmk_id`: the copy is re-encrypted under that key (its own chunks, the same
//! checksums), the source is untouched; a copy without `cmk_id` keeps the source's key and shares its
//! chunks.

use std::collections::HashSet;
use std::path::PathBuf;

use ims_client::{CreateImage, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{chunk_files, pattern, raw_image, status, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

const CMK: &str = "__system__cmkid";
const MARKER: &[u8] = b"RE-ENCRYPTION-MARKER-7c2e";

/// About `len` bytes: compressible text full of the marker around a random middle part.
fn marked_data(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len / 2 {
        out.extend_from_slice(MARKER);
        out.extend_from_slice(format!(" row {i}\n").as_bytes());
        i += 1;
    }
    out.extend(pattern(len / 4, 9));
    while out.len() < len {
        out.extend_from_slice(MARKER);
        out.extend_from_slice(format!(" row {i}\n").as_bytes());
        i += 1;
    }
    out
}


fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that every file of `files` is an encrypted chunk object holding none of `data`'s plaintext.
fn assert_encrypted(files: &HashSet<PathBuf>, data: &[u8]) {
    let random_part = &data[data.len() / 2 + 100..data.len() / 2 + 164];
    for file in files {
        let content = std::fs::read(file).unwrap();
        assert!(content[0] & 0x80 != 0, "{} is not encrypted", file.display());
        assert!(!contains(&content, MARKER) && !contains(&content, random_part), "{} holds plaintext", file.display());
    }
}

async fn download(t: &Tenant, id: &str) -> Vec<u8> {
    t.client.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

/// An active image of `t` holding `data`, encrypted under `key` when given.
async fn image_with(t: &Tenant, name: &str, key: Option<&str>, data: &[u8]) -> String {
    let mut create: CreateImage = raw_image(name);
    if let Some(key) = key {
        create.properties.insert(CMK.into(), key.into());
    }
    let image = t.client.create_image(&create).await.unwrap();
    t.client.upload_bytes(&image.id, data.to_vec()).await.unwrap();
    image.id
}

/// Runs CopyImageInRegion of `source` (with `cmk_id` when given) and returns the finished job.
async fn copy(t: &Tenant, source: &str, name: &str, cmk_id: Option<&str>) -> Value {
    let mut body = json!({"name": name});
    if let Some(key) = cmk_id {
        body["cmk_id"] = json!(key);
    }
    let (code, answer) = ims(t, Method::POST, &format!("/v1/cloudimages/{source}/copy"), Some(body)).await;
    assert_eq!(code, 200, "{answer}");
    wait_job(t, answer["job_id"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_copy_under_another_key_is_re_encrypted_and_independent_of_the_source_key() {
    let s = TestServer::start().await;
    let t = s.tenant("recrypt", Role::Member).await;
    let old_key = s.admin.create_kms_key("old-key", None).await.unwrap();
    let new_key = s.admin.create_kms_key("new-key", None).await.unwrap();
    let data = marked_data(5 << 20);
    let source_id = image_with(&t, "source", Some(&old_key.id), &data).await;
    let source = t.client.get_image(&source_id).await.unwrap();
    let before = chunk_files(&s.data_dir);

    let job = copy(&t, &source_id, "recrypted", Some(&new_key.id)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let copy_id = job["entities"]["image_id"].as_str().unwrap().to_string();
    let copied = t.client.get_image(&copy_id).await.unwrap();
    assert_eq!(copied.status, "active");
    assert_eq!(copied.properties.get(CMK).and_then(Value::as_str), Some(new_key.id.as_str()));
    assert_eq!((copied.size, &copied.checksum, &copied.os_hash_value), (source.size, &source.checksum, &source.os_hash_value));
    assert_eq!(download(&t, &copy_id).await, data);

    // The copy's data lives in chunk objects of its own, encrypted, with none of the plaintext.
    let after = chunk_files(&s.data_dir);
    assert!(before.is_subset(&after), "the source's chunks are untouched");
    let written: HashSet<PathBuf> = after.difference(&before).cloned().collect();
    assert_eq!(written.len(), before.len(), "as many chunk objects as the source has, none shared");
    assert_encrypted(&written, &data);

    // Disabling the old key locks the source only; disabling the new one locks the copy only.
    s.admin.disable_kms_key(&old_key.id).await.unwrap();
    assert_eq!(status(t.client.download(&source_id, None).await), 403);
    assert_eq!(download(&t, &copy_id).await, data);
    s.admin.enable_kms_key(&old_key.id).await.unwrap();
    s.admin.disable_kms_key(&new_key.id).await.unwrap();
    assert_eq!(status(t.client.download(&copy_id, None).await), 403, "the copy reads through the new key");
    assert_eq!(download(&t, &source_id).await, data);
    s.admin.enable_kms_key(&new_key.id).await.unwrap();

    // Deleting the source leaves the copy whole.
    t.client.delete_image(&source_id).await.unwrap();
    assert_eq!(download(&t, &copy_id).await, data);
}

#[tokio::test]
async fn a_copy_without_a_key_keeps_the_sources_and_shares_its_chunks() {
    let s = TestServer::start().await;
    let t = s.tenant("keep-key", Role::Member).await;
    let key = s.admin.create_kms_key("kept", None).await.unwrap();
    let data = marked_data(3 << 20);
    let source_id = image_with(&t, "source", Some(&key.id), &data).await;
    let before = chunk_files(&s.data_dir);

    for cmk_id in [None, Some(key.id.as_str())] {
        let job = copy(&t, &source_id, "same-key", cmk_id).await;
        assert_eq!(job["status"], "SUCCESS", "{job}");
        let copy_id = job["entities"]["image_id"].as_str().unwrap();
        let copied = t.client.get_image(copy_id).await.unwrap();
        assert_eq!(copied.properties.get(CMK).and_then(Value::as_str), Some(key.id.as_str()));
        assert_eq!(download(&t, copy_id).await, data);
    }
    assert_eq!(chunk_files(&s.data_dir), before, "no chunk was written");
    s.admin.disable_kms_key(&key.id).await.unwrap();
    let copies = t.client.list_images(&Default::default()).await.unwrap().images;
    for image in &copies {
        assert_eq!(status(t.client.download(&image.id, None).await), 403, "every copy is under the source's key");
    }
}

#[tokio::test]
async fn a_plaintext_image_copied_with_a_key_is_encrypted() {
    let s = TestServer::start().await;
    let t = s.tenant("encrypt-copy", Role::Member).await;
    let key = s.admin.create_kms_key("fresh", None).await.unwrap();
    let data = marked_data(3 << 20);
    let source_id = image_with(&t, "plain", None, &data).await;
    let source = t.client.get_image(&source_id).await.unwrap();
    let before = chunk_files(&s.data_dir);

    let job = copy(&t, &source_id, "sealed", Some(&key.id)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let copy_id = job["entities"]["image_id"].as_str().unwrap();
    assert_eq!(t.client.get_image(copy_id).await.unwrap().checksum, source.checksum);
    assert_eq!(download(&t, copy_id).await, data);
    let written: HashSet<PathBuf> = chunk_files(&s.data_dir).difference(&before).cloned().collect();
    assert!(!written.is_empty());
    assert_encrypted(&written, &data);
    assert!(before.iter().all(|f| std::fs::read(f).unwrap()[0] < 0x80), "the source stays plaintext");

    // Unknown and disabled keys are refused before any job is created.
    let (code, body) = ims(&t, Method::POST, &format!("/v1/cloudimages/{source_id}/copy"), Some(json!({"name": "x", "cmk_id": "no-such-key"}))).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error_msg"].as_str().unwrap().contains("cmk_id"), "{body}");
    s.admin.disable_kms_key(&key.id).await.unwrap();
    let (code, body) = ims(&t, Method::POST, &format!("/v1/cloudimages/{source_id}/copy"), Some(json!({"name": "x", "cmk_id": key.id}))).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(t.client.list_images(&Default::default()).await.unwrap().images.len(), 2, "no image was created");
}
