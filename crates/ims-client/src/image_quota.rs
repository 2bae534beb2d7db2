//! The caller's own project quota (`GET /v1/cloudimages/quota`, the IMS API's ShowImageQuota).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, Result};

/// One quota of the caller's project as the IMS API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageQuota {
    /// The resource limited: `image` (private images the project owns) or `image_bytes` (logical bytes
    /// of the images the project owns).
    #[serde(rename = "type")]
    pub resource: String,
    /// How much the project uses now.
    pub used: u64,
    /// The limit in force for the project; -1 when there is none.
    pub quota: i64,
    /// The smallest limit an admin may set.
    pub min: u64,
    /// The largest limit an admin may set.
    pub max: u64,
}

#[derive(Deserialize)]
struct QuotaBody {
    quotas: QuotaResources,
}

#[derive(Deserialize)]
struct QuotaResources {
    resources: Vec<ImageQuota>,
}

impl Client {
    /// `GET /v1/cloudimages/quota`: every quota of the caller's project, with its usage. Any signed-in
    /// caller.
    pub async fn own_quotas(&self) -> Result<Vec<ImageQuota>> {
        let url = self.url(&["v1", "cloudimages", "quota"]);
        let body: QuotaBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.quotas.resources)
    }

    /// The byte quota of the caller's project (the `image_bytes` entry of [`Client::own_quotas`]).
    pub async fn own_byte_quota(&self) -> Result<ImageQuota> {
        self.own_quotas()
            .await?
            .into_iter()
            .find(|q| q.resource == "image_bytes")
            .ok_or_else(|| ClientError::Decode("the quota answer has no \"image_bytes\" entry".into()))
    }

    /// The private image quota of the caller's project (the `image` entry of [`Client::own_quotas`]).
    pub async fn own_image_quota(&self) -> Result<ImageQuota> {
        self.own_quotas()
            .await?
            .into_iter()
            .find(|q| q.resource == "image")
            .ok_or_else(|| ClientError::Decode("the quota answer has no \"image\" entry".into()))
    }
}
