//! Share auto-acceptance (`/v1/cloudimages/share_auto_accept`): the projects whose shares the caller's
//! project accepts without answering.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::{Client, Result};

#[derive(Deserialize)]
struct ProjectsBody {
    projects: Vec<String>,
}

#[derive(Deserialize)]
struct ProjectBody {
    project: String,
}

impl Client {
    /// `GET /v1/cloudimages/share_auto_accept`: the project ids, ordered.
    pub async fn auto_accept_sources(&self) -> Result<Vec<String>> {
        let url = self.url(&["v1", "cloudimages", "share_auto_accept"]);
        let body: ProjectsBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.projects)
    }

    /// `POST /v1/cloudimages/share_auto_accept {"project"}` (an id or name; idempotent). Returns the id.
    pub async fn add_auto_accept_source(&self, project: &str) -> Result<String> {
        let url = self.url(&["v1", "cloudimages", "share_auto_accept"]);
        let body: ProjectBody =
            self.execute_json(self.request(Method::POST, url).json(&json!({"project": project}))).await?;
        Ok(body.project)
    }

    /// `DELETE /v1/cloudimages/share_auto_accept/{project}` (404 if it is not on the list).
    pub async fn remove_auto_accept_source(&self, project: &str) -> Result<()> {
        let url = self.url(&["v1", "cloudimages", "share_auto_accept", project]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }
}
