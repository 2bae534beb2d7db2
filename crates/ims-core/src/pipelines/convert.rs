//! Conversion on import, shared by the IMS import pipeline and Glance interoperable import: a file already
//! in the chunk store is read through the formats engine and its guest disk written back as chunks in
//! another format (no staging file); the result's record keeps the original file's hashes as properties.

use std::ops::Range;
use std::sync::Arc;

use ims_catalog::Image;
use ims_formats::{Format, Limits, Target, WriteOptions};

use super::{codes, job_error, sink};
use crate::inspection::ManifestReader;
use crate::jobs::{JobContext, JobError};
use crate::{CoreError, ImageService};

/// The properties that keep the original file's format, size and hashes on a converted image.
pub const ORIGINAL_DISK_FORMAT: &str = "__original_disk_format";
pub const ORIGINAL_SIZE: &str = "__original_size";
pub const ORIGINAL_CHECKSUM: &str = "__original_checksum";
pub const ORIGINAL_OS_HASH_ALGO: &str = "__original_os_hash_algo";
pub const ORIGINAL_OS_HASH_VALUE: &str = "__original_os_hash_value";

/// Writes the guest disk of `stored` (its file in the chunk store, of format `stored.disk_format`) as
/// `target` back into the chunk store, reporting progress within `progress` (percent) of the job.
///
/// Returns `stored` describing the result: a new manifest (pending in the store until the caller records
/// or drops it), `disk_format`, `size`, `virtual_size` and hashes of the converted file, and the original's
/// as `__original_*` properties. The original's manifest is left as it is. A file the formats engine cannot
/// read or convert fails with `SOURCE_CORRUPT` (nothing is kept); store trouble is transient.
pub(crate) async fn convert_stored(
    images: &ImageService,
    stored: &Image,
    target: Format,
    ctx: &JobContext,
    progress: Range<f64>,
) -> Result<Image, JobError> {
    let manifest_id = stored.manifest_id.clone().ok_or_else(|| JobError::failed(codes::INTERNAL, "no data stored"))?;
    let source: Format = stored
        .disk_format
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| JobError::failed(codes::INTERNAL, format!("bad source format {:?}", stored.disk_format)))?;
    let store = images.store_for_reading(stored).await.map_err(job_error)?;
    let manifest = store.load_manifest(&manifest_id).await.map_err(|e| {
        JobError::transient(codes::UNAVAILABLE, format!("the imported file cannot be read back: {e}"))
    })?;
    let reader = ManifestReader::new(store, Arc::new(manifest), tokio::runtime::Handle::current());
    let (mut writer, stream) = sink::channel(ctx.clone());
    let job = ctx.clone();
    let writing = tokio::task::spawn_blocking(move || {
        let written = convert_blocking(reader, source, target, &mut writer, &job, progress);
        match written {
            Ok(()) => writer.finish().map_err(|e| JobError::transient(codes::UNAVAILABLE, e.to_string())),
            Err(e) => {
                writer.fail(CoreError::Invalid(e.to_string()));
                Err(e)
            }
        }
    });
    let mut result = stored.clone();
    result.disk_format = Some(target.to_string());
    let received = images.receive(result, None, stream).await;
    let written = writing.await.map_err(|e| JobError::failed(codes::INTERNAL, format!("conversion: {e}")))?;
    let mut converted = match (written, received) {
        (Ok(()), Ok(image)) => image,
        (Err(e), received) => {
            if let Ok(image) = received {
                if let Some(m) = &image.manifest_id {
                    let _ = images.store.delete_manifest(m).await;
                    let _ = images.store.release_pending(m).await;
                }
            }
            return Err(e);
        }
        (Ok(()), Err(e)) => return Err(job_error(e)),
    };
    let props = &mut converted.properties;
    props.insert(ORIGINAL_DISK_FORMAT.into(), source.to_string());
    props.insert(ORIGINAL_SIZE.into(), stored.size.unwrap_or_default().to_string());
    props.insert(ORIGINAL_CHECKSUM.into(), stored.checksum.clone().unwrap_or_default());
    props.insert(ORIGINAL_OS_HASH_ALGO.into(), stored.os_hash_algo.clone().unwrap_or_default());
    props.insert(ORIGINAL_OS_HASH_VALUE.into(), stored.os_hash_value.clone().unwrap_or_default());
    Ok(converted)
}

fn convert_blocking(
    reader: ManifestReader,
    source: Format,
    target: Format,
    out: &mut sink::ChannelWriter,
    ctx: &JobContext,
    progress: Range<f64>,
) -> Result<(), JobError> {
    let disk = ims_formats::open(Arc::new(reader), source, &Limits::default())
        .map_err(|e| JobError::failed(codes::SOURCE_CORRUPT, format!("the imported file cannot be read: {e}")))?;
    let virtual_size = disk.virtual_size().max(1);
    let span = progress.end - progress.start;
    let report = |done: u64| ctx.set_progress(progress.start + span * done as f64 / virtual_size as f64);
    let opts = WriteOptions { threads: 2, ..WriteOptions::default() };
    ims_formats::write_image(&*disk, target, Target::Stream(out), &opts, &report).map_err(|e| match e {
        ims_formats::FormatError::Io(io) => JobError::transient(codes::UNAVAILABLE, format!("converting: {io}")),
        other => JobError::failed(codes::SOURCE_CORRUPT, format!("the imported file cannot be converted: {other}")),
    })?;
    Ok(())
}
