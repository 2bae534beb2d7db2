//! The audit trail (`/audit/v1/...`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, Result};

/// One stored audit event with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventInfo {
    pub position: u64,
    /// RFC 3339 time of the event.
    pub at: String,
    pub request_id: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub source_address: Option<String>,
    /// `image.create`, `image.delete`, `http.post` (a failed request), `job.failed`, ...
    pub action: String,
    pub resource: String,
    /// `success` or `failure`.
    pub result: String,
    pub error: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// One page of events and the link to the next one (none on the last page).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEventInfo>,
    #[serde(default)]
    pub next: Option<String>,
}

/// Filters of [`Client::audit_events`] and [`Client::export_audit_events`]; every one set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// RFC 3339; events at or after it.
    pub since: Option<String>,
    /// RFC 3339; events before it.
    pub until: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    /// Exact action, or `prefix.*`.
    pub action: Option<String>,
    pub resource: Option<String>,
    /// `success` or `failure`.
    pub result: Option<String>,
    /// Events after this position (before it when `newest_first`); paging only.
    pub marker: Option<u64>,
    /// Page size; paging only.
    pub limit: Option<u32>,
    pub newest_first: bool,
}

impl AuditFilter {
    fn pairs(&self, paged: bool) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for (key, value) in [
            ("since", &self.since),
            ("until", &self.until),
            ("project_id", &self.project_id),
            ("user_id", &self.user_id),
            ("action", &self.action),
            ("resource", &self.resource),
            ("result", &self.result),
        ] {
            if let Some(value) = value {
                pairs.push((key, value.clone()));
            }
        }
        if paged {
            if let Some(marker) = self.marker {
                pairs.push(("marker", marker.to_string()));
            }
            if let Some(limit) = self.limit {
                pairs.push(("limit", limit.to_string()));
            }
            if self.newest_first {
                pairs.push(("sort", "desc".into()));
            }
        }
        pairs
    }
}

/// The result of walking the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    pub intact: bool,
    /// Events that continue the chain.
    pub events: u64,
    /// Hash of the last intact event.
    pub head_hash: String,
    pub broken: Option<AuditBrokenLink>,
}

/// Where the chain breaks and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBrokenLink {
    pub position: u64,
    pub reason: String,
}

impl Client {
    /// `GET /audit/v1/events`: one page of events (admins see every project's, others their own).
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<AuditPage> {
        let url = self.url(&["audit", "v1", "events"]);
        self.execute_json(self.request(Method::GET, url).query(&filter.pairs(true))).await
    }

    /// `GET /audit/v1/events/export`: every matching event as JSON lines; the response body streams.
    pub async fn export_audit_events(&self, filter: &AuditFilter) -> Result<reqwest::Response> {
        let url = self.url(&["audit", "v1", "events", "export"]);
        self.execute(self.request(Method::GET, url).query(&filter.pairs(false))).await
    }

    /// `GET /audit/v1/verification`: checks the whole hash chain. Admin.
    pub async fn verify_audit_trail(&self) -> Result<AuditVerification> {
        let url = self.url(&["audit", "v1", "verification"]);
        self.execute_json(self.request(Method::GET, url)).await
    }
}
