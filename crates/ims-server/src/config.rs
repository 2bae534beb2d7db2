//! Server settings: defaults, then a TOML file, then `IMS_*` environment variables, then flags.
//!
//! This module owns the defaults and the TOML layer; the command line (`ims serve`) applies the
//! environment and flag layers on top through [`Settings::apply`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything one IMS node needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Where the embedded defaults keep their files.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` (default: `<data-dir>/ims.db`) or `postgres://...`.
    pub database: Option<String>,
    /// `file:///PATH` (default: `<data-dir>/store`), `s3://bucket?...` or `memory://`.
    pub store: Option<String>,
    /// Access key id for an `s3://` store (else taken from `IMS_S3_ACCESS_KEY_ID` or `AWS_ACCESS_KEY_ID`).
    pub s3_access_key_id: Option<String>,
    /// Secret access key for an `s3://` store (else `IMS_S3_SECRET_ACCESS_KEY` or `AWS_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: Option<String>,
    /// Address of the NBD server; none unless set.
    pub nbd_listen: Option<SocketAddr>,
    /// The admin token to create (or keep valid) at start; random and written to
    /// `<data-dir>/admin-token` when unset on first start.
    pub admin_token: Option<String>,
    /// Largest image file accepted, in bytes.
    pub image_size_cap: u64,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Base URL clients use to reach this service, for links in responses; derived from the
    /// request's `Host` header when unset.
    pub public_url: Option<String>,
    /// Seconds between background garbage collections of the chunk store; 0 turns them off.
    pub gc_interval: u64,
    /// Grace period of garbage collection, in seconds: only objects older than this are deleted. Every
    /// node sharing a store must use the same value (writers rely on it, see `docs/storage.md`).
    pub gc_grace: u64,
    /// Seconds a deleted image stays in the recycle bin, restorable, before it is purged (default 7 days);
    /// 0 turns the bin off: deletions are final at once.
    pub recycle_bin_retention: u64,
    /// Bytes of decoded chunks this node keeps in memory for random access (format inspection, lazy
    /// reads), shared by all readers.
    pub chunk_cache_bytes: u64,
    /// Jobs (imports, exports, copies) this node runs at once; 0: it runs none (other nodes do).
    pub job_workers: usize,
    /// Seconds without a heartbeat after which a running job is taken over by another worker (its node
    /// is presumed dead); heartbeats come at a quarter of it, at most every 5 s.
    pub job_stale_after: u64,
    /// User object storage (import sources, export targets): `file:///PATH` (default:
    /// `<data-dir>/buckets`), `s3://bucket?...` (with the s3 credentials above) or `memory://`.
    pub buckets: Option<String>,
    /// Projects (besides its owner) allowed to use a bucket: `[bucket_grants] shared-isos = ["p1", "p2"]`.
    pub bucket_grants: std::collections::BTreeMap<String, Vec<String>>,
    /// The stored format of imported files per source format: `[import_conversions] qcow2 = "raw"` (or
    /// `"zvhd2"`, or `"keep"`); qcow2, vmdk and vhd can be converted; unlisted formats are kept.
    pub import_conversions: std::collections::BTreeMap<String, String>,
    /// Largest bucket file a standard import takes, in bytes (default 128 GiB).
    pub max_import_size: u64,
    /// Largest bucket file a quick import takes, in bytes (default 1 TiB).
    pub max_quick_import_size: u64,
    /// Exports are refused for images this large (virtual size, bytes) or larger (default 1 TiB).
    pub max_export_size: u64,
    /// Glance interoperable import (`/v2/images/{id}/import`): `[glance_import]`.
    pub glance_import: GlanceImportConfig,
    /// Other regions images can be copied to (`CopyImageCrossRegion`): `[regions.<name>]`.
    pub regions: std::collections::BTreeMap<String, RegionConfig>,
    /// Glance stores besides the default one (`local`, the `store` above) that images can be copied to
    /// with `copy-image`: `[stores.<id>]`.
    pub stores: std::collections::BTreeMap<String, StoreConfig>,
}

/// One extra Glance store (`[stores.<id>]` in the TOML file): a chunk store of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `file:///PATH`, `s3://bucket?...` (with the s3 credentials above) or `memory://`.
    pub url: String,
    /// What `/v2/info/stores` says of the store.
    #[serde(default)]
    pub description: String,
}

/// One other region (`[regions.<name>]` in the TOML file): another IMS deployment, reached over HTTP.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Base URL of the region's API, e.g. `https://ims.region-b.example:9292`.
    pub endpoint: String,
    /// Token of a service user with the admin role in the region (it registers copies in any project).
    pub token: String,
}

impl std::fmt::Debug for RegionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionConfig").field("endpoint", &self.endpoint).field("token", &"***").finish()
    }
}

/// Glance interoperable import settings (`[glance_import]` in the TOML file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlanceImportConfig {
    /// Import methods offered, as `/v2/info/import` lists them: `glance-direct`, `web-download`,
    /// `copy-image`.
    pub methods: Vec<String>,
    /// Hosts `web-download` may fetch from (exact names); empty: any host.
    pub web_download_allowed_hosts: Vec<String>,
    /// Whether `web-download` may fetch from loopback, private, link-local, unspecified and multicast
    /// addresses (off by default: it would let callers reach the service's own network).
    pub web_download_allow_private_addresses: bool,
    /// Largest file `web-download` fetches, in bytes; `image_size_cap` when unset.
    pub web_download_max_size: Option<u64>,
}

impl Default for GlanceImportConfig {
    fn default() -> GlanceImportConfig {
        GlanceImportConfig {
            methods: vec!["glance-direct".into(), "web-download".into(), "copy-image".into()],
            web_download_allowed_hosts: Vec::new(),
            web_download_allow_private_addresses: false,
            web_download_max_size: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9292)),
            data_dir: PathBuf::from("ims-data"),
            database: None,
            store: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            nbd_listen: None,
            admin_token: None,
            image_size_cap: 1 << 40,
            log_format: "text".into(),
            public_url: None,
            gc_interval: 6 * 3600,
            gc_grace: 24 * 3600,
            recycle_bin_retention: 7 * 24 * 3600,
            chunk_cache_bytes: ims_store::DEFAULT_CHUNK_CACHE_BYTES,
            job_workers: 2,
            job_stale_after: 30,
            buckets: None,
            bucket_grants: Default::default(),
            import_conversions: Default::default(),
            max_import_size: 128 << 30,
            max_quick_import_size: 1 << 40,
            max_export_size: 1 << 40,
            glance_import: GlanceImportConfig::default(),
            regions: Default::default(),
            stores: Default::default(),
        }
    }
}

/// Values given on top of the file: from the environment or the command line. `None` keeps the
/// value below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub store: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub nbd_listen: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub image_size_cap: Option<u64>,
    pub log_format: Option<String>,
    pub public_url: Option<String>,
    pub job_workers: Option<usize>,
    pub buckets: Option<String>,
}

impl Settings {
    /// Defaults overlaid with the TOML file at `path`. A missing file is an error; unknown keys too.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Settings, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies a layer of overrides.
    pub fn apply(&mut self, o: Overrides) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = o.$field { self.$field = v; } )* };
        }
        macro_rules! set_opt {
            ($($field:ident),*) => { $( if o.$field.is_some() { self.$field = o.$field; } )* };
        }
        set!(listen, data_dir, image_size_cap, log_format, job_workers);
        set_opt!(database, store, buckets, s3_access_key_id, s3_secret_access_key, nbd_listen, admin_token, public_url);
    }

    /// The catalog URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("ims.db").display()))
    }

    /// The user buckets' URL, defaulting to files in the data directory.
    pub fn buckets_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.buckets {
            return Ok(url.clone());
        }
        let dir = absolute(&self.data_dir.join("buckets"))?;
        Ok(format!("file://{}", dir.display()))
    }

    /// The chunk store URL, defaulting to files in the data directory.
    pub fn store_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.store {
            return Ok(url.clone());
        }
        let dir = absolute(&self.data_dir.join("store"))?;
        Ok(format!("file://{}", dir.display()))
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

/// `url` with any password replaced by `***`, for messages and logs.
pub(crate) fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let mut s = Settings::from_toml("listen = \"0.0.0.0:1234\"\ndata_dir = \"/var/lib/ims\"\n").unwrap();
        assert_eq!(s.listen.port(), 1234);
        assert_eq!(s.image_size_cap, 1 << 40, "defaults fill what the file leaves out");
        s.apply(Overrides { listen: Some("127.0.0.1:9".parse().unwrap()), ..Default::default() });
        assert_eq!(s.listen.port(), 9);
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/ims"), "a layer without a value keeps the one below");
        assert_eq!(s.database_url(), "sqlite:///var/lib/ims/ims.db");
        assert_eq!(s.store_url().unwrap(), "file:///var/lib/ims/store");
    }

    #[test]
    fn regions_are_read_and_their_tokens_kept_out_of_debug_output() {
        let s = Settings::from_toml("[regions.region-b]\nendpoint = \"https://b.example\"\ntoken = \"s3cret\"\n").unwrap();
        let region = &s.regions["region-b"];
        assert_eq!((region.endpoint.as_str(), region.token.as_str()), ("https://b.example", "s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(Settings::from_toml("[regions.b]\nendpoint = \"https://b.example\"\n").is_err(), "a token is required");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Settings::from_toml("lisen = \"x\"").is_err());
    }

    #[test]
    fn passwords_are_left_out_of_database_urls() {
        assert_eq!(without_password("postgres://ims:s3cret@db:5432/ims"), "postgres://ims:***@db:5432/ims");
        assert_eq!(without_password("postgres://ims@db/ims"), "postgres://ims@db/ims");
        assert_eq!(without_password("sqlite:///var/lib/ims/ims.db"), "sqlite:///var/lib/ims/ims.db");
    }
}
