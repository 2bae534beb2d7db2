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
    /// Pre-shared keys of NBD clients, one `identity:hexkey` line each (the format of qemu's
    /// `keys.psk`). When set, every NBD connection must use TLS with one of them; required when
    /// `nbd_listen` is not a loopback address.
    pub nbd_tls_psk_file: Option<PathBuf>,
    /// The admin token to create (or keep valid) at start; random and written to
    /// `<data-dir>/admin-token` when unset on first start.
    pub admin_token: Option<String>,
    /// Largest image file accepted, in bytes.
    pub image_size_cap: u64,
    /// Largest request body the server buffers (JSON documents and patches), in bytes (default 1 MiB); image
    /// data streamed to storage is not buffered and not counted (`image_size_cap` caps it).
    pub max_request_body_bytes: usize,
    /// Largest total size of one request's headers (names and values), in bytes (default 64 KiB).
    pub max_header_bytes: usize,
    /// Requests a second each caller (token, access key, or anonymous address) may make; 0 (the default): no limit.
    pub rate_limit_per_second: u32,
    /// Requests a caller may make in a burst above its rate, the size of its token bucket (default 100).
    pub rate_limit_burst: u32,
    /// Seconds the format inspection of one uploaded or imported file may take before the upload fails
    /// (default 600).
    pub inspection_timeout: u64,
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
    /// `"zvhd2"`, or `"keep"`); qcow2, vmdk and vhd can be converted; unlisted formats are kept. Applies to
    /// imports from buckets and to Glance interoperable import (`glance-direct`, `web-download`).
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
    /// How `X-Auth-Token` is checked: `builtin` (the tokens of `/identity/v1`) or `keystone` (an OpenStack
    /// Keystone validates them, see `[keystone]`).
    pub auth: AuthMode,
    /// The Keystone that validates tokens when `auth = "keystone"`: `[keystone]`.
    pub keystone: KeystoneConfig,
    /// PEM certificate chain of the API and console; with `tls_key` the node serves HTTPS only (both or
    /// neither must be set).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Bearer token that may read `/metrics` besides admins (`IMS_METRICS_TOKEN`).
    pub metrics_token: Option<String>,
    /// Whether `/metrics` answers anyone, without credentials (off by default).
    pub metrics_public: bool,
}

/// Who vouches for `X-Auth-Token`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// The built-in identity: projects, users and tokens of `/identity/v1`; access keys (AK/SK) too.
    #[default]
    Builtin,
    /// An OpenStack Keystone (identity v3); access keys are refused.
    Keystone,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AuthMode, String> {
        match s {
            "builtin" => Ok(AuthMode::Builtin),
            "keystone" => Ok(AuthMode::Keystone),
            other => Err(format!("unknown authentication {other:?}: expected builtin or keystone")),
        }
    }
}

/// The Keystone of `auth = "keystone"` (`[keystone]` in the TOML file) and IMS's own service user there, which
/// needs the `service` role (or `admin`) in its project to validate other users' tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneConfig {
    /// The identity v3 URL, e.g. `https://keystone.example:5000/v3`.
    pub url: String,
    /// The service user's name.
    pub username: String,
    /// The service user's password.
    pub password: String,
    /// The project the service user's token is scoped to (by name).
    pub project: String,
    /// The domain of the service user (by name).
    pub user_domain_name: String,
    /// The domain of the service user's project (by name).
    pub project_domain_name: String,
    /// Longest time, in seconds, a validated token is trusted without asking Keystone again: a token
    /// revoked in Keystone is refused at the latest this long after (default 60).
    pub cache_ttl: u64,
    /// Most validated tokens kept at once (default 10000).
    pub cache_size: usize,
    /// Seconds a request to Keystone may take before Keystone counts as unreachable (default 10).
    pub timeout: u64,
}

impl Default for KeystoneConfig {
    fn default() -> KeystoneConfig {
        KeystoneConfig {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            project: String::new(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            cache_ttl: 60,
            cache_size: 10_000,
            timeout: 10,
        }
    }
}

impl std::fmt::Debug for KeystoneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"***")
            .field("project", &self.project)
            .field("user_domain_name", &self.user_domain_name)
            .field("project_domain_name", &self.project_domain_name)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_size", &self.cache_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KeystoneConfig {
    /// Checks that everything needed to reach Keystone is set.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, value) in [("url", &self.url), ("username", &self.username), ("password", &self.password), ("project", &self.project)] {
            if value.trim().is_empty() {
                anyhow::bail!("auth = \"keystone\" needs keystone.{key} (IMS_KEYSTONE_{})", key.to_ascii_uppercase());
            }
        }
        url::Url::parse(&self.url).map_err(|e| anyhow::anyhow!("keystone.url {:?}: {e}", self.url))?;
        anyhow::ensure!(self.cache_size > 0, "keystone.cache_size must be at least 1");
        Ok(())
    }
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
            nbd_tls_psk_file: None,
            admin_token: None,
            image_size_cap: 1 << 40,
            max_request_body_bytes: crate::limits::DEFAULT_MAX_REQUEST_BODY_BYTES,
            max_header_bytes: crate::limits::DEFAULT_MAX_HEADER_BYTES,
            rate_limit_per_second: 0,
            rate_limit_burst: 100,
            inspection_timeout: 600,
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
            auth: AuthMode::Builtin,
            keystone: KeystoneConfig::default(),
            tls_cert: None,
            tls_key: None,
            metrics_token: None,
            metrics_public: false,
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
    pub nbd_tls_psk_file: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub image_size_cap: Option<u64>,
    pub log_format: Option<String>,
    pub public_url: Option<String>,
    pub job_workers: Option<usize>,
    pub buckets: Option<String>,
    pub auth: Option<AuthMode>,
    pub keystone_url: Option<String>,
    pub keystone_username: Option<String>,
    pub keystone_password: Option<String>,
    pub keystone_project: Option<String>,
    pub keystone_user_domain_name: Option<String>,
    pub keystone_project_domain_name: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub metrics_token: Option<String>,
}

impl Overrides {
    /// The authentication settings of the environment: `IMS_AUTH`, `IMS_KEYSTONE_URL`, `IMS_KEYSTONE_USERNAME`,
    /// `IMS_KEYSTONE_PASSWORD`, `IMS_KEYSTONE_PROJECT`, `IMS_KEYSTONE_USER_DOMAIN_NAME` and
    /// `IMS_KEYSTONE_PROJECT_DOMAIN_NAME` (empty variables count as unset).
    pub fn auth_from_env() -> anyhow::Result<Overrides> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let auth = match var("IMS_AUTH") {
            Some(text) => Some(text.parse::<AuthMode>().map_err(|e| anyhow::anyhow!("IMS_AUTH: {e}"))?),
            None => None,
        };
        Ok(Overrides {
            auth,
            keystone_url: var("IMS_KEYSTONE_URL"),
            keystone_username: var("IMS_KEYSTONE_USERNAME"),
            keystone_password: var("IMS_KEYSTONE_PASSWORD"),
            keystone_project: var("IMS_KEYSTONE_PROJECT"),
            keystone_user_domain_name: var("IMS_KEYSTONE_USER_DOMAIN_NAME"),
            keystone_project_domain_name: var("IMS_KEYSTONE_PROJECT_DOMAIN_NAME"),
            ..Overrides::default()
        })
    }
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
        set_opt!(nbd_tls_psk_file);
        set_opt!(tls_cert, tls_key, metrics_token);
        if let Some(auth) = o.auth {
            self.auth = auth;
        }
        let keystone = &mut self.keystone;
        for (value, field) in [
            (o.keystone_url, &mut keystone.url),
            (o.keystone_username, &mut keystone.username),
            (o.keystone_password, &mut keystone.password),
            (o.keystone_project, &mut keystone.project),
            (o.keystone_user_domain_name, &mut keystone.user_domain_name),
            (o.keystone_project_domain_name, &mut keystone.project_domain_name),
        ] {
            if let Some(value) = value {
                *field = value;
            }
        }
    }

    /// Whether the API and console are served over HTTPS (`tls_cert` and `tls_key` set).
    pub fn serves_https(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
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
    fn keystone_settings_come_from_the_file_and_the_environment_layer() {
        let s = Settings::from_toml("auth = \"keystone\"\n[keystone]\nurl = \"http://ks:5000/v3\"\nusername = \"ims\"\npassword = \"pw\"\nproject = \"service\"\n").unwrap();
        assert_eq!(s.auth, AuthMode::Keystone);
        assert_eq!(s.keystone.user_domain_name, "Default", "domains default to Default");
        assert_eq!(s.keystone.cache_ttl, 60);
        s.keystone.validate().unwrap();
        assert!(!format!("{s:?}").contains("pw\""), "the password stays out of debug output");
        let mut s = Settings::default();
        s.apply(Overrides {
            auth: Some(AuthMode::Keystone),
            keystone_url: Some("http://other:5000/v3".into()),
            keystone_project_domain_name: Some("services".into()),
            ..Default::default()
        });
        assert_eq!((s.auth, s.keystone.url.as_str()), (AuthMode::Keystone, "http://other:5000/v3"));
        assert_eq!(s.keystone.project_domain_name, "services");
        assert!(s.keystone.validate().is_err(), "a username, password and project are required");
        assert!("ldap".parse::<AuthMode>().is_err());
        assert!(Settings::from_toml("auth = \"ldap\"").is_err());
    }

    #[test]
    fn tls_and_metrics_settings_come_from_the_file_and_the_layers_above() {
        let mut s = Settings::from_toml("tls_cert = \"/etc/ims/a.crt\"\nmetrics_public = true\n").unwrap();
        assert!(!s.serves_https(), "a certificate alone is not HTTPS (the node refuses to start with it)");
        s.apply(Overrides { tls_key: Some("/etc/ims/a.key".into()), metrics_token: Some("t".into()), ..Default::default() });
        assert!(s.serves_https());
        assert_eq!(s.tls_cert, Some(PathBuf::from("/etc/ims/a.crt")), "a layer without a value keeps the file's");
        assert_eq!((s.metrics_token.as_deref(), s.metrics_public), (Some("t"), true));
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
