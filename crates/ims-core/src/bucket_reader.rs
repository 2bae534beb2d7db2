//! Positional reads of a bucket object, for the formats engine: lazy reads of an image being quick-imported
//! (one ranged read per read) and conversion on import straight from the object (with read-ahead: aligned
//! blocks fetched whole and a few kept, so that reading a QCOW2 in order costs one ranged read per block
//! rather than one per cluster). Every read is of the version of the object the reader was made for.

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use ims_formats::ReadAt;
use tokio::runtime::Handle;

use crate::buckets::{BucketObject, BucketStore};

/// Blocking positional reads of `bucket:key`. Must be used from a blocking thread (it waits on the runtime).
pub struct BucketObjectReader {
    buckets: BucketStore,
    bucket: String,
    object: BucketObject,
    runtime: Handle,
    blocks: Option<Mutex<Blocks>>,
    /// Reads fail with `TimedOut` from this moment on (see [`BucketObjectReader::with_deadline`]).
    deadline: Option<Instant>,
}

/// The blocks read ahead: `keep` blocks of `size` bytes (the last one of the object shorter), most
/// recently used first.
struct Blocks {
    size: u64,
    keep: usize,
    held: VecDeque<(u64, Bytes)>,
}

impl BucketObjectReader {
    /// A reader of `object` of `bucket` as `object` describes it, each read one ranged read, waiting on
    /// `runtime`. When the store gave the object an entity tag, every read is conditional on it, so a reader
    /// never mixes two versions: once the object is replaced its reads fail instead of returning new bytes.
    pub fn new(buckets: BucketStore, bucket: String, object: BucketObject, runtime: Handle) -> BucketObjectReader {
        BucketObjectReader { buckets, bucket, object, runtime, blocks: None, deadline: None }
    }

    /// This reader, reading whole aligned blocks of `block_size` bytes and keeping the `keep` most recently
    /// used in memory (at most `block_size * keep` bytes, plus blocks being fetched by concurrent readers).
    pub fn with_read_ahead(mut self, block_size: u64, keep: usize) -> BucketObjectReader {
        self.blocks = Some(Mutex::new(Blocks { size: block_size.max(1), keep: keep.max(1), held: VecDeque::new() }));
        self
    }

    /// This reader, failing every read from `deadline` on with [`io::ErrorKind::TimedOut`] (a bound on an
    /// inspection's time: the readers of `ims-formats` do their work between reads).
    pub fn with_deadline(mut self, deadline: Instant) -> BucketObjectReader {
        self.deadline = Some(deadline);
        self
    }

    /// Bytes `[start, end)` of the object, with one ranged read.
    fn fetch(&self, start: u64, end: u64) -> io::Result<Bytes> {
        self.runtime
            .block_on(self.buckets.read_range_unchecked(&self.bucket, &self.object.key, start..end, self.object.e_tag.as_deref()))
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Block `index` (of `block_size` bytes), from memory or fetched and kept.
    fn block(&self, blocks: &Mutex<Blocks>, index: u64) -> io::Result<Bytes> {
        let block_size = {
            let mut held = blocks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = held.held.iter().position(|(i, _)| *i == index) {
                let entry = held.held.remove(at).expect("position is in range");
                let data = entry.1.clone();
                held.held.push_front(entry);
                return Ok(data);
            }
            held.size
        };
        // Fetched without the lock, so that concurrent readers of other blocks do not wait on this one.
        let start = index * block_size;
        let data = self.fetch(start, self.object.size.min(start + block_size))?;
        let mut held = blocks.lock().unwrap_or_else(|e| e.into_inner());
        if !held.held.iter().any(|(i, _)| *i == index) {
            held.held.push_front((index, data.clone()));
            let keep = held.keep;
            held.held.truncate(keep);
        }
        Ok(data)
    }
}

impl ReadAt for BucketObjectReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the time allowed for reading has passed"));
        }
        if offset >= self.object.size || buf.is_empty() {
            return Ok(0);
        }
        let end = self.object.size.min(offset + buf.len() as u64);
        let Some(blocks) = &self.blocks else {
            let data = self.fetch(offset, end)?;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            return Ok(n);
        };
        let block_size = blocks.lock().unwrap_or_else(|e| e.into_inner()).size;
        let mut at = offset;
        while at < end {
            let index = at / block_size;
            let block = self.block(blocks, index)?;
            let within = (at - index * block_size) as usize;
            if within >= block.len() {
                // The object is shorter than it was when this reader was made.
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the bucket object became shorter"));
            }
            let n = (block.len() - within).min((end - at) as usize);
            let to = (at - offset) as usize;
            buf[to..to + n].copy_from_slice(&block[within..within + n]);
            at += n as u64;
        }
        Ok((end - offset) as usize)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.object.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::Arc;

    async fn put(buckets: &BucketStore, data: Vec<u8>) -> BucketObject {
        let body = futures::stream::iter([Ok(Bytes::from(data))]).boxed();
        buckets.put_unchecked("b", "k", body).await.unwrap();
        buckets.head_unchecked("b", "k").await.unwrap()
    }

    /// A bucket store holding `data` as `b:k`, and how the object looks.
    async fn bucket_with(data: Vec<u8>) -> (BucketStore, BucketObject) {
        let buckets = BucketStore::new(Arc::new(object_store::memory::InMemory::new()), Default::default());
        let object = put(&buckets, data).await;
        (buckets, object)
    }

    /// Reads at every alignment, across block edges and past the end give the object's bytes, with or
    /// without read-ahead, and read-ahead keeps at most `keep` blocks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_match_the_object_with_and_without_read_ahead() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (buckets, object) = bucket_with(data.clone()).await;
        let size = data.len() as u64;
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || {
            let plain = BucketObjectReader::new(buckets.clone(), "b".into(), object.clone(), runtime.clone());
            let ahead = BucketObjectReader::new(buckets, "b".into(), object, runtime).with_read_ahead(1000, 3);
            for reader in [&plain, &ahead] {
                for (offset, len) in [(0, 10), (995, 10), (999, 1), (1000, 2500), (9990, 20), (0, 10_000), (10_000, 5)] {
                    let mut buf = vec![0u8; len];
                    let n = reader.read_at(&mut buf, offset).unwrap();
                    let want = &data[(offset as usize).min(data.len())..(offset as usize + len).min(data.len())];
                    assert_eq!(&buf[..n], want, "read of {len} at {offset}");
                }
                assert_eq!(reader.size().unwrap(), size);
            }
            let held = ahead.blocks.as_ref().unwrap().lock().unwrap().held.len();
            assert!(held <= 3, "{held} blocks kept");
        })
        .await
        .unwrap();
    }

    /// Past its deadline a reader fails with `TimedOut`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_fail_past_the_deadline() {
        let (buckets, object) = bucket_with(vec![1; 100]).await;
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || {
            let reader = BucketObjectReader::new(buckets, "b".into(), object, runtime).with_deadline(Instant::now());
            let err = reader.read_at(&mut [0u8; 10], 0).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        })
        .await
        .unwrap();
    }

    /// Once the object is replaced, even by one of the same size, the reader's reads fail (no mixing of
    /// two versions); a reader made for the new version reads it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_of_a_replaced_object_fail() {
        let (buckets, old) = bucket_with(vec![1; 100]).await;
        let new = put(&buckets, vec![2; 100]).await;
        assert!(!old.is_same_version(&new), "{old:?} {new:?}");
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || {
            let stale = BucketObjectReader::new(buckets.clone(), "b".into(), old, runtime.clone());
            let err = stale.read_at(&mut [0u8; 10], 0).unwrap_err();
            assert!(err.to_string().contains("replaced"), "{err}");
            let fresh = BucketObjectReader::new(buckets, "b".into(), new, runtime);
            let mut buf = [0u8; 10];
            assert_eq!(fresh.read_at(&mut buf, 0).unwrap(), 10);
            assert_eq!(buf, [2; 10]);
        })
        .await
        .unwrap();
    }
}
