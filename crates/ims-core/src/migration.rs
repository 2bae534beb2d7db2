//! Migrating a single-node deployment (SQLite catalog, usually a `file://` store) to a cluster's
//! PostgreSQL catalog and shared store (`ims admin migrate`).
//!
//! The order makes every step safe to interrupt and repeat: the target's migrations are applied and the
//! target is checked for data of another deployment (nothing written yet); then the store's live objects
//! are copied and verified; the catalog rows go last, so the target catalog never names data the target
//! store does not hold. The source is only read. It should be quiescent: [`Migration::source_activity`]
//! says whether it looks in use.

use std::path::Path;
use std::sync::Arc;

use ims_catalog::postgres::PostgresCatalog;
use ims_catalog::sqlite::SqliteCatalog;
use ims_catalog::transfer::{self, SourceActivity, TableCopy};
use ims_catalog::Catalog;
use ims_store::crypto::DATA_KEY_LEN;
use ims_store::{ChunkStore, EncryptionDomain, MigrationProgress, MigrationReport};

use crate::kms::{BuiltinKms, Kms};
use crate::{AesGcmSealer, CoreError, Result, SecretSealer};

/// Chunks copied at once.
pub const OBJECTS_IN_FLIGHT: usize = 8;

/// Where a migration reads and writes.
pub struct MigrationEndpoints<'a> {
    /// `sqlite://...`: the single node's catalog.
    pub source_database: &'a str,
    pub source_store: &'a str,
    /// The single node's master key file (`<data-dir>/master.key`), which sealed its KMS keys.
    pub master_key: &'a Path,
    /// `postgres://...`: the cluster's catalog (the database must exist).
    pub target_database: &'a str,
    pub target_store: &'a str,
    pub store_options: &'a ims_store::StoreOptions,
}

/// An opened migration: both catalogs (the target migrated to the current schema) and both stores.
pub struct Migration {
    source: SqliteCatalog,
    target: PostgresCatalog,
    source_store: ChunkStore,
    target_store: ChunkStore,
    kms: BuiltinKms,
}

impl Migration {
    /// Opens both sides and applies the target catalog's migrations. `Invalid` unless the source is a
    /// SQLite catalog that exists and the target a PostgreSQL one, or if the master key file is missing
    /// (without it the source's encrypted data could not be read); `Unavailable` if a side is unreachable.
    pub async fn open(endpoints: &MigrationEndpoints<'_>) -> Result<Migration> {
        let Some(path) = endpoints.source_database.strip_prefix("sqlite://") else {
            return Err(CoreError::Invalid(
                "the source catalog must be a single node's SQLite database (sqlite://PATH)".into(),
            ));
        };
        let path = path.split('?').next().unwrap_or_default();
        if !Path::new(path).is_file() {
            return Err(CoreError::Invalid(format!("the source catalog {path} does not exist")));
        }
        if !(endpoints.target_database.starts_with("postgres://") || endpoints.target_database.starts_with("postgresql://")) {
            return Err(CoreError::Invalid("the target catalog must be a PostgreSQL database (postgres://...)".into()));
        }
        if !endpoints.master_key.is_file() {
            return Err(CoreError::Invalid(format!(
                "the source's master key {} does not exist: give the data directory of the source node",
                endpoints.master_key.display()
            )));
        }
        if endpoints.source_store == endpoints.target_store {
            return Err(CoreError::Invalid("the source and target stores are the same".into()));
        }
        let sealer = AesGcmSealer::open_key_file(endpoints.master_key)
            .map_err(|e| CoreError::Invalid(format!("reading the master key {}: {e}", endpoints.master_key.display())))?;
        let sealer: Arc<dyn SecretSealer> = Arc::new(sealer);
        let source = SqliteCatalog::connect(endpoints.source_database).await?;
        let target = PostgresCatalog::connect(endpoints.target_database).await?;
        let source_store = ChunkStore::open_with(endpoints.source_store, endpoints.store_options)?;
        let target_store = ChunkStore::open_with(endpoints.target_store, endpoints.store_options)?;
        let kms = BuiltinKms::new(source.clone().into_catalog(), sealer);
        Ok(Migration { source, target, source_store, target_store, kms })
    }

    /// Unfinished jobs and the latest node heartbeat of the source: signs that it is still in use.
    pub async fn source_activity(&self) -> Result<SourceActivity> {
        Ok(self.source.activity().await?)
    }

    /// `Conflict` if the target catalog holds data of another deployment (see [`transfer::check_target`]).
    pub async fn check_target(&self) -> Result<()> {
        Ok(transfer::check_target(&self.source, &self.target).await?)
    }

    /// Copies every live manifest of the source store (those the source catalog's images, binned images
    /// included, and volumes reference) and their chunks to the target store, verifying each (see
    /// [`ChunkStore::migrate_objects`]). Encrypted chunks are verified with the data keys of the source
    /// catalog, unwrapped by its KMS; `Forbidden` if one of them cannot be unwrapped (a disabled key).
    pub async fn copy_store(&self, progress: &(dyn Fn(&MigrationProgress) + Sync)) -> Result<MigrationReport> {
        let catalog: Catalog = self.source.clone().into_catalog();
        let mut manifests = catalog.images.live_manifests().await?;
        manifests.extend(catalog.compute.live_manifests().await?);
        manifests.sort();
        manifests.dedup();
        let mut domains = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key_id, wrapped) in self.source.data_keys().await? {
            let key = self.kms.unwrap(&key_id, &wrapped).await.map_err(|e| {
                CoreError::Forbidden(format!(
                    "a data key under master key {key_id} cannot be unwrapped ({e}): the data it encrypted \
                     could not be verified; enable the key for the migration"
                ))
            })?;
            let key: [u8; DATA_KEY_LEN] = key
                .try_into()
                .map_err(|_| CoreError::Corrupt(format!("a data key under master key {key_id} has the wrong length")))?;
            if seen.insert(key) {
                domains.push(EncryptionDomain::new(&key));
            }
        }
        Ok(self
            .source_store
            .migrate_objects(&self.target_store, &manifests, domains, OBJECTS_IN_FLIGHT, progress)
            .await?)
    }

    /// Copies every catalog table to the target, skipping rows already there (see
    /// [`transfer::copy_catalog`]).
    pub async fn copy_catalog(&self, progress: &mut (dyn FnMut(&TableCopy) + Send)) -> Result<Vec<TableCopy>> {
        Ok(transfer::copy_catalog(&self.source, &self.target, progress).await?)
    }
}
