//! Glance's legacy `import` task (`POST /v2/tasks`, deprecated by Glance in favour of interoperable import
//! but still served): an image created from `image_properties` and filled from `import_from`, exactly as a
//! `web-download` import fills an image, under the same URI rules.

use serde_json::Value;

use super::{tasks, GlanceImportService, GlanceTask, ImportMethod, ImportRequest};
use crate::{CoreError, NewImage, Policy, RequestContext, Result};

/// The job parameter keeping a legacy task's input as given, which the task shows back.
pub(crate) const LEGACY_TASK_INPUT: &str = "legacy_task_input";

/// What a legacy `import` task asks for.
#[derive(Debug, Clone)]
pub struct LegacyImportTask {
    /// The source URI (`input.import_from`).
    pub import_from: String,
    /// The image to create (`input.image_properties`).
    pub image: NewImage,
    /// The task's `input` as given (shown back as the task's input).
    pub input: Value,
}

impl GlanceImportService {
    /// Starts a legacy import task. Admins only (`Forbidden` otherwise, as Glance's `tasks_api_access`);
    /// `Invalid`, before anything is created, when `web-download` is not enabled or the URI does not pass
    /// its rules (scheme, host allowlist, addresses; the host must resolve). Then creates the image (as
    /// `POST /v2/images` would, with the same checks) and enqueues its web-download import; if enqueueing
    /// fails the image is deleted again. Returns the task, `pending`; it ends `success` with the image
    /// active, or `failure` with the image back in `queued`.
    pub async fn create_legacy_import_task(&self, ctx: &RequestContext, task: LegacyImportTask) -> Result<GlanceTask> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.is_admin() {
            return Err(CoreError::Forbidden("You are not authorized to create tasks.".into()));
        }
        if !self.settings.methods.contains(&ImportMethod::WebDownload) {
            return Err(CoreError::Invalid("Legacy import tasks need the web-download import method".into()));
        }
        self.settings
            .web_download
            .check(&task.import_from)
            .await
            .map_err(|e| CoreError::Invalid(format!("URI for legacy import task does not pass filtering: {}", e.0)))?;
        let image = self.images.create(ctx, task.image).await?;
        let request = ImportRequest {
            method: ImportMethod::WebDownload.as_str().into(),
            uri: Some(task.import_from),
            stores: None,
            all_stores: false,
            all_stores_must_succeed: true,
        };
        match self.start_import(ctx, image.id, request, Some(task.input)).await {
            Ok(job) => Ok(tasks::GlanceTask::from_job(&job)),
            Err(e) => {
                if let Err(undo) = self.images.delete_now(ctx, image.id).await {
                    tracing::warn!(image = %image.id, error = %undo, "could not delete the image of a refused task");
                }
                Err(e)
            }
        }
    }
}
