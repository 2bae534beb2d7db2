//! Glance import tasks: the Glance import jobs, seen through Glance's task schema.

use chrono::{DateTime, Utc};
use ims_catalog::{CatalogError, Job, JobFilter, JobStatus};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{GlanceImportService, GLANCE_IMPORT_JOB, GLANCE_LOCATION_JOB};
use crate::jobs::MAX_JOB_LIST;
use crate::{CoreError, Policy, RequestContext, Result};

/// One Glance task (`/v2/tasks/{id}`), read from its job.
#[derive(Debug, Clone, PartialEq)]
pub struct GlanceTask {
    pub id: String,
    /// `api_image_import`, or `location_import` for a location added to an image.
    pub task_type: &'static str,
    /// `pending`, `processing`, `success` or `failure`.
    pub status: &'static str,
    pub owner: String,
    pub image_id: Option<String>,
    pub input: Value,
    pub result: Option<Value>,
    /// Why the task failed; empty otherwise.
    pub message: String,
    /// The `x-openstack-request-id` of the request that started the task (none for tasks recorded before
    /// it was kept).
    pub request_id: Option<String>,
    /// The user who started the task.
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl GlanceTask {
    pub(crate) fn from_job(job: &Job) -> GlanceTask {
        let status = match job.status {
            JobStatus::Init => "pending",
            JobStatus::Running => "processing",
            JobStatus::Success => "success",
            JobStatus::Fail => "failure",
        };
        let image_id = job.params.get("image_id").and_then(Value::as_str).map(str::to_string);
        let location = job.job_type == GLANCE_LOCATION_JOB;
        let mut input = if location {
            json!({"image_id": image_id, "loc_url": job.params["url"], "validation_data": job.params.get("validation_data").cloned().unwrap_or_else(|| json!({}))})
        } else {
            json!({"image_id": image_id, "import_req": {"method": {"name": job.params["method"]}}})
        };
        if let Some(uri) = job.params.get("uri") {
            input["import_req"]["method"]["uri"] = uri.clone();
        }
        if let Some(stores) = job.params.get("stores") {
            input["import_req"]["stores"] = stores.clone();
            input["backend"] = stores.clone();
        }
        // A legacy `import` task (`POST /v2/tasks`) shows its input as given.
        let legacy = job.params.get(super::legacy_task::LEGACY_TASK_INPUT);
        if let Some(given) = legacy {
            input = given.clone();
        }
        let message = match (&job.error_code, &job.fail_reason) {
            (Some(code), Some(reason)) => format!("{code}: {reason}"),
            (None, Some(reason)) => reason.clone(),
            _ => String::new(),
        };
        GlanceTask {
            id: job.id.clone(),
            task_type: if location {
                "location_import"
            } else if legacy.is_some() {
                "import"
            } else {
                "api_image_import"
            },
            status,
            owner: job.project_id.clone(),
            image_id,
            input,
            result: job.result.clone(),
            message,
            request_id: job.params.get("request_id").and_then(Value::as_str).map(str::to_string),
            user_id: job.params.get("user_id").and_then(Value::as_str).map(str::to_string),
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }
}

/// The `params` of a job Glance shows as a task, with the request that starts it and its user recorded
/// (the task's `request_id` and `user_id`). `params` must be a JSON object.
pub(crate) fn with_requester(mut params: Value, ctx: &RequestContext) -> Value {
    if let Some(object) = params.as_object_mut() {
        object.insert("request_id".into(), json!(ctx.request_id));
        if let Some(caller) = &ctx.caller {
            object.insert("user_id".into(), json!(caller.user_id));
        }
    }
    params
}

/// Whether `job` is one Glance shows as a task: an import or a location import.
fn is_glance_task(job: &Job) -> bool {
    job.job_type == GLANCE_IMPORT_JOB || job.job_type == GLANCE_LOCATION_JOB
}

impl GlanceImportService {
    /// Every project's import tasks, newest first (admins only: `Forbidden` for others), at most `limit`.
    pub async fn list_tasks(&self, ctx: &RequestContext, limit: u32) -> Result<Vec<GlanceTask>> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.is_admin() {
            return Err(CoreError::Forbidden("listing tasks is allowed to admins only".into()));
        }
        let filter = JobFilter { project_id: None, statuses: vec![], parent_id: None, limit: MAX_JOB_LIST };
        let jobs = self.images.catalog.jobs.list(&filter).await?;
        Ok(jobs.iter().filter(|j| is_glance_task(j)).take(limit as usize).map(GlanceTask::from_job).collect())
    }

    /// One import task; the caller's project's own, or any for admins. `NotFound` otherwise (or if missing).
    pub async fn get_task(&self, ctx: &RequestContext, id: &str) -> Result<GlanceTask> {
        let job = self.jobs.get(ctx, id).await?;
        if !is_glance_task(&job) {
            return Err(CoreError::NotFound(format!("Task {id} not found")));
        }
        Ok(GlanceTask::from_job(&job))
    }

    /// The import tasks of image `id` (any caller who can see the image), newest first.
    pub async fn image_tasks(&self, ctx: &RequestContext, id: Uuid) -> Result<Vec<GlanceTask>> {
        let image = self.images.get(ctx, id).await?;
        let filter =
            JobFilter { project_id: Some(image.owner.clone()), statuses: vec![], parent_id: None, limit: MAX_JOB_LIST };
        let jobs = self.images.catalog.jobs.list(&filter).await.map_err(|e| match e {
            CatalogError::NotFound(m) => CoreError::NotFound(m),
            other => other.into(),
        })?;
        let image_id = id.to_string();
        Ok(jobs
            .iter()
            .filter(|j| is_glance_task(j))
            .filter(|j| j.params.get("image_id").and_then(Value::as_str) == Some(image_id.as_str()))
            .map(GlanceTask::from_job)
            .collect())
    }
}
