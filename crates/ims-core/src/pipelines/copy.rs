//! CopyImageInRegion: a new private image with the same data as an active one.
//!
//! A copy in the source's encryption (plaintext, or the source's master key: a copy without `cmk_id`
//! keeps the source's key) gets its own manifest listing the source's chunks, so it shares every chunk (no
//! data is copied) and outlives the source. A copy under another master key (`cmk_id`) is re-encrypted:
//! the source's bytes stream, verified chunk by chunk, through a writer in the copy's own encryption
//! domain, so the copy shares no chunk with the source, has the same checksums, and stays readable
//! whatever becomes of the source's key.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use ims_catalog::{Image, ImageChange, ImageStatus, Job, Visibility};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{codes, job_error, job_image, PipelineService};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::kms::CMK_PROPERTY;
use crate::{CoreError, Policy, RequestContext, Result};

/// The job type of in-region copies.
pub const COPY_JOB: &str = "copyImageInRegion";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CopyParams {
    source_id: String,
    image_id: String,
}

impl PipelineService {
    /// CopyImageInRegion: creates the copy (`importing`) of the active image `source_id` and enqueues the
    /// job that fills it, in one transaction. `NotFound` for an image the caller cannot see; `Forbidden`
    /// unless the caller may change it; `Conflict` unless it is active with data; `Invalid` for a bad name
    /// or a `cmk_id` naming no key, `Forbidden` for a disabled one. With a `cmk_id` the copy is encrypted
    /// under that key (re-encrypted when it differs from the source's); without, it keeps the source's.
    pub async fn copy(
        &self,
        ctx: &RequestContext,
        source_id: Uuid,
        name: &str,
        description: Option<String>,
        cmk_id: Option<&str>,
    ) -> Result<(Image, Job)> {
        let caller = Policy::require_caller(ctx)?;
        let source = self.images.get(ctx, source_id).await?;
        // Marketplace subscribers may copy and export the image they subscribed to (see `market`).
        if !self.images.market_subscribed(ctx, &source).await? {
            Policy::check_modify(ctx, &source)?;
        }
        Policy::check_create(ctx)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(CoreError::Invalid("\"name\" must have 1 to 128 characters".into()));
        }
        if source.status != ImageStatus::Active || source.manifest_id.is_none() {
            return Err(CoreError::Conflict(format!("image {source_id} is {}: only active images can be copied", source.status)));
        }
        if !caller.is_admin() {
            let (used, quota) = self.images.image_quota(ctx).await?;
            if used >= quota {
                return Err(CoreError::QuotaExceeded(format!("Quota exceeded: project may own at most {quota} images")));
            }
        }
        let now = crate::now();
        let mut copy = Image::new(Uuid::new_v4(), &caller.project_id, now);
        copy.name = Some(name.to_string());
        copy.visibility = Visibility::Private;
        copy.status = ImageStatus::Importing;
        copy.disk_format = source.disk_format.clone();
        copy.container_format = source.container_format.clone();
        copy.min_disk = source.min_disk;
        copy.min_ram = source.min_ram;
        copy.tags = source.tags.clone();
        copy.properties = source.properties.clone();
        copy.properties.insert("__imagetype".into(), "private".into());
        copy.properties.insert("__originalimagename".into(), source_id.to_string());
        copy.lineage = ims_catalog::Lineage::derived(ims_catalog::SourceType::Copy, source_id);
        copy.properties.remove("active_at");
        match description.filter(|d| !d.is_empty()) {
            Some(d) => copy.properties.insert("__description".into(), d),
            None => copy.properties.remove("__description"),
        };
        if let Some(key_id) = cmk_id.filter(|k| !k.is_empty()) {
            copy.properties.insert(CMK_PROPERTY.into(), key_id.to_string());
            self.images.check_encryption_request(&copy).await.map_err(|e| match e {
                CoreError::Invalid(m) => CoreError::Invalid(format!("\"cmk_id\": {m}")),
                other => other,
            })?;
        }
        let params = CopyParams { source_id: source_id.to_string(), image_id: copy.id.to_string() };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let job = self.jobs.new_job(ctx, COPY_JOB, params, json!({"image_id": copy.id.to_string()}))?;
        self.jobs.enqueue_with_image(ctx, &job, ImageChange::Create(&copy)).await?;
        Ok((copy, job))
    }
}

/// Runs copy jobs.
pub(crate) struct CopyHandler(pub(crate) Arc<PipelineService>);

#[async_trait]
impl JobHandler for CopyHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> std::result::Result<Value, JobError> {
        let p: CopyParams = serde_json::from_value(job.params.clone())
            .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad copy parameters: {e}")))?;
        let images = &self.0.images;
        let mut copy = job_image(images, &p.image_id).await?;
        match copy.status {
            ImageStatus::Importing => {}
            ImageStatus::Active => return Ok(json!({"image_id": p.image_id})),
            other => return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {other}, not importing", copy.id))),
        }
        let source = job_image(images, &p.source_id).await?;
        let Some(source_manifest) = source.manifest_id.clone().filter(|_| source.status == ImageStatus::Active) else {
            return Err(JobError::failed(codes::WRONG_STATE, format!("the source image {} is {}, not active", source.id, source.status)));
        };
        let home = images.home_store(&source).map_err(job_error)?;
        let manifest = home.load_manifest(&source_manifest).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the source image's data cannot be read: {e}"))
        })?;
        let source_encryption =
            images.catalog.encryption.image_encryption(source.id).await.map_err(|e| job_error(e.into()))?;
        let source_key = source_encryption.as_ref().map(|r| r.key_id.as_str());
        // A copy shares the source's chunks when both are in the same domain and the default store holds
        // them; otherwise its bytes are written anew.
        if copy.properties.get(CMK_PROPERTY).map(String::as_str) != source_key || !source.in_default_store {
            return self.write_anew(job, ctx, copy, &source, manifest).await;
        }
        ctx.set_progress(30.0);
        if let Some(mut record) = source_encryption {
            record.image_id = copy.id;
            images.catalog.encryption.set_image_encryption(&record).await.map_err(|e| job_error(e.into()))?;
        }
        let manifest_id = images.store.save_manifest(&manifest).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the copy's manifest cannot be stored: {e}"))
        })?;
        ctx.set_progress(70.0);
        copy.manifest_id = Some(manifest_id.clone());
        copy.size = source.size;
        copy.virtual_size = source.virtual_size;
        copy.checksum = source.checksum.clone();
        copy.os_hash_algo = source.os_hash_algo.clone();
        copy.os_hash_value = source.os_hash_value.clone();
        copy.status = ImageStatus::Active;
        copy.updated_at = crate::now();
        copy.properties.insert("active_at".into(), copy.updated_at.to_rfc3339());
        let mut event = ims_catalog::AuditEvent::new(&format!("job-{}", job.id), "image.copy", format!("image:{}", copy.id));
        event.project_id = Some(job.project_id.clone());
        if let Err(e) = images.save_activation(&copy, &[ImageStatus::Importing], &event).await {
            let _ = images.store.delete_manifest(&manifest_id).await;
            return Err(match e {
                ims_catalog::CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the copy", copy.id))
                }
                other => job_error(other.into()),
            });
        }
        Ok(json!({"image_id": copy.id.to_string(), "source_image_id": source.id.to_string()}))
    }

    async fn on_failed(&self, job: &Job, code: &str, reason: &str) {
        super::import::requeue_after_failure(&self.0.images, job, code, reason).await;
    }
}

impl CopyHandler {
    /// Fills `copy` with the source's bytes (read from its home store) written to the default store in the
    /// copy's own encryption domain (its `__system__cmkid`, or plaintext), streamed chunk by chunk, never
    /// whole in memory. The copy's checksums are computed from what was written and must equal the
    /// source's. Activates the copy within its owner's byte quota.
    async fn write_anew(
        &self,
        job: &Job,
        ctx: &JobContext,
        copy: Image,
        source: &Image,
        manifest: ims_store::Manifest,
    ) -> std::result::Result<Value, JobError> {
        let images = &self.0.images;
        let source_store = images.store_for_reading(source).await.map_err(|e| match e {
            CoreError::Forbidden(m) => JobError::failed(codes::WRONG_STATE, m),
            other => job_error(other),
        })?;
        let size = manifest.size;
        let (progress, source_id) = (ctx.clone(), source.id);
        let mut read = 0u64;
        let body = source_store
            .read_range(Arc::new(manifest), 0, size)
            .map(move |piece| {
                if progress.is_cancelled() {
                    return Err("the job was cancelled".to_string());
                }
                let piece = piece.map_err(|e| format!("the source image {source_id} cannot be read: {e}"))?;
                read += piece.len() as u64;
                progress.set_progress(10.0 + 80.0 * read as f64 / size.max(1) as f64);
                Ok(piece)
            })
            .boxed();
        let mut stored = images.receive(copy, Some(size), body).await.map_err(job_error)?;
        let manifest_id = stored.manifest_id.clone();
        let discard = |manifest_id: Option<String>| async move {
            if let Some(m) = &manifest_id {
                let _ = images.store.delete_manifest(m).await;
                let _ = images.store.release_pending(m).await;
            }
        };
        // The bytes written are the bytes read: sizes and (where the source has them) hashes agree.
        let differs = |ours: &Option<String>, theirs: &Option<String>| theirs.is_some() && ours != theirs;
        if stored.size != source.size.or(stored.size)
            || differs(&stored.checksum, &source.checksum)
            || differs(&stored.os_hash_value, &source.os_hash_value)
        {
            discard(manifest_id).await;
            return Err(JobError::failed(
                codes::INTERNAL,
                format!("the re-encrypted data of image {} does not match its source {source_id}", stored.id),
            ));
        }
        if let Err(e) = ctx.check() {
            discard(manifest_id).await;
            return Err(e);
        }
        stored.virtual_size = source.virtual_size;
        stored.status = ImageStatus::Active;
        stored.updated_at = crate::now();
        stored.properties.insert("active_at".into(), stored.updated_at.to_rfc3339());
        let mut event = ims_catalog::AuditEvent::new(&format!("job-{}", job.id), "image.copy", format!("image:{}", stored.id));
        event.project_id = Some(job.project_id.clone());
        event.detail = Some(format!("re-encrypted from image {source_id}"));
        if let Err(e) = images.save_activation(&stored, &[ImageStatus::Importing], &event).await {
            discard(manifest_id).await;
            return Err(match e {
                ims_catalog::CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the copy", stored.id))
                }
                other => job_error(other.into()),
            });
        }
        if let Some(m) = &manifest_id {
            if let Err(e) = images.store.release_pending(m).await {
                tracing::warn!(image = %stored.id, error = %e, "pending manifest left to expire");
            }
        }
        ctx.set_progress(100.0);
        Ok(json!({
            "image_id": stored.id.to_string(),
            "source_image_id": source_id.to_string(),
            "encryption_key": stored.properties.get(CMK_PROPERTY),
        }))
    }
}
