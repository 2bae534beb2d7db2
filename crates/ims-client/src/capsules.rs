//! Capsule images (`/v1/capsules`): an application packaged on a base image, deployable in one step.

use std::collections::BTreeMap;

use base64::Engine;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Client, ClientError, Image, Result};

/// What a capsule is made of, for [`Client::create_capsule`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateCapsule {
    pub name: String,
    /// The base system disk image.
    pub base_image_id: String,
    /// The application data disk images, in attachment order (one or more).
    pub app_image_ids: Vec<String>,
    /// cloud-init user data (sent base64-encoded; at most 65535 bytes).
    pub user_data: Vec<u8>,
    /// Metadata properties of the capsule.
    pub properties: BTreeMap<String, String>,
    /// `private`, `shared` (default), `community` or `public` (admins).
    pub visibility: Option<String>,
}

/// A capsule with its parts, as `GET /v1/capsules/{id}` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Capsule {
    /// The capsule record (an image; `base_image_id` and `app_image_ids` are among its properties).
    pub image: Image,
    pub base_image: Image,
    pub app_images: Vec<Image>,
    pub user_data: Vec<u8>,
}

#[derive(Deserialize)]
struct CapsuleWire {
    image: Image,
    base_image: Image,
    app_images: Vec<Image>,
    #[serde(default)]
    user_data: String,
}

#[derive(Deserialize)]
struct CapsuleBody {
    capsule: CapsuleWire,
}

/// One page of `GET /v1/capsules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapsuleList {
    /// Capsule records, newest first (`base_image_id` and `app_image_ids` among their properties).
    pub capsules: Vec<Image>,
    /// Pass as `marker` for the next page; `None` on the last page.
    #[serde(default)]
    pub next_marker: Option<String>,
}

impl TryFrom<CapsuleWire> for Capsule {
    type Error = ClientError;
    fn try_from(w: CapsuleWire) -> Result<Capsule> {
        let user_data = base64::engine::general_purpose::STANDARD
            .decode(&w.user_data)
            .map_err(|e| ClientError::Decode(format!("capsule user_data is not base64: {e}")))?;
        Ok(Capsule { image: w.image, base_image: w.base_image, app_images: w.app_images, user_data })
    }
}

impl Client {
    /// `POST /v1/capsules`: registers a capsule over existing images and returns it resolved.
    pub async fn create_capsule(&self, capsule: &CreateCapsule) -> Result<Capsule> {
        let mut body = json!({
            "name": capsule.name,
            "base_image_id": capsule.base_image_id,
            "app_image_ids": capsule.app_image_ids,
            "user_data": base64::engine::general_purpose::STANDARD.encode(&capsule.user_data),
            "properties": capsule.properties,
        });
        if let Some(v) = &capsule.visibility {
            body["visibility"] = json!(v);
        }
        let url = self.url(&["v1", "capsules"]);
        let out: CapsuleBody = self.execute_json(self.request(Method::POST, url).json(&body)).await?;
        out.capsule.try_into()
    }

    /// `GET /v1/capsules`: one page of the capsules the caller can see (`limit` default 100).
    pub async fn list_capsules(&self, limit: Option<u32>, marker: Option<&str>) -> Result<CapsuleList> {
        let mut url = self.url(&["v1", "capsules"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(limit) = limit {
                q.append_pair("limit", &limit.to_string());
            }
            if let Some(marker) = marker {
                q.append_pair("marker", marker);
            }
        }
        self.execute_json(self.request(Method::GET, url)).await
    }

    /// `GET /v1/capsules/{id}`: the capsule with its base image, application images and user data.
    pub async fn get_capsule(&self, id: &str) -> Result<Capsule> {
        let url = self.url(&["v1", "capsules", id]);
        let out: CapsuleBody = self.execute_json(self.request(Method::GET, url)).await?;
        out.capsule.try_into()
    }

    /// `DELETE /v1/capsules/{id}`: deletes the capsule record like any image (its parts stay).
    pub async fn delete_capsule(&self, id: &str) -> Result<()> {
        let url = self.url(&["v1", "capsules", id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }
}
