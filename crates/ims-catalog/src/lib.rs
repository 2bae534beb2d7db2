//! The IMS catalog: domain types, the image state machine, and the repositories that persist them.
//!
//! Callers see only the repository traits in [`repo`]; one implementation exists per SQL dialect and is
//! chosen by the database URL's scheme in [`Catalog::connect`]. Every implementation passes the same
//! conformance suite (`tests/conformance.rs`).

pub mod access_key;
pub mod audit;
pub mod audit_chain;
pub mod compute;
pub mod encryption;
pub mod error;
pub mod favorite;
pub mod identity;
pub mod image;
pub mod job;
pub mod market;
pub mod lineage;
pub mod member;
pub mod metadef;
pub mod nbd_export;
pub mod node;
pub mod postgres;
pub mod query;
pub mod recycle_bin;
pub mod repo;
pub mod resource_tag;
pub mod share_auto_accept;
pub mod sqlite;
pub mod transfer;

use std::sync::Arc;

pub use access_key::AccessKey;
pub use audit::AuditEvent;
pub use compute::{ComputeRepository, Server, ServerStatus, ServerType, Volume, VolumeEncryption, VolumeExport};
pub use audit_chain::{AuditQuery, AuditRecord, BrokenLink, ChainCheck, ChainVerification};
pub use encryption::{ImageEncryption, KeyState, StoredKmsKey};
pub use error::{CatalogError, Result};
pub use favorite::{Favorite, FavoriteRepository};
pub use share_auto_accept::ShareAutoAcceptRepository;
pub use identity::{Project, Role, Token, User};
pub use image::{Image, ImageStatus, Visibility};
pub use lineage::{ImageStanding, Lineage, LineageRepository, SourceType, SOURCE_TYPE_SERVER};
pub use job::{ImageChange, Job, JobFilter, JobOutcome, JobStatus};
pub use market::{ListingFilter, MarketListing, MarketRepository, MarketSubscription};
pub use member::{Member, MemberStatus};
pub use metadef::MetadefRepository;
pub use nbd_export::{NbdExport, NbdExportRepository};
pub use node::{Node, NodeRepository, NodeState};
pub use query::{ImageQuery, MemberStatusFilter, SortDir, SortKey, TimeFilter, TimeOp, Viewer, VisibilityFilter};
pub use repo::{
    AuditRepository, IdentityRepository, ImageRepository, ImageUsage, JobRepository, MemberRepository, ResourceTagRepository,
};
pub use recycle_bin::{BinQuery, BinnedImage, RecycleBinRepository};
pub use resource_tag::{OsVersion, ResourceTag};

/// The set of repositories of one catalog database.
#[derive(Clone)]
pub struct Catalog {
    pub images: Arc<dyn ImageRepository>,
    pub members: Arc<dyn MemberRepository>,
    pub identity: Arc<dyn IdentityRepository>,
    pub resource_tags: Arc<dyn ResourceTagRepository>,
    pub jobs: Arc<dyn JobRepository>,
    pub encryption: Arc<dyn repo::EncryptionRepository>,
    /// The audit trail: standalone events, queries, chain verification.
    pub audit: Arc<dyn AuditRepository>,
    /// Each user's favourite images.
    pub favorites: Arc<dyn FavoriteRepository>,
    /// The projects each project accepts shares from without answering.
    pub share_auto_accept: Arc<dyn ShareAutoAcceptRepository>,
    /// Export names minted for NBD access to images.
    pub nbd_exports: Arc<dyn NbdExportRepository>,
    /// The nodes sharing this catalog, their heartbeats and drains.
    pub nodes: Arc<dyn NodeRepository>,
    /// Servers and volumes of the built-in compute driver, and volume export names.
    pub compute: Arc<dyn ComputeRepository>,
    /// Marketplace listings and their subscriptions.
    pub market: Arc<dyn MarketRepository>,
    /// Deleted images kept restorable until purged.
    pub recycle_bin: Arc<dyn RecycleBinRepository>,
    /// Image records in any state, for lineage walks.
    pub lineage: Arc<dyn LineageRepository>,
    /// The metadata definitions catalog (Glance's metadefs).
    pub metadefs: Arc<dyn MetadefRepository>,
}

impl Catalog {
    /// Opens the catalog named by `url` and runs every pending migration before returning:
    /// `sqlite://PATH` or `sqlite::memory:` (the database is created if missing), or `postgres://...` /
    /// `postgresql://...` (the database must exist; see [`postgres::PostgresCatalog::connect`]).
    /// `Invalid` for any other scheme or a malformed URL; `Unavailable` if the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Catalog> {
        if url.starts_with("sqlite:") {
            let db = sqlite::SqliteCatalog::connect(url).await?;
            Ok(db.into_catalog())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let db = postgres::PostgresCatalog::connect(url).await?;
            Ok(db.into_catalog())
        } else {
            // Only the scheme is echoed: the rest of a URL may hold a password.
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            Err(CatalogError::Invalid(format!(
                "unsupported database URL scheme {scheme:?}: expected sqlite://PATH or postgres://HOST/DATABASE"
            )))
        }
    }
}
