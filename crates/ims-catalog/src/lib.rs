//! The IMS catalog: domain types, the image state machine, and the repositories that persist them.
//!
//! Callers see only the repository traits in [`repo`]; one implementation exists per SQL dialect and is
//! chosen by the database URL's scheme in [`Catalog::connect`]. Every implementation passes the same
//! conformance suite (`tests/conformance.rs`).

pub mod access_key;
pub mod audit;
pub mod error;
pub mod identity;
pub mod image;
pub mod job;
pub mod member;
pub mod query;
pub mod repo;
pub mod resource_tag;
pub mod sqlite;

use std::sync::Arc;

pub use access_key::AccessKey;
pub use audit::AuditEvent;
pub use error::{CatalogError, Result};
pub use identity::{Project, Role, Token, User};
pub use image::{Image, ImageStatus, Visibility};
pub use job::{Job, JobStatus};
pub use member::{Member, MemberStatus};
pub use query::{ImageQuery, MemberStatusFilter, SortDir, SortKey, TimeFilter, TimeOp, Viewer, VisibilityFilter};
pub use repo::{
    IdentityRepository, ImageRepository, ImageUsage, JobRepository, MemberRepository, ResourceTagRepository,
};
pub use resource_tag::{OsVersion, ResourceTag};

/// The set of repositories of one catalog database.
#[derive(Clone)]
pub struct Catalog {
    pub images: Arc<dyn ImageRepository>,
    pub members: Arc<dyn MemberRepository>,
    pub identity: Arc<dyn IdentityRepository>,
    pub resource_tags: Arc<dyn ResourceTagRepository>,
    pub jobs: Arc<dyn JobRepository>,
}

impl Catalog {
    /// Opens the catalog named by `url` (`sqlite://PATH`, `sqlite::memory:`), creating the database
    /// if missing and running every pending migration before returning.
    pub async fn connect(url: &str) -> Result<Catalog> {
        if url.starts_with("sqlite:") {
            let db = sqlite::SqliteCatalog::connect(url).await?;
            Ok(db.into_catalog())
        } else {
            Err(CatalogError::Invalid(format!(
                "unsupported database URL {url:?}: expected sqlite://PATH"
            )))
        }
    }
}
