//! Which reads go through the chunk cache, counted at the backend: ranged reads fetch only the chunks
//! they cover and repeats fetch nothing, whole-file reads bypass it and leave it as it was, integrity
//! checks always read what is stored, copy-on-write volumes read untouched base chunks through the
//! cache, and two encryption domains never share an entry.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::watched::{Watch, Watched};
use common::*;
use futures::TryStreamExt;
use ims_store::{frames, CacheUse, ChunkStore, CowVolume, EncryptionDomain, Manifest, StoreError};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::GetOptions;

/// Counts the chunk objects fetched from a store (bodies, not `HEAD`s).
#[derive(Debug, Default)]
struct CountingChunkGets {
    chunk_gets: AtomicU64,
}

impl Watch for CountingChunkGets {
    fn get(&self, location: &Path, options: &GetOptions) {
        if !options.head && location.as_ref().starts_with("chunks/") {
            self.chunk_gets.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A `file` store whose chunk fetches are counted; `gets()` tells how many so far.
struct Counted {
    store: ChunkStore,
    objects: Arc<Watched<CountingChunkGets>>,
    _dir: tempfile::TempDir,
}

impl Counted {
    fn new(cache_bytes: u64) -> Counted {
        let dir = tempfile::tempdir().unwrap();
        let inner = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let objects = Watched::new(inner, CountingChunkGets::default());
        let store = ChunkStore::new(objects.clone());
        assert!(store.set_chunk_cache_bytes(cache_bytes));
        Counted { store, objects, _dir: dir }
    }

    fn gets(&self) -> u64 {
        self.objects.watch.chunk_gets.load(Ordering::SeqCst)
    }
}

/// 24 MiB of random data with a 4 MiB zero run in the middle; its manifest.
async fn stored_file(store: &ChunkStore, seed: u64) -> (Vec<u8>, Arc<Manifest>) {
    let mut data = random_bytes(10 * MIB, seed);
    data.extend(std::iter::repeat_n(0u8, 4 * MIB));
    data.extend(random_bytes(10 * MIB, seed + 1));
    let manifest = write_in_pieces(store, &data, seed).await.unwrap().manifest;
    assert!(manifest.extents.iter().filter(|e| e.chunk.is_some()).count() >= 10);
    (data, Arc::new(manifest))
}

async fn read_with(store: &ChunkStore, manifest: &Arc<Manifest>, start: u64, end: u64, caching: CacheUse) -> Vec<u8> {
    let pieces: Vec<Bytes> = store.read_range_cached(manifest.clone(), start, end, caching).try_collect().await.unwrap();
    pieces.concat()
}

/// Stored chunks of `manifest` overlapping `[start, end)` (a chunk used twice counts twice).
fn chunks_covering(manifest: &Manifest, start: u64, end: u64) -> u64 {
    manifest.extents_overlapping(start, end).iter().filter(|e| e.chunk.is_some()).count() as u64
}

/// Requests a cached read of `[start, end)` makes with nothing cached: one for each chunk it reads
/// whole (the object), two for each chunk it reads in part (its frame table, then its frames).
fn requests_covering(manifest: &Manifest, start: u64, end: u64) -> u64 {
    let stored = manifest.extents_overlapping(start, end).iter().filter(|e| e.chunk.is_some());
    stored.map(|e| if start <= e.offset && e.end() <= end { 1 } else { 2 }).sum()
}

/// Frames of the stored chunks of `manifest` that `[start, end)` reads.
fn frames_covering(manifest: &Manifest, start: u64, end: u64) -> u64 {
    let frame = frames::FRAME_LEN as u64;
    let stored = manifest.extents_overlapping(start, end).iter().filter(|e| e.chunk.is_some());
    stored.map(|e| (end.min(e.end()) - e.offset).div_ceil(frame) - (start.max(e.offset) - e.offset) / frame).sum()
}

#[tokio::test]
async fn a_range_fetches_only_the_chunks_it_covers_and_its_repeat_fetches_nothing() {
    // Ranges of up to 8 MiB fill a cache of 128 MiB.
    let t = Counted::new(128 * MIB as u64);
    let (data, manifest) = stored_file(&t.store, 1).await;
    assert_eq!(t.gets(), 0, "writing fetches no chunk");
    // 1.5 MiB straddling chunk boundaries in the first data run, then one across the zero run.
    for (start, end) in [(3 * MIB as u64 + 12_345, 4 * MIB as u64 + 600_000), (9 * MIB as u64, 15 * MIB as u64)] {
        assert_eq!(t.store.chunk_cache().use_for_range(start, end, manifest.size), CacheUse::Fill);
        let before = t.gets();
        let bytes = read_with(&t.store, &manifest, start, end, CacheUse::Fill).await;
        assert_eq!(&bytes[..], &data[start as usize..end as usize]);
        let covering = chunks_covering(&manifest, start, end);
        assert!((2..10).contains(&covering), "{covering}");
        let requests = requests_covering(&manifest, start, end);
        assert_eq!(t.gets() - before, requests, "only the chunks covering [{start}, {end}) are fetched");
        let before = t.gets();
        let hits = t.store.chunk_cache().stats().hits;
        let again = read_with(&t.store, &manifest, start, end, CacheUse::Fill).await;
        assert_eq!(again, bytes);
        assert_eq!(t.gets(), before, "the repeated range is served from the cache");
        assert_eq!(t.store.chunk_cache().stats().hits - hits, frames_covering(&manifest, start, end));
    }
}

#[tokio::test]
async fn a_whole_file_read_bypasses_the_cache_and_leaves_it_as_it_was() {
    let t = Counted::new(64 * MIB as u64);
    let (data, manifest) = stored_file(&t.store, 2).await;
    let hot = (20 * MIB as u64, 21 * MIB as u64);
    read_with(&t.store, &manifest, hot.0, hot.1, CacheUse::Fill).await;
    let warm = t.store.chunk_cache().stats();
    assert!(warm.frames >= 1);

    let size = manifest.size;
    assert_eq!(t.store.chunk_cache().use_for_range(0, size, size), CacheUse::Bypass, "the whole file bypasses");
    let before = t.gets();
    assert_eq!(read_with(&t.store, &manifest, 0, size, CacheUse::Bypass).await, data);
    assert_eq!(t.gets() - before, chunks_covering(&manifest, 0, size), "every chunk is read from the store");
    assert_eq!(t.store.chunk_cache().stats(), warm, "the cache is as it was");

    // The hot range is still served from memory.
    let before = t.gets();
    read_with(&t.store, &manifest, hot.0, hot.1, CacheUse::Fill).await;
    assert_eq!(t.gets(), before);
}

#[tokio::test]
async fn large_ranges_and_whole_files_bypass_small_ranges_fill() {
    let t = Counted::new(16 * MIB as u64);
    let cache = t.store.chunk_cache();
    let size = 100 * MIB as u64;
    let fill_limit = 16 * MIB as u64 / ims_store::FILL_FRACTION;
    assert_eq!(cache.use_for_range(0, size, size), CacheUse::Bypass);
    assert_eq!(cache.use_for_range(0, 0, size), CacheUse::Bypass);
    assert_eq!(cache.use_for_range(5, 5 + fill_limit, size), CacheUse::Fill);
    assert_eq!(cache.use_for_range(5, 6 + fill_limit, size), CacheUse::Bypass);
    assert_eq!(cache.use_for_range(0, 4096, size), CacheUse::Fill);
    // A small file read whole is still a whole-file read.
    assert_eq!(cache.use_for_range(0, 4096, 4096), CacheUse::Bypass);
    // No cache, nothing to fill.
    assert_eq!(Counted::new(0).store.chunk_cache().use_for_range(0, 1, size), CacheUse::Bypass);
}

#[tokio::test]
async fn bypassing_reads_and_verification_read_what_is_stored_even_when_cached() {
    let t = Counted::new(64 * MIB as u64);
    let (data, manifest) = stored_file(&t.store, 3).await;
    let first = manifest.extents[0].clone();
    let id = first.chunk.unwrap();
    read_with(&t.store, &manifest, 0, first.length as u64, CacheUse::Fill).await;
    assert_eq!(t.store.chunk_cache().stats().frames, frames::frame_count(first.length as usize) as u64);

    let before = t.gets();
    assert_eq!(read(&t.store, &manifest, 0, first.length as u64).await.unwrap(), &data[..first.length as usize]);
    assert_eq!(t.gets() - before, 1, "read_range never consults the cache");

    // The stored object goes bad: cached reads still serve the verified bytes, checks see the damage.
    let path = id.object_path();
    let mut object = t.store.objects().get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    let middle = object.len() / 2;
    object[middle] ^= 0x01;
    t.store.objects().put(&path, object.into()).await.unwrap();
    assert_eq!(
        read_with(&t.store, &manifest, 0, 1000, CacheUse::Fill).await,
        &data[..1000],
        "the cache holds the chunk as it was verified"
    );
    let err = t.store.verify_chunk(&id, first.length).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(m) if m.contains(&id.to_hex())), "{err:?}");
    let err = read(&t.store, &manifest, 0, 1000).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn a_volume_reads_untouched_base_chunks_through_the_cache() {
    let t = Counted::new(64 * MIB as u64);
    let (data, manifest) = stored_file(&t.store, 4).await;
    let volume = CowVolume::new(t.store.clone(), manifest.clone());
    let region = (2 * MIB as u64 + 777, 3 * MIB + 4096);
    let mut first = vec![0u8; region.1];
    volume.read_at(&mut first, region.0).await.unwrap();
    assert_eq!(&first[..], &data[region.0 as usize..region.0 as usize + region.1]);
    assert!(t.gets() > 0);

    // A write elsewhere (its partial block read and patched), then the same region again.
    volume.write_at(b"written elsewhere", 18 * MIB as u64 + 5).await.unwrap();
    let before = t.gets();
    let mut second = vec![0u8; region.1];
    volume.read_at(&mut second, region.0).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(t.gets(), before, "the second read of untouched base chunks fetched nothing");
}

#[tokio::test]
async fn two_encryption_domains_never_share_a_cached_chunk() {
    let t = Counted::new(64 * MIB as u64);
    let a = t.store.in_domain(EncryptionDomain::new(&EncryptionDomain::generate_data_key()));
    let b = t.store.in_domain(EncryptionDomain::new(&EncryptionDomain::generate_data_key()));
    let data = random_bytes(3 * MIB, 5);
    let manifest = Arc::new(write_in_pieces(&a, &data, 5).await.unwrap().manifest);
    assert_eq!(read_with(&a, &manifest, 0, manifest.size / 2, CacheUse::Fill).await, &data[..data.len() / 2]);
    let cached = t.store.chunk_cache().stats().frames;
    assert!(cached >= 1);

    // Domain b names a's chunk ids (a manifest pointing across domains): it is not served a's
    // plaintext from the cache, it fetches the object and cannot decrypt it.
    for caching in [CacheUse::Fill, CacheUse::Bypass] {
        let before = t.gets();
        let err = b.read_range_cached(manifest.clone(), 0, 1000, caching).try_collect::<Vec<Bytes>>().await.unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("decrypt")), "{err:?}");
        assert_eq!(t.gets() - before, 1, "{caching:?}");
    }
    // Nor is the plaintext view; and the failures cached nothing.
    let err = t.store.read_range_cached(manifest.clone(), 0, 1000, CacheUse::Fill).try_collect::<Vec<Bytes>>().await;
    assert!(err.is_err());
    assert_eq!(t.store.chunk_cache().stats().frames, cached);
    // Domain a still reads from its cached entries.
    let before = t.gets();
    assert_eq!(read_with(&a, &manifest, 0, 1000, CacheUse::Fill).await, &data[..1000]);
    assert_eq!(t.gets(), before);
}
