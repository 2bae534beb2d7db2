//! The console's files, embedded at build time from `assets/`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// The path under `/console/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    /// A strong validator: the first 16 bytes of the content's SHA-256, quoted.
    pub fn etag(&self) -> &'static str {
        static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
        let etags = ETAGS.get_or_init(|| {
            ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..16]))).collect()
        });
        let index = ASSETS.iter().position(|a| a.path == self.path).expect("an embedded asset");
        etags[index].as_str()
    }
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset { path: $path, content_type: $content_type, body: include_bytes!(concat!("assets/", $path)) }),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "console.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/format.js" => JS,
    "js/session.js" => JS,
    "js/transfer.js" => JS,
    "js/signer.js" => JS,
    "js/views/signin.js" => JS,
    "js/views/images.js" => JS,
    "js/views/image.js" => JS,
    "js/views/create.js" => JS,
    "js/views/usage.js" => JS,
    "js/views/admin.js" => JS,
    "js/views/image-actions.js" => JS,
    "js/views/import.js" => JS,
    "js/views/jobs.js" => JS,
    "js/views/buckets.js" => JS,
    "js/views/switch-project.js" => JS,
    "js/views/audit.js" => JS,
    "js/views/store-stats.js" => JS,
    "js/views/keys.js" => JS,
    "js/views/servers.js" => JS,
    "js/views/capsule.js" => JS,
    "js/views/recycle-bin.js" => JS,
};

/// The file at `path` (relative to `/console/`), if the console has one.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
