//! Read-write NBD exports of copy-on-write volumes, driven by real qemu clients.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ims_nbd::{ExportBackend, ExportTable, NbdServer};
use ims_server::nbd_volume::{volume_export, OpenVolumes, PersistManifest, VolumeBackend};
use ims_store::{ChunkId, ChunkStore, CowVolume, Extent, Manifest};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::pattern;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 8 * MIB;

/// Runs a qemu tool off the runtime's threads; returns its stdout, or its stderr as the error.
async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(program).args(args).output().await.expect("qemu tools are installed");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn must(program: &str, args: &[&str]) -> String {
    run(program, args).await.unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// An 8 MiB disk: data at [0, 1 MiB) and [4 MiB, 6 MiB), holes elsewhere; each data run stored on its
/// own so that the extents end exactly at the runs' ends. Returns the manifest and the disk's bytes.
async fn base_disk(store: &ChunkStore) -> (Manifest, Vec<u8>) {
    let mut bytes = vec![0u8; SIZE as usize];
    let mut extents = Vec::new();
    for (at, len, seed) in [(0, MIB, 1), (4 * MIB, 2 * MIB, 2)] {
        let end = extents.last().map_or(0, Extent::end);
        if end < at {
            extents.push(Extent { offset: end, length: (at - end) as u32, chunk: None });
        }
        let data = pattern(len as usize, seed);
        bytes[at as usize..(at + len) as usize].copy_from_slice(&data);
        let mut writer = store.writer();
        for piece in data.chunks(256 * 1024) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let run = writer.finish().await.unwrap();
        // The image is stored: its pending manifest is released (as once the catalog references it).
        if let Some(pending) = &run.pending_id {
            store.release_pending(pending).await.unwrap();
        }
        let run = run.manifest;
        extents.extend(run.extents.into_iter().map(|e| Extent { offset: e.offset + at, ..e }));
    }
    extents.push(Extent { offset: 6 * MIB, length: (2 * MIB) as u32, chunk: None });
    let manifest = Manifest { size: SIZE, extents };
    manifest.validate().unwrap();
    (manifest, bytes)
}

/// The bytes of the disk `manifest` describes.
async fn read_disk(store: &ChunkStore, manifest: Manifest) -> Vec<u8> {
    let pieces: Vec<Bytes> = futures::TryStreamExt::try_collect(store.read_range(Arc::new(manifest), 0, SIZE)).await.unwrap();
    pieces.concat()
}

fn file_store(dir: &std::path::Path) -> ChunkStore {
    ChunkStore::open(url::Url::from_directory_path(dir.join("store")).unwrap().as_str()).unwrap()
}

/// A persist callback that saves each manifest to the store and records it.
fn recording_persist(store: &ChunkStore) -> (PersistManifest, Arc<Mutex<Vec<Manifest>>>) {
    let persisted = Arc::new(Mutex::new(Vec::new()));
    let (store, record) = (store.clone(), persisted.clone());
    let persist: PersistManifest = Arc::new(move |manifest: Manifest| {
        let (store, record) = (store.clone(), record.clone());
        Box::pin(async move {
            let id = store.save_manifest(&manifest).await.map_err(|e| e.to_string())?;
            let saved = store.load_manifest(&id).await.map_err(|e| e.to_string())?;
            record.lock().unwrap().push(saved);
            Ok(())
        })
    });
    (persist, persisted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_writes_through_a_volume_export_and_only_that_range_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let (base, mut expected) = base_disk(&store).await;
    let volume = Arc::new(CowVolume::new(store.clone(), Arc::new(base.clone())));
    let (persist, persisted) = recording_persist(&store);
    let exports = Arc::new(ExportTable::new());
    exports.insert("c2f1e7a94b3d4e0f9a8b7c6d5e4f3a2b", volume_export(volume.clone(), persist));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let server = {
        let stop = stop.clone();
        tokio::spawn(async move { NbdServer::new(exports).serve(listener, async move { stop.cancelled().await }).await })
    };
    let url = format!("nbd://127.0.0.1:{port}/c2f1e7a94b3d4e0f9a8b7c6d5e4f3a2b");

    must("qemu-io", &["-f", "raw", "-c", "write -P 0xab 1M 64k", &url]).await;
    expected[MIB as usize..(MIB + 65536) as usize].fill(0xab);
    // qemu-io flushes before it disconnects; the connection's close comes after its last reply.
    for _ in 0..100 {
        if !persisted.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let manifest = persisted.lock().unwrap().last().cloned().expect("the write was persisted");
    // Exactly the base with the hole at [1 MiB, 4 MiB) cut around one new 64 KiB chunk.
    let mut want = base.extents.clone();
    let hole = want.iter().position(|e| e.offset == MIB).expect("the base has a hole at 1 MiB");
    want.splice(
        hole..=hole,
        [
            Extent { offset: MIB, length: 65536, chunk: Some(ChunkId::of(&[0xab; 65536])) },
            Extent { offset: MIB + 65536, length: (3 * MIB - 65536) as u32, chunk: None },
        ],
    );
    assert_eq!(manifest, Manifest { size: SIZE, extents: want });
    let stored = read_disk(&store, manifest).await;
    assert!(stored == expected, "the persisted manifest holds the write and nothing else changed");

    // qemu sees the holes, and reads the disk with the write.
    let map: Vec<Value> = serde_json::from_str(&must("qemu-img", &["map", "--output=json", "-f", "raw", &url]).await).unwrap();
    let data: Vec<(u64, u64)> = map
        .iter()
        .filter(|e| e["data"] == Value::Bool(true))
        .map(|e| (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap()))
        .collect();
    assert_eq!(data, vec![(0, MIB + 65536), (4 * MIB, 2 * MIB)], "{map:?}");
    let out = dir.path().join("out.raw");
    must("qemu-img", &["convert", "-f", "raw", "-O", "raw", &url, out.to_str().unwrap()]).await;
    assert!(std::fs::read(&out).unwrap() == expected);
    assert_eq!(persisted.lock().unwrap().len(), 1, "readers persist nothing");

    // A client killed after a write, before any flush: the end of its connection persists the write.
    let mut client = tokio::process::Command::new("qemu-io")
        // Write-back: no flush after each write (qemu-io's default, write-through, flushes every write).
        .args(["-f", "raw", "-t", "writeback", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("qemu-io is installed");
    let written = volume.stats().bytes_written;
    let mut commands = client.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut commands, b"write -P 0xcd 5M 4k\n").await.unwrap();
    for _ in 0..200 {
        if volume.stats().bytes_written > written {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(volume.stats().bytes_written, written + 4096, "the write reached the volume");
    assert_eq!(persisted.lock().unwrap().len(), 1, "not flushed yet");
    client.kill().await.unwrap();
    expected[5 * MIB as usize..(5 * MIB + 4096) as usize].fill(0xcd);
    for _ in 0..100 {
        if persisted.lock().unwrap().len() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let manifest = persisted.lock().unwrap().last().cloned().unwrap();
    assert!(read_disk(&store, manifest).await == expected, "persisted when the client disconnected");
    assert_eq!(persisted.lock().unwrap().len(), 2);

    stop.cancel();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_persists_unflushed_writes_and_a_failed_persist_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let (base, mut expected) = base_disk(&store).await;
    let volume = Arc::new(CowVolume::new(store.clone(), Arc::new(base)));
    let (recording, persisted) = recording_persist(&store);
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let persist: PersistManifest = {
        let failing = failing.clone();
        Arc::new(move |manifest| {
            if failing.load(std::sync::atomic::Ordering::SeqCst) {
                Box::pin(async { Err("catalog unavailable".to_string()) })
            } else {
                recording(manifest)
            }
        })
    };
    let backend = Arc::new(VolumeBackend::new(volume.clone(), persist, tokio::runtime::Handle::current()));
    let calls = backend.clone();
    let failing_flush = tokio::task::spawn_blocking(move || {
        calls.write_at(&[0x5a; 1000], 5 * MIB + 10)?;
        calls.flush()
    })
    .await
    .unwrap();
    assert!(failing_flush.unwrap_err().to_string().contains("catalog unavailable"));
    expected[(5 * MIB + 10) as usize..(5 * MIB + 1010) as usize].fill(0x5a);
    assert!(persisted.lock().unwrap().is_empty());

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let calls = backend.clone();
    tokio::task::spawn_blocking(move || {
        calls.write_zeroes(0, 65536, true)?;
        calls.close()
    })
    .await
    .unwrap()
    .unwrap();
    expected[..65536].fill(0);
    let manifest = persisted.lock().unwrap().last().cloned().expect("closing persisted");
    let stored = read_disk(&store, manifest).await;
    assert!(stored == expected);
    // Persisted: nothing of it is pending any more.
    assert!(store.list_pending().await.unwrap().is_empty());
    let calls = backend.clone();
    tokio::task::spawn_blocking(move || calls.close()).await.unwrap().unwrap();
    assert_eq!(persisted.lock().unwrap().len(), 1, "an unchanged volume is not persisted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_one_volume_share_it_until_the_last_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let (base, _) = base_disk(&store).await;
    let (persist, persisted) = recording_persist(&store);
    let open = OpenVolumes::new();
    let opened = std::sync::atomic::AtomicUsize::new(0);
    let opener = || {
        opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (Arc::new(CowVolume::new(store.clone(), Arc::new(base.clone()))), persist.clone())
    };
    let first = open.export("volume-1", opener);
    let second = open.export("volume-1", opener);
    let other = open.export("volume-2", opener);
    assert_eq!((opened.load(std::sync::atomic::Ordering::SeqCst), open.len()), (2, 2));
    let (a, b) = (first.backend.clone(), second.backend.clone());
    let seen = tokio::task::spawn_blocking(move || {
        a.write_at(&[0x77; 100], 7 * MIB)?;
        let mut buf = [0u8; 100];
        b.read_at(&mut buf, 7 * MIB)?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(seen, [0x77; 100], "one connection sees the other's write at once");
    drop((first, second, other));
    assert!(open.is_empty());
    let _reopened = open.export("volume-1", opener);
    assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 3, "opened afresh once every export is gone");
    assert!(persisted.lock().unwrap().is_empty(), "only a flush or a connection's end persists");
}
