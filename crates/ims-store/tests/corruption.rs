//! Damaged or missing chunks are detected on read, never returned as data.

mod common;

use std::sync::Arc;

use common::*;
use futures::StreamExt;
use ims_store::{ChunkId, StoreError};

fn chunk_file(dir: &std::path::Path, id: &ChunkId) -> std::path::PathBuf {
    dir.join("store").join(id.object_path().as_ref())
}

#[tokio::test]
async fn a_flipped_byte_on_disk_is_corrupt() {
    let t = file_store();
    let dir = t.dir.as_ref().unwrap().path();
    let data = random_bytes(5 * MIB, 21);
    let m = Arc::new(write_in_pieces(&t.store, &data, 1).await.unwrap().manifest);
    assert!(m.extents.len() >= 2);
    let victim = &m.extents[1];
    let id = victim.chunk.unwrap();
    let path = chunk_file(dir, &id);
    let mut object = std::fs::read(&path).unwrap();
    let middle = object.len() / 2;
    object[middle] ^= 0x01;
    std::fs::write(&path, &object).unwrap();

    // Reading only the first extent is unaffected.
    assert_eq!(read(&t.store, &m, 0, m.extents[0].length as u64).await.unwrap(), &data[..m.extents[0].length as usize]);

    // Any read touching the damaged chunk fails with Corrupt naming the chunk and its offset.
    let mut stream = t.store.read_range(m.clone(), 0, m.size);
    let mut got = Vec::new();
    let error = loop {
        match stream.next().await {
            Some(Ok(bytes)) => got.extend_from_slice(&bytes),
            Some(Err(e)) => break e,
            None => panic!("read of a damaged chunk succeeded"),
        }
    };
    let StoreError::Corrupt(message) = &error else { panic!("expected Corrupt, got {error:?}") };
    assert!(message.contains(&id.to_string()), "{message}");
    assert!(message.contains(&victim.offset.to_string()), "{message}");
    // The data before the damage was correct, and nothing follows the error.
    assert_eq!(got, &data[..got.len()]);
    assert!(got.len() as u64 <= victim.offset);
    assert!(stream.next().await.is_none());

    let inside = victim.offset + 10;
    assert!(matches!(read(&t.store, &m, inside, inside + 1).await, Err(StoreError::Corrupt(_))));
}

#[tokio::test]
async fn damaged_compressed_chunks_and_unknown_tags_are_corrupt() {
    let t = file_store();
    let dir = t.dir.as_ref().unwrap().path();
    let text: Vec<u8> = (0..2 * MIB).map(|i| b"compressible text "[i % 18]).collect();
    let m = Arc::new(write_in_pieces(&t.store, &text, 1).await.unwrap().manifest);
    let id = m.extents[0].chunk.unwrap();
    let path = chunk_file(dir, &id);
    let original = std::fs::read(&path).unwrap();
    assert_eq!(original[0], ims_store::frames::CODEC_FRAMED, "a chunk longer than a frame is framed");

    let mut truncated = original.clone();
    truncated.truncate(original.len() - 3);
    std::fs::write(&path, &truncated).unwrap();
    assert!(matches!(read(&t.store, &m, 0, 10).await, Err(StoreError::Corrupt(_))));

    let mut tagged = original.clone();
    tagged[0] = 0x42;
    std::fs::write(&path, &tagged).unwrap();
    let e = read(&t.store, &m, 0, 10).await.unwrap_err();
    assert!(matches!(&e, StoreError::Corrupt(m) if m.contains("codec")), "{e}");

    std::fs::remove_file(&path).unwrap();
    let e = read(&t.store, &m, 0, 10).await.unwrap_err();
    assert!(matches!(&e, StoreError::Corrupt(m) if m.contains("missing")), "{e}");

    std::fs::write(&path, &original).unwrap();
    assert_eq!(read(&t.store, &m, 0, m.size).await.unwrap(), text);
}
