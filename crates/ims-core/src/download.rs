//! Reading an image's data back, whole or by range: from the default store, each chunk it cannot give
//! read from a copy in an extra store instead (see [`crate::replica_reads`]).

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use ims_catalog::{Image, ImageStatus};
use ims_store::{ChunkStore, Manifest};
use uuid::Uuid;

use crate::images::ImageService;
use crate::replica_reads::{read_range_replicated, Replica};
use crate::{CoreError, Policy, RequestContext, Result};

/// An image whose data can be read.
pub struct ImageData {
    pub image: Image,
    manifest: Arc<Manifest>,
    /// The store view of the image's encryption domain (or plaintext).
    store: ChunkStore,
    /// The image's copies in extra stores, read when the default store cannot give a chunk.
    replicas: Arc<Vec<Replica>>,
}

impl ImageData {
    /// Size of the stored file in bytes.
    pub fn size(&self) -> u64 {
        self.manifest.size
    }
}

impl ImageService {
    /// Opens the image's data for reading. `Ok(None)` when the image has no data yet, staged data included
    /// (Glance answers 204).
    /// A deactivated image's data is for admins only (`Forbidden`); so is an encrypted image's whose master
    /// key is disabled (`Forbidden` for everyone, until the key is enabled again).
    pub async fn open_data(&self, ctx: &RequestContext, id: Uuid) -> Result<Option<ImageData>> {
        let image = self.get(ctx, id).await?;
        Policy::check_download(ctx, &image)?;
        // Staged data (interoperable import) is not the image's data until the import activates it.
        let staged = matches!(image.status, ImageStatus::Uploading | ImageStatus::Importing);
        let Some(manifest_id) = image.manifest_id.clone().filter(|_| !staged) else { return Ok(None) };
        let store = self.store_for_reading(&image).await?;
        let replicas = self.replicas_of(&image, &store);
        let manifest = self.load_manifest_replicated(&image, &manifest_id, &store, &replicas).await.map_err(|e| {
            CoreError::Corrupt(format!("image {id}: its data cannot be read: {e}"))
        })?;
        Ok(Some(ImageData { image, manifest: Arc::new(manifest), store, replicas: Arc::new(replicas) }))
    }

    /// Streams bytes `[start, end)` of the data; every chunk is verified as it is fetched, and only the
    /// chunks overlapping the range are fetched. Goes through the node's chunk cache: a small range
    /// (hot ranges that clients fetch piece by piece) is served from it and kept in it, while the whole
    /// file or a large range bypasses it: a full download never evicts data other readers keep hot,
    /// and reads every byte from the store (see [`ims_store::ChunkCache`]). A chunk the default
    /// store cannot give is read from a copy in an extra store when the image has one.
    pub fn read(&self, data: &ImageData, start: u64, end: u64) -> BoxStream<'static, Result<Bytes>> {
        use futures::StreamExt;
        let id = data.image.id;
        let caching = data.store.chunk_cache().use_for_range(start, end, data.manifest.size);
        read_range_replicated(id, &data.store, caching, data.replicas.clone(), data.manifest.clone(), start, end)
            .map(move |r| {
                r.map_err(|e| match e {
                    ims_store::StoreError::Backend(m) => CoreError::Unavailable(format!("image {id}: {m}")),
                    other => CoreError::Corrupt(format!("image {id}: {other}")),
                })
            })
            .boxed()
    }

    /// Like [`ImageService::read`], but reads the first piece before returning, so that data corrupt
    /// from its first bytes fails here (before a response starts: the error can still be the answer).
    /// Corruption found later ends the stream with an error; no unverified byte is ever yielded.
    pub async fn read_checked(&self, data: &ImageData, start: u64, end: u64) -> Result<BoxStream<'static, Result<Bytes>>> {
        use futures::StreamExt;
        let mut stream = self.read(data, start, end);
        match stream.next().await {
            None => Ok(futures::stream::empty().boxed()),
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) }).chain(stream).boxed()),
        }
    }
}
