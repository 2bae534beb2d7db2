//! The IMS API's image pipelines (each answers a job id; follow it with [`Client::get_job`] or
//! [`Client::wait_job`]): images from bucket files, exports to buckets, in-region copies.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Client, Result};

/// What [`Client::create_image_from_file`] makes.
#[derive(Debug, Clone, Default)]
pub struct ImportImage {
    pub name: String,
    /// `bucket:key`.
    pub image_url: String,
    /// Smallest disk, GiB.
    pub min_disk: u64,
    /// A data disk image (CreateDataImage) rather than a system disk image.
    pub data_image: bool,
    /// ImportImageQuick (RAW or ZVHD2, stored as is).
    pub quick: bool,
    pub os_version: Option<String>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct JobId {
    job_id: String,
}

impl Client {
    async fn job_of(&self, method: Method, segments: &[&str], body: Value) -> Result<String> {
        let answer: JobId = self.execute_json(self.request(method, self.url(segments)).json(&body)).await?;
        Ok(answer.job_id)
    }

    /// CreateImage with `image_url` (`POST /v2/cloudimages/action`), CreateDataImage
    /// (`POST /v1/cloudimages/dataimages/action`) or ImportImageQuick (`POST /v2/cloudimages/quickimport/action`),
    /// as `image` says. Returns the job id.
    pub async fn create_image_from_file(&self, image: &ImportImage) -> Result<String> {
        let mut body = json!({"name": image.name, "image_url": image.image_url, "min_disk": image.min_disk});
        if let Some(v) = &image.os_version {
            body["os_version"] = json!(v);
        }
        if let Some(d) = &image.description {
            body["description"] = json!(d);
        }
        if image.quick {
            body["type"] = json!(if image.data_image { "DataImage" } else { "ECS" });
            self.job_of(Method::POST, &["v2", "cloudimages", "quickimport", "action"], body).await
        } else if image.data_image {
            self.job_of(Method::POST, &["v1", "cloudimages", "dataimages", "action"], body).await
        } else {
            self.job_of(Method::POST, &["v2", "cloudimages", "action"], body).await
        }
    }

    /// ExportImage (`POST /v1/cloudimages/{id}/file`): the image as `file_format` into `bucket_url`
    /// (`bucket:key`). Returns the job id.
    pub async fn export_image(&self, id: &str, bucket_url: &str, file_format: &str) -> Result<String> {
        let body = json!({"bucket_url": bucket_url, "file_format": file_format});
        self.job_of(Method::POST, &["v1", "cloudimages", id, "file"], body).await
    }

    /// CopyImageInRegion (`POST /v1/cloudimages/{id}/copy`). Returns the job id.
    pub async fn copy_image(&self, id: &str, name: &str, description: Option<&str>) -> Result<String> {
        let mut body = json!({"name": name});
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        self.job_of(Method::POST, &["v1", "cloudimages", id, "copy"], body).await
    }

    /// RegisterImage (`PUT /v1/cloudimages/{id}/upload`): fills a queued image from `image_url`.
    pub async fn register_image(&self, id: &str, image_url: &str) -> Result<String> {
        self.job_of(Method::PUT, &["v1", "cloudimages", id, "upload"], json!({"image_url": image_url})).await
    }
}
