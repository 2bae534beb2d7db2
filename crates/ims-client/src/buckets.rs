//! User buckets (`/buckets/v1/...`): where images are imported from and exported to.

use std::path::Path;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, Result};

/// A bucket the caller may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    pub name: String,
    /// The project that owns it.
    pub owner: String,
}

/// One object of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: String,
}

#[derive(Deserialize)]
struct Buckets {
    buckets: Vec<BucketInfo>,
}

#[derive(Deserialize)]
struct CreatedBucket {
    bucket: BucketInfo,
}

#[derive(Deserialize)]
struct Objects {
    objects: Vec<BucketObjectInfo>,
}

#[derive(Deserialize)]
struct Stored {
    size: u64,
}

impl Client {
    /// The URL of an object. Keys with empty, `.` or `..` segments are refused here: a URL cannot carry
    /// them unchanged (they would name another object).
    fn object_url(&self, bucket: &str, key: &str) -> Result<url::Url> {
        if key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad object key {key:?}: empty, '.' and '..' segments are not allowed"),
            )));
        }
        let mut segments = vec!["buckets", "v1", bucket, "objects"];
        segments.extend(key.split('/'));
        Ok(self.url(&segments))
    }

    /// `GET /buckets/v1`: the buckets the caller may use, by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let body: Buckets = self.execute_json(self.request(Method::GET, self.url(&["buckets", "v1"]))).await?;
        Ok(body.buckets)
    }

    /// `PUT /buckets/v1/{bucket}`: creates a bucket owned by the caller's project (409 if it exists).
    pub async fn create_bucket(&self, bucket: &str) -> Result<BucketInfo> {
        let url = self.url(&["buckets", "v1", bucket]);
        let body: CreatedBucket = self.execute_json(self.request(Method::PUT, url)).await?;
        Ok(body.bucket)
    }

    /// `GET /buckets/v1/{bucket}/objects[?prefix=]`: the bucket's objects, by key.
    pub async fn list_objects(&self, bucket: &str, prefix: Option<&str>) -> Result<Vec<BucketObjectInfo>> {
        let mut url = self.url(&["buckets", "v1", bucket, "objects"]);
        if let Some(prefix) = prefix {
            url.query_pairs_mut().append_pair("prefix", prefix);
        }
        let body: Objects = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.objects)
    }

    /// `PUT /buckets/v1/{bucket}/objects/{key}` with `body` streamed; creates the bucket if missing.
    /// Returns the stored size.
    pub async fn put_object(&self, bucket: &str, key: &str, body: reqwest::Body) -> Result<u64> {
        let rb = self
            .request(Method::PUT, self.object_url(bucket, key)?)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let stored: Stored = self.execute_json(rb).await?;
        Ok(stored.size)
    }

    /// [`Client::put_object`] of bytes in memory.
    pub async fn put_object_bytes(&self, bucket: &str, key: &str, data: impl Into<Bytes>) -> Result<u64> {
        self.put_object(bucket, key, reqwest::Body::from(data.into())).await
    }

    /// [`Client::put_object`] of a local file, streamed.
    pub async fn put_object_file(&self, bucket: &str, key: &str, path: impl AsRef<Path>) -> Result<u64> {
        let file = tokio::fs::File::open(path.as_ref()).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        self.put_object(bucket, key, reqwest::Body::wrap_stream(stream)).await
    }

    /// `GET /buckets/v1/{bucket}/objects/{key}`: the object's size (when sent) and its bytes, streamed.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<(Option<u64>, BoxStream<'static, Result<Bytes>>)> {
        let response = self.execute(self.request(Method::GET, self.object_url(bucket, key)?)).await?;
        let size = response.content_length();
        Ok((size, response.bytes_stream().map_err(ClientError::Transport).boxed()))
    }

    /// [`Client::get_object`] whole in memory (for tests and small objects).
    pub async fn get_object_bytes(&self, bucket: &str, key: &str) -> Result<Bytes> {
        let (_, stream) = self.get_object(bucket, key).await?;
        let pieces: Vec<Bytes> = stream.try_collect().await?;
        Ok(pieces.concat().into())
    }

    /// `DELETE /buckets/v1/{bucket}/objects/{key}` (204).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        self.execute_empty(self.request(Method::DELETE, self.object_url(bucket, key)?)).await
    }
}
