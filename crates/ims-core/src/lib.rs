//! IMS use cases. Each one is authorized by [`Policy`] before it touches the catalog or the store;
//! the HTTP layers only parse, call one use case and render.

mod context;
mod download;
mod error;
pub mod identity;
mod images;
pub mod inspection;
mod jobs;
pub mod limits;
mod members;
pub mod os_versions;
pub mod patch;
mod policy;
pub mod resource_tags;
pub mod secrets;
mod upload;

use ims_catalog::{Catalog, ImageUsage};
use ims_store::ChunkStore;

pub use context::{Caller, RequestContext};
pub use download::ImageData;
pub use error::{CoreError, Result};
pub use identity::{IdentityService, IssuedAccessKey, IssuedToken, UserRoles};
pub use images::{ImageService, NewImage};
pub use jobs::JobService;
pub use resource_tags::{TagCondition, TagQuery, TagService};
pub use limits::ImageLimits;
pub use members::ShareService;
pub use patch::{PatchKind, PatchOp};
pub use policy::Policy;
pub use secrets::{AesGcmSealer, SecretSealer};
pub use upload::HASH_ALGO;

/// The current time at whole-second precision: the precision timestamps are shown and filtered
/// with, so that a time a client read back matches exactly.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(0)
}

/// Every use case of one IMS node, wired to its catalog and store.
#[derive(Clone)]
pub struct Services {
    pub images: ImageService,
    pub shares: ShareService,
    pub identity: IdentityService,
    pub tags: TagService,
    pub jobs: JobService,
}

impl Services {
    pub fn new(catalog: Catalog, store: ChunkStore, limits: ImageLimits) -> Services {
        let images = ImageService::new(catalog.clone(), store, limits);
        let jobs = JobService::new(catalog.clone());
        Services {
            shares: ShareService::new(images.clone(), jobs.clone()),
            tags: TagService::new(images.clone()),
            identity: IdentityService::new(catalog),
            jobs,
            images,
        }
    }

    /// The same services, sealing secrets (access keys) with `sealer`.
    pub fn with_sealer(mut self, sealer: std::sync::Arc<dyn SecretSealer>) -> Services {
        self.identity = self.identity.with_sealer(sealer);
        self
    }
}

impl ImageService {
    /// What the caller's project occupies (for `/v2/info/usage`).
    pub async fn usage(&self, ctx: &RequestContext) -> Result<ImageUsage> {
        let caller = Policy::require_caller(ctx)?;
        Ok(self.catalog.images.usage(&caller.project_id).await?)
    }
}
