//! IMS use cases. Each one is authorized by [`Policy`] before it touches the catalog or the store;
//! the HTTP layers only parse, call one use case and render.

pub mod audit;
pub mod bucket_reader;
pub mod buckets;
pub mod capsules;
pub mod compute;
mod context;
mod download;
mod error;
pub mod favorites;
pub mod glance_import;
pub mod identity;
pub mod image_cache;
mod images;
pub mod inspection;
pub mod kms;
pub mod jobs;
pub mod pipelines;
pub mod limits;
pub mod lineage;
pub mod market;
pub mod metadefs;
pub mod migration;
pub mod nbd_exports;
pub mod nodes;
mod members;
pub mod os_versions;
pub mod patch;
mod quotas;
pub mod regions;
pub mod replica_reads;
pub mod replication;
pub mod share_auto_accept;
mod policy;
pub mod recycle_bin;
pub mod resource_tags;
pub mod secrets;
pub mod store_admin;
pub mod transfers;
mod upload;

use ims_catalog::{Catalog, ImageUsage};
use ims_store::ChunkStore;

pub use audit::AuditService;
pub use capsules::{CapsuleParts, NewCapsule};
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
pub use quotas::{ProjectByteQuota, ProjectLimit, ProjectQuota};
pub use secrets::{AesGcmSealer, SecretSealer};
pub use store_admin::StoreAdminService;
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
    pub store_admin: StoreAdminService,
    pub kms: kms::KmsService,
    /// Audit trail queries and verification.
    pub audit: AuditService,
    /// User object storage (import sources, export targets).
    pub buckets: buckets::BucketStore,
    /// Size limits of imports and exports.
    pub pipeline_limits: pipelines::PipelineLimits,
    /// The stored format per imported source format (none: kept as is).
    pub import_conversions: std::sync::Arc<pipelines::ImportConversions>,
    /// Other regions images can be copied to (`CopyImageCrossRegion`).
    pub regions: regions::Regions,
    /// Servers and volumes of the compute driver.
    pub compute: compute::ComputeService,
    /// The metadata definitions catalog.
    pub metadefs: metadefs::MetadefService,
}

impl Services {
    pub fn new(catalog: Catalog, store: ChunkStore, limits: ImageLimits) -> Services {
        let images = ImageService::new(catalog.clone(), store, limits);
        let jobs = JobService::new(catalog.clone());
        Services {
            shares: ShareService::new(images.clone(), jobs.clone()),
            tags: TagService::new(images.clone()),
            audit: AuditService::new(catalog.clone()),
            metadefs: metadefs::MetadefService::new(catalog.clone()),
            identity: IdentityService::new(catalog),
            kms: kms::KmsService::default(),
            buckets: buckets::BucketStore::new(
                std::sync::Arc::new(object_store::memory::InMemory::new()),
                Default::default(),
            ),
            pipeline_limits: Default::default(),
            import_conversions: Default::default(),
            regions: Default::default(),
            store_admin: StoreAdminService::new(images.clone()),
            compute: compute::ComputeService::new(images.clone(), jobs.clone(), std::sync::Arc::new(compute::LocalDriver)),
            jobs,
            images,
        }
    }

    /// The same services, sealing secrets (access keys) with `sealer`.
    pub fn with_sealer(mut self, sealer: std::sync::Arc<dyn SecretSealer>) -> Services {
        self.identity = self.identity.with_sealer(sealer);
        self
    }

    /// The same services with key management by `kms`: the admin key API, and encrypted images.
    /// The provider of a node is set once: a second call keeps the first provider for images.
    pub fn with_kms(mut self, kms: std::sync::Arc<dyn kms::Kms>) -> Services {
        let _ = self.images.kms.set(kms.clone());
        self.kms = kms::KmsService::new(Some(kms));
        self
    }

    /// The same services with these regions to copy images to.
    pub fn with_regions(mut self, regions: regions::Regions) -> Services {
        self.regions = regions;
        self
    }

    /// The same services with user buckets in `buckets` (the default is an empty in-memory store).
    pub fn with_buckets(mut self, buckets: buckets::BucketStore) -> Services {
        self.buckets = buckets;
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
