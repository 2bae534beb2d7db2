//! The recycle bin (`/v1/recycle-bin/images...`), forced deletion, and lineage
//! (`/v1/cloudimages/{id}/ancestry`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, Image, Result};

/// An image in the recycle bin: its IMS record (with the status a restore brings back) and its times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinnedImage {
    #[serde(flatten)]
    pub image: Image,
}

impl BinnedImage {
    /// When it was deleted into the bin (`YYYY-MM-DDThh:mm:ssZ`).
    pub fn binned_at(&self) -> Option<&str> {
        self.image.property("binned_at")
    }

    /// From when it may be purged (`YYYY-MM-DDThh:mm:ssZ`).
    pub fn purge_after(&self) -> Option<&str> {
        self.image.property("purge_after")
    }
}

#[derive(Deserialize)]
struct BinList {
    images: Vec<BinnedImage>,
}

/// One link of an image's ancestry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AncestryLink {
    pub id: String,
    /// False for an image the caller may not see (only its id is given) or one without record.
    pub visible: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// `live`, `binned`, `deleted`, or `missing` for a parent without record.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source_ref: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `GET /v1/cloudimages/{id}/ancestry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ancestry {
    pub image_id: String,
    /// The image first, then each parent up to the root (or to where the walk stopped).
    pub ancestry: Vec<AncestryLink>,
    /// Whether the walk reached a root.
    pub complete: bool,
    /// Why it stopped before a root: `hidden`, `missing`, `cycle` or `depth`.
    #[serde(default)]
    pub stopped: Option<String>,
}

impl Client {
    /// `DELETE /v2/images/{id}` with `X-Ims-Force-Delete: true` (204): deleted for good at once, not
    /// into the recycle bin.
    pub async fn force_delete_image(&self, id: &str) -> Result<()> {
        let url = self.url(&["v2", "images", id]);
        self.execute_empty(self.request(Method::DELETE, url).header("X-Ims-Force-Delete", "true")).await
    }

    /// `GET /v1/recycle-bin/images[?all_projects=true]`: the caller project's binned images (every
    /// project's for an admin asking `all_projects`), oldest binned first.
    pub async fn recycle_bin(&self, all_projects: bool) -> Result<Vec<BinnedImage>> {
        let mut url = self.url(&["v1", "recycle-bin", "images"]);
        if all_projects {
            url.query_pairs_mut().append_pair("all_projects", "true");
        }
        let body: BinList = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.images)
    }

    /// `GET /v1/recycle-bin/images/{id}`: one binned image (404 if not in the caller's bin).
    pub async fn binned_image(&self, id: &str) -> Result<BinnedImage> {
        let url = self.url(&["v1", "recycle-bin", "images", id]);
        self.execute_json(self.request(Method::GET, url)).await
    }

    /// `POST /v1/recycle-bin/images/{id}/restore`: brings the image back (same id, data and checksums)
    /// and returns its IMS record.
    pub async fn restore_image(&self, id: &str) -> Result<Image> {
        let url = self.url(&["v1", "recycle-bin", "images", id, "restore"]);
        self.execute_json(self.request(Method::POST, url)).await
    }

    /// `DELETE /v1/recycle-bin/images/{id}` (204): purges the binned image now.
    pub async fn purge_image(&self, id: &str) -> Result<()> {
        let url = self.url(&["v1", "recycle-bin", "images", id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `GET /v1/cloudimages/{id}/ancestry`: the image's lineage up to its root.
    pub async fn image_ancestry(&self, id: &str) -> Result<Ancestry> {
        let url = self.url(&["v1", "cloudimages", id, "ancestry"]);
        self.execute_json(self.request(Method::GET, url)).await
    }
}
