//! The job of a Glance import: inspect staged data (`glance-direct`) or fetch and store a URI
//! (`web-download`), then activate the image. Restartable: an image already active is done; a
//! `web-download` fetches again from the start.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use ims_catalog::{AuditEvent, Image, ImageStatus, Job};
use serde_json::{json, Value};

use super::{GlanceImportService, ImportMethod, ImportParams, FAILED_IMPORT, IMPORTING_TO_STORES};
use crate::inspection::{inspect_stored, inspected_format};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::pipelines::{codes, job_error, job_image};
use crate::CoreError;

/// Runs Glance import jobs.
pub(crate) struct GlanceImportHandler(pub(crate) GlanceImportService);

fn params(job: &Job) -> Result<ImportParams, JobError> {
    serde_json::from_value(job.params.clone())
        .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad import parameters: {e}")))
}

#[async_trait]
impl JobHandler for GlanceImportHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<Value, JobError> {
        let p = params(job)?;
        let image = job_image(&self.0.images, &p.image_id).await?;
        match image.status {
            ImageStatus::Importing => {}
            // An earlier attempt activated it and stopped before recording the job's end.
            ImageStatus::Active => return Ok(json!({"image_id": p.image_id, "stores": p.stores})),
            other => {
                return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {other}, not importing", image.id)))
            }
        }
        let stored = match p.method {
            ImportMethod::GlanceDirect => self.inspect_staged(image).await?,
            ImportMethod::WebDownload => self.download(image, p.uri.as_deref().unwrap_or_default(), ctx).await?,
        };
        ctx.check()?;
        self.activate(stored, &p).await?;
        ctx.set_progress(100.0);
        Ok(json!({"image_id": p.image_id, "stores": p.stores}))
    }

    async fn on_failed(&self, job: &Job, code: &str, reason: &str) {
        let Ok(p) = params(job) else { return };
        let images = &self.0.images;
        let Ok(mut image) = job_image(images, &p.image_id).await else { return };
        if image.status != ImageStatus::Importing {
            return;
        }
        // Back to queued without data, as Glance leaves a failed import; the stores that failed are recorded.
        let dropped = image.manifest_id.take();
        image.status = ImageStatus::Queued;
        image.size = None;
        image.virtual_size = None;
        image.checksum = None;
        image.os_hash_algo = None;
        image.os_hash_value = None;
        image.updated_at = crate::now();
        image.properties.remove(IMPORTING_TO_STORES);
        image.properties.remove(super::STAGE_HOST);
        image.properties.insert(FAILED_IMPORT.into(), p.stores.join(","));
        let mut event = AuditEvent::new(&format!("job-{}", job.id), "image.import", format!("image:{}", image.id));
        event.project_id = Some(job.project_id.clone());
        event.result = "failure".into();
        event.detail = Some(format!("{code}: {reason}"));
        if let Err(e) = images.catalog.images.save(&image, &[ImageStatus::Importing], &event).await {
            tracing::warn!(image = %image.id, error = %e, "could not return the image to queued after a failed import");
        } else if let Some(m) = dropped {
            // No longer referenced: garbage collection reclaims its chunks.
            let _ = images.store.delete_manifest(&m).await;
        }
    }
}

impl GlanceImportHandler {
    /// The staged data inspected as the image's declared format (the virtual size filled in).
    async fn inspect_staged(&self, mut image: Image) -> Result<Image, JobError> {
        let images = &self.0.images;
        let manifest_id = image
            .manifest_id
            .clone()
            .ok_or_else(|| JobError::failed(codes::WRONG_STATE, format!("image {} has no staged data", image.id)))?;
        let Some(format) = image.disk_format.as_deref().and_then(inspected_format) else {
            return Ok(image);
        };
        let store = images.store_for_reading(&image).await.map_err(job_error)?;
        let manifest = images.store.load_manifest(&manifest_id).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the staged data cannot be read: {e}"))
        })?;
        let inspected = inspect_stored(&store, Arc::new(manifest), format, ims_formats::Limits::default())
            .await
            .map_err(|e| match e {
                CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, m),
                other => job_error(other),
            })?;
        image.virtual_size = Some(inspected.virtual_size as i64);
        Ok(image)
    }

    /// The URI's file streamed into the chunk store, hashed and inspected (as an upload is).
    async fn download(&self, image: Image, uri: &str, ctx: &JobContext) -> Result<Image, JobError> {
        let policy = &self.0.settings.web_download;
        let (body, length) = policy.open(uri).await.map_err(|e| JobError::failed(codes::SOURCE_MISSING, e.0))?;
        let total = length.unwrap_or(0) as f64;
        let progress = ctx.clone();
        let mut read = 0u64;
        let body = body
            .inspect(move |piece| {
                if let (Ok(piece), true) = (piece, total > 0.0) {
                    read += piece.len() as u64;
                    progress.set_progress(99.0 * read as f64 / total);
                }
            })
            .boxed();
        self.0.images.receive(image, length, body).await.map_err(|e| match e {
            CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, format!("{uri}: {m}")),
            other => job_error(other),
        })
    }

    /// importing → active with the stored data; `IMAGE_GONE` if the image was deleted or changed meanwhile.
    async fn activate(&self, mut image: Image, p: &ImportParams) -> Result<(), JobError> {
        let images = &self.0.images;
        image.status = ImageStatus::Active;
        image.updated_at = crate::now();
        image.properties.remove(IMPORTING_TO_STORES);
        image.properties.remove(FAILED_IMPORT);
        let mut event = AuditEvent::new("job", "image.import", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        event.detail = Some(format!("{} to {}", p.method.as_str(), p.stores.join(",")));
        let manifest = image.manifest_id.clone();
        if let Err(e) = images.catalog.images.save(&image, &[ImageStatus::Importing], &event).await {
            if p.method == ImportMethod::WebDownload {
                if let Some(m) = &manifest {
                    let _ = images.store.delete_manifest(m).await;
                    let _ = images.store.release_pending(m).await;
                }
            }
            return Err(match e {
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the import", image.id))
                }
                other => job_error(other.into()),
            });
        }
        if let Some(m) = manifest.filter(|_| p.method == ImportMethod::WebDownload) {
            if let Err(e) = images.store.release_pending(&m).await {
                tracing::warn!(image = %image.id, error = %e, "pending manifest left to expire");
            }
        }
        Ok(())
    }
}
