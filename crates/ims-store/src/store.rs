//! `ChunkStore`: the entry point of the content-addressed chunk store.

use std::sync::Arc;

use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use crate::{ChunkId, Manifest, ManifestWriter, StoreError};

/// A content-addressed chunk store over an `object_store` backend.
///
/// Object layout: chunks at `chunks/<2 hex>/<64 hex>` (see [`crate::chunk`] for their encoding), manifests at
/// `manifests/<uuid>` (JSON, see [`Manifest::to_json`]). Cloning is cheap (an `Arc`), and clones share the backend.
#[derive(Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

struct Inner {
    objects: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkStore({})", self.inner.objects)
    }
}

impl ChunkStore {
    /// Opens a store by URL: `file:///abs/dir` (the directory is created if missing) or `memory://`
    /// (a fresh, empty, process-local store). Any other URL is `StoreError::Invalid`; a directory that
    /// cannot be created is `StoreError::Backend`. Does not need an async runtime.
    pub fn open(url: &str) -> Result<ChunkStore, StoreError> {
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
            other => return Err(StoreError::Invalid(format!("unsupported store URL scheme {other:?} in {url:?}"))),
        };
        Ok(ChunkStore::new(objects))
    }

    /// Wraps an existing object store (any backend).
    pub fn new(objects: Arc<dyn ObjectStore>) -> ChunkStore {
        ChunkStore { inner: Arc::new(Inner { objects }) }
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
        self.inner
            .objects
            .put(&manifest_path(&id)?, PutPayload::from(manifest.to_json()))
            .await?;
        Ok(id)
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
    pub fn read_range(
        &self,
        manifest: Arc<Manifest>,
        start: u64,
        end: u64,
    ) -> BoxStream<'static, Result<bytes::Bytes, StoreError>> {
        crate::reader::read_range(self.clone(), manifest, start, end)
    }
}

/// Object path of a manifest; rejects ids that are not uuids (so no id can name another object).
fn manifest_path(id: &str) -> Result<Path, StoreError> {
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| StoreError::Invalid(format!("bad manifest id {id:?}")))?;
    Ok(Path::from(format!("manifests/{}", uuid.hyphenated())))
}
