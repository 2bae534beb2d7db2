//! Reading an image's data back, whole or by range.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use ims_catalog::Image;
use ims_store::Manifest;
use uuid::Uuid;

use crate::images::ImageService;
use crate::{CoreError, Policy, RequestContext, Result};

/// An image whose data can be read.
pub struct ImageData {
    pub image: Image,
    manifest: Arc<Manifest>,
}

impl ImageData {
    /// Size of the stored file in bytes.
    pub fn size(&self) -> u64 {
        self.manifest.size
    }
}

impl ImageService {
    /// Opens the image's data for reading. `Ok(None)` when the image has no data (Glance answers 204).
    /// A deactivated image's data is for admins only (`Forbidden`).
    pub async fn open_data(&self, ctx: &RequestContext, id: Uuid) -> Result<Option<ImageData>> {
        let image = self.get(ctx, id).await?;
        Policy::check_download(ctx, &image)?;
        let Some(manifest_id) = image.manifest_id.clone() else { return Ok(None) };
        let manifest = self.store.load_manifest(&manifest_id).await.map_err(|e| {
            CoreError::Corrupt(format!("image {id}: its data cannot be read: {e}"))
        })?;
        Ok(Some(ImageData { image, manifest: Arc::new(manifest) }))
    }

    /// Streams bytes `[start, end)` of the data; every chunk is verified as it is read.
    pub fn read(&self, data: &ImageData, start: u64, end: u64) -> BoxStream<'static, Result<Bytes>> {
        use futures::StreamExt;
        let id = data.image.id;
        self.store
            .read_range(data.manifest.clone(), start, end)
            .map(move |r| r.map_err(|e| CoreError::Corrupt(format!("image {id}: {e}"))))
            .boxed()
    }
}
