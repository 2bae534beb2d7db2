//! Project quotas (`/identity/v1/projects/{project}/quotas`, admin).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Client, Result};

/// One quota of one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// How much of it the project uses.
    pub used: u64,
    /// The limit in force.
    pub limit: u64,
    /// True when the service default applies (no limit was set for the project).
    pub default: bool,
}

/// A per-item limit of one project (no usage of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimit {
    /// The limit in force.
    pub limit: u64,
    /// True when the service default applies (no limit was set for the project).
    pub default: bool,
}

/// A quota of one project that may be unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionalQuotaUsage {
    /// How much of it the project uses.
    pub used: u64,
    /// The limit in force; `None` when there is none.
    pub limit: Option<u64>,
    /// True when the service default applies (no limit was set for the project).
    pub default: bool,
}

/// The quotas of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectQuotas {
    /// Private images the project may own.
    pub private_images: QuotaUsage,
    /// Members (projects it is shared with) each of the project's images may have.
    pub members_per_image: QuotaLimit,
    /// Logical bytes (the sum of image sizes) the project's images may hold.
    pub image_bytes: OptionalQuotaUsage,
}

#[derive(Deserialize)]
struct QuotasBody {
    quotas: ProjectQuotas,
}

impl Client {
    /// `GET /identity/v1/projects/{project}/quotas` (id or name). Admin.
    pub async fn project_quotas(&self, project: &str) -> Result<ProjectQuotas> {
        let url = self.url(&["identity", "v1", "projects", project, "quotas"]);
        let body: QuotasBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.quotas)
    }

    /// `PUT /identity/v1/projects/{project}/quotas` `{"quotas": {"private_images": N|null}}`: sets the
    /// project's private image quota, or (`None`) returns it to the service default. Admin.
    pub async fn set_private_image_quota(&self, project: &str, limit: Option<u64>) -> Result<ProjectQuotas> {
        let url = self.url(&["identity", "v1", "projects", project, "quotas"]);
        let body = json!({"quotas": {"private_images": limit}});
        let body: QuotasBody = self.execute_json(self.request(Method::PUT, url).json(&body)).await?;
        Ok(body.quotas)
    }

    /// `PUT /identity/v1/projects/{project}/quotas` `{"quotas": {"image_bytes": N|null}}`: sets the total
    /// logical bytes the project's images may hold, or (`None`) removes the limit. Admin.
    pub async fn set_image_bytes_quota(&self, project: &str, limit: Option<u64>) -> Result<ProjectQuotas> {
        let url = self.url(&["identity", "v1", "projects", project, "quotas"]);
        let body = json!({"quotas": {"image_bytes": limit}});
        let body: QuotasBody = self.execute_json(self.request(Method::PUT, url).json(&body)).await?;
        Ok(body.quotas)
    }

    /// `PUT /identity/v1/projects/{project}/quotas` with the quotas given (`Some(Some(n))`: set,
    /// `Some(None)`: back to the default, `None`: unchanged), all checked before any is stored. Admin.
    pub async fn set_project_quotas(
        &self,
        project: &str,
        private_images: Option<Option<u64>>,
        members_per_image: Option<Option<u64>>,
    ) -> Result<ProjectQuotas> {
        let url = self.url(&["identity", "v1", "projects", project, "quotas"]);
        let mut quotas = serde_json::Map::new();
        if let Some(limit) = private_images {
            quotas.insert("private_images".into(), json!(limit));
        }
        if let Some(limit) = members_per_image {
            quotas.insert("members_per_image".into(), json!(limit));
        }
        let body = json!({"quotas": quotas});
        let body: QuotasBody = self.execute_json(self.request(Method::PUT, url).json(&body)).await?;
        Ok(body.quotas)
    }
}
