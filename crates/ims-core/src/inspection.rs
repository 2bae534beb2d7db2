//! Running the format inspector over stored image data before an image is trusted.
//!
//! The inspector (`ims-formats`) reads with positional, blocking reads; [`ManifestReader`] gives it
//! those over a manifest in the chunk store, through the store's shared cache of decoded chunks
//! ([`ims_store::RandomAccess`]), fetching (and verifying) only the chunks it touches.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ims_formats::{Format, Inspection, Limits, ReadAt};
use ims_store::{ChunkStore, Manifest, RandomAccess};
use tokio::runtime::Handle;

use crate::{CoreError, Result};

/// A blocking [`ReadAt`] over a stored file. Must be used from a blocking thread, never from an
/// async task (it waits on the runtime).
pub struct ManifestReader {
    access: RandomAccess,
    runtime: Handle,
    /// Copies in extra stores read when `access` cannot give a chunk (see [`crate::replica_reads`]).
    replicas: Vec<(crate::replica_reads::Replica, RandomAccess)>,
    image_id: uuid::Uuid,
    /// Reads fail with `TimedOut` from this moment on (see [`ManifestReader::with_deadline`]).
    deadline: Option<Instant>,
}

impl ManifestReader {
    /// A reader of the file `manifest` describes, in `store`'s encryption domain, running its reads
    /// on `runtime`.
    pub fn new(store: ChunkStore, manifest: Arc<Manifest>, runtime: Handle) -> ManifestReader {
        let access = store.random_access(manifest);
        ManifestReader { access, runtime, replicas: Vec::new(), image_id: uuid::Uuid::nil(), deadline: None }
    }

    /// This reader, failing every read from `deadline` on with [`io::ErrorKind::TimedOut`]: the readers of
    /// `ims-formats` do their work between reads, so a parse that would run past the deadline stops at
    /// its next read.
    pub fn with_deadline(mut self, deadline: Instant) -> ManifestReader {
        self.deadline = Some(deadline);
        self
    }

    /// This reader, reading a chunk its store cannot give (missing or corrupt) from the first of
    /// `replicas` (copies of image `image_id` in extra stores) that can.
    pub(crate) fn with_replicas(
        mut self,
        image_id: uuid::Uuid,
        replicas: Vec<crate::replica_reads::Replica>,
    ) -> ManifestReader {
        let manifest = self.access.manifest().clone();
        self.image_id = image_id;
        self.replicas = replicas
            .into_iter()
            .map(|r| {
                let access = r.chunks.random_access(manifest.clone());
                (r, access)
            })
            .collect();
        self
    }
}

impl ReadAt for ManifestReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the time allowed for inspection is over"));
        }
        self.runtime
            .block_on(async {
                let first = match self.access.read_at(buf, offset).await {
                    Err(e @ ims_store::StoreError::Corrupt(_)) => e,
                    other => return other,
                };
                for (replica, access) in &self.replicas {
                    if let Ok(n) = access.read_at(buf, offset).await {
                        crate::replica_reads::note_fallback(self.image_id, replica, offset, &first);
                        return Ok(n);
                    }
                }
                Err(first)
            })
            .map_err(|err| io::Error::other(err.to_string()))
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.access.size())
    }

    /// The stored (non-zero) extents: zero extents of the manifest hold nothing.
    fn data_ranges(&self, offset: u64, len: u64) -> io::Result<Option<Vec<(u64, u64)>>> {
        let manifest = self.access.manifest();
        let end = offset.saturating_add(len).min(manifest.size);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for e in manifest.extents_overlapping(offset, end).iter().filter(|e| e.chunk.is_some()) {
            let from = offset.max(e.offset);
            let to = end.min(e.end());
            match ranges.last_mut() {
                Some((at, n)) if *at + *n == from => *n += to - from,
                _ => ranges.push((from, to - from)),
            }
        }
        Ok(Some(ranges))
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
/// An inspection taking longer than `time_limit` is refused (`Invalid`): its reads fail from then on, and
/// the caller stops waiting for it shortly after in any case.
pub async fn inspect_stored(
    store: &ChunkStore,
    manifest: Arc<Manifest>,
    format: Format,
    limits: Limits,
    time_limit: Duration,
) -> Result<Inspection> {
    let reader = ManifestReader::new(store.clone(), manifest, Handle::current()).with_deadline(Instant::now() + time_limit);
    inspect_reader(Arc::new(reader), format, limits, time_limit).await
}

/// Inspects the file `reader` gives, declared as `format`, like [`inspect_stored`]. `reader` must fail its
/// reads with [`io::ErrorKind::TimedOut`] once `time_limit` has passed (a deadline set on it); the caller
/// stops waiting shortly after in any case.
pub async fn inspect_reader(
    reader: Arc<dyn ims_formats::ReadAt>,
    format: Format,
    limits: Limits,
    time_limit: Duration,
) -> Result<Inspection> {
    let too_slow = || {
        CoreError::Invalid(format!(
            "Image is not acceptable: inspecting it took longer than the {} s allowed",
            time_limit.as_secs_f64()
        ))
    };
    let inspection = tokio::task::spawn_blocking(move || ims_formats::inspect(reader, Some(format), &limits));
    // The reads stop at the deadline; a parse spinning without reading is left behind a little later.
    let grace = Duration::from_secs(5);
    let Ok(ran) = tokio::time::timeout(time_limit + grace, inspection).await else {
        return Err(too_slow());
    };
    ran.map_err(|e| CoreError::Unavailable(format!("inspection failed to run: {e}")))?
        .map_err(|e| match e {
            ims_formats::FormatError::Io(io) if io.kind() == io::ErrorKind::TimedOut => too_slow(),
            ims_formats::FormatError::Io(io) if io.kind() != io::ErrorKind::UnexpectedEof => {
                CoreError::Corrupt(format!("image data could not be read for inspection: {io}"))
            }
            other => CoreError::Invalid(format!("Image is not acceptable: {other}")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu(program: &str, args: &[&str]) {
        let out = Command::new(program).args(args).output().expect("qemu tools are installed");
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A qcow2 image stored in the chunk store reads, through the shared cache, as the same guest
    /// disk that `qemu-img convert -O raw` produces from the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stored_qcow2_image_reads_as_qemu_img_converts_it() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.qcow2");
        let raw = dir.path().join("disk.raw");
        let (image_arg, raw_arg) = (image.to_str().unwrap(), raw.to_str().unwrap());
        qemu("qemu-img", &["create", "-q", "-f", "qcow2", image_arg, "64M"]);
        qemu(
            "qemu-io",
            &["-c", "write -P 0x11 0 3M", "-c", "write -P 0x22 20M 5M", "-c", "write -z 21M 1M", "-c", "write -P 0x33 63M 1M", image_arg],
        );
        qemu("qemu-img", &["convert", "-O", "raw", image_arg, raw_arg]);

        let store = ChunkStore::open("memory://").unwrap();
        assert!(store.set_chunk_cache_bytes(4 << 20));
        let mut writer = store.writer();
        writer.write(bytes::Bytes::from(std::fs::read(&image).unwrap())).await.unwrap();
        let manifest = Arc::new(writer.finish().await.unwrap().manifest);

        let reader = Arc::new(ManifestReader::new(store.clone(), manifest, Handle::current()));
        let expected = std::fs::read(&raw).unwrap();
        let mismatch = tokio::task::spawn_blocking(move || {
            let disk = ims_formats::open(reader, Format::Qcow2, &Limits::default()).unwrap();
            assert_eq!(disk.virtual_size(), expected.len() as u64);
            // Whole-disk pieces, then odd pieces across cluster and chunk boundaries.
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < expected.len() {
                disk.read_at(&mut buf, at as u64).unwrap();
                if buf[..] != expected[at..at + buf.len()] {
                    return Some(at);
                }
                at += buf.len();
            }
            for (at, len) in [(65_535usize, 3usize), ((3 << 20) - 7, 100_000), ((20 << 20) + 4093, 2 << 20), (63 << 20, 1 << 20)] {
                let mut piece = vec![0u8; len];
                disk.read_at(&mut piece, at as u64).unwrap();
                if piece[..] != expected[at..at + len] {
                    return Some(at);
                }
            }
            None
        })
        .await
        .unwrap();
        assert_eq!(mismatch, None, "guest bytes differ from qemu-img's at this offset");
        assert!(store.chunk_cache().stats().bytes <= 4 << 20);
    }

    /// An inspection that runs out of time is refused with a clear error, not left running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_inspection_over_its_time_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.qcow2");
        qemu("qemu-img", &["create", "-q", "-f", "qcow2", image.to_str().unwrap(), "64M"]);
        let store = ChunkStore::open("memory://").unwrap();
        let mut writer = store.writer();
        writer.write(bytes::Bytes::from(std::fs::read(&image).unwrap())).await.unwrap();
        let manifest = Arc::new(writer.finish().await.unwrap().manifest);

        let e = inspect_stored(&store, manifest.clone(), Format::Qcow2, Limits::default(), Duration::ZERO).await.unwrap_err();
        assert!(matches!(&e, CoreError::Invalid(m) if m.contains("took longer than the 0 s allowed")), "{e}");
        let inspected = inspect_stored(&store, manifest, Format::Qcow2, Limits::default(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(inspected.virtual_size, 64 << 20);
    }
}
