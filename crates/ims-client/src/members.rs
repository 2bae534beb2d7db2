//! Image members: sharing an image with other projects.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::{Client, Member, MemberStatus, Result};

#[derive(Deserialize)]
struct MemberList {
    members: Vec<Member>,
}

impl Client {
    /// `GET /v2/images/{id}/members`.
    pub async fn list_members(&self, image_id: &str) -> Result<Vec<Member>> {
        let url = self.url(&["v2", "images", image_id, "members"]);
        let list: MemberList = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(list.members)
    }

    /// `POST /v2/images/{id}/members` `{"member": project_id}` (200; the image must be `shared`,
    /// else 403; an existing member 409). The new member is `pending`.
    pub async fn add_member(&self, image_id: &str, project_id: &str) -> Result<Member> {
        let url = self.url(&["v2", "images", image_id, "members"]);
        self.execute_json(self.request(Method::POST, url).json(&json!({ "member": project_id }))).await
    }

    /// `GET /v2/images/{id}/members/{member}`.
    pub async fn get_member(&self, image_id: &str, project_id: &str) -> Result<Member> {
        let url = self.url(&["v2", "images", image_id, "members", project_id]);
        self.execute_json(self.request(Method::GET, url)).await
    }

    /// `PUT /v2/images/{id}/members/{member}` `{"status": ...}`: only the member project may answer.
    pub async fn update_member_status(&self, image_id: &str, project_id: &str, status: MemberStatus) -> Result<Member> {
        let url = self.url(&["v2", "images", image_id, "members", project_id]);
        self.execute_json(self.request(Method::PUT, url).json(&json!({ "status": status.as_str() }))).await
    }

    /// `DELETE /v2/images/{id}/members/{member}` (204).
    pub async fn remove_member(&self, image_id: &str, project_id: &str) -> Result<()> {
        let url = self.url(&["v2", "images", image_id, "members", project_id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }
}
