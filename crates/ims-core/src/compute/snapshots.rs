//! Images from servers and volumes (IMS `CreateImage` with `instance_id`, `data_images` or `volume_id`,
//! and `CreateWholeImage`), as jobs.
//!
//! The request captures the current manifest of every volume it images (what NBD clients have flushed),
//! so the images show the disks as they were when it was accepted. The job gives each new image its own
//! manifest object listing the same extents: the image's RAW data *is* the volume's disk and shares every
//! chunk with it, so the time and the new bytes stored do not depend on the disk size (a server changed
//! by N bytes since it was created from an image yields images that add about N bytes to the store).
//! Images of encrypted volumes stay in the volume's encryption domain. Checksums of the file are not
//! computed (that would read whole disks): `checksum` and `os_hash_value` stay unset.
//!
//! A whole-server image is a parent record without data (`__whole_image=true`) that names the system disk
//! image (`__system_image_id`) and the data disk images (`__data_image_ids`, comma-separated, in device
//! order) it was made with; each of those also names the parent (`__whole_image_id`).

use std::sync::Arc;

use async_trait::async_trait;
use ims_catalog::{AuditEvent, CatalogError, Image, ImageEncryption, ImageStatus, Job, Visibility, Volume};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::ComputeService;
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::pipelines::codes;
use crate::{CoreError, RequestContext, Result};

/// The job type of images made from servers and volumes.
pub const SERVER_IMAGE_JOB: &str = "createImageFromServer";

/// Properties a system disk image inherits from the image its server was created from.
const INHERITED: &[&str] =
    &["__os_type", "__os_version", "__platform", "__os_bit", "os_distro", "os_version", "hw_firmware_type", "architecture"];

/// What a new image describes, as a request gives it.
#[derive(Debug, Clone, Default)]
pub struct ImageFromDisk {
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
}

/// `CreateImage` with `instance_id` or `CreateWholeImage`.
#[derive(Debug, Clone, Default)]
pub struct ServerImageRequest {
    /// The system disk image (or, for a whole-server image, the parent record).
    pub image: ImageFromDisk,
    pub min_ram: Option<i64>,
    pub max_ram: Option<i64>,
    /// Data disk images of attached volumes (`data_images` of `CreateImage`).
    pub data_images: Vec<(Uuid, ImageFromDisk)>,
}

/// One image the job makes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlannedImage {
    image_id: Uuid,
    volume_id: Uuid,
    /// The volume's manifest when the request was accepted.
    manifest_id: String,
    name: String,
    description: Option<String>,
    tags: Vec<String>,
    data_image: bool,
    /// The volume's encryption domain (master key and wrapped data key), if encrypted.
    encryption: Option<(String, String)>,
    /// The image the volume was created from (the new image's lineage parent), if any.
    #[serde(default)]
    source_image_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotParams {
    server_id: Option<Uuid>,
    images: Vec<PlannedImage>,
    /// The parent of a whole-server image, made once its disk images are.
    whole_image: Option<PlannedParent>,
    min_ram: i64,
    max_ram: Option<i64>,
    /// Properties copied from the server's source image into the system disk image.
    inherited: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlannedParent {
    image_id: Uuid,
    name: String,
    description: Option<String>,
    tags: Vec<String>,
}

impl ComputeService {
    /// `CreateImage` with `instance_id`: a system disk image of the server's system volume, and a data
    /// disk image of each volume listed in `data_images` (attached to that server). Returns the job.
    /// `NotFound` for a server or volume the caller does not see; `Invalid` for a volume not attached to
    /// the server or a bad name; `Forbidden` for a reader.
    pub async fn image_from_server(&self, ctx: &RequestContext, server_id: Uuid, request: ServerImageRequest) -> Result<Job> {
        self.plan_server_images(ctx, server_id, request, false).await
    }

    /// `CreateWholeImage`: a system disk image and a data disk image of every data volume of the server,
    /// under a parent whole-server image. Returns the job.
    pub async fn whole_image_from_server(&self, ctx: &RequestContext, server_id: Uuid, request: ServerImageRequest)
        -> Result<Job> {
        self.plan_server_images(ctx, server_id, request, true).await
    }

    /// `CreateImage` with `volume_id` (or `CreateDataImage` from a volume): a data disk image of the
    /// volume. Returns the job.
    pub async fn image_from_volume(&self, ctx: &RequestContext, volume_id: Uuid, image: ImageFromDisk) -> Result<Job> {
        Self::writer(ctx)?;
        let volume = self.get_volume(ctx, volume_id).await?;
        let planned = plan(&volume, image, true)?;
        let params = SnapshotParams {
            server_id: None,
            images: vec![planned],
            whole_image: None,
            min_ram: 0,
            max_ram: None,
            inherited: Default::default(),
        };
        self.enqueue_snapshot(ctx, params).await
    }

    async fn plan_server_images(&self, ctx: &RequestContext, server_id: Uuid, request: ServerImageRequest, whole: bool)
        -> Result<Job> {
        Self::writer(ctx)?;
        let server = self.get_server(ctx, server_id).await?;
        let volumes = self.catalog().compute.list_volumes(None, Some(server.id)).await?;
        let system = volumes
            .iter()
            .find(|v| v.attachment.is_some_and(|a| a.device_index == 0))
            .ok_or_else(|| CoreError::Conflict(format!("server {server_id} has no system volume")))?;
        let mut images = Vec::new();
        let parent = if whole {
            let system_name = format!("{}-system", request.image.name);
            images.push(plan(system, ImageFromDisk { name: system_name, ..request.image.clone() }, false)?);
            for v in volumes.iter().filter(|v| v.id != system.id) {
                let device = v.attachment.map_or(0, |a| a.device_index);
                let name = format!("{}-data{device}", request.image.name);
                images.push(plan(v, ImageFromDisk { name, ..request.image.clone() }, true)?);
            }
            super::check_name("image", &request.image.name)?;
            let ImageFromDisk { name, description, tags } = request.image;
            Some(PlannedParent { image_id: Uuid::new_v4(), name, description, tags })
        } else {
            images.push(plan(system, request.image, false)?);
            for (volume_id, image) in request.data_images {
                let volume = volumes.iter().find(|v| v.id == volume_id).ok_or_else(|| {
                    CoreError::Invalid(format!("volume {volume_id} is not attached to server {server_id}"))
                })?;
                images.push(plan(volume, image, true)?);
            }
            None
        };
        let mut inherited = std::collections::BTreeMap::new();
        if let Some(source) = server.image_id {
            if let Ok(source) = self.catalog().images.get(source).await {
                for key in INHERITED {
                    if let Some(value) = source.properties.get(*key) {
                        inherited.insert((*key).to_string(), value.clone());
                    }
                }
            }
        }
        let params = SnapshotParams {
            server_id: Some(server.id),
            images,
            whole_image: parent,
            min_ram: request.min_ram.unwrap_or(0).max(0),
            max_ram: request.max_ram,
            inherited,
        };
        self.enqueue_snapshot(ctx, params).await
    }

    async fn enqueue_snapshot(&self, ctx: &RequestContext, params: SnapshotParams) -> Result<Job> {
        let mut entities = json!({});
        match &params.whole_image {
            Some(parent) => entities["image_id"] = json!(parent.image_id.to_string()),
            None => entities["image_id"] = json!(params.images[0].image_id.to_string()),
        }
        let data: Vec<String> = params.images.iter().filter(|i| i.data_image).map(|i| i.image_id.to_string()).collect();
        if !data.is_empty() {
            entities["sub_images"] = json!(data);
        }
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let job = self.jobs.new_job(ctx, SERVER_IMAGE_JOB, params, entities)?;
        self.jobs.enqueue(ctx, &job).await?;
        Ok(job)
    }

    /// Makes (or finishes, when an earlier attempt began it) the image `planned` of the job's project.
    async fn make_image(&self, job: &Job, p: &SnapshotParams, planned: &PlannedImage, parent: Option<Uuid>)
        -> std::result::Result<(), JobError> {
        let catalog = self.catalog();
        let existing = match catalog.images.get(planned.image_id).await {
            Ok(image) => Some(image),
            Err(CatalogError::NotFound(_)) => None,
            Err(e) => return Err(crate::pipelines::job_error(e.into())),
        };
        if existing.as_ref().is_some_and(|i| i.status == ImageStatus::Active) {
            return Ok(());
        }
        let store = &self.images.store;
        let manifest = store.load_manifest(&planned.manifest_id).await.map_err(|e| {
            JobError::failed(codes::WRONG_STATE, format!("the disk of volume {} cannot be read: {e}", planned.volume_id))
        })?;
        let mut image = match existing {
            Some(image) => image,
            None => {
                let image = new_image(job, p, planned, parent, manifest.size);
                let event = job_event(job, "image.create", image.id);
                let quota = self.images.private_image_quota(&job.project_id).await.map_err(crate::pipelines::job_error)?;
                catalog.images.create_within_quota(&image, quota, &event).await.map_err(|e| match e {
                    CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
                    other => crate::pipelines::job_error(other.into()),
                })?;
                image
            }
        };
        if let Some((key_id, wrapped_data_key)) = planned.encryption.clone() {
            image.properties.insert(crate::kms::CMK_PROPERTY.into(), key_id.clone());
            let record = ImageEncryption { image_id: image.id, key_id, wrapped_data_key };
            catalog.encryption.set_image_encryption(&record).await.map_err(|e| crate::pipelines::job_error(e.into()))?;
        }
        let manifest_id = store.save_manifest(&manifest).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("the image's manifest cannot be stored: {e}"))
        })?;
        image.manifest_id = Some(manifest_id);
        image.size = i64::try_from(manifest.size).ok();
        image.virtual_size = image.size;
        image.status = ImageStatus::Active;
        image.updated_at = crate::now();
        image.properties.insert("active_at".into(), image.updated_at.to_rfc3339());
        let event = job_event(job, "image.activate", image.id);
        self.images.save_activation(&image, &[ImageStatus::Importing], &event).await.map_err(|e| match e {
            CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
            CatalogError::Conflict(_) | CatalogError::NotFound(_) => {
                JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed while it was made", image.id))
            }
            other => crate::pipelines::job_error(other.into()),
        })
    }

    /// Makes the parent record of a whole-server image, referencing the disk images.
    async fn make_parent(&self, job: &Job, p: &SnapshotParams, parent: &PlannedParent) -> std::result::Result<(), JobError> {
        let catalog = self.catalog();
        match catalog.images.get(parent.image_id).await {
            Ok(_) => return Ok(()),
            Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(crate::pipelines::job_error(e.into())),
        }
        let now = crate::now();
        let mut image = Image::new(parent.image_id, &job.project_id, now);
        image.name = Some(parent.name.clone());
        image.visibility = Visibility::Private;
        image.status = ImageStatus::Active;
        image.min_ram = p.min_ram;
        image.tags = parent.tags.iter().cloned().collect();
        if let Some(server) = p.server_id {
            image.lineage = ims_catalog::Lineage::server(&server.to_string(), None);
        }
        let system = p.images.iter().find(|i| !i.data_image);
        if let Some(system) = system {
            image.properties.insert("__system_image_id".into(), system.image_id.to_string());
        }
        let data: Vec<String> = p.images.iter().filter(|i| i.data_image).map(|i| i.image_id.to_string()).collect();
        image.properties.insert("__data_image_ids".into(), data.join(","));
        image.properties.insert("__whole_image".into(), "true".into());
        image.properties.insert("__imagetype".into(), "private".into());
        image.properties.insert("active_at".into(), now.to_rfc3339());
        image.properties.extend(p.inherited.clone());
        if let Some(d) = parent.description.clone().filter(|d| !d.is_empty()) {
            image.properties.insert("__description".into(), d);
        }
        if let Some(server) = p.server_id {
            image.properties.insert("__instance_id".into(), server.to_string());
        }
        let quota = self.images.private_image_quota(&job.project_id).await.map_err(crate::pipelines::job_error)?;
        let event = job_event(job, "image.create", image.id);
        catalog.images.create_within_quota(&image, quota, &event).await.map_err(|e| match e {
            CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
            other => crate::pipelines::job_error(other.into()),
        })
    }
}

/// The plan of an image of `volume`'s current disk.
fn plan(volume: &Volume, image: ImageFromDisk, data_image: bool) -> Result<PlannedImage> {
    super::check_name("image", &image.name)?;
    Ok(PlannedImage {
        image_id: Uuid::new_v4(),
        volume_id: volume.id,
        manifest_id: volume.manifest_id.clone(),
        name: image.name,
        description: image.description,
        tags: image.tags,
        data_image,
        encryption: volume.encryption.as_ref().map(|e| (e.key_id.clone(), e.wrapped_data_key.clone())),
        source_image_id: volume.source_image_id,
    })
}

/// The record of a planned image, `importing` until its data is in place.
fn new_image(job: &Job, p: &SnapshotParams, planned: &PlannedImage, parent: Option<Uuid>, size: u64) -> Image {
    let mut image = Image::new(planned.image_id, &job.project_id, crate::now());
    image.name = Some(planned.name.clone());
    image.visibility = Visibility::Private;
    image.status = ImageStatus::Importing;
    image.disk_format = Some("raw".into());
    image.container_format = Some("bare".into());
    image.min_disk = i64::try_from(size.div_ceil(super::GIB)).unwrap_or(i64::MAX);
    image.tags = planned.tags.iter().cloned().collect();
    image.properties.insert("__imagetype".into(), "private".into());
    image.properties.insert("__source_volume_id".into(), planned.volume_id.to_string());
    let source = p.server_id.map_or_else(|| planned.volume_id.to_string(), |server| server.to_string());
    image.lineage = ims_catalog::Lineage::server(&source, planned.source_image_id);
    if planned.data_image {
        image.properties.insert("virtual_env_type".into(), "DataImage".into());
    } else {
        image.min_ram = p.min_ram;
        if let Some(max_ram) = p.max_ram {
            image.properties.insert("max_ram".into(), max_ram.to_string());
        }
        image.properties.extend(p.inherited.clone());
        image.properties.insert("virtual_env_type".into(), "FusionCompute".into());
    }
    if let Some(server) = p.server_id {
        image.properties.insert("__instance_id".into(), server.to_string());
    }
    if let Some(parent) = parent {
        image.properties.insert("__whole_image_id".into(), parent.to_string());
    }
    if let Some(d) = planned.description.clone().filter(|d| !d.is_empty()) {
        image.properties.insert("__description".into(), d);
    }
    image
}

fn job_event(job: &Job, action: &str, image_id: Uuid) -> AuditEvent {
    let mut event = AuditEvent::new(&format!("job-{}", job.id), action, format!("image:{image_id}"));
    event.project_id = Some(job.project_id.clone());
    event
}

/// Runs the jobs of images from servers and volumes.
pub(crate) struct ServerImageHandler(pub(crate) Arc<ComputeService>);

#[async_trait]
impl JobHandler for ServerImageHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> std::result::Result<Value, JobError> {
        let p: SnapshotParams = serde_json::from_value(job.params.clone())
            .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad parameters: {e}")))?;
        let parent = p.whole_image.as_ref().map(|w| w.image_id);
        for (done, planned) in p.images.iter().enumerate() {
            ctx.check()?;
            self.0.make_image(job, &p, planned, parent).await?;
            ctx.set_progress(90.0 * (done + 1) as f64 / p.images.len() as f64);
        }
        if let Some(whole) = &p.whole_image {
            self.0.make_parent(job, &p, whole).await?;
        }
        let ids: Vec<String> = p.images.iter().map(|i| i.image_id.to_string()).collect();
        let mut result = json!({"image_id": parent.map_or_else(|| ids[0].clone(), |id| id.to_string())});
        let data: Vec<String> = p.images.iter().filter(|i| i.data_image).map(|i| i.image_id.to_string()).collect();
        if !data.is_empty() {
            result["sub_images"] = json!(data);
        }
        if let Some(system) = p.images.iter().find(|i| !i.data_image) {
            result["system_image_id"] = json!(system.image_id.to_string());
        }
        Ok(result)
    }

    /// Deletes the images the failed job left `importing` (those it finished stay).
    async fn on_failed(&self, job: &Job, code: &str, reason: &str) {
        let Ok(p) = serde_json::from_value::<SnapshotParams>(job.params.clone()) else { return };
        let catalog = self.0.catalog();
        for planned in &p.images {
            let Ok(mut image) = catalog.images.get(planned.image_id).await else { continue };
            if image.status != ImageStatus::Importing {
                continue;
            }
            image.status = ImageStatus::Deleted;
            image.updated_at = crate::now();
            let event = job_event(job, "image.delete", image.id).failed(format!("{code}: {reason}"));
            if let Err(e) = catalog.images.save(&image, &[ImageStatus::Importing], &event).await {
                tracing::warn!(image = %image.id, error = %e, "image of a failed job left importing");
            }
        }
    }
}
