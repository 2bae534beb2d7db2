//! Server use cases: create from a system disk image (with data volumes), a whole-server image or a
//! capsule, list, delete.

use bytes::Bytes;
use ims_catalog::compute::Attachment;
use ims_catalog::{Image, Server, ServerStatus, ServerType, Volume};
use uuid::Uuid;

use super::{config_drive, disk};
use super::volumes::PreparedVolume;
use super::{check_name, ComputeService};
use crate::{CoreError, RequestContext, Result};

/// Largest vCPU count accepted.
const MAX_VCPUS: u32 = 512;
/// Largest memory accepted, in MiB (16 TiB).
const MAX_RAM_MB: u64 = 16 << 20;
/// Most data volumes created with one server.
const MAX_DATA_VOLUMES: usize = 24;

/// A data volume created with a server: from a (data disk) image or empty.
#[derive(Debug, Clone, Default)]
pub struct NewDataVolume {
    pub image_id: Option<Uuid>,
    pub size_gib: Option<u64>,
}

/// What a server is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSource {
    /// A system disk image, or a whole-server image (all its disks restored).
    Image(Uuid),
    /// A capsule: its base image, its application images and a config drive with its user data.
    Capsule(Uuid),
}

/// A server to create.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub name: String,
    pub server_type: ServerType,
    pub vcpus: u32,
    pub ram_mb: u64,
    /// The machine's architecture; defaults to the image's, else `x86_64`.
    pub architecture: Option<String>,
    /// The firmware the machine boots with: `bios` or `uefi`; defaults to the image's
    /// `hw_firmware_type`, else `bios`.
    pub firmware: Option<String>,
    /// The image or capsule the server is made from (recorded as the server's `image_id`).
    pub source: ServerSource,
    /// Size of the system volume in GiB; defaults to the image's `min_disk` or guest disk size.
    pub system_volume_gib: Option<u64>,
    /// Data volumes, attached as devices 1, 2, ... in this order.
    pub data_volumes: Vec<NewDataVolume>,
}

/// Whether the image is a data disk image (IMS `virtual_env_type=DataImage`).
pub(crate) fn is_data_image(image: &Image) -> bool {
    image.properties.get("virtual_env_type").is_some_and(|v| v.eq_ignore_ascii_case("DataImage"))
}

/// Whether the image is a whole-server image (a parent record of disk images).
pub(crate) fn is_whole_image(image: &Image) -> bool {
    image.properties.get("__whole_image").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The canonical name of an architecture as images and servers spell it.
pub(crate) fn normalize_architecture(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" | "x86" | "x64" => Some("x86_64"),
        "aarch64" | "arm64" | "arm" => Some("aarch64"),
        _ => None,
    }
}

impl ComputeService {
    /// Creates a server in the caller's project from a system disk image, with its system volume (device
    /// 0) and data volumes (devices 1..), and returns the server and its volumes. From a whole-server
    /// image, every disk is restored: the system volume from its system disk image, data volumes from its
    /// data disk images (devices 1.., before those the request adds). From a capsule (visible to the
    /// caller; its parts are resolved with its owner's rights, `Conflict` when one is gone): the system
    /// volume from its base image, one data volume per application image in order, then the requested
    /// data volumes, and last a config drive volume (see `config_drive`) with the capsule's user data;
    /// the capsule is recorded as the server's image. Checked before anything is stored: the images are
    /// visible, downloadable and active; the system image is not a data disk or whole-server image;
    /// `ram_mb` is at least the image's `min_ram`; the system volume at least its `min_disk` and guest
    /// disk; the architecture matches the image's, and so does the firmware when the image names one in
    /// `hw_firmware_type` (`Invalid` otherwise; without a requested firmware the image's is taken, else
    /// `bios`, and recorded on the server). The server and its volumes are recorded in one
    /// transaction: on error none exists.
    pub async fn create_server(&self, ctx: &RequestContext, new: NewServer) -> Result<(Server, Vec<Volume>)> {
        let caller = Self::writer(ctx)?;
        check_name("server", &new.name)?;
        if !(1..=MAX_VCPUS).contains(&new.vcpus) {
            return Err(CoreError::Invalid(format!("vcpus is 1 to {MAX_VCPUS}")));
        }
        if !(1..=MAX_RAM_MB).contains(&new.ram_mb) {
            return Err(CoreError::Invalid(format!("ram_mb is 1 to {MAX_RAM_MB}")));
        }
        let mut data_sources: Vec<(Option<super::ImageSource>, Option<u64>)> = Vec::new();
        let mut user_data: Option<Bytes> = None;
        let (requested, system) = match new.source {
            ServerSource::Image(id) => {
                let requested = self.images.get(ctx, id).await?;
                check_min_ram(&requested, new.ram_mb)?;
                // A whole-server image restores all its disks: its system disk image, then its data disk images.
                let system = if is_whole_image(&requested) {
                    crate::Policy::check_download(ctx, &requested)?;
                    let (system_id, data_ids) = whole_image_parts(&requested)?;
                    for id in data_ids {
                        data_sources.push((Some(self.image_source(ctx, id).await?), None));
                    }
                    self.image_source(ctx, system_id).await?
                } else {
                    self.image_source(ctx, id).await?
                };
                (requested, system)
            }
            ServerSource::Capsule(id) => {
                let parts = self.images.resolve_capsule(ctx, id).await?;
                crate::Policy::check_download(ctx, &parts.capsule)?;
                check_min_ram(&parts.capsule, new.ram_mb)?;
                for app in parts.app_images {
                    data_sources.push((Some(self.source_of(ctx, app).await?), None));
                }
                let system = self.source_of(ctx, parts.base_image).await?;
                user_data = Some(parts.user_data);
                (parts.capsule, system)
            }
        };
        if data_sources.len() + new.data_volumes.len() + usize::from(user_data.is_some()) > MAX_DATA_VOLUMES {
            return Err(CoreError::Invalid(format!("a server has at most {MAX_DATA_VOLUMES} data volumes")));
        }
        let image = &system.image;
        if is_data_image(image) || is_whole_image(image) {
            return Err(CoreError::Invalid(format!(
                "image {} is not a system disk image; a server boots from a system disk image",
                image.id
            )));
        }
        check_min_ram(image, new.ram_mb)?;
        let architecture = check_architecture(image, new.architecture.as_deref())?;
        let firmware = check_firmware(image, new.firmware.as_deref())?;
        for data in &new.data_volumes {
            let source = match data.image_id {
                Some(id) => Some(self.image_source(ctx, id).await?),
                None => None,
            };
            data_sources.push((source, data.size_gib));
        }

        let now = crate::now();
        let server = Server {
            id: Uuid::new_v4(),
            project: caller.project_id.clone(),
            name: new.name.clone(),
            server_type: new.server_type,
            vcpus: new.vcpus,
            ram_mb: new.ram_mb,
            architecture: architecture.to_string(),
            firmware: firmware.to_string(),
            status: ServerStatus::Shutoff,
            image_id: Some(requested.id),
            created_at: now,
            updated_at: now,
        };
        let mut prepared: Vec<PreparedVolume> = Vec::new();
        let outcome = self
            .prepare_server_volumes(&server, &system, &new, &data_sources, user_data, &mut prepared)
            .await;
        let stored = match outcome {
            Ok(()) => self.record_server(ctx, server, &prepared).await,
            Err(e) => Err(e),
        };
        for p in &prepared {
            disk::release(&p.store, &p.disk).await;
        }
        stored
    }

    async fn prepare_server_volumes(
        &self,
        server: &Server,
        system: &super::ImageSource,
        new: &NewServer,
        data_sources: &[(Option<super::ImageSource>, Option<u64>)],
        user_data: Option<Bytes>,
        prepared: &mut Vec<PreparedVolume>,
    ) -> Result<()> {
        let attach = |device_index| Some(Attachment { server_id: server.id, device_index });
        let name = format!("{}-system", server.name);
        prepared.push(self.prepare_volume(&server.project, &name, Some(system), new.system_volume_gib, attach(0)).await?);
        for (index, (source, size_gib)) in data_sources.iter().enumerate() {
            let device = u32::try_from(index + 1).expect("at most MAX_DATA_VOLUMES");
            let name = format!("{}-data{device}", server.name);
            let volume = self.prepare_volume(&server.project, &name, source.as_ref(), *size_gib, attach(device)).await?;
            prepared.push(volume);
        }
        if let Some(user_data) = user_data {
            let device = u32::try_from(data_sources.len() + 1).expect("at most MAX_DATA_VOLUMES");
            prepared.push(self.prepare_config_drive(server, user_data, attach(device)).await?);
        }
        Ok(())
    }

    /// The config drive volume of a server made from capsule `server.image_id`: unencrypted, not
    /// bootable, its source the capsule.
    async fn prepare_config_drive(&self, server: &Server, user_data: Bytes, attachment: Option<Attachment>)
        -> Result<PreparedVolume> {
        let store = self.images.store.clone();
        let meta_data = config_drive::meta_data(server.id, &server.name);
        let disk = config_drive::write_config_drive(&store, user_data, meta_data).await?;
        let volume = Volume {
            id: Uuid::new_v4(),
            project: server.project.clone(),
            name: format!("{}-config", server.name),
            size: disk.size,
            manifest_id: disk.manifest_id.clone(),
            source_image_id: server.image_id,
            bootable: false,
            encryption: None,
            attachment,
            created_at: server.created_at,
            updated_at: server.created_at,
        };
        Ok(PreparedVolume { volume, disk, store })
    }

    /// Brings up the machine and stores the server with its prepared volumes.
    async fn record_server(&self, ctx: &RequestContext, mut server: Server, prepared: &[PreparedVolume])
        -> Result<(Server, Vec<Volume>)> {
        let volumes: Vec<Volume> = prepared.iter().map(|p| p.volume.clone()).collect();
        server.status = self.driver.create_machine(&server, &volumes).await?;
        let event = ctx.event("server.create", format!("server:{}", server.id));
        if let Err(e) = self.catalog().compute.create_server(&server, &volumes, &event).await {
            if let Err(teardown) = self.driver.delete_machine(&server).await {
                tracing::warn!(server = %server.id, error = %teardown, "machine of an unrecorded server left running");
            }
            return Err(e.into());
        }
        Ok((server, volumes))
    }

    /// The caller project's servers (every project's for an admin asking for `all_projects`).
    pub async fn list_servers(&self, ctx: &RequestContext, all_projects: bool) -> Result<Vec<Server>> {
        let scope = Self::listing_scope(ctx, all_projects)?;
        Ok(self.catalog().compute.list_servers(scope.as_deref()).await?)
    }

    /// Deletes the server. Its volumes are deleted with it, unless `keep_volumes`: then they stay,
    /// detached and available. `NotFound` for a server the caller does not see.
    pub async fn delete_server(&self, ctx: &RequestContext, id: Uuid, keep_volumes: bool) -> Result<()> {
        Self::writer(ctx)?;
        let server = self.get_server(ctx, id).await?;
        self.driver.delete_machine(&server).await?;
        let event = ctx.event("server.delete", format!("server:{id}"));
        self.catalog().compute.delete_server(id, keep_volumes, crate::now(), &event).await?;
        Ok(())
    }
}

/// `Invalid` unless `ram_mb` is at least the image's `min_ram`.
fn check_min_ram(image: &Image, ram_mb: u64) -> Result<()> {
    if u64::try_from(image.min_ram).unwrap_or(0) > ram_mb {
        return Err(CoreError::Invalid(format!(
            "image {} needs at least {} MiB of memory (min_ram); the server has {ram_mb}",
            image.id, image.min_ram
        )));
    }
    Ok(())
}

/// The firmware a server boots with: the one asked for, which must be the image's when the image names
/// one in `hw_firmware_type`; when none is asked for, the image's, else `bios`.
fn check_firmware(image: &Image, requested: Option<&str>) -> Result<&'static str> {
    let known = |name: &str| match name.to_ascii_lowercase().as_str() {
        "bios" => Some("bios"),
        "uefi" => Some("uefi"),
        _ => None,
    };
    let needed = image.properties.get("hw_firmware_type").and_then(|f| known(f));
    let requested = match requested {
        None => needed.unwrap_or("bios"),
        Some(r) => known(r).ok_or_else(|| CoreError::Invalid(format!("unknown firmware {r:?}: expected bios or uefi")))?,
    };
    match needed {
        Some(needed) if needed != requested => Err(CoreError::Invalid(format!(
            "image {} boots with {needed} firmware (hw_firmware_type={needed}); a server with {requested} firmware \
             cannot boot it: create the server with \"firmware\": \"{needed}\"",
            image.id
        ))),
        _ => Ok(requested),
    }
}

/// The system disk image and data disk images a whole-server image names (see `snapshots`).
fn whole_image_parts(image: &Image) -> Result<(Uuid, Vec<Uuid>)> {
    let broken = || CoreError::Conflict(format!("whole-server image {} does not name its disk images", image.id));
    let system = image.properties.get("__system_image_id").and_then(|id| Uuid::parse_str(id).ok()).ok_or_else(broken)?;
    let data = match image.properties.get("__data_image_ids").map(String::as_str) {
        None | Some("") => Vec::new(),
        Some(ids) => ids.split(',').map(|id| Uuid::parse_str(id.trim()).map_err(|_| broken())).collect::<Result<_>>()?,
    };
    Ok((system, data))
}

/// The server's architecture: the one asked for, which must match the image's when the image names one;
/// else the image's; else `x86_64`.
fn check_architecture(image: &Image, requested: Option<&str>) -> Result<&'static str> {
    let unknown = |name: &str| CoreError::Invalid(format!("unknown architecture {name:?}: expected x86_64 or aarch64"));
    let requested = requested.map(|r| normalize_architecture(r).ok_or_else(|| unknown(r))).transpose()?;
    let of_image = image.properties.get("architecture").and_then(|a| normalize_architecture(a));
    match (requested, of_image) {
        (Some(r), Some(i)) if r != i => Err(CoreError::Invalid(format!(
            "image {} is built for {i}; a {r} server cannot boot it",
            image.id
        ))),
        (Some(r), _) => Ok(r),
        (None, Some(i)) => Ok(i),
        (None, None) => Ok("x86_64"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_match_by_canonical_name() {
        let mut image = Image::new(Uuid::new_v4(), "p", crate::now());
        assert_eq!(check_architecture(&image, None).unwrap(), "x86_64");
        image.properties.insert("architecture".into(), "arm".into());
        assert_eq!(check_architecture(&image, None).unwrap(), "aarch64");
        assert_eq!(check_architecture(&image, Some("arm64")).unwrap(), "aarch64");
        assert!(matches!(check_architecture(&image, Some("x86_64")), Err(CoreError::Invalid(_))));
        assert!(matches!(check_architecture(&image, Some("sparc")), Err(CoreError::Invalid(_))));
    }

    #[test]
    fn firmware_defaults_to_the_image_and_must_match_it_when_it_names_one() {
        let mut image = Image::new(Uuid::new_v4(), "p", crate::now());
        assert_eq!(check_firmware(&image, None).unwrap(), "bios");
        assert_eq!(check_firmware(&image, Some("UEFI")).unwrap(), "uefi");
        assert!(matches!(check_firmware(&image, Some("coreboot")), Err(CoreError::Invalid(_))));
        image.properties.insert("hw_firmware_type".into(), "uefi".into());
        assert_eq!(check_firmware(&image, None).unwrap(), "uefi", "without a request the image's firmware is taken");
        assert!(matches!(check_firmware(&image, Some("bios")), Err(CoreError::Invalid(m)) if m.contains("uefi")));
        assert_eq!(check_firmware(&image, Some("uefi")).unwrap(), "uefi");
        image.properties.insert("hw_firmware_type".into(), "bios".into());
        assert!(matches!(check_firmware(&image, Some("uefi")), Err(CoreError::Invalid(_))));
    }
}
