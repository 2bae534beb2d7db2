//! Accounting: logical bytes (what images hold) and physical bytes (what the store holds).
//!
//! Physical bytes are the sizes of stored objects after compression and encryption, each chunk counted
//! once. A project's physical bytes are those of the distinct chunks its images reference; a chunk shared
//! by images of several projects counts in full for each of them, so the projects' physical bytes may add
//! up to more than the store's (the store counts it once).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use ims_catalog::Image;
use ims_store::{ChunkId, ChunkStore, StoreError};
use serde::Serialize;

use super::{seconds, store_failure, IN_FLIGHT};
use crate::{CoreError, Result};

/// What one project's images occupy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectUsage {
    pub project_id: String,
    /// Images with data.
    pub images: u64,
    /// Sum of the images' sizes.
    pub logical_bytes: u64,
    /// Bytes of the distinct chunk objects the project's images reference.
    pub physical_bytes: u64,
    /// Distinct chunks the project's images reference.
    pub chunks: u64,
}

/// What the whole store holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// Images with data, and the sum of their sizes.
    pub images: u64,
    pub logical_bytes: u64,
    /// Every chunk object in the store, each counted once, and their bytes.
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// Chunks some live image references, and their bytes.
    pub referenced_chunks: u64,
    pub referenced_bytes: u64,
    /// Chunks no live image references (uploads in progress, or garbage for the next collection).
    pub unreferenced_chunks: u64,
    pub unreferenced_bytes: u64,
    /// Saved manifests, and their bytes.
    pub manifests: u64,
    pub manifest_bytes: u64,
    /// Physical bytes of the store: chunks and manifests.
    pub physical_bytes: u64,
    /// `logical_bytes / referenced_bytes` (1 when nothing is stored).
    pub dedup_ratio: f64,
    /// Per project, ordered by project id.
    pub projects: Vec<ProjectUsage>,
    pub duration_seconds: f64,
    /// Chunk objects the answering node fetched from the store since it started, and their stored
    /// bytes (per node; the other counters are of the whole store).
    pub node_chunk_reads: ChunkReadsSinceStart,
}

/// See [`StoreStats::node_chunk_reads`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChunkReadsSinceStart {
    /// Chunk objects fetched.
    pub chunks: u64,
    /// Their bytes as stored (compressed, encrypted).
    pub bytes: u64,
}

pub(super) async fn stats(store: &ChunkStore, images: Vec<Image>) -> Result<StoreStats> {
    let started = Instant::now();
    let fail = |what: &'static str| move |e: StoreError| store_failure(what, e);
    let chunks = store.list_chunks().await.map_err(fail("listing chunks"))?;
    let manifests = store.list_manifests().await.map_err(fail("listing manifests"))?;
    let sizes: HashMap<ChunkId, u64> = chunks.iter().map(|c| (c.id, c.size)).collect();

    let loaded: Vec<(Image, Option<Vec<ChunkId>>)> = futures::stream::iter(images)
        .map(|image| async move {
            let id = image.manifest_id.clone().unwrap_or_default();
            match store.load_manifest(&id).await {
                Ok(m) => Ok((image, Some(m.chunk_ids().copied().collect()))),
                Err(StoreError::NotFound(_) | StoreError::Corrupt(_)) => Ok((image, None)),
                Err(e) => Err(store_failure("reading a manifest", e)),
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e: CoreError| e)?;

    let mut stats = StoreStats::default();
    let mut referenced: HashSet<ChunkId> = HashSet::new();
    let mut per_project: BTreeMap<String, (ProjectUsage, HashSet<ChunkId>)> = BTreeMap::new();
    for (image, ids) in loaded {
        let size = u64::try_from(image.size.unwrap_or(0)).unwrap_or(0);
        stats.images += 1;
        stats.logical_bytes += size;
        let (usage, project_chunks) = per_project
            .entry(image.owner.clone())
            .or_insert_with(|| (ProjectUsage { project_id: image.owner.clone(), ..Default::default() }, HashSet::new()));
        usage.images += 1;
        usage.logical_bytes += size;
        for id in ids.unwrap_or_default() {
            referenced.insert(id);
            project_chunks.insert(id);
        }
    }
    for (mut usage, project_chunks) in per_project.into_values() {
        usage.chunks = project_chunks.len() as u64;
        usage.physical_bytes = project_chunks.iter().filter_map(|id| sizes.get(id)).sum();
        stats.projects.push(usage);
    }
    stats.chunks = chunks.len() as u64;
    stats.chunk_bytes = chunks.iter().map(|c| c.size).sum();
    for chunk in &chunks {
        if referenced.contains(&chunk.id) {
            stats.referenced_chunks += 1;
            stats.referenced_bytes += chunk.size;
        }
    }
    stats.unreferenced_chunks = stats.chunks - stats.referenced_chunks;
    stats.unreferenced_bytes = stats.chunk_bytes - stats.referenced_bytes;
    stats.manifests = manifests.len() as u64;
    stats.manifest_bytes = manifests.iter().map(|m| m.size).sum();
    stats.physical_bytes = stats.chunk_bytes + stats.manifest_bytes;
    stats.dedup_ratio =
        if stats.referenced_bytes == 0 { 1.0 } else { stats.logical_bytes as f64 / stats.referenced_bytes as f64 };
    let reads = store.chunk_reads();
    stats.node_chunk_reads = ChunkReadsSinceStart { chunks: reads.chunks, bytes: reads.bytes };
    stats.duration_seconds = seconds(started.elapsed());
    Ok(stats)
}
