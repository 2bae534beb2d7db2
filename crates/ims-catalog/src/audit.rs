use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One entry of the audit trail, written in the same transaction as the change it records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// `req-<uuid>` of the API request that caused the change.
    pub request_id: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    /// The network address the request came from (`ip:port` of the peer), when known.
    #[serde(default)]
    pub source_address: Option<String>,
    /// What happened, dotted: `image.create`, `image.upload`, `image.delete`, `member.update`, ...
    pub action: String,
    /// The resource acted on, e.g. `image:<uuid>`.
    pub resource: String,
    /// `success` or `failure`.
    pub result: String,
    /// Why the action failed (`result` = `failure`): the error as the caller saw it.
    #[serde(default)]
    pub error: Option<String>,
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(request_id: &str, action: &str, resource: String) -> AuditEvent {
        AuditEvent {
            at: Utc::now(),
            request_id: request_id.to_string(),
            project_id: None,
            user_id: None,
            source_address: None,
            action: action.to_string(),
            resource,
            result: "success".to_string(),
            error: None,
            detail: None,
        }
    }

    /// The same event as a failure of its action with `error`.
    pub fn failed(mut self, error: impl Into<String>) -> AuditEvent {
        self.result = "failure".to_string();
        self.error = Some(error.into());
        self
    }
}
