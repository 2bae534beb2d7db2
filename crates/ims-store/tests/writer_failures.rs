//! Backend failures surface from the writer; abandoned writes stop cleanly.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::watched::{Watch, Watched};
use common::*;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use ims_store::{ChunkStore, StoreError};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult};

/// Puts that fail after `allowed` successes, or land `late`: in a task of their own that goes on if the
/// caller stops waiting (as a local store's blocking write does).
#[derive(Debug)]
struct FaultyPuts {
    allowed: usize,
    late: Option<Duration>,
    /// Puts asked for (of pending manifest segments among them), and puts that reached the store.
    puts: AtomicUsize,
    segment_puts: AtomicUsize,
    landed: Arc<AtomicUsize>,
}

impl FaultyPuts {
    fn failing_after(allowed: usize) -> Arc<Watched<FaultyPuts>> {
        FaultyPuts::in_memory(allowed, None)
    }

    fn landing_late(delay: Duration) -> Arc<Watched<FaultyPuts>> {
        FaultyPuts::in_memory(usize::MAX, Some(delay))
    }

    fn in_memory(allowed: usize, late: Option<Duration>) -> Arc<Watched<FaultyPuts>> {
        let puts = FaultyPuts { allowed, late, puts: AtomicUsize::new(0), segment_puts: AtomicUsize::new(0), landed: Arc::default() };
        Watched::new(InMemory::new(), puts)
    }
}

#[async_trait]
impl Watch for FaultyPuts {
    async fn put(
        &self,
        inner: &Arc<dyn ObjectStore>,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if location.as_ref().starts_with("manifests/pending/") {
            self.segment_puts.fetch_add(1, Ordering::SeqCst);
        }
        if self.puts.fetch_add(1, Ordering::SeqCst) >= self.allowed {
            return Err(object_store::Error::Generic { store: "FaultyPuts", source: "disk full".into() });
        }
        let Some(delay) = self.late else {
            return inner.put_opts(location, payload, opts).await;
        };
        let (inner, landed, location) = (inner.clone(), self.landed.clone(), location.clone());
        let landing = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let result = inner.put_opts(&location, payload, opts).await;
            landed.fetch_add(1, Ordering::SeqCst);
            result
        });
        landing.await.expect("the put task panicked")
    }
}

#[tokio::test]
async fn a_failing_put_fails_the_write() {
    let store = ChunkStore::new(FaultyPuts::failing_after(2));
    let data = Bytes::from(random_bytes(40 * MIB, 41));
    let mut writer = store.writer();
    let mut error = None;
    for piece in data.chunks(MIB / 2) {
        if let Err(e) = writer.write(Bytes::copy_from_slice(piece)).await {
            error = Some(e);
            break;
        }
    }
    let error = match error {
        // The pipeline buffers a few MiB, so a short file may only fail at finish.
        None => writer.finish().await.unwrap_err(),
        Some(e) => {
            // After a failure the writer stays failed.
            assert!(writer.write(Bytes::from_static(b"more")).await.is_err());
            e
        }
    };
    assert!(matches!(&error, StoreError::Backend(m) if m.contains("disk full")), "{error:?}");
}

#[tokio::test]
async fn a_short_write_failing_at_finish() {
    let store = ChunkStore::new(FaultyPuts::failing_after(0));
    let mut writer = store.writer();
    writer.write(Bytes::from(random_bytes(1000, 1))).await.unwrap();
    let error = writer.finish().await.unwrap_err();
    assert!(matches!(&error, StoreError::Backend(m) if m.contains("disk full")), "{error:?}");
}

#[tokio::test]
async fn dropping_a_writer_abandons_it() {
    let t = memory_store();
    let mut writer = t.store.writer();
    writer.write(Bytes::from(random_bytes(12 * MIB, 42))).await.unwrap();
    drop(writer);
    // Background work stops: the number of chunk objects settles without a manifest.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let settled = chunk_objects(&t.store).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(chunk_objects(&t.store).await, settled);
    assert!(t.store.objects().list(Some(&Path::from("manifests"))).next_item().await.is_none());
}

#[tokio::test]
async fn an_abandoned_write_discards_its_pending_manifest_after_its_last_segment_lands() {
    // Records buffered (the default grace), and each written before its chunk (a grace of zero).
    for grace in [None, Some(Duration::ZERO)] {
        abandoned_while_a_segment_is_on_its_way(grace).await;
    }
}

async fn abandoned_while_a_segment_is_on_its_way(grace: Option<Duration>) {
    let objects = FaultyPuts::landing_late(Duration::from_millis(150));
    let store = ChunkStore::new(objects.clone());
    if let Some(grace) = grace {
        store.set_gc_grace(grace);
    }
    let mut writer = store.writer();
    writer.write(Bytes::from(random_bytes(12 * MIB, 43))).await.unwrap();
    // Dropped while a segment is on its way to the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while objects.watch.segment_puts.load(Ordering::SeqCst) < 1 {
        assert!(std::time::Instant::now() < deadline, "the write never stored anything");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(writer);
    // Every put asked for has landed, and no new one was asked for in a while.
    let mut quiet_since = std::time::Instant::now();
    let mut asked = objects.watch.puts.load(Ordering::SeqCst);
    while asked != objects.watch.landed.load(Ordering::SeqCst) || quiet_since.elapsed() < Duration::from_millis(400) {
        assert!(std::time::Instant::now() < deadline, "the abandoned write never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = objects.watch.puts.load(Ordering::SeqCst);
        if now != asked {
            (asked, quiet_since) = (now, std::time::Instant::now());
        }
    }
    let pending: Vec<_> = objects.inner.list(Some(&Path::from("manifests/pending"))).try_collect().await.unwrap();
    assert_eq!(pending, vec![], "a segment landed after the pending manifest was discarded (grace {grace:?})");
}

#[tokio::test]
async fn an_empty_write_gives_an_empty_manifest() {
    let t = memory_store();
    let summary = t.store.writer().finish().await.unwrap();
    assert_eq!(summary.manifest.size, 0);
    assert!(summary.manifest.extents.is_empty());
    let mut w = t.store.writer();
    w.write(Bytes::new()).await.unwrap();
    assert_eq!(w.finish().await.unwrap().manifest.size, 0);
}

trait NextItem {
    async fn next_item(self) -> Option<object_store::Result<ObjectMeta>>;
}

impl NextItem for BoxStream<'static, object_store::Result<ObjectMeta>> {
    async fn next_item(mut self) -> Option<object_store::Result<ObjectMeta>> {
        futures::StreamExt::next(&mut self).await
    }
}
