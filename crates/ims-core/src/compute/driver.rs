//! The compute driver: what turns server and volume records into machines and disks.

use std::sync::Arc;

use async_trait::async_trait;
use ims_catalog::{Server, ServerStatus, Volume};
use ims_formats::Format;
use ims_store::{ChunkStore, Manifest};

use super::disk::{self, GuestDisk};
use crate::Result;

/// Where the content of a new volume comes from.
#[derive(Debug, Clone)]
pub enum DiskSource {
    /// A disk of zeros of `size` bytes.
    Empty { size: u64 },
    /// The guest disk of a stored image file, grown with zeros to `size` bytes.
    Image {
        /// The image file's manifest and its id.
        manifest_id: String,
        manifest: Arc<Manifest>,
        /// The file's disk format; `Raw` when the file is the guest disk itself.
        format: Format,
        size: u64,
    },
}

/// A compute backend. The catalog holds the records; the driver makes their disks and machines.
#[async_trait]
pub trait ComputeDriver: Send + Sync {
    /// The driver's name, shown to operators (`local` for the built-in driver).
    fn name(&self) -> &'static str;

    /// Makes the RAW guest disk of a new volume in `store` (already in the volume's encryption domain)
    /// from `source`, and returns it saved as a manifest. Stores no data for a RAW image (the disk shares
    /// its chunks) and none for holes. `Invalid` if the size cannot hold the source; `Corrupt` if the
    /// image file does not parse. On error nothing the caller must clean up remains (chunks already
    /// stored are left to garbage collection). The returned disk's pending manifests must be released
    /// with [`disk::release`] once the catalog references it.
    async fn create_disk(&self, store: &ChunkStore, source: DiskSource) -> Result<GuestDisk>;

    /// Brings up the machine of a newly recorded `server` with `volumes` (device order) and returns the
    /// status to record. Must not fail after it started anything it cannot undo.
    async fn create_machine(&self, server: &Server, volumes: &[Volume]) -> Result<ServerStatus>;

    /// Tears down the machine of `server`, which is being deleted. Idempotent: a machine that does not
    /// run is not an error.
    async fn delete_machine(&self, server: &Server) -> Result<()>;
}

/// The built-in driver: disks are manifests of the node's chunk store, copy-on-write over images, and
/// machines are records only. A server is created `SHUTOFF`; its disks are reachable over NBD (volume
/// attachments), which is how a hypervisor outside IMS would run it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalDriver;

#[async_trait]
impl ComputeDriver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn create_disk(&self, store: &ChunkStore, source: DiskSource) -> Result<GuestDisk> {
        match source {
            DiskSource::Empty { size } => disk::empty_disk(store, size).await,
            DiskSource::Image { manifest_id, manifest, format: Format::Raw, size } => {
                disk::disk_from_raw(store, &manifest_id, &manifest, size).await
            }
            DiskSource::Image { manifest, format, size, .. } => {
                let guest = disk::open_guest_disk(store, manifest, format).await?;
                disk::disk_from_format(store, guest, size).await
            }
        }
    }

    async fn create_machine(&self, _server: &Server, _volumes: &[Volume]) -> Result<ServerStatus> {
        Ok(ServerStatus::Shutoff)
    }

    async fn delete_machine(&self, _server: &Server) -> Result<()> {
        Ok(())
    }
}
