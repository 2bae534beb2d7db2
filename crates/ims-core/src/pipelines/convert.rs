//! Conversion on import, shared by the IMS import pipeline and Glance interoperable import: a file already
//! in the chunk store, or a bucket object read in place, is read through the formats engine and its guest
//! disk written back as chunks in another format (no staging file); the result's record keeps the original
//! file's hashes as properties.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use ims_catalog::Image;
use ims_formats::{Format, Limits, ReadAt, Target, WriteOptions};
use tokio::runtime::Handle;

use super::{codes, job_error, sink};
use crate::bucket_reader::BucketObjectReader;
use crate::buckets::{BucketObject, BucketStore};
use crate::inspection::{inspect_reader, ManifestReader};
use crate::jobs::{JobContext, JobError};
use crate::{CoreError, ImageService};

/// The properties that keep the original file's format, size and hashes on a converted image.
pub const ORIGINAL_DISK_FORMAT: &str = "__original_disk_format";
pub const ORIGINAL_SIZE: &str = "__original_size";
pub const ORIGINAL_CHECKSUM: &str = "__original_checksum";
pub const ORIGINAL_OS_HASH_ALGO: &str = "__original_os_hash_algo";
pub const ORIGINAL_OS_HASH_VALUE: &str = "__original_os_hash_value";

/// Bucket objects are converted in place through blocks of this size, fetched whole (one ranged read each)...
const READ_AHEAD_BLOCK: u64 = 4 << 20;
/// ...of which this many are kept: the formats engine reads a source almost in order, from two threads.
const READ_AHEAD_BLOCKS: usize = 4;

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
    let reader = ManifestReader::new(store, Arc::new(manifest), Handle::current());
    let mut converted = convert_reader(images, Arc::new(reader), source, stored.clone(), target, ctx, progress).await?;
    record_original(
        &mut converted,
        source,
        stored.size.unwrap_or_default() as u64,
        stored.checksum.clone().unwrap_or_default(),
        stored.os_hash_value.clone().unwrap_or_default(),
    );
    Ok(converted)
}

/// Converts the bucket object `bucket:key` (as `object` described it when the job looked at it), of format
/// `source`, into `target` in the chunk store, reading it in place: ranged reads with read-ahead, nothing
/// staged and the file itself never stored. First it is inspected as an upload of `source` would be (unsafe
/// or mismatching content fails with `SOURCE_CORRUPT`); its md5 and sha512 are computed from a second,
/// sequential read beside the conversion. Returns `image` describing the result like [`convert_stored`]
/// (a pending manifest, the converted file's fields, the original's as `__original_*` properties). An
/// object that changed while it was read fails transiently (the job starts over) and nothing is kept.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn convert_bucket_object(
    images: &ImageService,
    buckets: &BucketStore,
    image: &Image,
    (bucket, key): (&str, &str),
    object: &BucketObject,
    (source, target): (Format, Format),
    ctx: &JobContext,
    progress: Range<f64>,
) -> Result<Image, JobError> {
    let where_ = format!("{bucket}:{key}");
    let reader = || BucketObjectReader::new(buckets.clone(), bucket.into(), object.clone(), Handle::current());
    // A read that fails because the object was replaced meanwhile is no verdict on its content: the job
    // starts over with the new version.
    let changed = || async { buckets.head_unchecked(bucket, key).await.is_ok_and(|now| !object.is_same_version(&now)) };
    let replaced = || JobError::transient(codes::UNAVAILABLE, format!("{where_} changed while it was read"));
    let time_limit = images.limits.inspection_timeout;
    let inspecting = reader().with_read_ahead(READ_AHEAD_BLOCK, 2).with_deadline(Instant::now() + time_limit);
    if let Err(e) = inspect_reader(Arc::new(inspecting), source, images.format_limits(), time_limit).await {
        return Err(match e {
            _ if changed().await => replaced(),
            CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, format!("{where_}: {m}")),
            other => job_error(other),
        });
    }
    let (_, whole) = buckets.open_unchecked(bucket, key, object.e_tag.as_deref()).await.map_err(job_error)?;
    let digests = tokio::spawn(crate::upload::digest_stream(whole));
    let converting = reader().with_read_ahead(READ_AHEAD_BLOCK, READ_AHEAD_BLOCKS);
    let mut converted = match convert_reader(images, Arc::new(converting), source, image.clone(), target, ctx, progress).await {
        Ok(converted) => converted,
        Err(e) => {
            // (No use reading the rest of the object for hashes that will not be recorded.)
            digests.abort();
            return Err(if changed().await { replaced() } else { e });
        }
    };
    let unchanged = match digests.await {
        Ok(Ok((md5, sha512, size))) if size == object.size && !changed().await => Ok((md5, sha512, size)),
        Ok(Ok(_)) => Err(replaced()),
        Ok(Err(e)) => Err(job_error(e)),
        Err(e) => Err(JobError::failed(codes::INTERNAL, format!("hashing {where_}: {e}"))),
    };
    match unchanged {
        Ok((md5, sha512, size)) => {
            record_original(&mut converted, source, size, md5, sha512);
            Ok(converted)
        }
        Err(e) => {
            discard(images, &converted).await;
            Err(e)
        }
    }
}

/// Records the original file's format, size and hashes on the converted `image`.
fn record_original(image: &mut Image, source: Format, size: u64, md5: String, sha512: String) {
    let props = &mut image.properties;
    props.insert(ORIGINAL_DISK_FORMAT.into(), source.to_string());
    props.insert(ORIGINAL_SIZE.into(), size.to_string());
    props.insert(ORIGINAL_CHECKSUM.into(), md5);
    props.insert(ORIGINAL_OS_HASH_ALGO.into(), crate::upload::HASH_ALGO.into());
    props.insert(ORIGINAL_OS_HASH_VALUE.into(), sha512);
}

/// Gives the pending manifest of a result that will not be kept back to the store.
async fn discard(images: &ImageService, image: &Image) {
    if let Some(m) = &image.manifest_id {
        let _ = images.store.delete_manifest(m).await;
        let _ = images.store.release_pending(m).await;
    }
}

/// Writes the guest disk `reader` gives (a file of format `source`) as `target` into the chunk store and
/// returns `base` describing the result: a new pending manifest, `disk_format`, `size`, `virtual_size` and
/// hashes of the converted file. A file the formats engine cannot read or convert fails with
/// `SOURCE_CORRUPT` (nothing is kept); store trouble is transient.
async fn convert_reader(
    images: &ImageService,
    reader: Arc<dyn ReadAt>,
    source: Format,
    base: Image,
    target: Format,
    ctx: &JobContext,
    progress: Range<f64>,
) -> Result<Image, JobError> {
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
    let mut result = base;
    result.disk_format = Some(target.to_string());
    let received = images.receive(result, None, stream).await;
    let written = writing.await.map_err(|e| JobError::failed(codes::INTERNAL, format!("conversion: {e}")))?;
    match (written, received) {
        (Ok(()), Ok(image)) => Ok(image),
        (Err(e), received) => {
            if let Ok(image) = received {
                discard(images, &image).await;
            }
            Err(e)
        }
        (Ok(()), Err(e)) => Err(job_error(e)),
    }
}

fn convert_blocking(
    reader: Arc<dyn ReadAt>,
    source: Format,
    target: Format,
    out: &mut sink::ChannelWriter,
    ctx: &JobContext,
    progress: Range<f64>,
) -> Result<(), JobError> {
    let disk = ims_formats::open(reader, source, &Limits::default())
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
