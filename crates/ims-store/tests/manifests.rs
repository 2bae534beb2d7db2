//! Manifest objects: save, load, delete.

mod common;

use common::*;
use ims_store::{ChunkId, ChunkStore, Extent, Manifest, StoreError};

#[tokio::test]
async fn save_load_delete() {
    for t in stores() {
        let data = random_bytes(3 * MIB, 31);
        let summary = write_in_pieces(&t.store, &data, 1).await.unwrap();
        let id = t.store.save_manifest(&summary.manifest).await.unwrap();
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        let loaded = t.store.load_manifest(&id).await.unwrap();
        assert_eq!(loaded, summary.manifest, "{}", t.name);

        // Ids are fresh per save.
        let id2 = t.store.save_manifest(&summary.manifest).await.unwrap();
        assert_ne!(id, id2);

        t.store.delete_manifest(&id).await.unwrap();
        assert!(matches!(t.store.load_manifest(&id).await, Err(StoreError::NotFound(_))), "{}", t.name);
        // Idempotent.
        t.store.delete_manifest(&id).await.unwrap();
        // Chunks stay for the garbage collector; the other manifest still reads.
        let other = std::sync::Arc::new(t.store.load_manifest(&id2).await.unwrap());
        assert_eq!(read(&t.store, &other, 0, other.size).await.unwrap(), data);
        // The empty file has a manifest too.
        let empty = t.store.save_manifest(&Manifest::default()).await.unwrap();
        assert_eq!(t.store.load_manifest(&empty).await.unwrap(), Manifest::default());
    }
}

#[tokio::test]
async fn missing_invalid_and_corrupt_manifests() {
    for t in stores() {
        let missing = uuid::Uuid::new_v4().to_string();
        assert!(matches!(t.store.load_manifest(&missing).await, Err(StoreError::NotFound(_))));
        assert!(matches!(t.store.load_manifest("../etc/passwd").await, Err(StoreError::Invalid(_))));
        assert!(matches!(t.store.delete_manifest("nope").await, Err(StoreError::Invalid(_))));

        let bad = Manifest { size: 10, extents: vec![Extent { offset: 0, length: 5, chunk: None }] };
        assert!(matches!(t.store.save_manifest(&bad).await, Err(StoreError::Invalid(_))));

        // An object that does not parse, or breaks the invariant, is Corrupt.
        let id = uuid::Uuid::new_v4().to_string();
        let path = object_store::path::Path::from(format!("manifests/{id}"));
        t.store.objects().put(&path, b"{\"version\":1,".to_vec().into()).await.unwrap();
        assert!(matches!(t.store.load_manifest(&id).await, Err(StoreError::Corrupt(_))));
        t.store.objects().put(&path, bad.to_json().into()).await.unwrap();
        assert!(matches!(t.store.load_manifest(&id).await, Err(StoreError::Corrupt(_))));
    }
}

#[test]
fn open_rejects_unknown_urls_and_creates_directories() {
    assert!(matches!(ChunkStore::open("ftp://x/y"), Err(StoreError::Invalid(_))));
    assert!(matches!(ChunkStore::open("not a url"), Err(StoreError::Invalid(_))));
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    ChunkStore::open(url::Url::from_directory_path(&nested).unwrap().as_str()).unwrap();
    assert!(nested.is_dir());
    let _ = ChunkId::of(b"");
}
