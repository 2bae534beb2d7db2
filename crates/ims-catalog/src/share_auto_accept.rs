//! Share auto-acceptance: the projects whose shares a project accepts without answering them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{AuditEvent, Result};

/// Each project's list of projects it accepts shares from.
#[async_trait]
pub trait ShareAutoAcceptRepository: Send + Sync {
    /// Puts `from_project` on the list of `project_id` unless it is there; returns whether it was added.
    /// Idempotent (no event is stored for an entry already there). `NotFound` if `project_id` is missing.
    async fn add(&self, project_id: &str, from_project: &str, at: DateTime<Utc>, event: &AuditEvent) -> Result<bool>;

    /// Takes `from_project` off the list of `project_id`. `NotFound` if it is not on it.
    async fn remove(&self, project_id: &str, from_project: &str, event: &AuditEvent) -> Result<()>;

    /// The projects `project_id` accepts shares from, ordered by id. Empty for an unknown project.
    async fn list(&self, project_id: &str) -> Result<Vec<String>>;

    /// Whether `project_id` accepts shares from `from_project`.
    async fn accepts(&self, project_id: &str, from_project: &str) -> Result<bool>;
}
