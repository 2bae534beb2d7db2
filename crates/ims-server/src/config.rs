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
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9292)),
            data_dir: PathBuf::from("ims-data"),
            database: None,
            store: None,
            nbd_listen: None,
            admin_token: None,
            image_size_cap: 1 << 40,
            log_format: "text".into(),
            public_url: None,
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
    pub nbd_listen: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub image_size_cap: Option<u64>,
    pub log_format: Option<String>,
    pub public_url: Option<String>,
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
        set!(listen, data_dir, image_size_cap, log_format);
        set_opt!(database, store, nbd_listen, admin_token, public_url);
    }

    /// The catalog URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("ims.db").display()))
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
    fn unknown_keys_are_refused() {
        assert!(Settings::from_toml("lisen = \"x\"").is_err());
    }
}
