//! CreateImage / CreateDataImage with `image_url`: an image made from a file in a bucket.
//!
//! The request creates the image (`importing`) and its job in one transaction. The job streams the bucket
//! object into the chunk store (inspected like an upload: unsafe or mismatching files are refused), or,
//! when the operator's conversion setting asks for another stored format, inspects the object the same
//! way, reads it in place through the formats engine and writes the converted disk as chunks (no staging
//! file, and the original file is never stored). `disk_format`, `size`, `virtual_size` and the hashes describe the stored result; the
//! original file's are kept as `__original_*` properties. The image turns `active` only once its data is
//! complete; a job restarted after a crash starts over and never leaves an active image without data.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use ims_catalog::{Image, ImageChange, ImageStatus, Job, Lineage, SourceType, Visibility};
use ims_formats::Format;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::convert::convert_bucket_object;
use super::{codes, job_error, job_image, PipelineService};
use crate::buckets::parse_bucket_url;
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::{CoreError, Policy, RequestContext, Result};

/// The job type of imports from a bucket file (the IMS API's name).
pub const IMPORT_JOB: &str = "createImageByFile";

/// Imports held before they read their bucket object, by `bucket:key` (see [`hold_imports_of`]).
static HOLDS: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::RwLock<()>>>> = std::sync::Mutex::new(BTreeMap::new());

/// Holds every import job of the bucket object `image_url` (`bucket:key`) in this process right before it
/// reads the object, until the returned hold is dropped: the image stays `importing` meanwhile (the job
/// keeps heartbeating, and a cancelled job stops waiting). For tests that must observe an import while it
/// runs, deterministically; the service itself never holds an import. A second hold of the same object
/// replaces the first.
pub fn hold_imports_of(image_url: &str) -> ImportHold {
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let guard = gate.clone().try_write_owned().expect("a new lock is free");
    HOLDS.lock().expect("import holds poisoned").insert(image_url.to_string(), gate);
    ImportHold { image_url: image_url.to_string(), _guard: guard }
}

/// A hold on the imports of one bucket object; dropping it lets them go on.
#[must_use = "dropping the hold releases the imports at once"]
pub struct ImportHold {
    image_url: String,
    _guard: tokio::sync::OwnedRwLockWriteGuard<()>,
}

impl Drop for ImportHold {
    fn drop(&mut self) {
        HOLDS.lock().expect("import holds poisoned").remove(&self.image_url);
    }
}

/// Waits while an [`ImportHold`] holds the imports of `bucket:key` (or until the job is cancelled).
async fn wait_while_held(bucket: &str, key: &str, ctx: &JobContext) {
    let gate = HOLDS.lock().expect("import holds poisoned").get(&format!("{bucket}:{key}")).cloned();
    if let Some(gate) = gate {
        tokio::select! {
            _ = gate.read() => {}
            _ = ctx.cancelled() => {}
        }
    }
}

/// What to store for each source format (operator setting): absent means "keep the file as is".
pub type ImportConversions = HashMap<Format, Format>;

/// Parses the conversion setting: source format name → `keep`, `raw` or `zvhd2`. Only QCOW2, VMDK and VHD
/// sources can be converted.
pub fn parse_conversions(setting: &BTreeMap<String, String>) -> Result<ImportConversions> {
    let mut out = ImportConversions::new();
    for (source, target) in setting {
        let from = match source.as_str() {
            "qcow2" => Format::Qcow2,
            "vmdk" => Format::Vmdk,
            "vhd" => Format::Vhd,
            other => return Err(CoreError::Invalid(format!("import conversion from {other:?}: only qcow2, vmdk and vhd"))),
        };
        match target.as_str() {
            "keep" => {}
            "raw" => {
                out.insert(from, Format::Raw);
            }
            "zvhd2" => {
                out.insert(from, Format::Zvhd2);
            }
            other => return Err(CoreError::Invalid(format!("import conversion to {other:?}: keep, raw or zvhd2"))),
        }
    }
    Ok(out)
}

/// The format of a bucket file, by its name's extension.
pub fn source_format(key: &str) -> Result<Format> {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let format = match ext.as_str() {
        "raw" | "img" => Format::Raw,
        "qcow2" => Format::Qcow2,
        "vmdk" => Format::Vmdk,
        "vhd" => Format::Vhd,
        "vhdx" => Format::Vhdx,
        "zvhd" => Format::Zvhd,
        "zvhd2" => Format::Zvhd2,
        "qcow" => Format::Qcow,
        "qed" => Format::Qed,
        "vdi" => Format::Vdi,
        "iso" => Format::Iso,
        _ => {
            return Err(CoreError::Invalid(format!(
                "cannot tell the format of {key:?}: name it .raw, .img, .qcow2, .vmdk, .vhd, .vhdx, .zvhd, .zvhd2, \
                 .qcow, .qed, .vdi or .iso"
            )))
        }
    };
    Ok(format)
}

/// An image to make from a bucket file.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    pub name: String,
    /// `bucket:key`.
    pub image_url: String,
    /// Smallest disk, in GiB.
    pub min_disk: i64,
    /// A data disk image (CreateDataImage) rather than a system disk image.
    pub data_image: bool,
    pub os_version: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// ImportImageQuick: a RAW or ZVHD2 file stored as it is (up to the quick import limit), lazily readable.
    pub quick: bool,
}

/// What an import job needs to (re)start.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImportParams {
    image_id: String,
    bucket: String,
    key: String,
    source_format: String,
    target_format: String,
    #[serde(default)]
    quick: bool,
}

impl PipelineService {
    /// CreateImage / CreateDataImage from `request.image_url`: creates the image (`importing`, private, owned
    /// by the caller's project) and enqueues its import, in one transaction. `Invalid` for a bad name, URL,
    /// extension or `min_disk`; `NotFound` for a bucket the caller may not use; `QuotaExceeded` past the
    /// project's image quota.
    pub async fn import(&self, ctx: &RequestContext, request: ImportRequest) -> Result<(Image, Job)> {
        Policy::check_create(ctx)?;
        let caller = Policy::require_caller(ctx)?;
        let name = request.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(CoreError::Invalid("\"name\" must have 1 to 128 characters".into()));
        }
        let max_disk = if request.data_image { 2048 } else { 1024 };
        if !(1..=max_disk).contains(&request.min_disk) {
            return Err(CoreError::Invalid(format!("\"min_disk\" must be 1 to {max_disk} (GiB)")));
        }
        let (bucket, key) = parse_bucket_url(&request.image_url)?;
        let source = source_format(&key)?;
        self.buckets.check_access(ctx, &bucket).await?;
        if !caller.is_admin() {
            let (used, quota) = self.images.image_quota(ctx).await?;
            if used >= quota {
                return Err(CoreError::QuotaExceeded(format!("Quota exceeded: project may own at most {quota} images")));
            }
        }
        if request.quick && !matches!(source, Format::Raw | Format::Zvhd2) {
            return Err(CoreError::Invalid(format!("quick import takes RAW or ZVHD2 files, not {source}")));
        }
        let target = if request.quick { source } else { self.conversions.get(&source).copied().unwrap_or(source) };

        let now = crate::now();
        let mut image = Image::new(Uuid::new_v4(), &caller.project_id, now);
        image.name = Some(name.to_string());
        image.visibility = Visibility::Private;
        image.status = ImageStatus::Importing;
        image.disk_format = Some(target.to_string());
        image.container_format = Some("bare".into());
        image.min_disk = request.min_disk;
        image.tags = request.tags.into_iter().collect();
        let props = &mut image.properties;
        props.insert("__imagetype".into(), "private".into());
        props.insert("__image_source_type".into(), "obs".into());
        props.insert("__image_location".into(), format!("{bucket}:{key}"));
        let source_type = if request.quick { SourceType::QuickImport } else { SourceType::Import };
        image.lineage = Lineage::bucket_object(source_type, &bucket, &key);
        let props = &mut image.properties;
        if request.data_image {
            props.insert("virtual_env_type".into(), "DataImage".into());
        } else {
            props.insert("virtual_env_type".into(), "FusionCompute".into());
        }
        if request.quick {
            props.insert("__lazyloading".into(), "true".into());
        }
        if let Some(v) = request.os_version.filter(|v| !v.is_empty()) {
            props.insert("__os_version".into(), v);
        }
        if let Some(d) = request.description.filter(|d| !d.is_empty()) {
            props.insert("__description".into(), d);
        }
        let params = ImportParams {
            image_id: image.id.to_string(),
            bucket,
            key,
            source_format: source.to_string(),
            target_format: target.to_string(),
            quick: request.quick,
        };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let job = self.jobs.new_job(ctx, IMPORT_JOB, params, json!({"image_id": image.id.to_string()}))?;
        self.jobs.enqueue_with_image(ctx, &job, ImageChange::Create(&image)).await?;
        Ok((image, job))
    }

    /// RegisterImage: gives the caller's `queued` image `id` the data of `image_url` (`bucket:key`), through
    /// the same job as an import. The image turns `importing` with its job in one transaction. `Conflict`
    /// unless the image is queued; `Forbidden` unless the caller may change it; `Invalid` for a bad URL or
    /// extension.
    pub async fn register(&self, ctx: &RequestContext, id: Uuid, image_url: &str) -> Result<Job> {
        let mut image = self.images.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        let (bucket, key) = parse_bucket_url(image_url)?;
        let source = source_format(&key)?;
        self.buckets.check_access(ctx, &bucket).await?;
        if image.status != ImageStatus::Queued {
            return Err(CoreError::Conflict(format!("image {id} is {}: only queued images can be registered", image.status)));
        }
        let target = self.conversions.get(&source).copied().unwrap_or(source);
        image.status = ImageStatus::Importing;
        image.disk_format = Some(target.to_string());
        image.container_format.get_or_insert_with(|| "bare".into());
        image.updated_at = crate::now();
        image.properties.insert("__image_source_type".into(), "obs".into());
        image.properties.insert("__image_location".into(), format!("{bucket}:{key}"));
        image.lineage = Lineage::bucket_object(SourceType::Register, &bucket, &key);
        let params = ImportParams {
            image_id: id.to_string(),
            bucket,
            key,
            source_format: source.to_string(),
            target_format: target.to_string(),
            quick: false,
        };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let job = self.jobs.new_job(ctx, IMPORT_JOB, params, json!({"image_id": id.to_string()}))?;
        let change = ImageChange::Save { image: &image, expected: &[ImageStatus::Queued] };
        self.jobs.enqueue_with_image(ctx, &job, change).await.map_err(|e| match e {
            CoreError::Conflict(_) => CoreError::Conflict(format!("image {id} changed meanwhile; it is no longer queued")),
            other => other,
        })?;
        Ok(job)
    }
}

/// Runs import jobs.
pub(crate) struct ImportHandler(pub(crate) Arc<PipelineService>);

fn format_param(name: &str) -> std::result::Result<Format, JobError> {
    name.parse().map_err(|_| JobError::failed(codes::INTERNAL, format!("bad format {name:?} in job parameters")))
}

#[async_trait]
impl JobHandler for ImportHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> std::result::Result<Value, JobError> {
        let p: ImportParams = serde_json::from_value(job.params.clone())
            .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad import parameters: {e}")))?;
        let (source, target) = (format_param(&p.source_format)?, format_param(&p.target_format)?);
        let pipelines = &self.0;
        let image = job_image(&pipelines.images, &p.image_id).await?;
        match image.status {
            ImageStatus::Importing => {}
            // An earlier attempt activated it and stopped before recording the job's end.
            ImageStatus::Active => return Ok(json!({"image_id": p.image_id})),
            other => return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {other}, not importing", image.id))),
        }
        let object = pipelines.buckets.head_unchecked(&p.bucket, &p.key).await.map_err(|e| match e {
            CoreError::NotFound(_) => {
                JobError::failed(codes::SOURCE_MISSING, format!("bucket object {}:{} does not exist", p.bucket, p.key))
            }
            other => job_error(other),
        })?;
        let limit = if p.quick { pipelines.limits.max_quick_import_size } else { pipelines.limits.max_import_size };
        if object.size > limit {
            return Err(JobError::failed(
                codes::TOO_LARGE,
                format!("{}:{} is {} bytes; imports take at most {limit} bytes", p.bucket, p.key, object.size),
            ));
        }
        let converting = source != target;

        wait_while_held(&p.bucket, &p.key, ctx).await;
        ctx.check()?;
        let result = if converting {
            // The file read in place and its guest disk written in the target format.
            let (formats, place) = ((source, target), (p.bucket.as_str(), p.key.as_str()));
            convert_bucket_object(&pipelines.images, &pipelines.buckets, &image, place, &object, formats, ctx, 0.0..99.0)
                .await?
        } else {
            // The file as it is, streamed into the chunk store and inspected as its declared format.
            let (_, data) = pipelines.buckets.open_unchecked(&p.bucket, &p.key, object.e_tag.as_deref()).await.map_err(job_error)?;
            let total = object.size.max(1) as f64;
            let progress = ctx.clone();
            let mut read = 0u64;
            let data = data
                .inspect(move |piece| {
                    if let Ok(piece) = piece {
                        read += piece.len() as u64;
                        progress.set_progress(99.0 * read as f64 / total);
                    }
                })
                .boxed();
            let mut original = image.clone();
            original.disk_format = Some(source.to_string());
            pipelines.images.receive(original, Some(object.size), data).await.map_err(|e| match e {
                CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, format!("{}:{}: {m}", p.bucket, p.key)),
                other => job_error(other),
            })?
        };
        self.activate(ctx, result).await
    }

    async fn on_failed(&self, job: &Job, code: &str, reason: &str) {
        requeue_after_failure(&self.0.images, job, code, reason).await;
    }
}

/// After a failed import or copy: the image it was filling goes from `importing` back to `queued` (no data),
/// with the failure in the audit trail.
pub(crate) async fn requeue_after_failure(images: &crate::ImageService, job: &Job, code: &str, reason: &str) {
    let Some(id) = job.params.get("image_id").and_then(Value::as_str) else { return };
    let Ok(mut image) = job_image(images, id).await else { return };
    if image.status != ImageStatus::Importing {
        return;
    }
    image.status = ImageStatus::Queued;
    image.updated_at = crate::now();
    let mut event = ims_catalog::AuditEvent::new(&format!("job-{}", job.id), "image.import", format!("image:{id}"));
    event.project_id = Some(job.project_id.clone());
    event.result = "failure".into();
    event.detail = Some(format!("{code}: {reason}"));
    if let Err(e) = images.catalog.images.save(&image, &[ImageStatus::Importing], &event).await {
        tracing::warn!(image = %id, error = %e, "could not return the image to queued after a failed job");
    }
}

impl ImportHandler {
    /// importing → active with the stored result; `IMAGE_GONE` if the image was deleted meanwhile.
    async fn activate(&self, ctx: &JobContext, mut image: Image) -> std::result::Result<Value, JobError> {
        ctx.check()?;
        let images = &self.0.images;
        image.status = ImageStatus::Active;
        image.updated_at = crate::now();
        image.properties.insert("active_at".into(), image.updated_at.to_rfc3339());
        let mut event = ims_catalog::AuditEvent::new("job", "image.import", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        let manifest = image.manifest_id.clone();
        if let Err(e) = images.save_activation(&image, &[ImageStatus::Importing], &event).await {
            if let Some(m) = &manifest {
                let _ = images.store.delete_manifest(m).await;
                let _ = images.store.release_pending(m).await;
            }
            return Err(match e {
                ims_catalog::CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the import", image.id))
                }
                other => job_error(other.into()),
            });
        }
        if let Some(m) = &manifest {
            if let Err(e) = images.store.release_pending(m).await {
                tracing::warn!(image = %image.id, error = %e, "pending manifest left to expire");
            }
        }
        ctx.set_progress(100.0);
        Ok(json!({
            "image_id": image.id.to_string(),
            "disk_format": image.disk_format,
            "size": image.size,
            "virtual_size": image.virtual_size,
        }))
    }
}
