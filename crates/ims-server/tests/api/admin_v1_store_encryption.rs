//! `POST /admin/v1/store/verify` on encrypted images: damage is found and named, and an image whose
//! key is disabled is reported as not verified (never as clean).

use std::path::{Path, PathBuf};

use ims_client::Role;
use serde_json::Value;

use crate::common::{pattern, raw_image, TestServer};

const MIB: usize = 1 << 20;

/// The chunk object file named `chunk` (64 hex digits) in the server's store.
fn chunk_file(data_dir: &Path, chunk: &str) -> PathBuf {
    let path = data_dir.join("store").join("chunks").join(&chunk[..2]).join(chunk);
    assert!(path.is_file(), "{} exists", path.display());
    path
}

/// (chunk hex, file offset) of each stored extent of the manifest that names `size` bytes (the only
/// manifest of that size in the store).
fn extents_of(data_dir: &Path, size: u64) -> Vec<(String, u64)> {
    let dir = data_dir.join("store").join("manifests");
    let manifests: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .filter(|m: &Value| m["size"].as_u64() == Some(size))
        .collect();
    assert_eq!(manifests.len(), 1, "one manifest of {size} bytes");
    manifests[0]["extents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["chunk"].is_string())
        .map(|e| (e["chunk"].as_str().unwrap().to_string(), e["offset"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn verify_names_a_damaged_chunk_of_an_encrypted_image_and_skips_images_of_disabled_keys() {
    // No chunk cache, so that the download below reads the damaged object (verification never uses
    // the cache).
    let s = TestServer::start_with(|settings| settings.chunk_cache_bytes = 0).await;
    let t = s.tenant("verify-enc", Role::Member).await;
    let key = s.admin.create_kms_key("verify-enc-key", None).await.unwrap();
    let data = pattern(7 * MIB + 4321, 51);
    let mut create = raw_image("sealed");
    create.properties.insert("__system__cmkid".into(), key.id.clone());
    let id = t.client.create_image(&create).await.unwrap().id;
    t.client.upload_bytes(&id, data.clone()).await.unwrap();
    let plain = t.client.create_image(&raw_image("plain")).await.unwrap().id;
    t.client.upload_bytes(&plain, pattern(2 * MIB, 52)).await.unwrap();

    let report = s.admin.store_verify(None).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.images_checked, 2, "{report:?}");
    let extents = extents_of(&s.data_dir, data.len() as u64);
    assert!(extents.len() >= 3, "{extents:?}");
    let clean = s.admin.store_verify(Some(&id)).await.unwrap();
    assert!(clean.is_clean() && clean.chunks_checked == extents.len() as u64, "{clean:?}");
    assert_eq!(clean.bytes_checked, data.len() as u64, "every byte decrypted and checked");

    // One flipped byte in the ciphertext of the second chunk.
    let (chunk, offset) = extents[1].clone();
    let path = chunk_file(&s.data_dir, &chunk);
    let mut object = std::fs::read(&path).unwrap();
    let middle = object.len() / 2;
    object[middle] ^= 0x08;
    std::fs::write(&path, object).unwrap();

    let report = s.admin.store_verify(None).await.unwrap();
    assert!(!report.is_clean());
    let found: Vec<(String, u64, String, String)> = report
        .chunk_problems
        .iter()
        .map(|p| (p.image_id.clone(), p.offset, p.chunk.clone(), p.kind.clone()))
        .collect();
    assert_eq!(found, vec![(id.clone(), offset, chunk.clone(), "corrupt".to_string())], "{report:?}");
    assert!(report.chunk_problems[0].detail.contains("decrypt"), "{report:?}");
    assert!(report.images_skipped.is_empty(), "{report:?}");
    let err = s.admin.download(&id, Some((offset, None))).await.expect_err("the damaged chunk is not served");
    assert_eq!(err.status(), Some(500), "{err}");

    // With the key disabled the image cannot be verified: reported as skipped, with the reason; the
    // other images are still verified.
    s.admin.disable_kms_key(&key.id).await.unwrap();
    let report = s.admin.store_verify(None).await.unwrap();
    assert!(!report.is_clean(), "{report:?}");
    assert_eq!(report.images_checked, 1, "{report:?}");
    assert!(report.chunk_problems.is_empty(), "{report:?}");
    assert_eq!(report.images_skipped.len(), 1, "{report:?}");
    let skipped = &report.images_skipped[0];
    assert_eq!(skipped.image_id, id);
    assert!(skipped.reason.contains(&key.id) && skipped.reason.contains("disabled"), "{skipped:?}");
    let only = s.admin.store_verify(Some(&id)).await.unwrap();
    assert!(!only.is_clean() && only.images_checked == 0 && only.images_skipped.len() == 1, "{only:?}");

    // Enabled again, the damage is found again.
    s.admin.enable_kms_key(&key.id).await.unwrap();
    let report = s.admin.store_verify(Some(&id)).await.unwrap();
    assert_eq!(report.chunk_problems.len(), 1, "{report:?}");
    assert_eq!(report.chunk_problems[0].offset, offset);
}
