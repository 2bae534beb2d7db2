//! Running the format inspector over stored image data before an image is trusted.
//!
//! The inspector (`ims-formats`) reads with positional, blocking reads; [`ManifestReader`] gives it
//! those over a manifest in the chunk store, fetching (and verifying) only the chunks it touches.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::TryStreamExt;
use ims_formats::{Format, Inspection, Limits, ReadAt};
use ims_store::{ChunkStore, Manifest};
use tokio::runtime::Handle;

use crate::{CoreError, Result};

/// How many decoded chunks a reader keeps (format metadata clusters together near the start).
const CACHED_CHUNKS: usize = 8;

/// A blocking [`ReadAt`] over a stored file. Must be used from a blocking thread, never from an
/// async task (it waits on the runtime).
pub struct ManifestReader {
    store: ChunkStore,
    manifest: Arc<Manifest>,
    runtime: Handle,
    /// Recently read extents: (extent index, its bytes).
    cache: Mutex<VecDeque<(usize, Bytes)>>,
}

impl ManifestReader {
    pub fn new(store: ChunkStore, manifest: Arc<Manifest>, runtime: Handle) -> ManifestReader {
        ManifestReader { store, manifest, runtime, cache: Mutex::new(VecDeque::new()) }
    }

    /// The bytes of extent `index`, from the cache or the store.
    fn extent(&self, index: usize) -> io::Result<Bytes> {
        if let Some((_, data)) = self.lock().iter().find(|(i, _)| *i == index) {
            return Ok(data.clone());
        }
        let e = &self.manifest.extents[index];
        let stream = self.store.read_range(self.manifest.clone(), e.offset, e.end());
        let parts: Vec<Bytes> = self
            .runtime
            .block_on(stream.try_collect())
            .map_err(|err| io::Error::other(err.to_string()))?;
        let data = if parts.len() == 1 { parts.into_iter().next().unwrap_or_default() } else { Bytes::from(parts.concat()) };
        let mut cache = self.lock();
        if cache.len() == CACHED_CHUNKS {
            cache.pop_front();
        }
        cache.push_back((index, data.clone()));
        Ok(data)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(usize, Bytes)>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ReadAt for ManifestReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let size = self.manifest.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let end = size.min(offset.saturating_add(buf.len() as u64));
        let mut done = 0usize;
        for index in self.manifest.extent_indices_overlapping(offset, end) {
            let e = &self.manifest.extents[index];
            let from = offset.max(e.offset);
            let to = end.min(e.end());
            let len = (to - from) as usize;
            let dst = &mut buf[(from - offset) as usize..][..len];
            if e.chunk.is_none() {
                dst.fill(0);
            } else {
                let data = self.extent(index)?;
                let start = (from - e.offset) as usize;
                dst.copy_from_slice(&data[start..start + len]);
            }
            done += len;
        }
        Ok(done)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.manifest.size)
    }
}

/// The inspector's format for a Glance `disk_format`, or `None` for formats it does not parse
/// (`ami`, `ari`, `aki`, `ploop`), which are stored as given.
pub fn inspected_format(disk_format: &str) -> Option<Format> {
    match disk_format {
        "ami" | "ari" | "aki" | "ploop" => None,
        other => other.parse().ok(),
    }
}

/// Inspects a stored file declared as `format`: refuses unsafe content or content that does not
/// match the declaration (`Invalid`, with the inspector's reason), else returns what it found.
pub async fn inspect_stored(store: &ChunkStore, manifest: Arc<Manifest>, format: Format, limits: Limits) -> Result<Inspection> {
    let reader = ManifestReader::new(store.clone(), manifest, Handle::current());
    tokio::task::spawn_blocking(move || ims_formats::inspect(Arc::new(reader), Some(format), &limits))
        .await
        .map_err(|e| CoreError::Unavailable(format!("inspection failed to run: {e}")))?
        .map_err(|e| match e {
            ims_formats::FormatError::Io(io) if io.kind() != io::ErrorKind::UnexpectedEof => {
                CoreError::Corrupt(format!("image data could not be read for inspection: {io}"))
            }
            other => CoreError::Invalid(format!("Image is not acceptable: {other}")),
        })
}
