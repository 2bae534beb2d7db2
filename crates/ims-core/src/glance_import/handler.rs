//! The job of a Glance import: inspect staged data (`glance-direct`) or fetch and store a URI
//! (`web-download`), convert it when the operator's import conversions ask for it, then activate the
//! image; or copy an active image to other stores (`copy-image`).
//! Restartable: an image already active is done; a `web-download` fetches again from the start; staged
//! data stays recorded on the image until the activation replaces it with its conversion, so a retried
//! `glance-direct` converts again from it; a `copy-image` skips the stores already recorded as holding
//! the image, and chunks already copied.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use ims_formats::Format;
use ims_catalog::{AuditEvent, Image, ImageStatus, Job};
use serde_json::{json, Value};

use super::stores::{image_stores, DEFAULT_STORE_ID};
use super::{merge_store_list, GlanceImportService, ImportMethod, ImportParams, FAILED_IMPORT, IMPORTING_TO_STORES};
use crate::inspection::{inspect_stored, inspected_format};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::pipelines::{codes, convert_stored, job_error, job_image};
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
        if p.method == ImportMethod::CopyImage {
            return self.copy(image, &p, ctx).await;
        }
        match image.status {
            ImageStatus::Importing => {}
            // An earlier attempt activated it and stopped before recording the job's end.
            ImageStatus::Active => return Ok(json!({"image_id": p.image_id, "stores": p.stores})),
            other => {
                return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {other}, not importing", image.id)))
            }
        }
        let conversion = self.conversion_of(&image);
        let stored = match p.method {
            ImportMethod::GlanceDirect => self.inspect_staged(image).await?,
            ImportMethod::WebDownload => {
                let share = if conversion.is_some() { 50.0 } else { 99.0 };
                self.download(image, p.uri.as_deref().unwrap_or_default(), share, ctx).await?
            }
            ImportMethod::CopyImage => {
                return Err(JobError::failed(codes::INTERNAL, "copy-image jobs are run by their own path"));
            }
        };
        ctx.check()?;
        let staged = stored.manifest_id.clone().filter(|_| p.method == ImportMethod::GlanceDirect);
        let stored = match conversion {
            Some((_, target)) => self.convert(stored, target, &p, ctx).await?,
            None => stored,
        };
        // The data written by this job (downloaded or converted), not yet recorded on the image.
        let written = p.method == ImportMethod::WebDownload || conversion.is_some();
        let (stored, failed, pending) = self.copy_before_activation(stored, &p, written).await?;
        let disk_format = stored.disk_format.clone();
        self.activate(stored, &p, &failed, written).await?;
        // Activated: the catalog protects the copies from here on.
        drop(pending);
        if let Some(m) = staged.filter(|_| conversion.is_some()) {
            // The staged original, replaced by its conversion: no longer referenced, its chunks go with
            // garbage collection.
            let _ = self.0.images.store.delete_manifest(&m).await;
        }
        ctx.set_progress(100.0);
        let mut result = json!({"image_id": p.image_id, "stores": p.stores, "failed_stores": failed, "disk_format": disk_format});
        if let Some((source, target)) = conversion {
            result["conversion"] = json!({"from": source.to_string(), "to": target.to_string()});
        }
        Ok(result)
    }

    async fn on_failed(&self, job: &Job, code: &str, reason: &str) {
        let Ok(p) = params(job) else { return };
        let images = &self.0.images;
        let Ok(mut image) = job_image(images, &p.image_id).await else { return };
        if p.method == ImportMethod::CopyImage {
            return self.copy_failed(image, &p, job, code, reason).await;
        }
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
        merge_store_list(&mut image.properties, IMPORTING_TO_STORES, &p.stores, true);
        image.properties.remove(super::STAGE_HOST);
        merge_store_list(&mut image.properties, FAILED_IMPORT, &p.stores, false);
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
    /// `copy-image`: copies the image to each store in turn, recording each copy as soon as it is complete.
    /// With `all_stores_must_succeed` the first failure fails the job; otherwise failed stores are recorded
    /// in `os_glance_failed_import` and the job succeeds.
    async fn copy(&self, image: Image, p: &ImportParams, ctx: &JobContext) -> Result<Value, JobError> {
        if image.status != ImageStatus::Active {
            return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {}, not active", image.id, image.status)));
        }
        let count = p.stores.len().max(1) as f64;
        let mut failed = Vec::new();
        let mut sent = super::stores::CopyCount::default();
        for (done, store) in p.stores.iter().enumerate() {
            ctx.check()?;
            if image_stores(&image).contains(store) {
                continue;
            }
            let progress = |percent: f64| ctx.set_progress((done as f64 * 100.0 + percent) / count);
            match self.0.copy_to_store(&image, store, &progress).await {
                Ok((copied, pending)) => {
                    sent.chunks += copied.chunks;
                    sent.bytes += copied.bytes;
                    self.record_copy(&image, store).await?;
                    // Recorded: the catalog protects the copy from here on.
                    drop(pending);
                }
                Err(e) if p.all_stores_must_succeed => return Err(job_error(e)),
                Err(e) => {
                    tracing::warn!(image = %image.id, store, error = %e, "copy-image to a store failed");
                    failed.push(store.clone());
                }
            }
        }
        if !failed.is_empty() {
            self.end_copy(&image.id.to_string(), &failed).await?;
        }
        ctx.set_progress(100.0);
        Ok(json!({
            "image_id": p.image_id,
            "stores": p.stores,
            "failed_stores": failed,
            "chunks_copied": sent.chunks,
            "bytes_copied": sent.bytes,
        }))
    }

    /// Adds `store` to the image's stores and drops it from the stores being imported to.
    /// `IMAGE_GONE` if the image is no longer active (its copy there is removed again).
    async fn record_copy(&self, copied: &Image, store: &str) -> Result<(), JobError> {
        let images = &self.0.images;
        let gone = || async {
            if let (Some(target), Some(manifest_id)) = (self.0.settings.stores.extra(store), &copied.manifest_id) {
                // Nothing references that copy: its chunks go with the store's garbage collection.
                let _ = target.delete_manifest(manifest_id).await;
            }
            JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the copy", copied.id))
        };
        let Ok(mut image) = job_image(images, &copied.id.to_string()).await else { return Err(gone().await) };
        if image.status != ImageStatus::Active || image.manifest_id != copied.manifest_id {
            return Err(gone().await);
        }
        if store == DEFAULT_STORE_ID {
            image.in_default_store = true;
        } else if !image.extra_stores.iter().any(|s| s == store) {
            image.extra_stores.push(store.to_string());
        }
        merge_store_list(&mut image.properties, IMPORTING_TO_STORES, &[store.to_string()], true);
        image.updated_at = crate::now();
        let mut event = AuditEvent::new("job", "image.import", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        event.detail = Some(format!("copy-image to {store}"));
        match images.catalog.images.save(&image, &[ImageStatus::Active], &event).await {
            Ok(()) => Ok(()),
            Err(ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_)) => Err(gone().await),
            Err(other) => Err(job_error(other.into())),
        }
    }

    /// Ends a copy with `failed` stores: they are recorded as failed and no store is left as importing.
    async fn end_copy(&self, image_id: &str, failed: &[String]) -> Result<(), JobError> {
        let images = &self.0.images;
        let mut image = job_image(images, image_id).await?;
        if image.status != ImageStatus::Active {
            return Ok(());
        }
        image.properties.insert(IMPORTING_TO_STORES.into(), String::new());
        merge_store_list(&mut image.properties, FAILED_IMPORT, failed, false);
        image.updated_at = crate::now();
        let mut event = AuditEvent::new("job", "image.import", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        event.result = "failure".into();
        event.detail = Some(format!("copy-image failed for {}", failed.join(",")));
        images.catalog.images.save(&image, &[ImageStatus::Active], &event).await.map_err(|e| job_error(e.into()))
    }

    /// A failed `copy-image` job: the stores not copied to are recorded as failed.
    async fn copy_failed(&self, image: Image, p: &ImportParams, job: &Job, code: &str, reason: &str) {
        let held = image_stores(&image);
        let failed: Vec<String> = p.stores.iter().filter(|s| !held.contains(s)).cloned().collect();
        if let Err(e) = self.end_copy(&image.id.to_string(), &failed).await {
            tracing::warn!(image = %image.id, job = %job.id, code, reason, error = %e, "could not record a failed copy-image");
        }
    }

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
        let manifest = store.load_manifest(&manifest_id).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the staged data cannot be read: {e}"))
        })?;
        let inspected = inspect_stored(&store, Arc::new(manifest), format, ims_formats::Limits::default(), images.limits.inspection_timeout)
            .await
            .map_err(|e| match e {
                CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, m),
                other => job_error(other),
            })?;
        image.virtual_size = Some(inspected.virtual_size as i64);
        Ok(image)
    }

    /// The conversion the operator's import conversions ask for the image's declared format (source,
    /// target), if any.
    fn conversion_of(&self, image: &Image) -> Option<(Format, Format)> {
        let source: Format = image.disk_format.as_deref()?.parse().ok()?;
        let target = *self.0.conversions.get(&source)?;
        (target != source).then_some((source, target))
    }

    /// The stored data (inspected as its declared format) converted to `target` in the chunk store; the
    /// returned image describes the converted data (its manifest pending until activation), with the
    /// original's format, size and hashes as `__original_*` properties. A download's original is dropped
    /// at once (nothing records it); staged data stays recorded on the image until the activation replaces
    /// it, so a job retried after a crash converts it again from the start.
    async fn convert(&self, stored: Image, target: Format, p: &ImportParams, ctx: &JobContext) -> Result<Image, JobError> {
        let images = &self.0.images;
        let progress = if p.method == ImportMethod::WebDownload { 50.0..99.0 } else { 0.0..99.0 };
        let converted = convert_stored(images, &stored, target, ctx, progress).await;
        if p.method == ImportMethod::WebDownload {
            if let Some(m) = &stored.manifest_id {
                let _ = images.store.delete_manifest(m).await;
                let _ = images.store.release_pending(m).await;
            }
        }
        let converted = converted?;
        ctx.check()?;
        Ok(converted)
    }

    /// The URI's file streamed into the chunk store, hashed and inspected (as an upload is); the download
    /// takes `share` percent of the job's progress.
    async fn download(&self, image: Image, uri: &str, share: f64, ctx: &JobContext) -> Result<Image, JobError> {
        let policy = &self.0.settings.web_download;
        let (body, length) = policy.open(uri).await.map_err(|e| JobError::failed(codes::SOURCE_MISSING, e.0))?;
        let total = length.unwrap_or(0) as f64;
        let progress = ctx.clone();
        let mut read = 0u64;
        let body = body
            .inspect(move |piece| {
                if let (Ok(piece), true) = (piece, total > 0.0) {
                    read += piece.len() as u64;
                    progress.set_progress(share * read as f64 / total);
                }
            })
            .boxed();
        self.0.images.receive(image, length, body).await.map_err(|e| match e {
            CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, format!("{uri}: {m}")),
            other => job_error(other),
        })
    }

    /// An import to several stores: the data, stored in the default store, copied to the other stores
    /// named, before the image turns active (which records them). Returns the image with its extra stores,
    /// the stores that failed, and the guards of the copies' pending manifests (held until activation);
    /// with `all_stores_must_succeed` the first failure fails the import (the copies made are removed again,
    /// and so is the data, when `written` by this job rather than staged).
    async fn copy_before_activation(
        &self,
        mut image: Image,
        p: &ImportParams,
        written: bool,
    ) -> Result<(Image, Vec<String>, Vec<ims_store::PendingRelease>), JobError> {
        let mut failed = Vec::new();
        let mut pending = Vec::new();
        let stores = &self.0.settings.stores;
        for store in p.stores.iter().filter(|s| *s != super::DEFAULT_STORE_ID) {
            match self.0.copy_to_store(&image, store, &|_: f64| {}).await {
                Ok((_, guard)) => {
                    image.extra_stores.push(store.clone());
                    pending.push(guard);
                }
                Err(e) if p.all_stores_must_succeed => {
                    if let Some(m) = &image.manifest_id {
                        for copied in &image.extra_stores {
                            if let Some(target) = stores.extra(copied) {
                                let _ = target.delete_manifest(m).await;
                            }
                        }
                        if written {
                            // The downloaded or converted data was never recorded on the image.
                            let _ = self.0.images.store.delete_manifest(m).await;
                            let _ = self.0.images.store.release_pending(m).await;
                        }
                    }
                    return Err(job_error(e));
                }
                Err(e) => {
                    tracing::warn!(image = %image.id, store, error = %e, "import to a store failed");
                    failed.push(store.clone());
                }
            }
        }
        Ok((image, failed, pending))
    }

    /// importing → active with the stored data; `IMAGE_GONE` if the image was deleted or changed meanwhile.
    /// Stores that `failed` are recorded in `os_glance_failed_import`. Data `written` by this job (downloaded
    /// or converted) is released from pending once recorded, and dropped if the activation fails.
    async fn activate(&self, mut image: Image, p: &ImportParams, failed: &[String], written: bool) -> Result<(), JobError> {
        let images = &self.0.images;
        image.status = ImageStatus::Active;
        image.updated_at = crate::now();
        merge_store_list(&mut image.properties, IMPORTING_TO_STORES, &p.stores, true);
        merge_store_list(&mut image.properties, FAILED_IMPORT, failed, false);
        image.lineage = match (p.method, &p.uri) {
            (ImportMethod::WebDownload, Some(uri)) => crate::lineage::web_download_lineage(uri),
            (ImportMethod::WebDownload, None) => ims_catalog::Lineage {
                source_type: Some(ims_catalog::SourceType::WebDownload),
                ..Default::default()
            },
            (ImportMethod::GlanceDirect | ImportMethod::CopyImage, _) => ims_catalog::Lineage {
                source_type: Some(ims_catalog::SourceType::GlanceImport),
                ..Default::default()
            },
        };
        let mut event = AuditEvent::new("job", "image.import", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        event.detail = Some(format!("{} to {}", p.method.as_str(), p.stores.join(",")));
        let manifest = image.manifest_id.clone();
        if let Err(e) = images.save_activation(&image, &[ImageStatus::Importing], &event).await {
            if written {
                if let Some(m) = &manifest {
                    let _ = images.store.delete_manifest(m).await;
                    let _ = images.store.release_pending(m).await;
                }
            }
            return Err(match e {
                ims_catalog::CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the import", image.id))
                }
                other => job_error(other.into()),
            });
        }
        if let Some(m) = manifest.filter(|_| written) {
            if let Err(e) = images.store.release_pending(&m).await {
                tracing::warn!(image = %image.id, error = %e, "pending manifest left to expire");
            }
        }
        Ok(())
    }
}
