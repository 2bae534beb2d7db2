//! Compute: servers and volumes of the built-in driver (DESIGN section 3).
//!
//! Authorization: every use case needs a signed-in caller. A project's servers and volumes are visible to
//! its users and to admins; anything else is reported as not found. Creating, changing and deleting needs
//! the member role (or admin). Images used as sources must be visible to the caller and downloadable by it.
//!
//! Volumes made from an image stay in the image's encryption domain: their new chunks are encrypted with
//! the image's data key and dedup against the image's chunks.

mod config_drive;
mod disk;
mod driver;
pub mod exports;
mod servers;
mod snapshots;
mod volumes;

use std::sync::Arc;

use ims_catalog::{CatalogError, Image, ImageStatus, Server, Volume, VolumeEncryption};
use ims_formats::Format;
use ims_store::crypto::DATA_KEY_LEN;
use ims_store::{ChunkStore, EncryptionDomain, Manifest};
use uuid::Uuid;

pub use disk::GuestDisk;
pub use driver::{ComputeDriver, DiskSource, LocalDriver};
pub use config_drive::CONFIG_DRIVE_LABEL;
pub use servers::{NewDataVolume, NewServer, ServerSource};
pub use snapshots::{ImageFromDisk, ServerImageRequest, SERVER_IMAGE_JOB};
pub(crate) use snapshots::ServerImageHandler;
pub use volumes::NewVolume;

use crate::inspection::inspected_format;
use crate::{Caller, CoreError, ImageService, Policy, RequestContext, Result};

/// One GiB, the unit of volume sizes, `min_disk` and quotas of disks.
pub const GIB: u64 = 1 << 30;
/// Largest volume accepted, in GiB.
pub const MAX_VOLUME_GIB: u64 = 64 * 1024;

/// The use cases of servers and volumes.
#[derive(Clone)]
pub struct ComputeService {
    images: ImageService,
    jobs: crate::JobService,
    driver: Arc<dyn ComputeDriver>,
}

/// An image resolved as the source of a disk: its record, the store view it is read through, its file.
pub(crate) struct ImageSource {
    pub image: Image,
    pub store: ChunkStore,
    pub encryption: Option<VolumeEncryption>,
    pub manifest_id: String,
    pub manifest: Arc<Manifest>,
    pub format: Format,
}

impl ComputeService {
    pub fn new(images: ImageService, jobs: crate::JobService, driver: Arc<dyn ComputeDriver>) -> ComputeService {
        ComputeService { images, jobs, driver }
    }

    /// The driver's name.
    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    fn catalog(&self) -> &ims_catalog::Catalog {
        &self.images.catalog
    }

    /// The caller, who must be allowed to change things (member or admin role).
    fn writer(ctx: &RequestContext) -> Result<&Caller> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("The reader role cannot change servers or volumes.".into()));
        }
        Ok(caller)
    }

    /// Whether the caller sees resources of `project`.
    fn sees(ctx: &RequestContext, project: &str) -> bool {
        ctx.is_admin() || ctx.project_id() == Some(project)
    }

    /// The project a listing covers: the caller's own, or every project for an admin who asks for all.
    fn listing_scope(ctx: &RequestContext, all_projects: bool) -> Result<Option<String>> {
        let caller = Policy::require_caller(ctx)?;
        Ok(if all_projects && caller.is_admin() { None } else { Some(caller.project_id.clone()) })
    }

    /// The image `id` as the source of a disk: visible to the caller, downloadable, active with data.
    pub(crate) async fn image_source(&self, ctx: &RequestContext, id: Uuid) -> Result<ImageSource> {
        let image = self.images.get(ctx, id).await?;
        self.source_of(ctx, image).await
    }

    /// `image`, already known to be visible (to the caller, or to the owner of a capsule the caller sees),
    /// as the source of a disk: downloadable by the caller, active with data.
    pub(crate) async fn source_of(&self, ctx: &RequestContext, image: Image) -> Result<ImageSource> {
        let id = image.id;
        Policy::check_download(ctx, &image)?;
        let manifest_id = match (&image.manifest_id, image.status) {
            (Some(m), ImageStatus::Active) => m.clone(),
            _ => return Err(CoreError::Conflict(format!("image {id} is not active; only active images make disks"))),
        };
        // A volume shares the image's chunks in the default store.
        self.images.require_default_copy(&image)?;
        let store = self.images.store_for_reading(&image).await?;
        let encryption = self
            .catalog()
            .encryption
            .image_encryption(image.id)
            .await?
            .map(|r| VolumeEncryption { key_id: r.key_id, wrapped_data_key: r.wrapped_data_key });
        let manifest = store
            .load_manifest(&manifest_id)
            .await
            .map_err(|e| CoreError::Corrupt(format!("image {id}: its data cannot be read: {e}")))?;
        let format = image.disk_format.as_deref().and_then(inspected_format).unwrap_or(Format::Raw);
        Ok(ImageSource { image, store, encryption, manifest_id, manifest: Arc::new(manifest), format })
    }

    /// The store view a volume's data is read and written through: its encryption domain, or plaintext.
    /// `Forbidden` if the domain's master key is disabled or gone.
    pub async fn volume_store(&self, volume: &Volume) -> Result<ChunkStore> {
        let Some(encryption) = &volume.encryption else { return Ok(self.images.store.clone()) };
        let kms = self.images.kms.get().ok_or_else(|| {
            CoreError::NotAvailable("encrypted volumes need key management, which is not configured".into())
        })?;
        let key = kms.unwrap(&encryption.key_id, &encryption.wrapped_data_key).await.map_err(|e| {
            CoreError::Forbidden(format!(
                "the encryption key {} of volume {} cannot be used: {e}",
                encryption.key_id, volume.id
            ))
        })?;
        let key: [u8; DATA_KEY_LEN] = key
            .try_into()
            .map_err(|_| CoreError::Corrupt(format!("volume {}: its data key has the wrong length", volume.id)))?;
        Ok(self.images.store.in_domain(EncryptionDomain::new(&key)))
    }

    /// The volume `id` if the caller sees it, else `NotFound`.
    pub async fn get_volume(&self, ctx: &RequestContext, id: Uuid) -> Result<Volume> {
        Policy::require_caller(ctx)?;
        match self.catalog().compute.get_volume(id).await {
            Ok(volume) if Self::sees(ctx, &volume.project) => Ok(volume),
            Ok(_) | Err(CatalogError::NotFound(_)) => Err(CoreError::NotFound(format!("No volume found with ID {id}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// The server `id` if the caller sees it, else `NotFound`.
    pub async fn get_server(&self, ctx: &RequestContext, id: Uuid) -> Result<Server> {
        Policy::require_caller(ctx)?;
        match self.catalog().compute.get_server(id).await {
            Ok(server) if Self::sees(ctx, &server.project) => Ok(server),
            Ok(_) | Err(CatalogError::NotFound(_)) => Err(CoreError::NotFound(format!("No server found with ID {id}"))),
            Err(e) => Err(e.into()),
        }
    }
}

/// Bytes of `gib` GiB; `Invalid` outside 1..=[`MAX_VOLUME_GIB`].
fn gib_to_bytes(gib: u64) -> Result<u64> {
    if !(1..=MAX_VOLUME_GIB).contains(&gib) {
        return Err(CoreError::Invalid(format!("a volume size is 1 to {MAX_VOLUME_GIB} GiB, not {gib}")));
    }
    Ok(gib * GIB)
}

/// `bytes` rounded up to whole GiB.
fn bytes_to_gib(bytes: u64) -> u64 {
    bytes.div_ceil(GIB)
}

/// Checks a name given to a server or volume: 1 to 255 characters, no control characters.
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(CoreError::Invalid(format!("a {what} name is 1 to 255 characters without control characters")));
    }
    Ok(())
}
