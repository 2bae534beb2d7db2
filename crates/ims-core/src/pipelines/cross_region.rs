//! CopyImageCrossRegion: a copy of an active image in another region (a configured IMS deployment with
//! its own catalog and store, see [`crate::regions`]). The job walks the image's manifest, asks the
//! target in batches which chunks it lacks, sends only those (several at a time, as stored: compressed,
//! verified by the target), then registers the image there from the manifest, with the source's metadata
//! and hashes, in the target project named by the request. Encrypted images are refused: their data keys
//! do not leave the region.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use ims_catalog::{ImageStatus, Job};
use ims_store::{ChunkId, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{codes, job_error, job_image, PipelineService};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::regions::{ImageRegistration, PeerError, RegionPeer, MAX_CHUNKS_PER_QUERY};
use crate::{CoreError, Policy, RequestContext, Result};

/// The job type of copies to other regions.
pub const CROSS_REGION_COPY_JOB: &str = "copyImageCrossRegion";

/// Chunks sent to the target at once.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Registrations retried after the target reported chunks missing (swept or lost meanwhile).
const REGISTER_ATTEMPTS: usize = 3;

/// What a cross-region copy request asks.
#[derive(Debug, Clone, Default)]
pub struct CrossRegionCopy {
    /// The configured region to copy to.
    pub region: String,
    /// Name of the copy.
    pub name: String,
    pub description: Option<String>,
    /// The project in the target region that owns the copy; the caller's project's name when unset.
    pub project_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CrossRegionParams {
    source_id: String,
    region: String,
    project_name: String,
    name: String,
    description: Option<String>,
    /// Id of the copy in the target region, chosen here so that a repeated registration finds it.
    target_image_id: String,
}

impl PipelineService {
    /// CopyImageCrossRegion: checks the request and enqueues the job that copies the active image
    /// `source_id` to `request.region`. `NotFound` for an image the caller cannot see; `Forbidden` unless
    /// the caller may change it; `Conflict` unless it is active with data; `Invalid` for an unknown
    /// region, a bad name, or an encrypted image. Nothing changes in this region but the job.
    pub async fn copy_cross_region(&self, ctx: &RequestContext, source_id: Uuid, request: CrossRegionCopy) -> Result<Job> {
        let caller = Policy::require_caller(ctx)?;
        let source = self.images.get(ctx, source_id).await?;
        // Marketplace subscribers may copy and export the image they subscribed to (see `market`).
        if !self.images.market_subscribed(ctx, &source).await? {
            Policy::check_modify(ctx, &source)?;
        }
        Policy::check_create(ctx)?;
        if self.regions.get(&request.region).is_none() {
            return Err(CoreError::Invalid(format!("unknown region {:?}; configured: {:?}", request.region, self.regions.names())));
        }
        let name = request.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(CoreError::Invalid("\"name\" must have 1 to 128 characters".into()));
        }
        if source.status != ImageStatus::Active || source.manifest_id.is_none() {
            return Err(CoreError::Conflict(format!("image {source_id} is {}: only active images can be copied", source.status)));
        }
        // The copy sends the chunk objects of the default store.
        self.images.require_default_copy(&source)?;
        if self.images.catalog.encryption.image_encryption(source.id).await?.is_some() {
            return Err(CoreError::Invalid(format!(
                "image {source_id} is encrypted: its data keys do not leave this region, so it cannot be copied to another"
            )));
        }
        let project_name = match request.project_name.filter(|p| !p.trim().is_empty()) {
            Some(p) => p.trim().to_string(),
            None => self.images.catalog.identity.get_project(&caller.project_id).await?.name,
        };
        let target_image_id = Uuid::new_v4().to_string();
        let params = CrossRegionParams {
            source_id: source_id.to_string(),
            region: request.region.clone(),
            project_name,
            name: name.to_string(),
            description: request.description.filter(|d| !d.is_empty()),
            target_image_id: target_image_id.clone(),
        };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let entities = json!({"image_id": target_image_id, "region": request.region, "source_image_id": source_id.to_string()});
        let job = self.jobs.new_job(ctx, CROSS_REGION_COPY_JOB, params, entities)?;
        self.jobs.enqueue(ctx, &job).await?;
        Ok(job)
    }
}

/// Runs cross-region copy jobs.
pub(crate) struct CrossRegionCopyHandler(pub(crate) Arc<PipelineService>);

/// The job error for a failed call to the target region.
fn peer_error(e: PeerError) -> JobError {
    match e {
        PeerError::Credentials { .. } => JobError::failed(codes::REGION_CREDENTIALS, e.to_string()),
        PeerError::NoSuchProject { .. } => JobError::failed(codes::REGION_PROJECT, e.to_string()),
        PeerError::Quota { .. } => JobError::failed(codes::QUOTA_EXCEEDED, e.to_string()),
        PeerError::Unavailable { .. } | PeerError::ChunksMissing { .. } => JobError::transient(codes::UNAVAILABLE, e.to_string()),
        PeerError::Refused { .. } => JobError::failed(codes::INTERNAL, e.to_string()),
    }
}

/// What was sent to the target.
#[derive(Default)]
struct Sent {
    chunks: AtomicU64,
    bytes: AtomicU64,
}

impl CrossRegionCopyHandler {
    /// Sends the chunks of `ids` the target lacks; `done` and `total` count chunks for the progress.
    async fn send_missing(
        &self,
        peer: &RegionPeer,
        ids: &[ChunkId],
        lengths: &std::collections::HashMap<ChunkId, u32>,
        sent: &Sent,
        ctx: &JobContext,
    ) -> std::result::Result<(), JobError> {
        let total = ids.len().max(1) as f64;
        for (batch_index, batch) in ids.chunks(MAX_CHUNKS_PER_QUERY).enumerate() {
            ctx.check()?;
            let missing = peer.missing_chunks(batch).await.map_err(peer_error)?;
            futures::stream::iter(missing)
                .map(|id| async move {
                    ctx.check()?;
                    let length = *lengths.get(&id).ok_or_else(|| {
                        JobError::failed(codes::INTERNAL, format!("region {} named chunk {id}, which the image does not have", peer.name()))
                    })?;
                    let object = self.read_chunk_object(&id).await?;
                    let bytes = object.len() as u64;
                    peer.put_chunk(&id, length, object).await.map_err(peer_error)?;
                    sent.chunks.fetch_add(1, Ordering::Relaxed);
                    sent.bytes.fetch_add(bytes, Ordering::Relaxed);
                    Ok::<_, JobError>(())
                })
                .buffer_unordered(CHUNKS_IN_FLIGHT)
                .try_collect::<()>()
                .await?;
            let done = ((batch_index + 1) * MAX_CHUNKS_PER_QUERY).min(ids.len()) as f64;
            ctx.set_progress(5.0 + 90.0 * done / total);
        }
        Ok(())
    }

    /// The stored object of a chunk of this region's store, as it is (compressed, with its codec tag).
    async fn read_chunk_object(&self, id: &ChunkId) -> std::result::Result<bytes::Bytes, JobError> {
        let objects = self.0.images.store.objects().clone();
        let read = async { objects.get(&id.object_path()).await?.bytes().await };
        read.await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                JobError::failed(codes::INTERNAL, format!("chunk {id} of the source image is missing from the store"))
            }
            other => JobError::transient(codes::UNAVAILABLE, format!("reading chunk {id}: {}", StoreError::from(other))),
        })
    }
}

#[async_trait]
impl JobHandler for CrossRegionCopyHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> std::result::Result<Value, JobError> {
        let p: CrossRegionParams = serde_json::from_value(job.params.clone())
            .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad cross-region copy parameters: {e}")))?;
        let peer = self.0.regions.get(&p.region).cloned().ok_or_else(|| {
            JobError::failed(codes::REGION_UNKNOWN, format!("region {:?} is not configured on this node", p.region))
        })?;
        let images = &self.0.images;
        let source = job_image(images, &p.source_id).await?;
        let Some(manifest_id) = source.manifest_id.clone().filter(|_| source.status == ImageStatus::Active) else {
            return Err(JobError::failed(codes::WRONG_STATE, format!("the source image {} is {}, not active", source.id, source.status)));
        };
        images.require_default_copy(&source).map_err(|e| JobError::failed(codes::WRONG_STATE, e.to_string()))?;
        if images.catalog.encryption.image_encryption(source.id).await.map_err(|e| job_error(e.into()))?.is_some() {
            return Err(JobError::failed(codes::UNSUPPORTED_FORMAT, format!("image {} is encrypted: its keys do not leave the region", source.id)));
        }
        let manifest = images.store.load_manifest(&manifest_id).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the source image's data cannot be read: {e}"))
        })?;
        ctx.set_progress(5.0);
        let mut lengths = std::collections::HashMap::new();
        let mut ids = Vec::new();
        for extent in &manifest.extents {
            if let Some(id) = extent.chunk {
                if lengths.insert(id, extent.length).is_none() {
                    ids.push(id);
                }
            }
        }
        let mut properties = source.properties.clone();
        properties.insert("__originalimagename".into(), source.id.to_string());
        properties.remove("active_at");
        match &p.description {
            Some(d) => properties.insert("__description".into(), d.clone()),
            None => properties.remove("__description"),
        };
        let registration = ImageRegistration {
            image_id: p.target_image_id.clone(),
            project_name: p.project_name.clone(),
            name: p.name.clone(),
            disk_format: source.disk_format.clone(),
            container_format: source.container_format.clone(),
            min_disk: source.min_disk,
            min_ram: source.min_ram,
            tags: source.tags.iter().cloned().collect(),
            properties,
            size: manifest.size,
            virtual_size: source.virtual_size.and_then(|v| u64::try_from(v).ok()),
            checksum: source.checksum.clone(),
            os_hash_algo: source.os_hash_algo.clone(),
            os_hash_value: source.os_hash_value.clone(),
            manifest,
        };
        let sent = Sent::default();
        self.send_missing(&peer, &ids, &lengths, &sent, ctx).await?;
        let mut attempt = 1;
        loop {
            ctx.check()?;
            match peer.register_image(&registration).await {
                Ok(()) => break,
                // Chunks vanished from the target since they were asked about: send them again.
                Err(PeerError::ChunksMissing { .. }) if attempt < REGISTER_ATTEMPTS => {
                    attempt += 1;
                    self.send_missing(&peer, &ids, &lengths, &sent, ctx).await?;
                }
                Err(e) => return Err(peer_error(e)),
            }
        }
        Ok(json!({
            "image_id": p.target_image_id,
            "region": p.region,
            "project_name": p.project_name,
            "source_image_id": source.id.to_string(),
            "chunks_total": ids.len(),
            "chunks_sent": sent.chunks.load(Ordering::Relaxed),
            "bytes_sent": sent.bytes.load(Ordering::Relaxed),
        }))
    }
}
