//! Volume use cases: create (empty or from an image), list, attach, detach, delete.

use std::sync::Arc;

use ims_catalog::{Volume, VolumeEncryption};
use uuid::Uuid;

use super::disk::{self, GuestDisk};
use super::{bytes_to_gib, check_name, gib_to_bytes, ComputeService, DiskSource, ImageSource};
use crate::{CoreError, RequestContext, Result};

/// A volume to create: from an image (its guest disk, at least as large) or empty.
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    pub name: String,
    /// Size in GiB. Required for an empty volume; from an image it defaults to the image's `min_disk`
    /// or its guest disk size, whichever is larger.
    pub size_gib: Option<u64>,
    pub image_id: Option<Uuid>,
}

/// A volume made but not yet recorded: the record to store and its disk.
pub(crate) struct PreparedVolume {
    pub volume: Volume,
    pub disk: GuestDisk,
    pub store: ims_store::ChunkStore,
}

impl ComputeService {
    /// Creates a volume in the caller's project and returns it. From an image: the image must be visible,
    /// downloadable and active, and `size_gib` at least its `min_disk` and guest disk size (else
    /// `Invalid`); a RAW image's data is shared, other formats are converted inline (see the `disk`
    /// module). Atomic as seen through the catalog: on error no volume exists.
    pub async fn create_volume(&self, ctx: &RequestContext, new: NewVolume) -> Result<Volume> {
        let caller = Self::writer(ctx)?;
        check_name("volume", &new.name)?;
        let source = match new.image_id {
            Some(id) => Some(self.image_source(ctx, id).await?),
            None => None,
        };
        let project = caller.project_id.clone();
        let prepared = self.prepare_volume(&project, &new.name, source.as_ref(), new.size_gib, None).await?;
        let event = ctx.event("volume.create", format!("volume:{}", prepared.volume.id));
        let stored = self.catalog().compute.create_volume(&prepared.volume, &event).await;
        disk::release(&prepared.store, &prepared.disk).await;
        stored?;
        Ok(prepared.volume)
    }

    /// Makes the disk of a volume of `project` from `source` (or empty) and the record to store, attached
    /// as `attachment` says. The size defaults to, and must be at least, the image's `min_disk` and guest
    /// disk size.
    pub(crate) async fn prepare_volume(
        &self,
        project: &str,
        name: &str,
        source: Option<&ImageSource>,
        size_gib: Option<u64>,
        attachment: Option<ims_catalog::compute::Attachment>,
    ) -> Result<PreparedVolume> {
        let now = crate::now();
        let (store, disk, encryption, source_image_id, bootable) = match source {
            None => {
                let size = gib_to_bytes(size_gib.ok_or_else(|| {
                    CoreError::Invalid("an empty volume needs a size in GiB".into())
                })?)?;
                let store = self.images.store.clone();
                let disk = self.driver.create_disk(&store, DiskSource::Empty { size }).await?;
                (store, disk, None::<VolumeEncryption>, None, false)
            }
            Some(src) => {
                let guest_size = guest_disk_size(src);
                let min_gib = u64::try_from(src.image.min_disk).unwrap_or(0).max(bytes_to_gib(guest_size)).max(1);
                let gib = size_gib.unwrap_or(min_gib);
                if gib < min_gib {
                    return Err(CoreError::Invalid(format!(
                        "image {} needs a disk of at least {min_gib} GiB (min_disk {} GiB, guest disk {guest_size} \
                         bytes); {gib} GiB was asked for",
                        src.image.id, src.image.min_disk
                    )));
                }
                let size = gib_to_bytes(gib)?;
                let source = DiskSource::Image {
                    manifest_id: src.manifest_id.clone(),
                    manifest: Arc::clone(&src.manifest),
                    format: src.format,
                    size,
                };
                let disk = self.driver.create_disk(&src.store, source).await?;
                let bootable = !super::servers::is_data_image(&src.image);
                (src.store.clone(), disk, src.encryption.clone(), Some(src.image.id), bootable)
            }
        };
        let volume = Volume {
            id: Uuid::new_v4(),
            project: project.to_string(),
            name: name.to_string(),
            size: disk.size,
            manifest_id: disk.manifest_id.clone(),
            source_image_id,
            bootable,
            encryption,
            attachment,
            created_at: now,
            updated_at: now,
        };
        Ok(PreparedVolume { volume, disk, store })
    }

    /// The caller project's volumes (every project's for an admin asking for `all_projects`), only those
    /// attached to `server` when given (a server the caller does not see is `NotFound`).
    pub async fn list_volumes(&self, ctx: &RequestContext, all_projects: bool, server: Option<Uuid>) -> Result<Vec<Volume>> {
        let scope = Self::listing_scope(ctx, all_projects)?;
        if let Some(id) = server {
            self.get_server(ctx, id).await?;
        }
        Ok(self.catalog().compute.list_volumes(scope.as_deref(), server).await?)
    }

    /// Attaches the volume to the server at `device_index` (the lowest free data device when `None`) and
    /// returns it. Both must be visible to the caller and in one project (else `Invalid`); `Conflict` if
    /// the volume is attached or the device is taken. Device 0, the system disk, is taken at creation.
    pub async fn attach_volume(&self, ctx: &RequestContext, id: Uuid, server_id: Uuid, device_index: Option<u32>)
        -> Result<Volume> {
        Self::writer(ctx)?;
        if device_index == Some(0) {
            return Err(CoreError::Invalid("device 0 is the system disk, set when the server is created".into()));
        }
        self.get_volume(ctx, id).await?;
        self.get_server(ctx, server_id).await?;
        let event = ctx.event("volume.attach", format!("volume:{id}"));
        Ok(self.catalog().compute.attach_volume(id, server_id, device_index, crate::now(), &event).await?)
    }

    /// Detaches data volume `id` from server `server_id` and returns it. `NotFound` if it is not attached
    /// to that server; `Conflict` if it is the system disk (which goes only with its server, or stays
    /// when the server is deleted with its volumes kept).
    pub async fn detach_volume(&self, ctx: &RequestContext, server_id: Uuid, id: Uuid) -> Result<Volume> {
        Self::writer(ctx)?;
        let volume = self.get_volume(ctx, id).await?;
        if volume.attachment.is_none_or(|a| a.server_id != server_id) {
            return Err(CoreError::NotFound(format!("volume {id} is not attached to server {server_id}")));
        }
        if volume.attachment.is_some_and(|a| a.device_index == 0) {
            return Err(CoreError::Conflict(format!("volume {id} is the system disk of its server and cannot be detached")));
        }
        let event = ctx.event("volume.detach", format!("volume:{id}"));
        Ok(self.catalog().compute.detach_volume(id, crate::now(), &event).await?)
    }

    /// Deletes a volume that is not attached (else `Conflict`), with its NBD export names. Its data is
    /// reclaimed by garbage collection (chunks it shares with images stay).
    pub async fn delete_volume(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        Self::writer(ctx)?;
        self.get_volume(ctx, id).await?;
        let event = ctx.event("volume.delete", format!("volume:{id}"));
        self.catalog().compute.delete_volume(id, &event).await?;
        Ok(())
    }
}

/// The size of the image's guest disk: its recorded virtual size, else (RAW) its file size.
pub(crate) fn guest_disk_size(src: &ImageSource) -> u64 {
    src.image.virtual_size.and_then(|v| u64::try_from(v).ok()).unwrap_or(src.manifest.size)
}
