//! Other regions: IMS deployments with their own catalog and chunk store, reached over HTTP through
//! their replication API (`/internal/v1/replication/...`, see [`crate::replication`]) with the
//! credentials of a service user that is an admin in the target. `CopyImageCrossRegion` sends an image
//! to one of them (see `pipelines::cross_region`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ims_store::{ChunkId, Manifest};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most chunk ids one `missing` request asks about (the replication API refuses more).
pub const MAX_CHUNKS_PER_QUERY: usize = 1000;

/// One configured region: where its API is and the token of its service user.
#[derive(Clone)]
pub struct RegionPeer {
    name: String,
    endpoint: reqwest::Url,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for RegionPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegionPeer({} at {})", self.name, self.endpoint)
    }
}

/// How a call to another region failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The region refused the configured credentials (401 or 403).
    #[error("region {region} refused the configured credentials: {message}")]
    Credentials { region: String, message: String },
    /// The region has no project of that name.
    #[error("region {region}: {message}")]
    NoSuchProject { region: String, message: String },
    /// Registration found chunks the region does not hold (or no longer holds): send them again.
    #[error("region {region} lacks chunks of the image: {message}")]
    ChunksMissing { region: String, message: String },
    /// The target project's image quota is used up.
    #[error("region {region}: {message}")]
    Quota { region: String, message: String },
    /// The region refused the request as invalid (a bug or an incompatible version).
    #[error("region {region} refused the request: {message}")]
    Refused { region: String, message: String },
    /// The region could not be reached or failed (may work later).
    #[error("region {region} is unavailable: {message}")]
    Unavailable { region: String, message: String },
}

/// What the source sends to register an image in the target region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRegistration {
    /// Id of the new image (chosen by the source, so that a repeated registration finds it).
    pub image_id: String,
    /// The target project, by name.
    pub project_name: String,
    pub name: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub size: u64,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    /// The image's data: every chunk it names must already be in the target's store.
    pub manifest: Manifest,
}

#[derive(Deserialize)]
struct MissingAnswer {
    missing: Vec<ChunkId>,
}

impl RegionPeer {
    /// A peer named `name` at `endpoint` (an `http`/`https` base URL) using `token` (`X-Auth-Token`).
    /// `Err` with a message for a bad endpoint or an empty token.
    pub fn new(name: &str, endpoint: &str, token: &str) -> Result<RegionPeer, String> {
        let mut url = reqwest::Url::parse(endpoint).map_err(|e| format!("region {name}: bad endpoint {endpoint:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("region {name}: the endpoint {endpoint:?} must be an http or https URL"));
        }
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        if token.trim().is_empty() {
            return Err(format!("region {name}: a token is required"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("region {name}: HTTP client: {e}"))?;
        Ok(RegionPeer { name: name.to_string(), endpoint: url, token: token.trim().to_string(), http })
    }

    /// The region's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Of `ids` (at most [`MAX_CHUNKS_PER_QUERY`]), those the region's store lacks.
    pub async fn missing_chunks(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>, PeerError> {
        let body = json!({"chunks": ids});
        let response = self.send(self.request(Method::POST, "internal/v1/replication/chunks/missing").json(&body)).await?;
        let answer: MissingAnswer = response.json().await.map_err(|e| self.unavailable(format!("bad answer: {e}")))?;
        Ok(answer.missing)
    }

    /// Stores `object` (a chunk object exactly as stored, see `ims_store::chunk`) as chunk `id` of
    /// plaintext length `length` in the region; the region verifies it first.
    pub async fn put_chunk(&self, id: &ChunkId, length: u32, object: Bytes) -> Result<(), PeerError> {
        let path = format!("internal/v1/replication/chunks/{id}?length={length}");
        let request = self.request(Method::PUT, &path).header("content-type", "application/octet-stream").body(object);
        self.send(request).await.map(drop)
    }

    /// Registers the image in the region (idempotent for the same `image_id`).
    pub async fn register_image(&self, registration: &ImageRegistration) -> Result<(), PeerError> {
        self.send(self.request(Method::POST, "internal/v1/replication/images").json(registration)).await.map(drop)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = self.endpoint.join(path).expect("relative paths join");
        self.http.request(method, url).header("x-auth-token", &self.token)
    }

    fn unavailable(&self, message: String) -> PeerError {
        PeerError::Unavailable { region: self.name.clone(), message }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, PeerError> {
        let response = request.send().await.map_err(|e| self.unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        let message = format!("{status}: {message}");
        let region = self.name.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PeerError::Credentials { region, message },
            StatusCode::NOT_FOUND => PeerError::NoSuchProject { region, message },
            StatusCode::CONFLICT => PeerError::ChunksMissing { region, message },
            StatusCode::PAYLOAD_TOO_LARGE => PeerError::Quota { region, message },
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => PeerError::Unavailable { region, message },
            _ => PeerError::Refused { region, message },
        })
    }
}

/// The regions this node can copy images to, by name.
#[derive(Clone, Debug, Default)]
pub struct Regions {
    by_name: Arc<BTreeMap<String, RegionPeer>>,
}

impl Regions {
    pub fn new(peers: impl IntoIterator<Item = RegionPeer>) -> Regions {
        Regions { by_name: Arc::new(peers.into_iter().map(|p| (p.name.clone(), p)).collect()) }
    }

    /// The region named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&RegionPeer> {
        self.by_name.get(name)
    }

    /// The configured region names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}
