//! NBD export names: the unguessable names minted by the API that open an image's guest disk over NBD.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

/// One minted export name. Only a hash of the name is stored, so the catalog never holds a name that
/// would open an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdExport {
    /// Lowercase hex SHA-256 of the secret name.
    pub name_hash: String,
    /// The image whose guest disk the name opens.
    pub image_id: Uuid,
    /// The user who minted the name.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The name opens nothing from this instant on.
    pub expires_at: DateTime<Utc>,
}

/// The export names of every node sharing this catalog: a name minted on one node opens the export on
/// any other.
#[async_trait]
pub trait NbdExportRepository: Send + Sync {
    /// Stores `export`. `NotFound` if its image is missing or deleted; `Conflict` (and nothing changes)
    /// if a name with the same hash is already stored.
    async fn create(&self, export: &NbdExport) -> Result<()>;

    /// The export whose name hashes to `name_hash`, expired or not (the caller compares `expires_at`
    /// with its clock); `None` if there is none or it was revoked.
    async fn find(&self, name_hash: &str) -> Result<Option<NbdExport>>;

    /// Revokes the name hashing to `name_hash` if it opens `image_id`. `NotFound` (and nothing changes)
    /// when there is no such name for that image. Connections already open keep their export.
    async fn revoke(&self, image_id: Uuid, name_hash: &str) -> Result<()>;

    /// Deletes every name that expired before `now`; returns how many. Idempotent.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64>;
}
