//! Typed HTTP client for the IMS APIs: the OpenStack Images API v2 (`/v2/...`) and the identity admin
//! API (`/identity/v1/...`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ims_client::ClientError> {
//! use ims_client::{Client, CreateImage};
//! let client = Client::new("http://127.0.0.1:9292", "my-token")?;
//! let image = client.create_image(&CreateImage::named("cirros")).await?;
//! client.upload_bytes(&image.id, b"hello".to_vec()).await?;
//! let data = client.download(&image.id, None).await?.bytes().await?;
//! assert_eq!(&data[..], b"hello");
//! # Ok(()) }
//! ```
//!
//! Every method is `async`, takes `&self`, and returns [`ClientError::Http`] for any non-success
//! status. A `Client` is cheap to clone (the connection pool is shared); [`Client::with_token`] gives
//! one that acts as someone else on the same server.

mod audit;
mod buckets;
mod capsules;
mod compute;
mod error;
mod favorites;
mod image_quota;
mod share_auto_accept;
mod identity;
mod images;
mod jobs;
mod kms;
mod market;
mod members;
mod metadefs;
mod nodes;
mod pipelines;
mod quotas;
mod recycle_bin;
mod store_admin;
mod types;

use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

pub use audit::{AuditBrokenLink, AuditEventInfo, AuditFilter, AuditPage, AuditVerification};
pub use buckets::{BucketInfo, BucketObjectInfo};
pub use capsules::{Capsule, CapsuleList, CreateCapsule};
pub use compute::{NewServerDataVolume, NewServerRequest, ServerInfo, VolumeAttachment, VolumeInfo};
pub use error::ClientError;
pub use favorites::FavoriteImage;
pub use image_quota::ImageQuota;
pub use images::Download;
pub use jobs::JobInfo;
pub use nodes::NodeInfo;
pub use pipelines::ImportImage;
pub use kms::KmsKey;
pub use market::{ListingScope, MarketListing, MarketSubscription, NewMarketListing};
pub use metadefs::MetadefKind;
pub use recycle_bin::{Ancestry, AncestryLink, BinnedImage};
pub use quotas::{OptionalQuotaUsage, ProjectQuotas, QuotaLimit, QuotaUsage};
pub use store_admin::{ChunkProblem, GcReport, ManifestProblem, ProjectStoreUsage, SkippedImage, StoreStats, VerifyReport};
pub use reqwest;
pub use types::*;

/// `Result` with [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The server `Client::from_env` talks to when `IMS_URL` is unset.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9292";

/// Media type of Glance's current JSON-patch dialect.
pub const PATCH_CONTENT_TYPE: &str = "application/openstack-images-v2.1-json-patch";

/// A connection to one IMS server, acting with one token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// The server root, path without a trailing `/` (may be empty, or a prefix such as `/ims`).
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:9292`; a trailing `/v2` is
    /// accepted and ignored) sending `X-Auth-Token: token`. An empty token sends no header.
    pub fn new(base_url: impl AsRef<str>, token: impl Into<String>) -> Result<Self> {
        let base = normalize_base(base_url.as_ref())?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("ims-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(ClientError::Transport)?;
        let token = token.into();
        Ok(Client { http, base, token: (!token.is_empty()).then_some(token) })
    }

    /// A client configured from `IMS_URL` (default [`DEFAULT_URL`]) and `IMS_TOKEN` (none if unset).
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("IMS_URL").ok().filter(|s| !s.is_empty());
        let token = std::env::var("IMS_TOKEN").unwrap_or_default();
        Client::new(url.as_deref().unwrap_or(DEFAULT_URL), token)
    }

    /// The same server and connection pool, acting with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        let token = token.into();
        Client { http: self.http.clone(), base: self.base.clone(), token: (!token.is_empty()).then_some(token) }
    }

    /// The server root this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The token this client sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to `path` (e.g. `/v2/images?limit=1`, appended to the server root) with the token and
    /// `Accept: application/json` set: the escape hatch for what the typed methods do not cover. Send it
    /// yourself (`.send().await`); statuses are not checked.
    pub fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        self.authorize(self.http.request(method, url))
    }

    /// The URL of `segments` under the server root; each segment is percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("base URL was checked to be hierarchical")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// The URL of an absolute path-and-query the server gave us (a `next` link), or of a full URL.
    pub(crate) fn url_for_link(&self, link: &str) -> Result<Url> {
        let joined = if link.starts_with("http://") || link.starts_with("https://") {
            link.to_string()
        } else {
            let sep = if link.starts_with('/') { "" } else { "/" };
            format!("{}{}{}", self.base.as_str().trim_end_matches('/'), sep, link)
        };
        Url::parse(&joined).map_err(|e| ClientError::Decode(format!("bad link {link:?} from the server: {e}")))
    }

    pub(crate) fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.authorize(self.http.request(method, url))
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = rb.header(reqwest::header::ACCEPT, "application/json");
        match &self.token {
            Some(t) => rb.header("X-Auth-Token", t),
            None => rb,
        }
    }

    /// Sends the request; a status outside 2xx becomes [`ClientError::Http`].
    pub(crate) async fn execute(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = rb.send().await?;
        check(response).await
    }

    /// Sends the request and decodes a 2xx JSON body.
    pub(crate) async fn execute_json<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<T> {
        let response = self.execute(rb).await?;
        decode(response).await
    }

    /// Sends the request and discards a 2xx body.
    pub(crate) async fn execute_empty(&self, rb: reqwest::RequestBuilder) -> Result<()> {
        let response = self.execute(rb).await?;
        response.bytes().await?;
        Ok(())
    }
}

/// Turns an error status into [`ClientError::Http`], reading the body for its message.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(ClientError::from_response_body(status.as_u16(), &body))
}

/// Decodes a JSON body, naming the request in the error.
pub(crate) async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let path = response.url().path().to_string();
    let body = response.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| {
        let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        ClientError::Decode(format!("{path}: {e} (body: {snippet})"))
    })
}

fn normalize_base(raw: &str) -> Result<Url> {
    let invalid = |reason: String| ClientError::InvalidUrl { url: raw.to_string(), reason };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if url.cannot_be_a_base() {
        return Err(invalid("not a hierarchical URL".into()));
    }
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut segs = url.path_segments_mut().expect("checked above");
        segs.pop_if_empty();
    }
    // Accept the Images API endpoint (`.../v2`) as well as the server root.
    if url.path_segments().and_then(|mut s| s.next_back()) == Some("v2") {
        url.path_segments_mut().expect("checked above").pop();
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let c = Client::new("http://127.0.0.1:9292", "t").unwrap();
        assert_eq!(c.url(&["v2", "images"]).as_str(), "http://127.0.0.1:9292/v2/images");
        let c = Client::new("http://127.0.0.1:9292/v2/", "t").unwrap();
        assert_eq!(c.url(&["v2", "images"]).as_str(), "http://127.0.0.1:9292/v2/images");
        let c = Client::new("https://h/ims/", "").unwrap();
        assert_eq!(c.url(&["v2", "images", "a b/c"]).as_str(), "https://h/ims/v2/images/a%20b%2Fc");
        assert_eq!(c.token(), None);
        assert_eq!(
            c.url_for_link("/v2/images?marker=x&limit=2").unwrap().as_str(),
            "https://h/ims/v2/images?marker=x&limit=2"
        );
        assert!(Client::new("ftp://h", "t").is_err());
        assert!(Client::new("not a url", "t").is_err());
    }
}
