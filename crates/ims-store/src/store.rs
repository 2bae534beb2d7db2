//! `ChunkStore`: the entry point of the content-addressed chunk store.

use std::sync::Arc;

use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::{ChunkId, Manifest, ManifestWriter, StoreError, StoreOptions};

/// A content-addressed chunk store over an `object_store` backend.
///
/// Object layout: chunks at `chunks/<2 hex>/<64 hex>` (see [`crate::chunk`] for their encoding), manifests at
/// `manifests/<uuid>` (JSON, see [`Manifest::to_json`]), pending manifests of writes in progress at
/// `manifests/pending/<uuid>/<seq>` (see `journal`), and the garbage collector's clock object at `gc/clock`.
/// Cloning is cheap (an `Arc`), and clones share the backend.
#[derive(Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
    /// The encryption domain this view writes and reads in (`None`: plaintext chunks).
    domain: Option<crate::EncryptionDomain>,
}

struct Inner {
    objects: Arc<dyn ObjectStore>,
    /// See [`ChunkStore::gc_grace`].
    gc_grace_millis: std::sync::atomic::AtomicU64,
    /// See [`ChunkStore::chunk_cache`].
    chunk_cache: std::sync::OnceLock<Arc<crate::ChunkCache>>,
    /// See [`ChunkStore::chunk_reads`].
    chunk_reads: ChunkReadCounters,
}

/// Chunk objects this process fetched from the backend, and their stored bytes, since the store was
/// opened by the store's readers (downloads, random access and its read-ahead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkReads {
    /// Chunk objects read, whole or some of their frames: one per load, whatever number of requests
    /// it took (see [`crate::frames`]).
    pub chunks: u64,
    /// The stored (compressed, encrypted) bytes fetched, as they came from the backend.
    pub bytes: u64,
}

#[derive(Default)]
struct ChunkReadCounters {
    chunks: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

/// Grace period of garbage collection assumed until [`ChunkStore::set_gc_grace`] says otherwise.
pub const DEFAULT_GC_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkStore({})", self.inner.objects)
    }
}

impl ChunkStore {
    /// Opens a store by URL: `file:///abs/dir` (the directory is created if missing), `memory://`
    /// (a fresh, empty, process-local store) or `s3://BUCKET?endpoint=...&region=...` (credentials from the
    /// environment, see [`StoreOptions`]). Any other URL is `StoreError::Invalid`; a directory that
    /// cannot be created is `StoreError::Backend`. Does not need an async runtime and makes no request.
    pub fn open(url: &str) -> Result<ChunkStore, StoreError> {
        ChunkStore::open_with(url, &StoreOptions::default())
    }

    /// Like [`ChunkStore::open`], with `options` taking precedence over the environment. An `s3://` URL
    /// without credentials from either, or with a half-given pair, is `StoreError::Invalid`.
    pub fn open_with(url: &str, options: &StoreOptions) -> Result<ChunkStore, StoreError> {
        let parsed = url::Url::parse(url).map_err(|e| StoreError::Invalid(format!("bad store URL {url:?}: {e}")))?;
        let objects: Arc<dyn ObjectStore> = match parsed.scheme() {
            "memory" => Arc::new(InMemory::new()),
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| StoreError::Invalid(format!("store URL {url:?} is not an absolute local path")))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StoreError::Backend(format!("cannot create store directory {}: {e}", dir.display())))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
            }
            "s3" => crate::backend::open_s3(&parsed, options)?,
            other => return Err(StoreError::Invalid(format!("unsupported store URL scheme {other:?} in {url:?}"))),
        };
        Ok(ChunkStore::new(objects))
    }

    /// Wraps an existing object store (any backend).
    pub fn new(objects: Arc<dyn ObjectStore>) -> ChunkStore {
        let gc_grace_millis = std::sync::atomic::AtomicU64::new(DEFAULT_GC_GRACE.as_millis() as u64);
        let chunk_cache = std::sync::OnceLock::new();
        let chunk_reads = ChunkReadCounters::default();
        ChunkStore { inner: Arc::new(Inner { objects, gc_grace_millis, chunk_cache, chunk_reads }), domain: None }
    }

    /// Chunk objects fetched from the backend through any view of this store since it was opened, and
    /// their stored bytes. Counts fetches that failed to decode too; never decreases.
    pub fn chunk_reads(&self) -> ChunkReads {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = &self.inner.chunk_reads;
        ChunkReads { chunks: counters.chunks.load(Relaxed), bytes: counters.bytes.load(Relaxed) }
    }

    /// Counts one chunk object read, of which `bytes` stored bytes were fetched from the backend.
    pub(crate) fn count_chunk_read(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.inner.chunk_reads.chunks.fetch_add(1, Relaxed);
        self.inner.chunk_reads.bytes.fetch_add(bytes, Relaxed);
    }

    /// Gives this store (every view of it) a chunk cache of `budget_bytes` instead of one of
    /// [`crate::DEFAULT_CHUNK_CACHE_BYTES`]. Only before the cache is first used: afterwards it returns
    /// false and changes nothing.
    pub fn set_chunk_cache_bytes(&self, budget_bytes: u64) -> bool {
        self.inner.chunk_cache.set(Arc::new(crate::ChunkCache::new(budget_bytes))).is_ok()
    }

    /// The cache of decoded chunks shared by every [`ChunkStore::random_access`] reader of this store.
    pub fn chunk_cache(&self) -> &Arc<crate::ChunkCache> {
        self.inner
            .chunk_cache
            .get_or_init(|| Arc::new(crate::ChunkCache::new(crate::DEFAULT_CHUNK_CACHE_BYTES)))
    }

    /// A view of the same store whose writers encrypt every chunk in `domain` (ids keyed by the domain,
    /// so dedup happens within the domain only) and whose reads decrypt with it. Manifests are shared.
    pub fn in_domain(&self, domain: crate::EncryptionDomain) -> ChunkStore {
        ChunkStore { inner: self.inner.clone(), domain: Some(domain) }
    }

    /// A view of the same store that writes and reads plaintext chunks.
    pub fn without_domain(&self) -> ChunkStore {
        ChunkStore { inner: self.inner.clone(), domain: None }
    }

    /// The encryption domain of this view, if any.
    pub fn domain(&self) -> Option<&crate::EncryptionDomain> {
        self.domain.as_ref()
    }

    /// The underlying object store (for listing, garbage collection and tests).
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.objects
    }

    /// Starts writing a new file into the store. Nothing happens (no task is spawned) until the first
    /// `write` or `finish`, so this may be called outside an async runtime.
    pub fn writer(&self) -> ManifestWriter {
        ManifestWriter::new(self.clone())
    }

    /// Whether a chunk object with this id exists. Backend failures are errors, never `false`.
    pub async fn has_chunk(&self, id: &ChunkId) -> Result<bool, StoreError> {
        match self.inner.objects.head(&id.object_path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Persists a manifest as a new object and returns its id (a fresh uuid string).
    /// Atomic: the manifest object is either complete or absent. `Invalid` if the manifest breaks its
    /// invariant (see [`Manifest::validate`]). Does not check that the chunks exist.
    pub async fn save_manifest(&self, manifest: &Manifest) -> Result<String, StoreError> {
        manifest.validate().map_err(|e| StoreError::Invalid(format!("manifest: {e}")))?;
        let id = uuid::Uuid::new_v4().to_string();
        // Manifests of large images run to megabytes: those go up in parts.
        crate::backend::put_object(self.inner.objects.as_ref(), &manifest_path(&id)?, manifest.to_json().into()).await?;
        Ok(id)
    }

    /// Persists a manifest under a given id: that of the write that produced it
    /// ([`crate::WriteSummary::pending_id`]), so that its pending manifest keeps protecting it until the
    /// catalog references it. Replaces a manifest saved under that id before; otherwise as
    /// [`ChunkStore::save_manifest`]. `Invalid` if `id` is not a uuid.
    pub async fn save_manifest_as(&self, id: &str, manifest: &Manifest) -> Result<(), StoreError> {
        manifest.validate().map_err(|e| StoreError::Invalid(format!("manifest: {e}")))?;
        crate::backend::put_object(self.inner.objects.as_ref(), &manifest_path(id)?, manifest.to_json().into()).await?;
        Ok(())
    }

    pub(crate) fn gc_grace_millis(&self) -> &std::sync::atomic::AtomicU64 {
        &self.inner.gc_grace_millis
    }

    /// Loads a manifest by id. `NotFound` if there is none with that id, `Corrupt` if the stored object does
    /// not parse or breaks the manifest invariant, `Invalid` if `id` is not a uuid.
    pub async fn load_manifest(&self, id: &str) -> Result<Manifest, StoreError> {
        let path = manifest_path(id)?;
        let data = match self.inner.objects.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotFound(format!("manifest {id}")))
            }
            Err(e) => return Err(e.into()),
        };
        Manifest::from_json(&data).map_err(|e| match e {
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("manifest {id}: {m}")),
            other => other,
        })
    }

    /// Deletes a manifest object. Idempotent: deleting a missing manifest succeeds. The chunks it referenced
    /// stay until garbage collection. `Invalid` if `id` is not a uuid.
    pub async fn delete_manifest(&self, id: &str) -> Result<(), StoreError> {
        match self.inner.objects.delete(&manifest_path(id)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams bytes `[start, end)` of the file described by `manifest`.
    ///
    /// Guarantees: the stream yields exactly `end - start` bytes, in order, then ends; or it yields one error
    /// and ends. Only chunks overlapping the range are fetched, several at a time (bounded, so memory stays a few
    /// tens of MiB); each is decoded off the async threads and verified against its id: a mismatch, an undecodable
    /// or missing chunk is `StoreError::Corrupt` naming the chunk and its file offset. Zero extents cost nothing.
    /// `end > manifest.size` or `start > end` yields `StoreError::Invalid`. Nothing is fetched until polled.
    /// The manifest is trusted to satisfy its invariant (manifests from `load_manifest` and `ManifestWriter`
    /// do; check others with [`Manifest::validate`]): reads cost O(log extents), not O(extents).
    /// Never consults the chunk cache: every chunk comes from the backend ([`crate::CacheUse::Bypass`]).
    pub fn read_range(
        &self,
        manifest: Arc<Manifest>,
        start: u64,
        end: u64,
    ) -> BoxStream<'static, Result<bytes::Bytes, StoreError>> {
        crate::reader::read_range(self.clone(), manifest, start, end, crate::CacheUse::Bypass)
    }

    /// [`ChunkStore::read_range`] through this store's chunk cache, used as `caching` says (choose with
    /// [`crate::ChunkCache::use_for_range`]; see [`crate::ChunkCache`] for the policy). Same
    /// guarantees: exactly the bytes of the range or one error; only chunks overlapping the range are
    /// fetched, and only those the cache does not hold; every fetched chunk is verified (cached ones were
    /// verified when fetched). Cache entries are of this view's encryption domain only.
    pub fn read_range_cached(
        &self,
        manifest: Arc<Manifest>,
        start: u64,
        end: u64,
        caching: crate::CacheUse,
    ) -> BoxStream<'static, Result<bytes::Bytes, StoreError>> {
        crate::reader::read_range(self.clone(), manifest, start, end, caching)
    }
}

/// Object path of a manifest; rejects ids that are not uuids (so no id can name another object).
fn manifest_path(id: &str) -> Result<Path, StoreError> {
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| StoreError::Invalid(format!("bad manifest id {id:?}")))?;
    Ok(Path::from(format!("manifests/{}", uuid.hyphenated())))
}
