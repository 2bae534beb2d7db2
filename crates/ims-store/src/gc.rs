//! Primitives of garbage collection: listing what the store holds, with sizes and ages, and deleting
//! what is unreferenced. The mark-and-sweep itself needs the catalog and lives in `ims-core`
//! (`store_admin::gc`); this module states what each primitive guarantees so that the sweep can be argued
//! safe.
//!
//! # Why a sweep can run while other nodes write
//!
//! Ages are measured on the store's own clock ([`ChunkStore::store_time`]), so node clocks do not matter
//! for the sweep. With a grace period `G`:
//!
//! 1. The sweep lists chunks first (time `t_c`), then pending manifests, then manifests, then reads the
//!    catalog; it deletes only chunks that none of those name **and** whose modification time, re-read
//!    right before the delete ([`ChunkStore::delete_chunk_if_older`]), is older than `G`; and it stops
//!    deleting at `t_c + G/4`.
//! 2. A writer records each chunk it stores or reuses in its pending manifest, durably at most `G/16` after
//!    it stores the chunk or looks at it (records are buffered for up to two lags of `min(0.5 s, G/32)`,
//!    [`crate::journal`]), keeps that pending manifest until the catalog references the saved manifest,
//!    and stores again any chunk it reuses whose age is at least `G/2`.
//!
//! Take a chunk a writer uses at time `t_u` and whose record is durable at `t_j ≤ t_u + G/16`. If the sweep
//! read the pending manifests (at `t_r`) after `t_j`, it found the record, or the pending manifest had been
//! released, which happens only after the catalog references the manifest, which the sweep reads later
//! still. Otherwise `t_c < t_r ≤ t_j ≤ t_u + G/16`. A chunk stored (or stored again) at `t_u` is younger
//! than `G` until `t_u + G > t_c + 15G/16`, past the sweep's deadline of `t_c + G/4`. A chunk reused as is
//! was younger than `G/2` at `t_u`, so it stays younger than `G` until after `t_u + G/2 > t_c + 7G/16`.
//! Either way the sweep cannot delete it. The `3G/16` between the deadline and the bounds absorbs clock
//! skew between the writers and the store (they compare the store's modification times with their own
//! clocks) and request latency. As a last line of defence the writer checks, when it finishes, that every
//! chunk it reused as is still exists.
//!
//! A grace of zero gives up this argument (nothing would be young enough to protect): it is for stores
//! that nobody writes to while the sweep runs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, PutPayload};

use crate::journal::{delete_pending, parse_segment, PENDING_PREFIX};
use crate::{ChunkId, ChunkStore, Extent, Manifest, StoreError};

/// A stored chunk object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredChunk {
    pub id: ChunkId,
    /// Bytes of the object (after compression and encryption).
    pub size: u64,
    /// Last write of the object, on the store's clock.
    pub modified: SystemTime,
}

/// A stored manifest object (`manifests/<uuid>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub id: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// A pending manifest: the journal of a write in progress (or of one that died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingManifest {
    /// The write's id (also the id its manifest is saved under).
    pub id: String,
    /// Number of segments.
    pub segments: usize,
    /// Total bytes of the segments.
    pub size: u64,
    /// Last write of any segment: the last time the write recorded a chunk.
    pub modified: SystemTime,
}

/// Object holding the store's clock reading (see [`ChunkStore::store_time`]).
const CLOCK_OBJECT: &str = "gc/clock";

impl ChunkStore {
    /// The store's current time: writes a small object and reads back its modification time. Ages
    /// compared with this are free of skew between this node's clock and the store's.
    pub async fn store_time(&self) -> Result<SystemTime, StoreError> {
        let path = Path::from(CLOCK_OBJECT);
        let stamp = format!("{:?}", SystemTime::now());
        self.objects().put(&path, PutPayload::from(stamp.into_bytes())).await?;
        Ok(self.objects().head(&path).await?.last_modified.into())
    }

    /// Every chunk object, in no particular order. Objects under `chunks/` whose names are not chunk ids
    /// are skipped. Not a snapshot: objects written or deleted during the listing may or may not appear.
    pub async fn list_chunks(&self) -> Result<Vec<StoredChunk>, StoreError> {
        let objects: Vec<ObjectMeta> = self.objects().list(Some(&Path::from("chunks"))).try_collect().await?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let id = ChunkId::from_hex(meta.location.filename()?).ok()?;
                (meta.location == id.object_path()).then_some(StoredChunk {
                    id,
                    size: meta.size,
                    modified: meta.last_modified.into(),
                })
            })
            .collect())
    }

    /// Every saved manifest object (pending manifests excluded), in no particular order.
    pub async fn list_manifests(&self) -> Result<Vec<StoredManifest>, StoreError> {
        let listing = self.objects().list_with_delimiter(Some(&Path::from("manifests"))).await?;
        Ok(listing
            .objects
            .into_iter()
            .filter_map(|meta| {
                let id = uuid::Uuid::parse_str(meta.location.filename()?).ok()?.hyphenated().to_string();
                Some(StoredManifest { id, size: meta.size, modified: meta.last_modified.into() })
            })
            .collect())
    }

    /// Every pending manifest, with its newest segment's time.
    pub async fn list_pending(&self) -> Result<Vec<PendingManifest>, StoreError> {
        let objects: Vec<ObjectMeta> = self.objects().list(Some(&Path::from(PENDING_PREFIX))).try_collect().await?;
        let mut by_id: BTreeMap<String, PendingManifest> = BTreeMap::new();
        for meta in objects {
            let Some(id) = meta.location.parts().nth(2).map(|p| p.as_ref().to_string()) else { continue };
            let modified: SystemTime = meta.last_modified.into();
            let entry = by_id.entry(id.clone()).or_insert(PendingManifest { id, segments: 0, size: 0, modified });
            entry.segments += 1;
            entry.size += meta.size;
            entry.modified = entry.modified.max(modified);
        }
        Ok(by_id.into_values().collect())
    }

    /// The chunks a pending manifest names. Segments deleted meanwhile (the write was released) are skipped;
    /// a segment that does not parse is `Corrupt`.
    pub async fn pending_chunks(&self, id: &str) -> Result<Vec<ChunkId>, StoreError> {
        let prefix = Path::from(format!("{PENDING_PREFIX}/{id}"));
        let segments: Vec<ObjectMeta> = self.objects().list(Some(&prefix)).try_collect().await?;
        let mut chunks = Vec::new();
        for segment in segments {
            let data = match self.objects().get(&segment.location).await {
                Ok(result) => result.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            chunks.extend(parse_segment(&data).map_err(|e| StoreError::Corrupt(format!("{}: {e}", segment.location)))?);
        }
        Ok(chunks)
    }

    /// Releases (deletes) the pending manifest of a finished write: call it once the catalog references
    /// the manifest saved under the same id, or when the write's result is thrown away. Idempotent; a
    /// release that fails only delays reclaiming (the pending manifest expires).
    pub async fn release_pending(&self, id: &str) -> Result<(), StoreError> {
        uuid::Uuid::parse_str(id).map_err(|_| StoreError::Invalid(format!("bad pending manifest id {id:?}")))?;
        delete_pending(self, id).await
    }

    /// Deletes the chunk only if its object is still older than `cutoff` (re-read right before the delete,
    /// so a chunk a writer stored again meanwhile survives). Returns the bytes freed, `None` if the chunk
    /// was young or already gone.
    pub async fn delete_chunk_if_older(&self, id: &ChunkId, cutoff: SystemTime) -> Result<Option<u64>, StoreError> {
        let path = id.object_path();
        let meta = match self.objects().head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if SystemTime::from(meta.last_modified) >= cutoff {
            return Ok(None);
        }
        match self.objects().delete(&path).await {
            Ok(()) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a saved manifest only if it is still older than `cutoff`. Returns whether it was deleted.
    pub async fn delete_manifest_if_older(&self, id: &str, cutoff: SystemTime) -> Result<bool, StoreError> {
        let path = Path::from(format!("manifests/{}", uuid::Uuid::parse_str(id).map_err(|_| {
            StoreError::Invalid(format!("bad manifest id {id:?}"))
        })?.hyphenated()));
        match self.objects().head(&path).await {
            Ok(meta) if SystemTime::from(meta.last_modified) < cutoff => {}
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.delete_manifest(id).await?;
        Ok(true)
    }

    /// Reads, decodes and verifies one chunk of `length` plaintext bytes. `Ok(false)` if the object is
    /// missing; `Corrupt` if it does not decode or its content does not match its id; `Backend` if the
    /// store failed.
    pub async fn verify_chunk(&self, id: &ChunkId, length: u32) -> Result<bool, StoreError> {
        if !self.has_chunk(id).await? {
            return Ok(false);
        }
        let single = Manifest { size: u64::from(length), extents: vec![Extent { offset: 0, length, chunk: Some(*id) }] };
        let mut stream = self.read_range(std::sync::Arc::new(single), 0, u64::from(length));
        while let Some(piece) = stream.next().await {
            // The one-extent manifest puts the chunk at offset 0: that offset means nothing to the caller.
            piece.map_err(|e| match e {
                StoreError::Corrupt(m) => StoreError::Corrupt(m.replacen(" at file offset 0", "", 1)),
                other => other,
            })?;
        }
        Ok(true)
    }

    /// The grace period this store's writers assume (see the module doc): reused chunks at least half this
    /// old are stored again.
    pub fn gc_grace(&self) -> Duration {
        Duration::from_millis(self.gc_grace_millis().load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Sets the grace period (every clone of this store sees it). Every node writing to a store must use
    /// the grace period its garbage collections use, or longer.
    pub fn set_gc_grace(&self, grace: Duration) {
        let millis = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.gc_grace_millis().store(millis, std::sync::atomic::Ordering::Relaxed);
    }
}
