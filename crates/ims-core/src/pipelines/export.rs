//! ExportImage: an active image's guest disk, written in a chosen format into a bucket object.
//!
//! The job reads the stored file through the formats engine straight from the chunk store (a blocking
//! [`ManifestReader`] on a blocking thread), writes the chosen format into a channel, and the bucket
//! store uploads that stream in parts: no staging file, bounded memory. QCOW2 is the exception: its
//! writer needs a seekable file (tables before data), so it writes a temporary sparse file first.

use std::sync::Arc;

use async_trait::async_trait;
use ims_catalog::{ImageStatus, Job};
use ims_formats::write::{VhdSubformat, VmdkSubformat};
use ims_formats::{Format, Limits, Target, WriteOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{codes, job_error, job_image, sink, PipelineService};
use crate::buckets::parse_bucket_url;
use crate::inspection::{inspected_format, ManifestReader};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::{CoreError, Policy, RequestContext, Result};

/// The job type of exports (the IMS API's name).
pub const EXPORT_JOB: &str = "exportImage";

/// Formats an image can be exported in (`file_format` of the IMS API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Qcow2,
    Vmdk,
    Vhd,
    Zvhd,
    Zvhd2,
    Raw,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 6] =
        [ExportFormat::Qcow2, ExportFormat::Vmdk, ExportFormat::Vhd, ExportFormat::Zvhd, ExportFormat::Zvhd2, ExportFormat::Raw];

    /// Parses a `file_format` (case-insensitive); `Invalid` names the accepted ones.
    pub fn parse(text: &str) -> Result<ExportFormat> {
        let lower = text.to_ascii_lowercase();
        ExportFormat::ALL.into_iter().find(|f| f.name() == lower).ok_or_else(|| {
            CoreError::Invalid(format!(
                "unsupported file_format {text:?}: expected one of qcow2, vmdk, vhd, zvhd, zvhd2, raw"
            ))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Qcow2 => "qcow2",
            ExportFormat::Vmdk => "vmdk",
            ExportFormat::Vhd => "vhd",
            ExportFormat::Zvhd => "zvhd",
            ExportFormat::Zvhd2 => "zvhd2",
            ExportFormat::Raw => "raw",
        }
    }

    fn format(self) -> Format {
        match self {
            ExportFormat::Qcow2 => Format::Qcow2,
            ExportFormat::Vmdk => Format::Vmdk,
            ExportFormat::Vhd => Format::Vhd,
            ExportFormat::Zvhd => Format::Zvhd,
            ExportFormat::Zvhd2 => Format::Zvhd2,
            ExportFormat::Raw => Format::Raw,
        }
    }
}

/// What an export job needs to (re)start.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExportParams {
    image_id: String,
    bucket: String,
    key: String,
    file_format: ExportFormat,
}

impl PipelineService {
    /// ExportImage: checks the request and enqueues the export of image `id` to `bucket_url`
    /// (`bucket:key`) as `file_format`. `Invalid` for a bad format or URL; `NotFound` for an image or
    /// bucket the caller cannot see; `Forbidden` unless the caller may change the image or its project
    /// subscribed to it on the marketplace; `Conflict`
    /// unless the image is active with data; `TooLarge` at or past the export limit.
    pub async fn export(&self, ctx: &RequestContext, id: Uuid, bucket_url: &str, file_format: &str) -> Result<Job> {
        let format = ExportFormat::parse(file_format)?;
        let (bucket, key) = parse_bucket_url(bucket_url)?;
        let image = self.images.get(ctx, id).await?;
        // Marketplace subscribers may copy and export the image they subscribed to (see `market`).
        if !self.images.market_subscribed(ctx, &image).await? {
            Policy::check_modify(ctx, &image)?;
        }
        if image.status != ImageStatus::Active || image.manifest_id.is_none() {
            return Err(CoreError::Conflict(format!(
                "image {id} is {}: only active images with data can be exported",
                image.status
            )));
        }
        if inspected_format(&image.disk_format.clone().unwrap_or_default()).is_none() {
            return Err(CoreError::Invalid(format!(
                "image {id} has disk_format {:?}, which cannot be exported",
                image.disk_format
            )));
        }
        let size = image.virtual_size.or(image.size).unwrap_or(0).max(0) as u64;
        if size >= self.limits.max_export_size {
            return Err(CoreError::TooLarge(format!(
                "image {id} is {size} bytes; exports must be smaller than {} bytes",
                self.limits.max_export_size
            )));
        }
        self.buckets.check_access(ctx, &bucket).await?;
        let params = ExportParams { image_id: id.to_string(), bucket, key, file_format: format };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let job = self.jobs.new_job(ctx, EXPORT_JOB, params, json!({"image_id": id.to_string()}))?;
        self.jobs.enqueue(ctx, &job).await?;
        Ok(job)
    }
}

/// Runs export jobs.
pub(crate) struct ExportHandler(pub(crate) Arc<PipelineService>);

#[async_trait]
impl JobHandler for ExportHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> std::result::Result<Value, JobError> {
        let p: ExportParams = serde_json::from_value(job.params.clone())
            .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad export parameters: {e}")))?;
        let pipelines = &self.0;
        let image = job_image(&pipelines.images, &p.image_id).await?;
        let Some(manifest_id) = image.manifest_id.clone().filter(|_| image.status == ImageStatus::Active) else {
            return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {}, not active", image.id, image.status)));
        };
        let disk_format = image.disk_format.clone().unwrap_or_default();
        let source_format = inspected_format(&disk_format)
            .ok_or_else(|| JobError::failed(codes::UNSUPPORTED_FORMAT, format!("cannot read disk_format {disk_format:?}")))?;
        let store = pipelines.images.store_for_reading(&image).await.map_err(job_error)?;
        let manifest = store.load_manifest(&manifest_id).await.map_err(|e| {
            JobError::transient(codes::UNAVAILABLE, format!("image {}: its data cannot be read: {e}", image.id))
        })?;
        let reader = ManifestReader::new(store, Arc::new(manifest), tokio::runtime::Handle::current());
        let (mut writer, stream) = sink::channel(ctx.clone());
        let progress_ctx = ctx.clone();
        let format = p.file_format;
        let temp_dir = std::env::temp_dir();
        let writing = tokio::task::spawn_blocking(move || {
            let result = write_export(reader, source_format, format, &mut writer, &temp_dir, &progress_ctx);
            match result {
                Ok(()) => writer.finish().map_err(|e| JobError::transient(codes::UNAVAILABLE, e.to_string())),
                Err(e) => {
                    writer.fail(CoreError::Invalid(e.to_string()));
                    Err(e)
                }
            }
        });
        let uploaded = pipelines.buckets.put_unchecked(&p.bucket, &p.key, stream).await;
        let written = writing.await.map_err(|e| JobError::failed(codes::INTERNAL, format!("export writer: {e}")))?;
        let size = match (written, uploaded) {
            (Ok(()), Ok(size)) => size,
            // The upload failed first and the writer then found the stream closed: the upload's error counts.
            (Err(JobError::Transient { .. }), Err(e)) | (Ok(()), Err(e)) => return Err(job_error(e)),
            (Err(e), _) => return Err(e),
        };
        ctx.set_entities(json!({"image_id": p.image_id, "bucket_url": format!("{}:{}", p.bucket, p.key)}));
        Ok(json!({"bucket_url": format!("{}:{}", p.bucket, p.key), "file_format": format.name(), "size": size}))
    }
}

/// Writes the guest disk of the stored file as `format` into `out` (blocking).
fn write_export(
    reader: ManifestReader,
    source_format: Format,
    format: ExportFormat,
    out: &mut sink::ChannelWriter,
    temp_dir: &std::path::Path,
    ctx: &JobContext,
) -> std::result::Result<(), JobError> {
    let corrupt = |e: ims_formats::FormatError| JobError::failed(codes::SOURCE_CORRUPT, format!("the stored image cannot be read: {e}"));
    let disk = ims_formats::open(Arc::new(reader), source_format, &Limits::default()).map_err(corrupt)?;
    let virtual_size = disk.virtual_size().max(1);
    let progress = |done: u64| ctx.set_progress(99.0 * done as f64 / virtual_size as f64);
    let opts = WriteOptions {
        threads: 2,
        vmdk_subformat: VmdkSubformat::StreamOptimized,
        vhd_subformat: VhdSubformat::Fixed,
        ..WriteOptions::default()
    };
    let failed = |e: ims_formats::FormatError| match e {
        ims_formats::FormatError::Io(io) if ctx.is_cancelled() => JobError::failed(codes::INTERNAL, io.to_string()),
        ims_formats::FormatError::Io(io) => JobError::transient(codes::UNAVAILABLE, format!("writing the export: {io}")),
        other => JobError::failed(codes::SOURCE_CORRUPT, format!("the stored image cannot be converted: {other}")),
    };
    if ims_formats::write::needs_seekable(format.format(), &opts) {
        // The one seekable format: a temporary sparse file, then streamed out.
        let file = tempfile_in(temp_dir).map_err(|e| JobError::transient(codes::UNAVAILABLE, e.to_string()))?;
        let len = ims_formats::write_image(&*disk, format.format(), Target::Seekable(&file), &opts, &progress).map_err(failed)?;
        copy_file(&file, len, out).map_err(|e| failed(ims_formats::FormatError::Io(e)))?;
    } else {
        ims_formats::write_image(&*disk, format.format(), Target::Stream(out), &opts, &progress).map_err(failed)?;
    }
    Ok(())
}

/// A new file in `dir`, already unlinked (it disappears when closed, whatever happens).
fn tempfile_in(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    let path = dir.join(format!(".ims-export-{}", Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

fn copy_file(file: &std::fs::File, len: u64, out: &mut sink::ChannelWriter) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}
