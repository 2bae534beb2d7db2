//! The Images API v2: images, their data, tags, actions, schemas and info.

use std::path::Path;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use futures::Stream;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncRead;

use crate::{check, decode, Client, ClientError, Image, ImageList, ListParams, PatchOp, Result, PATCH_CONTENT_TYPE};

/// Header that announces the size of an upload; the server rejects the upload (400) if the body differs.
pub const IMAGE_SIZE_HEADER: &str = "x-openstack-image-size";

impl Client {
    /// `GET /versions`: the Glance versions document.
    pub async fn versions(&self) -> Result<Value> {
        // `/versions` answers 200, `/` answers 300 Multiple Choices: accept both.
        let response = self.request(Method::GET, self.url(&["versions"])).send().await?;
        if response.status().as_u16() == 300 {
            return decode(response).await;
        }
        decode(check(response).await?).await
    }

    /// `POST /v2/images` with `body` (a [`crate::CreateImage`] or any JSON value). 201 → the new image.
    pub async fn create_image<T: Serialize + ?Sized>(&self, body: &T) -> Result<Image> {
        self.execute_json(self.request(Method::POST, self.url(&["v2", "images"])).json(body)).await
    }

    /// `GET /v2/images/{id}`.
    pub async fn get_image(&self, id: &str) -> Result<Image> {
        self.execute_json(self.request(Method::GET, self.url(&["v2", "images", id]))).await
    }

    /// `GET /v2/images?...`: one page.
    pub async fn list_images(&self, params: &ListParams) -> Result<ImageList> {
        let rb = self.request(Method::GET, self.url(&["v2", "images"])).query(&params.to_query());
        self.execute_json(rb).await
    }

    /// The page a `next` (or `first`) link of a listing points to.
    pub async fn list_images_page(&self, link: &str) -> Result<ImageList> {
        let url = self.url_for_link(link)?;
        self.execute_json(self.request(Method::GET, url)).await
    }

    /// Every image matching `params`, following `next` links until the last page (`params.limit` is
    /// the page size).
    pub async fn list_all_images(&self, params: &ListParams) -> Result<Vec<Image>> {
        let mut page = self.list_images(params).await?;
        let mut images = Vec::new();
        let mut last_link: Option<String> = None;
        loop {
            let empty = page.images.is_empty();
            images.append(&mut page.images);
            match page.next {
                Some(next) if !empty && last_link.as_deref() != Some(next.as_str()) => {
                    page = self.list_images_page(&next).await?;
                    last_link = Some(next);
                }
                _ => return Ok(images),
            }
        }
    }

    /// `PATCH /v2/images/{id}` with `application/openstack-images-v2.1-json-patch`. → the updated image.
    pub async fn update_image(&self, id: &str, ops: &[PatchOp]) -> Result<Image> {
        let body = serde_json::to_vec(ops).map_err(|e| ClientError::Decode(e.to_string()))?;
        let rb = self
            .request(Method::PATCH, self.url(&["v2", "images", id]))
            .header(CONTENT_TYPE, PATCH_CONTENT_TYPE)
            .body(body);
        self.execute_json(rb).await
    }

    /// `DELETE /v2/images/{id}` (204).
    pub async fn delete_image(&self, id: &str) -> Result<()> {
        self.execute_empty(self.request(Method::DELETE, self.url(&["v2", "images", id]))).await
    }

    /// `PUT /v2/images/{id}/file` with `Content-Type: application/octet-stream`; when `size` is known it
    /// is sent as `x-openstack-image-size`. The body is streamed as given, never buffered here.
    pub async fn upload(&self, id: &str, body: reqwest::Body, size: Option<u64>) -> Result<()> {
        self.put_data(&["v2", "images", id, "file"], body, size).await
    }

    /// [`Client::upload`] of bytes in memory (size sent).
    pub async fn upload_bytes(&self, id: &str, data: impl Into<Bytes>) -> Result<()> {
        let data: Bytes = data.into();
        let size = data.len() as u64;
        self.upload(id, reqwest::Body::from(data), Some(size)).await
    }

    /// [`Client::upload`] of a stream of byte chunks.
    pub async fn upload_stream<S, E>(&self, id: &str, stream: S, size: Option<u64>) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        self.upload(id, reqwest::Body::wrap_stream(stream), size).await
    }

    /// [`Client::upload`] of everything `reader` yields.
    pub async fn upload_reader<R>(&self, id: &str, reader: R, size: Option<u64>) -> Result<()>
    where
        R: AsyncRead + Send + 'static,
    {
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
        self.upload_stream(id, stream, size).await
    }

    /// [`Client::upload`] of a local file, streamed, its size sent.
    pub async fn upload_file(&self, id: &str, path: impl AsRef<Path>) -> Result<()> {
        let file = tokio::fs::File::open(path.as_ref()).await?;
        let size = file.metadata().await?.len();
        self.upload_reader(id, file, Some(size)).await
    }

    /// `PUT /v2/images/{id}/stage` (interoperable import, step 1): like [`Client::upload`].
    pub async fn stage(&self, id: &str, body: reqwest::Body, size: Option<u64>) -> Result<()> {
        self.put_data(&["v2", "images", id, "stage"], body, size).await
    }

    /// `POST /v2/images/{id}/import` with `body` (e.g. `{"method": {"name": "glance-direct"}}`) (202).
    pub async fn import_image(&self, id: &str, body: &Value) -> Result<()> {
        self.execute_empty(self.request(Method::POST, self.url(&["v2", "images", id, "import"])).json(body)).await
    }

    /// `GET /v2/images/{id}/tasks` → `{"tasks": [...]}`.
    pub async fn image_tasks(&self, id: &str) -> Result<Value> {
        self.execute_json(self.request(Method::GET, self.url(&["v2", "images", id, "tasks"]))).await
    }

    async fn put_data(&self, segments: &[&str], body: reqwest::Body, size: Option<u64>) -> Result<()> {
        let mut rb = self
            .request(Method::PUT, self.url(segments))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(size) = size {
            rb = rb.header(IMAGE_SIZE_HEADER, size.to_string());
        }
        self.execute_empty(rb).await
    }

    /// `GET /v2/images/{id}/file`, optionally with `Range: bytes=start-[end]` (`end` inclusive). The
    /// answer is 200 (whole), 206 (range) or 204 (no data); the body is streamed.
    pub async fn download(&self, id: &str, range: Option<(u64, Option<u64>)>) -> Result<Download> {
        let header = range.map(|(start, end)| match end {
            Some(end) => format!("bytes={start}-{end}"),
            None => format!("bytes={start}-"),
        });
        self.download_with_range(id, header.as_deref()).await
    }

    /// [`Client::download`] with a raw `Range` header value (e.g. the suffix form `bytes=-100`).
    pub async fn download_with_range(&self, id: &str, range: Option<&str>) -> Result<Download> {
        let mut rb = self.request(Method::GET, self.url(&["v2", "images", id, "file"]));
        if let Some(range) = range {
            rb = rb.header(RANGE, range);
        }
        let response = self.execute(rb).await?;
        Ok(Download::new(response))
    }

    /// `PUT /v2/images/{id}/tags/{tag}` (204; idempotent).
    pub async fn add_tag(&self, id: &str, tag: &str) -> Result<()> {
        self.execute_empty(self.request(Method::PUT, self.url(&["v2", "images", id, "tags", tag]))).await
    }

    /// `DELETE /v2/images/{id}/tags/{tag}` (204; 404 if the image has no such tag).
    pub async fn remove_tag(&self, id: &str, tag: &str) -> Result<()> {
        self.execute_empty(self.request(Method::DELETE, self.url(&["v2", "images", id, "tags", tag]))).await
    }

    /// `POST /v2/images/{id}/actions/deactivate` (204; admin).
    pub async fn deactivate(&self, id: &str) -> Result<()> {
        let url = self.url(&["v2", "images", id, "actions", "deactivate"]);
        self.execute_empty(self.request(Method::POST, url)).await
    }

    /// `POST /v2/images/{id}/actions/reactivate` (204; admin).
    pub async fn reactivate(&self, id: &str) -> Result<()> {
        let url = self.url(&["v2", "images", id, "actions", "reactivate"]);
        self.execute_empty(self.request(Method::POST, url)).await
    }

    /// `GET /v2/schemas/{name}` (`image`, `images`, `member`, `members`, `task`, `tasks`).
    pub async fn schemas(&self, name: &str) -> Result<Value> {
        self.execute_json(self.request(Method::GET, self.url(&["v2", "schemas", name]))).await
    }

    /// `GET /v2/info/import`.
    pub async fn info_import(&self) -> Result<Value> {
        self.execute_json(self.request(Method::GET, self.url(&["v2", "info", "import"]))).await
    }

    /// `GET /v2/info/stores`.
    pub async fn info_stores(&self) -> Result<Value> {
        self.execute_json(self.request(Method::GET, self.url(&["v2", "info", "stores"]))).await
    }

    /// `GET /v2/info/usage`.
    pub async fn info_usage(&self) -> Result<Value> {
        self.execute_json(self.request(Method::GET, self.url(&["v2", "info", "usage"]))).await
    }
}

/// A successful answer to `GET /v2/images/{id}/file`, its body not read yet.
#[derive(Debug)]
pub struct Download {
    /// 200, 206 or 204.
    pub status: u16,
    /// `Content-Length`, when the server sent one.
    pub content_length: Option<u64>,
    /// `Content-MD5` (Glance sends the image's hex md5 checksum there).
    pub content_md5: Option<String>,
    /// `Content-Range` of a 206.
    pub content_range: Option<String>,
    pub headers: HeaderMap,
    response: reqwest::Response,
}

impl Download {
    fn new(response: reqwest::Response) -> Self {
        let headers = response.headers().clone();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
        Download {
            status: response.status().as_u16(),
            content_length: text(CONTENT_LENGTH.as_str()).and_then(|s| s.parse().ok()),
            content_md5: text("content-md5").filter(|s| !s.is_empty()),
            content_range: text("content-range"),
            headers,
            response,
        }
    }

    /// Whether the server said the image has no data (204).
    pub fn is_empty(&self) -> bool {
        self.status == 204
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        self.response.bytes_stream().map_err(ClientError::Transport).boxed()
    }

    /// The whole body in memory (for tests and small images).
    pub async fn bytes(self) -> Result<Bytes> {
        Ok(self.response.bytes().await?)
    }
}
