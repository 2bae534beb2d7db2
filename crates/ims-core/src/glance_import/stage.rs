//! `PUT /v2/images/{id}/stage`: data streamed into the chunk store and recorded on the image, which
//! stays `uploading` until `glance-direct` imports it. Inspection waits for the import, as the declared
//! `disk_format` may still change until then.

use bytes::Bytes;
use futures::Stream;
use ims_catalog::{Image, ImageStatus};
use uuid::Uuid;

use super::{GlanceImportService, STAGE_HOST};
use crate::{CoreError, Policy, RequestContext, Result};

impl GlanceImportService {
    /// Stages `body` as the data of image `id`.
    ///
    /// The image must be `queued` (else `Conflict`, and the body is not stored) and the caller allowed to
    /// change it (`Forbidden`). It is `uploading` while data streams and stays `uploading` with the staged
    /// data attached (size and hashes known) once the body ended. On any failure (body error, size mismatch
    /// with `declared_size`, size cap, store failure) it returns to `queued` without data. The work runs in
    /// its own task, so it completes or rolls back even if the caller stops waiting.
    pub async fn stage<S, E>(&self, ctx: &RequestContext, id: Uuid, declared_size: Option<u64>, body: S) -> Result<Image>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let mut image = self.images.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        if image.status != ImageStatus::Queued {
            return Err(CoreError::Conflict(format!(
                "Image status transition from {} to uploading is not allowed",
                image.status
            )));
        }
        let cap = self.images.limits.max_image_size;
        if declared_size.is_some_and(|size| size > cap) {
            return Err(CoreError::TooLarge(format!(
                "Image exceeds the storage quota: the maximum image size is {cap} bytes"
            )));
        }
        image.status.check_transition(ImageStatus::Uploading, &image)?;
        image.status = ImageStatus::Uploading;
        self.images.mark_transfer(&mut image);
        image.updated_at = crate::now();
        if let Some(host) = &self.settings.stage_host {
            image.properties.insert(STAGE_HOST.into(), host.clone());
        }
        let event = ctx.event("image.stage.start", format!("image:{id}"));
        self.images.catalog.images.save(&image, &[ImageStatus::Queued], &event).await?;

        let service = self.clone();
        let task_ctx = ctx.clone();
        let task = tokio::spawn(async move {
            // No inspection now: the data is inspected as the format declared at import time.
            let mut uninspected = image.clone();
            uninspected.disk_format = None;
            match service.images.receive(uninspected, declared_size, body).await {
                Ok(mut staged) => {
                    staged.disk_format = image.disk_format.clone();
                    staged.virtual_size = None;
                    service.keep_staged(&task_ctx, staged).await
                }
                Err(e) => {
                    service.unstage(&task_ctx, image, &e).await;
                    Err(e)
                }
            }
        });
        task.await.map_err(|e| CoreError::Unavailable(format!("staging task failed: {e}")))?
    }

    /// Records the staged data on the still-`uploading` image; drops it if the image changed meanwhile.
    async fn keep_staged(&self, ctx: &RequestContext, mut staged: Image) -> Result<Image> {
        staged.updated_at = crate::now();
        staged.properties.remove(crate::transfers::TRANSFER_NODE);
        let event = ctx.event("image.stage", format!("image:{}", staged.id));
        let store = &self.images.store;
        if let Err(e) = self.images.catalog.images.save(&staged, &[ImageStatus::Uploading], &event).await {
            if let Some(m) = &staged.manifest_id {
                let _ = store.delete_manifest(m).await;
                let _ = store.release_pending(m).await;
            }
            return Err(match e {
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    CoreError::Conflict(format!("Image {} was changed or deleted during staging", staged.id))
                }
                other => other.into(),
            });
        }
        if let Some(m) = &staged.manifest_id {
            if let Err(e) = store.release_pending(m).await {
                tracing::warn!(image = %staged.id, error = %e, "pending manifest left to expire");
            }
        }
        Ok(staged)
    }

    /// uploading → queued after a failed staging, recording why.
    async fn unstage(&self, ctx: &RequestContext, mut image: Image, error: &CoreError) {
        image.status = ImageStatus::Queued;
        image.updated_at = crate::now();
        image.properties.remove(STAGE_HOST);
        image.properties.remove(crate::transfers::TRANSFER_NODE);
        let mut event = ctx.event("image.stage", format!("image:{}", image.id));
        event.result = "failure".into();
        event.detail = Some(error.to_string());
        if let Err(e) = self.images.catalog.images.save(&image, &[ImageStatus::Uploading], &event).await {
            tracing::warn!(image = %image.id, error = %e, "could not return image to queued after failed staging");
        }
    }
}
