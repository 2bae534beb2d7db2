use std::sync::Arc;

use ims_core::Services;

use crate::config::Settings;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub settings: Arc<Settings>,
    /// Glance interoperable import, with this node's import settings.
    pub glance_import: ims_core::glance_import::GlanceImportService,
    /// This node's image cache (`/v2/cache`) over its chunk cache.
    pub image_cache: ims_core::image_cache::ImageCacheService,
    /// Where this node's NBD server listens (none when it runs none).
    pub nbd_address: Option<std::net::SocketAddr>,
    /// Whether NBD clients must use TLS with a pre-shared key (`nbd_tls_psk_file`).
    pub nbd_tls: bool,
    /// Validates `X-Auth-Token` with Keystone when `auth = "keystone"` (none: the built-in identity does).
    pub keystone: Option<Arc<crate::keystone::KeystoneAuth>>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
}
