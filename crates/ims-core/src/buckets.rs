//! User object storage: the buckets images are imported from and exported to (`image_url` and
//! `bucket_url` of the IMS API are `bucket:key`).
//!
//! A [`BucketStore`] lives on its own object store (`buckets` setting: `file://` by default, `s3://` for real
//! object storage), apart from the chunk store. Objects of bucket `b` are stored under `b/<key>`; who owns
//! bucket `b` is recorded in `_owners/b` (a name no bucket can have). Access: a bucket belongs to the project
//! that created it; admins reach every bucket; operators grant other projects a bucket by configuration
//! ([`BucketGrants`]). Data is streamed both ways; nothing is held whole in memory.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResult, GetResultPayload, ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use crate::{CoreError, Policy, RequestContext, Result};

/// Size of each part of a streamed upload (S3 needs at least 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Bytes read at once when an object of a local (`file://`) bucket store is streamed: one blocking read each
/// (`object_store`'s own stream of a local file makes one of 8 KiB).
const FILE_READ_BLOCK: u64 = 1024 * 1024;
/// Where bucket owners are recorded (`_` is not allowed in bucket names).
const OWNERS: &str = "_owners";

/// Operator grants: bucket name → projects (ids or names; besides its owner) that may read and write it.
pub type BucketGrants = BTreeMap<String, Vec<String>>;

/// One object of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketObject {
    pub key: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// The store's entity tag of this version of the object, when the store gives one: it changes whenever
    /// the object is replaced, even by one of the same size within the same second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

impl BucketObject {
    /// Whether `now`, a later look at the same key, is still the version `self` describes.
    pub fn is_same_version(&self, now: &BucketObject) -> bool {
        self.size == now.size && self.last_modified == now.last_modified && self.e_tag == now.e_tag
    }
}

/// One bucket as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    pub name: String,
    pub owner: String,
}

/// The buckets of a deployment.
#[derive(Clone)]
pub struct BucketStore {
    objects: Arc<dyn ObjectStore>,
    grants: Arc<BucketGrants>,
}

/// Parses `bucket:key` (the IMS API's `image_url` / `bucket_url`). `Invalid` on any other shape.
pub fn parse_bucket_url(url: &str) -> Result<(String, String)> {
    let (bucket, key) = url
        .split_once(':')
        .ok_or_else(|| CoreError::Invalid(format!("{url:?} is not of the form bucket:key")))?;
    check_bucket_name(bucket)?;
    check_key(key)?;
    Ok((bucket.to_string(), key.to_string()))
}

/// Bucket names as in S3: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a
/// letter or digit.
pub fn check_bucket_name(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "bad bucket name {name:?}: 3 to 63 lowercase letters, digits, dots and hyphens"
        )))
    }
}

/// Object keys: 1 to 1024 bytes of `/`-separated non-empty segments, none `.` or `..`, no control characters.
pub fn check_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.chars().any(char::is_control)
        || key.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(CoreError::Invalid(format!(
            "bad object key {key:?}: 1 to 1024 bytes of non-empty '/'-separated segments, no '.' or '..'"
        )));
    }
    Path::parse(key).map_err(|e| CoreError::Invalid(format!("bad object key {key:?}: {e}")))?;
    Ok(())
}

fn backend(what: &str) -> impl Fn(object_store::Error) -> CoreError + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => CoreError::NotFound(format!("{what} not found")),
        // A read of a version of the object that has since been replaced: reading it again may succeed.
        object_store::Error::Precondition { .. } => CoreError::Unavailable(format!("{what} was replaced meanwhile")),
        other => CoreError::Unavailable(format!("{what}: {other}")),
    }
}

impl BucketStore {
    /// Buckets over `objects`, with operator `grants`.
    pub fn new(objects: Arc<dyn ObjectStore>, grants: BucketGrants) -> BucketStore {
        BucketStore { objects, grants: Arc::new(grants) }
    }

    /// The owner of `bucket`, or `NotFound`.
    async fn owner(&self, bucket: &str) -> Result<String> {
        let path = Path::from(format!("{OWNERS}/{bucket}"));
        let data = self.objects.get(&path).await.map_err(backend(&format!("bucket {bucket}")))?.bytes().await;
        let data = data.map_err(backend(&format!("bucket {bucket}")))?;
        String::from_utf8(data.to_vec()).map_err(|_| CoreError::Corrupt(format!("bucket {bucket}: bad owner record")))
    }

    /// Whether the caller may use `bucket` (owned by `owner`).
    fn may_use(&self, ctx: &RequestContext, bucket: &str, owner: &str) -> Result<bool> {
        let caller = Policy::require_caller(ctx)?;
        Ok(caller.is_admin()
            || caller.project_id == owner
            || self.grants.get(bucket).is_some_and(|projects| {
                projects.iter().any(|p| *p == caller.project_id || *p == caller.project_name)
            }))
    }

    /// Checks that the caller may use an existing bucket; others' buckets are `NotFound` (not revealed).
    pub async fn check_access(&self, ctx: &RequestContext, bucket: &str) -> Result<()> {
        check_bucket_name(bucket)?;
        let owner = self.owner(bucket).await?;
        if self.may_use(ctx, bucket, &owner)? {
            Ok(())
        } else {
            Err(CoreError::NotFound(format!("bucket {bucket} not found")))
        }
    }

    /// Creates `bucket` owned by the caller's project. `Conflict` if it exists (whoever owns it);
    /// readers may not create (`Forbidden`).
    pub async fn create_bucket(&self, ctx: &RequestContext, bucket: &str) -> Result<Bucket> {
        check_bucket_name(bucket)?;
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("readers cannot create buckets".into()));
        }
        let path = Path::from(format!("{OWNERS}/{bucket}"));
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.objects.put_opts(&path, PutPayload::from(caller.project_id.clone().into_bytes()), opts).await {
            Ok(_) => Ok(Bucket { name: bucket.to_string(), owner: caller.project_id.clone() }),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(CoreError::Conflict(format!("bucket {bucket} already exists")))
            }
            Err(e) => Err(CoreError::Unavailable(format!("creating bucket {bucket}: {e}"))),
        }
    }

    /// The buckets the caller may use, by name.
    pub async fn list_buckets(&self, ctx: &RequestContext) -> Result<Vec<Bucket>> {
        let mut listed = self.objects.list(Some(&Path::from(OWNERS)));
        let mut buckets = Vec::new();
        while let Some(meta) = listed.try_next().await.map_err(backend("bucket list"))? {
            let Some(name) = meta.location.filename().map(str::to_string) else { continue };
            let owner = self.owner(&name).await?;
            if self.may_use(ctx, &name, &owner)? {
                buckets.push(Bucket { name, owner });
            }
        }
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(buckets)
    }

    /// The objects of `bucket` whose keys start with `prefix` (whole segments), by key.
    pub async fn list_objects(&self, ctx: &RequestContext, bucket: &str, prefix: Option<&str>) -> Result<Vec<BucketObject>> {
        self.check_access(ctx, bucket).await?;
        let base = match prefix.filter(|p| !p.is_empty()) {
            Some(p) => {
                check_key(p)?;
                Path::from(format!("{bucket}/{p}"))
            }
            None => Path::from(bucket),
        };
        let strip = format!("{bucket}/");
        let mut listed = self.objects.list(Some(&base));
        let mut objects = Vec::new();
        while let Some(meta) = listed.try_next().await.map_err(backend(&format!("bucket {bucket}")))? {
            if let Some(key) = meta.location.as_ref().strip_prefix(&strip) {
                objects.push(BucketObject {
                    key: key.to_string(),
                    size: meta.size,
                    last_modified: meta.last_modified,
                    e_tag: meta.e_tag,
                });
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Size and modification time of an object, or `NotFound`.
    pub async fn head(&self, ctx: &RequestContext, bucket: &str, key: &str) -> Result<BucketObject> {
        self.check_access(ctx, bucket).await?;
        self.head_unchecked(bucket, key).await
    }

    /// [`BucketStore::head`] for a job that checked access when it was enqueued.
    pub async fn head_unchecked(&self, bucket: &str, key: &str) -> Result<BucketObject> {
        check_key(key)?;
        let what = format!("object {bucket}:{key}");
        let meta = self.objects.head(&Path::from(format!("{bucket}/{key}"))).await.map_err(backend(&what))?;
        Ok(BucketObject { key: key.to_string(), size: meta.size, last_modified: meta.last_modified, e_tag: meta.e_tag })
    }

    /// Stores `data` as `bucket:key` (replacing any object there), creating the bucket for the caller's
    /// project if it does not exist. Streamed in parts; the object appears only once complete. Returns its size.
    pub async fn put(
        &self,
        ctx: &RequestContext,
        bucket: &str,
        key: &str,
        data: BoxStream<'static, Result<Bytes>>,
    ) -> Result<u64> {
        check_key(key)?;
        check_bucket_name(bucket)?;
        let owner = match self.owner(bucket).await {
            Ok(owner) => Some(owner),
            Err(CoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        match owner {
            None => match self.create_bucket(ctx, bucket).await {
                Ok(_) => {}
                // Created by someone else meanwhile: their rules apply.
                Err(CoreError::Conflict(_)) => self.check_access(ctx, bucket).await?,
                Err(e) => return Err(e),
            },
            Some(owner) if !self.may_use(ctx, bucket, &owner)? => {
                return Err(CoreError::NotFound(format!("bucket {bucket} not found")));
            }
            Some(_) => {}
        }
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("readers cannot write objects".into()));
        }
        self.put_unchecked(bucket, key, data).await
    }

    /// [`BucketStore::put`] for a job that checked access when it was enqueued.
    pub async fn put_unchecked(&self, bucket: &str, key: &str, mut data: BoxStream<'static, Result<Bytes>>) -> Result<u64> {
        check_key(key)?;
        let what = format!("object {bucket}:{key}");
        let upload = self.objects.put_multipart(&Path::from(format!("{bucket}/{key}"))).await.map_err(backend(&what))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut size = 0u64;
        while let Some(piece) = data.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                return Err(backend(&what)(e));
            }
            size += piece.len() as u64;
            writer.put(piece);
        }
        writer.finish().await.map_err(backend(&what))?;
        Ok(size)
    }

    /// Streams the object `bucket:key`, or `NotFound`. Returns its size and the stream.
    pub async fn get(
        &self,
        ctx: &RequestContext,
        bucket: &str,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        self.check_access(ctx, bucket).await?;
        self.open_unchecked(bucket, key, None).await
    }

    /// Size and stream of `bucket:key`, for a job that checked access when it was enqueued. With `e_tag`,
    /// only of that version of the object (`Unavailable` once it has been replaced).
    pub async fn open_unchecked(
        &self,
        bucket: &str,
        key: &str,
        e_tag: Option<&str>,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        check_key(key)?;
        let what = format!("object {bucket}:{key}");
        let options = GetOptions { if_match: e_tag.map(str::to_string), ..GetOptions::default() };
        let got = self.objects.get_opts(&Path::from(format!("{bucket}/{key}")), options).await.map_err(backend(&what))?;
        Ok((got.meta.size, object_stream(got, what)))
    }

    /// Bytes `range` of `bucket:key` (for format readers over a bucket object). With `e_tag`, only of that
    /// version of the object: `Unavailable` once it has been replaced.
    pub async fn read_range_unchecked(&self, bucket: &str, key: &str, range: Range<u64>, e_tag: Option<&str>) -> Result<Bytes> {
        let what = format!("object {bucket}:{key}");
        let options =
            GetOptions { range: Some(GetRange::Bounded(range)), if_match: e_tag.map(str::to_string), ..GetOptions::default() };
        let got = self.objects.get_opts(&Path::from(format!("{bucket}/{key}")), options).await.map_err(backend(&what))?;
        ims_store::file_read::result_bytes(got).await.map_err(backend(&what))
    }

    /// Deletes `bucket:key`; `NotFound` if it does not exist.
    pub async fn delete(&self, ctx: &RequestContext, bucket: &str, key: &str) -> Result<()> {
        self.check_access(ctx, bucket).await?;
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("readers cannot delete objects".into()));
        }
        self.head_unchecked(bucket, key).await?;
        let what = format!("object {bucket}:{key}");
        self.objects.delete(&Path::from(format!("{bucket}/{key}"))).await.map_err(backend(&what))
    }
}

/// The data of a fetched object as a stream; errors are `Unavailable`.
fn object_stream(got: GetResult, what: String) -> BoxStream<'static, Result<Bytes>> {
    match got.payload {
        GetResultPayload::File(file, _) => file_stream(file, got.range, what),
        GetResultPayload::Stream(stream) => {
            stream.map_err(move |e| CoreError::Unavailable(format!("{what}: {e}"))).boxed()
        }
    }
}

/// Bytes `range` of a local file in blocks of [`FILE_READ_BLOCK`], read in order, one blocking read each (into
/// buffers the kernel fills at full speed: see `ims_store::file_read`). A file that ends before `range` does
/// fails the stream (`Unavailable`).
fn file_stream(file: std::fs::File, range: Range<u64>, what: String) -> BoxStream<'static, Result<Bytes>> {
    let file = Arc::new(file);
    futures::stream::try_unfold(range, move |range| {
        let (file, what) = (file.clone(), what.clone());
        async move {
            if range.is_empty() {
                return Ok(None);
            }
            let len = (range.end - range.start).min(FILE_READ_BLOCK);
            let read = move || ims_store::file_read::read_at_aligned(&file, range.start, len as usize);
            match tokio::task::spawn_blocking(read).await {
                Ok(Ok(block)) => Ok(Some((block, range.start + len..range.end))),
                Ok(Err(e)) => Err(CoreError::Unavailable(format!("{what}: {e}"))),
                Err(e) => Err(CoreError::Unavailable(format!("{what}: reading: {e}"))),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len as u32).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    /// An object of a local bucket store streams in blocks of `FILE_READ_BLOCK` with exactly its bytes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_objects_stream_in_large_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let buckets = BucketStore::new(Arc::new(local), BucketGrants::default());
        let want = data(2 * FILE_READ_BLOCK as usize + 12_345);
        let body = futures::stream::iter([Ok(Bytes::from(want.clone()))]).boxed();
        buckets.put_unchecked("b", "k", body).await.unwrap();
        let (size, stream) = buckets.open_unchecked("b", "k", None).await.unwrap();
        assert_eq!(size, want.len() as u64);
        let pieces: Vec<Bytes> = stream.try_collect().await.unwrap();
        let lengths: Vec<usize> = pieces.iter().map(Bytes::len).collect();
        assert_eq!(lengths, [FILE_READ_BLOCK as usize, FILE_READ_BLOCK as usize, 12_345]);
        assert!(pieces.concat() == want);
    }

    /// A file shorter than the range asked for fails the stream instead of ending it early.
    #[tokio::test]
    async fn a_file_shorter_than_its_range_fails_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data(1000)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let read: Result<Vec<Bytes>> = file_stream(file, 100..1500, "object b:f".into()).try_collect().await;
        let err = read.unwrap_err().to_string();
        assert!(err.contains("ended 500 bytes before"), "{err}");
        let file = std::fs::File::open(&path).unwrap();
        let read: Vec<Bytes> = file_stream(file, 100..1000, "object b:f".into()).try_collect().await.unwrap();
        assert!(read.concat() == data(1000)[100..]);
    }
}
