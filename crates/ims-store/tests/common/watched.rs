//! A real object store with a test watching (or changing) its puts and gets.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};

/// What a test does with the puts and gets of a [`Watched`] store; by default, nothing but pass them on.
#[async_trait]
pub trait Watch: fmt::Debug + Send + Sync + 'static {
    /// Puts `payload` at `location` (into `inner`, the store watched).
    async fn put(
        &self,
        inner: &Arc<dyn ObjectStore>,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        inner.put_opts(location, payload, opts).await
    }

    /// Sees a get (or head) before `inner` answers it.
    fn get(&self, _location: &Path, _options: &GetOptions) {}
}

/// `inner` with its puts and gets going through `watch`; every other call goes straight to `inner`.
#[derive(Debug)]
pub struct Watched<W> {
    pub inner: Arc<dyn ObjectStore>,
    pub watch: W,
}

impl<W: Watch> Watched<W> {
    pub fn new(inner: impl ObjectStore, watch: W) -> Arc<Watched<W>> {
        Arc::new(Watched { inner: Arc::new(inner), watch })
    }
}

impl<W> fmt::Display for Watched<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Watched({})", self.inner)
    }
}

#[async_trait]
impl<W: Watch> ObjectStore for Watched<W> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.watch.put(&self.inner, location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.watch.get(location, &options);
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}
