//! CopyImageInRegion: a new private image with the same data as an active one. The copy gets its own
//! manifest listing the source's chunks, so it shares every chunk (no data is copied) and outlives the
//! source; an encrypted source's copy is readable with the same key.

use std::sync::Arc;

use async_trait::async_trait;
use ims_catalog::{Image, ImageChange, ImageStatus, Job, Visibility};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{codes, job_error, job_image, PipelineService};
use crate::jobs::{JobContext, JobError, JobHandler};
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
    /// or a `cmk_id` (re-encrypting a copy under another key is not supported).
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
        Policy::check_modify(ctx, &source)?;
        Policy::check_create(ctx)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(CoreError::Invalid("\"name\" must have 1 to 128 characters".into()));
        }
        if cmk_id.is_some_and(|k| !k.is_empty()) {
            return Err(CoreError::Invalid("\"cmk_id\": copies keep the source's encryption; another key is not supported".into()));
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
        copy.properties.remove("active_at");
        match description.filter(|d| !d.is_empty()) {
            Some(d) => copy.properties.insert("__description".into(), d),
            None => copy.properties.remove("__description"),
        };
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
        let manifest = images.store.load_manifest(&source_manifest).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the source image's data cannot be read: {e}"))
        })?;
        ctx.set_progress(30.0);
        if let Some(mut record) = images.catalog.encryption.image_encryption(source.id).await.map_err(|e| job_error(e.into()))? {
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
        if let Err(e) = images.catalog.images.save(&copy, &[ImageStatus::Importing], &event).await {
            let _ = images.store.delete_manifest(&manifest_id).await;
            return Err(match e {
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
