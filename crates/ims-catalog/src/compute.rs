//! The compute model of the built-in driver: servers, their volumes, and the NBD export names minted for
//! volumes.
//!
//! A volume is a RAW guest disk stored as a manifest in the chunk store (copy-on-write over the manifest of
//! the image it was made from). A server owns its volumes through attachments: device 0 is the system disk,
//! devices 1.. are data disks. A volume is `in-use` exactly while it is attached.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AuditEvent, CatalogError, Result};

/// What kind of machine a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    /// An elastic (virtual) server.
    Ecs,
    /// A bare-metal server.
    Bms,
}

impl ServerType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerType::Ecs => "ecs",
            ServerType::Bms => "bms",
        }
    }
}

impl fmt::Display for ServerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerType {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<ServerType> {
        match s {
            "ecs" => Ok(ServerType::Ecs),
            "bms" => Ok(ServerType::Bms),
            other => Err(CatalogError::Invalid(format!("invalid server type {other:?}: expected ecs or bms"))),
        }
    }
}

/// Whether a server's machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ServerStatus {
    /// The machine runs.
    Active,
    /// The machine is stopped; its volumes hold what it last wrote.
    Shutoff,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Active => "ACTIVE",
            ServerStatus::Shutoff => "SHUTOFF",
        }
    }
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerStatus {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<ServerStatus> {
        match s {
            "ACTIVE" => Ok(ServerStatus::Active),
            "SHUTOFF" => Ok(ServerStatus::Shutoff),
            other => Err(CatalogError::Invalid(format!("invalid server status {other:?}"))),
        }
    }
}

/// A server of the built-in compute driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: Uuid,
    /// The owning project.
    pub project: String,
    pub name: String,
    pub server_type: ServerType,
    pub vcpus: u32,
    pub ram_mb: u64,
    /// CPU architecture of the machine (`x86_64`, `aarch64`).
    pub architecture: String,
    /// The firmware the machine boots with: `bios` or `uefi`.
    pub firmware: String,
    pub status: ServerStatus,
    /// The image the system disk was made from, if any.
    pub image_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `Invalid` unless `firmware` is one a server can boot with (`bios` or `uefi`).
pub(crate) fn check_firmware(firmware: &str) -> crate::Result<()> {
    match firmware {
        "bios" | "uefi" => Ok(()),
        other => Err(CatalogError::Invalid(format!("invalid server firmware {other:?}: expected bios or uefi"))),
    }
}

/// The encryption domain a volume's chunks are written in (the one of the image it came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeEncryption {
    /// The master key of the domain.
    pub key_id: String,
    /// The domain's data key as the KMS wrapped it.
    pub wrapped_data_key: String,
}

/// Where a volume is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub server_id: Uuid,
    /// 0 is the system disk, 1.. data disks.
    pub device_index: u32,
}

/// A volume: a RAW guest disk held as a manifest of the chunk store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub id: Uuid,
    pub project: String,
    pub name: String,
    /// Size of the guest disk in bytes (the manifest's length).
    pub size: u64,
    /// The manifest holding the disk's current content.
    pub manifest_id: String,
    /// The image the volume was made from; `None` for an empty volume.
    pub source_image_id: Option<Uuid>,
    /// Whether a server can boot from it.
    pub bootable: bool,
    pub encryption: Option<VolumeEncryption>,
    /// The server it is attached to, if any.
    pub attachment: Option<Attachment>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Volume {
    /// `in-use` while attached, else `available`.
    pub fn status(&self) -> &'static str {
        if self.attachment.is_some() {
            "in-use"
        } else {
            "available"
        }
    }
}

/// A minted NBD export name of a volume; only the SHA-256 of the name is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeExport {
    /// Lowercase hex SHA-256 of the secret name.
    pub name_hash: String,
    pub volume_id: Uuid,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The name opens nothing from this instant on.
    pub expires_at: DateTime<Utc>,
}

/// The lowest device index above 0 (the system disk's) not in `taken`.
pub(crate) fn lowest_free_data_device(taken: &[i64]) -> i64 {
    (1..).find(|index| !taken.contains(index)).unwrap_or(1)
}

/// Servers, volumes and volume export names. Every write is atomic; writes that take an [`AuditEvent`]
/// store it in the same transaction.
#[async_trait]
pub trait ComputeRepository: Send + Sync {
    /// Stores `server` and `volumes` (which may name it in their attachments) in one transaction.
    /// `Conflict` (nothing stored) if any id is taken or two volumes claim one device of the server;
    /// `Invalid` if a volume is attached to another server or the server's firmware is neither `bios`
    /// nor `uefi`.
    async fn create_server(&self, server: &Server, volumes: &[Volume], event: &AuditEvent) -> Result<()>;

    /// The server, or `NotFound`.
    async fn get_server(&self, id: Uuid) -> Result<Server>;

    /// Servers of `project` (every project's when `None`), oldest first, then by id.
    async fn list_servers(&self, project: Option<&str>) -> Result<Vec<Server>>;

    /// Deletes the server in one transaction. Its volumes are deleted with it and returned, except when
    /// `keep_volumes`: then they are detached (and `updated_at` set to `at`) and the result is empty.
    /// Export names of deleted volumes go with them. `NotFound` if missing (nothing changes).
    async fn delete_server(&self, id: Uuid, keep_volumes: bool, at: DateTime<Utc>, event: &AuditEvent)
        -> Result<Vec<Volume>>;

    /// Stores `volume` (attached when its `attachment` says so). `Conflict` if the id or the device is
    /// taken; `NotFound` if the attachment names a missing server.
    async fn create_volume(&self, volume: &Volume, event: &AuditEvent) -> Result<()>;

    /// The volume, or `NotFound`.
    async fn get_volume(&self, id: Uuid) -> Result<Volume>;

    /// Volumes of `project` (every project's when `None`), only those attached to `server` when given;
    /// ordered by creation time then id (a server's volumes: by device index).
    async fn list_volumes(&self, project: Option<&str>, server: Option<Uuid>) -> Result<Vec<Volume>>;

    /// Attaches an available volume to `server_id` at `device_index` (the lowest free index above 0 when
    /// `None`) and returns it. `NotFound` if the volume or server is missing; `Conflict` (nothing changes)
    /// if the volume is attached already or the device is taken; `Invalid` if they belong to different
    /// projects.
    async fn attach_volume(
        &self,
        id: Uuid,
        server_id: Uuid,
        device_index: Option<u32>,
        at: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<Volume>;

    /// Detaches the volume and returns it. `NotFound` if missing; `Conflict` if it is not attached.
    async fn detach_volume(&self, id: Uuid, at: DateTime<Utc>, event: &AuditEvent) -> Result<Volume>;

    /// Points the volume at the manifest `manifest_id` (its content after a write) and returns it.
    /// Not audited: this is a data write. `NotFound` if missing.
    async fn set_volume_manifest(&self, id: Uuid, manifest_id: &str, at: DateTime<Utc>) -> Result<Volume>;

    /// Deletes an unattached volume with its export names and returns it. `NotFound` if missing;
    /// `Conflict` (nothing changes) if it is attached.
    async fn delete_volume(&self, id: Uuid, event: &AuditEvent) -> Result<Volume>;

    /// Ids of every manifest a volume references (for the chunk store's garbage collector).
    async fn live_manifests(&self) -> Result<Vec<String>>;

    /// Stores a volume export name. `NotFound` if the volume is missing; `Conflict` if the hash is stored.
    async fn create_export(&self, export: &VolumeExport) -> Result<()>;

    /// The export whose name hashes to `name_hash`, expired or not; `None` if unknown or revoked.
    async fn find_export(&self, name_hash: &str) -> Result<Option<VolumeExport>>;

    /// Revokes the name hashing to `name_hash` if it opens `volume_id`; `NotFound` (nothing changes)
    /// otherwise. Connections already open keep their export.
    async fn revoke_export(&self, volume_id: Uuid, name_hash: &str) -> Result<()>;

    /// Deletes every volume export name that expired before `now`; returns how many. Idempotent.
    async fn purge_expired_exports(&self, now: DateTime<Utc>) -> Result<u64>;
}
