//! Glance multiple stores: the node's default store plus extra chunk stores named in configuration.
//!
//! Every image's data is written to the default store. An active image can be copied to extra stores
//! (`copy-image`): its manifest and the chunks the extra store lacks are copied there, and the store's id
//! is added to [`Image::extra_stores`]. Glance's `stores` field lists the default store first (while it
//! holds the image), then the extra ones. Any copy but the last can be removed again (`DELETE
//! /v2/stores/{store}/{image}`), the default store's too: the image is then read from its first extra
//! store ([`crate::ImageService::home_store`]) until `copy-image` to the default store brings it back.
//! A removed copy's manifest and chunks go with that store's garbage collection, which no longer counts
//! the image among its roots.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use ims_catalog::{Image, ImageStatus};
use ims_store::{ChunkStore, PendingRelease, StoreError};
use uuid::Uuid;

use super::GlanceImportService;
use crate::{CoreError, Policy, RequestContext, Result};

/// The id of the node's default store (the chunk store every image is written to).
pub const DEFAULT_STORE_ID: &str = "local";

/// One store, as `/v2/info/stores` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    pub id: String,
    pub description: String,
    /// Whether images are written here (only the default store).
    pub default: bool,
    /// The backend kind: `file`, `s3` or `memory` (the scheme of the store's URL).
    pub kind: String,
}

/// What one copy to a store sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyCount {
    /// Chunk objects written to the target store (those it lacked, or held too long to be sure to keep).
    pub chunks: u64,
    /// Their stored bytes.
    pub bytes: u64,
}

/// An extra store: its description and chunk store.
#[derive(Clone)]
struct ExtraStore {
    info: StoreInfo,
    chunks: ChunkStore,
}

/// The registry of Glance stores: the default store and the extra ones, by id.
#[derive(Clone)]
pub struct Stores {
    default: StoreInfo,
    extra: BTreeMap<String, ExtraStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").field("default", &self.default).field("extra", &self.extra.keys()).finish()
    }
}

impl Default for Stores {
    fn default() -> Stores {
        Stores::new("Deduplicated, compressed chunk store", "file")
    }
}

/// The chunk stores of the node's extra stores, by id, as every clone of an [`crate::ImageService`] sees
/// them: set from the [`Stores`] registry when the Glance import service is made, read by garbage
/// collection, purges and reads that fall back on a copy.
#[derive(Clone, Default)]
pub(crate) struct ExtraStores(Arc<RwLock<BTreeMap<String, ChunkStore>>>);

impl ExtraStores {
    /// Replaces the extra stores with those of `stores`.
    pub(crate) fn set(&self, stores: &Stores) {
        let extra = stores.extra.iter().map(|(id, s)| (id.clone(), s.chunks.clone())).collect();
        *self.0.write().expect("extra stores poisoned") = extra;
    }

    /// The chunk store of the extra store `id`, if there is one.
    pub(crate) fn get(&self, id: &str) -> Option<ChunkStore> {
        self.0.read().expect("extra stores poisoned").get(id).cloned()
    }

    /// Every extra store, by id.
    pub(crate) fn all(&self) -> Vec<(String, ChunkStore)> {
        self.0.read().expect("extra stores poisoned").iter().map(|(id, s)| (id.clone(), s.clone())).collect()
    }
}

/// Whether `id` can name a store: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn valid_store_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Stores {
    /// A registry holding only the default store ([`DEFAULT_STORE_ID`]).
    pub fn new(default_description: &str, default_kind: &str) -> Stores {
        Stores {
            default: StoreInfo {
                id: DEFAULT_STORE_ID.into(),
                description: default_description.into(),
                default: true,
                kind: default_kind.into(),
            },
            extra: BTreeMap::new(),
        }
    }

    /// Adds the extra store `id` over `chunks`. `Invalid` for a malformed id, the default store's id or an
    /// id already added; the registry is unchanged then.
    pub fn add(&mut self, id: &str, description: &str, kind: &str, chunks: ChunkStore) -> Result<()> {
        if !valid_store_id(id) {
            return Err(CoreError::Invalid(format!("store id {id:?}: use 1 to 64 letters, digits, '-' or '_'")));
        }
        if id == DEFAULT_STORE_ID || self.extra.contains_key(id) {
            return Err(CoreError::Invalid(format!("store id {id:?} is already in use")));
        }
        let info = StoreInfo { id: id.into(), description: description.into(), default: false, kind: kind.into() };
        self.extra.insert(id.into(), ExtraStore { info, chunks });
        Ok(())
    }

    /// Every store: the default one first, then the extra ones by id.
    pub fn list(&self) -> Vec<StoreInfo> {
        std::iter::once(self.default.clone()).chain(self.extra.values().map(|s| s.info.clone())).collect()
    }

    /// Whether a store with this id exists.
    pub fn contains(&self, id: &str) -> bool {
        id == self.default.id || self.extra.contains_key(id)
    }

    /// Every store's id, the default one first.
    pub fn ids(&self) -> Vec<String> {
        self.list().into_iter().map(|s| s.id).collect()
    }

    /// The chunk store of the extra store `id`, if there is one.
    pub(crate) fn extra(&self, id: &str) -> Option<&ChunkStore> {
        self.extra.get(id).map(|s| &s.chunks)
    }
}

/// The stores holding `image`'s data, as Glance's `stores` field lists them: none without data, else
/// the default store (while it holds a copy), then the extra stores holding one.
pub fn image_stores(image: &Image) -> Vec<String> {
    if image.manifest_id.is_none() || !matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated) {
        return Vec::new();
    }
    let default = image.in_default_store.then(|| DEFAULT_STORE_ID.to_string());
    default.into_iter().chain(image.extra_stores.iter().cloned()).collect()
}

impl crate::ImageService {
    /// Drops the manifests of `image`'s copies in extra stores (once the image is gone for good: deleted
    /// or purged from the recycle bin), so that those stores' garbage collection reclaims the chunks no
    /// other copy uses. A manifest that cannot be deleted is logged and left to that garbage collection
    /// (it no longer protects anything: no live image names the store).
    pub(crate) async fn drop_store_copies(&self, image: &Image) {
        let Some(manifest_id) = &image.manifest_id else { return };
        for store_id in &image.extra_stores {
            let Some(store) = self.extra_stores.get(store_id) else { continue };
            if let Err(e) = store.delete_manifest(manifest_id).await {
                tracing::warn!(image = %image.id, store = %store_id, error = %e, "copy's manifest left for garbage collection");
            }
        }
    }
}

impl GlanceImportService {
    /// Copies the data of the active image `image` (manifest and the chunks the target lacks) from its
    /// home store to the store `store_id` (an extra store, or the default store when the image was
    /// deleted from it), reporting the percent done to `progress`, and returns what was sent, with the
    /// guard of the copy's pending manifest in that store: hold it until the catalog records the copy
    /// (dropping it releases the pending manifest), so that the store's garbage collection spares the copy
    /// until then. Idempotent: chunks already there are not sent again. The manifest is saved last, so a
    /// store holding it holds every chunk it names. Does not change the catalog. `Invalid` for a store
    /// that already holds the image or is not configured; store failures are `Unavailable`.
    pub(crate) async fn copy_to_store(
        &self,
        image: &Image,
        store_id: &str,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(CopyCount, PendingRelease)> {
        let target = match store_id {
            DEFAULT_STORE_ID if !image.in_default_store => Some(&self.images.store),
            _ => self.settings.stores.extra(store_id),
        }
        .ok_or_else(|| CoreError::Invalid(format!("{store_id} is not a store image {} can be copied to", image.id)))?;
        let manifest_id = image
            .manifest_id
            .as_deref()
            .ok_or_else(|| CoreError::Conflict(format!("image {} has no data", image.id)))?;
        let source = &self.images.home_store(image)?;
        let manifest = source.load_manifest(manifest_id).await.map_err(unavailable)?;
        // Journaled like a write, so that the target's garbage collection cannot take a chunk from under it.
        let report = |done: u64, total: u64| progress(99.0 * done as f64 / total.max(1) as f64);
        let copied = target.copy_file_from(source, manifest_id, &manifest, &report).await.map_err(unavailable)?;
        let pending = PendingRelease::new(target, copied.pending_id);
        Ok((CopyCount { chunks: copied.chunks_written, bytes: copied.bytes_written }, pending))
    }

    /// Removes the copy of image `id` held by the store `store_id` (`DELETE
    /// /v2/stores/{store_id}/{image_id}`): the store leaves the image's `stores`, so that its garbage
    /// collection reclaims the manifest and the chunks no other image there uses. Removing the default
    /// store's copy (or the copy an image out of the default store is read from) first checks that the
    /// extra store the image will be read from holds its manifest.
    /// `NotFound` for an unknown store or an image the caller cannot see, or one that store does not hold;
    /// `Forbidden` unless the caller may change the image; `Conflict` for the image's last copy or an image
    /// that is not active; `Unavailable` when the copy to read from cannot be read. Nothing changes when it
    /// fails.
    pub async fn delete_from_store(&self, ctx: &RequestContext, store_id: &str, id: Uuid) -> Result<()> {
        if !self.settings.stores.contains(store_id) {
            return Err(CoreError::NotFound(format!("Unknown store {store_id}")));
        }
        let mut image = self.images.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        let holders = image_stores(&image);
        if !holders.iter().any(|s| s == store_id) {
            return Err(CoreError::NotFound(format!("Image {id} is not in store {store_id}")));
        }
        if image.status != ImageStatus::Active {
            return Err(CoreError::Conflict(format!("Image {id} is {}: only active images' copies can be deleted", image.status)));
        }
        if holders.len() == 1 {
            return Err(CoreError::Conflict(format!(
                "Store {store_id} holds the only copy of image {id}: delete the image instead"
            )));
        }
        if store_id == DEFAULT_STORE_ID {
            image.in_default_store = false;
        } else {
            image.extra_stores.retain(|s| s != store_id);
        }
        if !image.in_default_store {
            let home = self.images.home_store(&image)?;
            let manifest_id = image.manifest_id.as_deref().unwrap_or_default();
            home.load_manifest(manifest_id).await.map_err(|e| {
                CoreError::Unavailable(format!("Image {id}: the copy it would be read from cannot be read: {e}"))
            })?;
        }
        image.updated_at = crate::now();
        let mut event = ctx.event("image.store.delete", format!("image:{id}"));
        event.detail = Some(format!("copy in store {store_id} deleted"));
        self.images.catalog.images.save(&image, &[ImageStatus::Active], &event).await.map_err(|e| match e {
            ims_catalog::CatalogError::Conflict(_) => CoreError::Conflict(format!("Image {id} changed meanwhile")),
            other => other.into(),
        })
    }
}

fn unavailable(e: StoreError) -> CoreError {
    CoreError::Unavailable(format!("store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> ChunkStore {
        ChunkStore::open("memory://").unwrap()
    }

    #[test]
    fn stores_are_listed_default_first_and_ids_are_checked() {
        let mut stores = Stores::default();
        stores.add("zeta", "Z", "memory", memory()).unwrap();
        stores.add("alpha_1", "A", "s3", memory()).unwrap();
        assert_eq!(stores.ids(), ["local", "alpha_1", "zeta"]);
        assert!(stores.list()[0].default && !stores.list()[1].default);
        for bad in ["", "local", "zeta", "a,b", "spaced id", &"x".repeat(65)] {
            assert!(stores.add(bad, "", "memory", memory()).is_err(), "{bad:?} is refused");
        }
        assert_eq!(stores.ids().len(), 3, "refusals change nothing");
        assert!(stores.contains("local") && stores.contains("zeta") && !stores.contains("nowhere"));
    }

    #[test]
    fn an_image_is_in_stores_only_once_it_has_data() {
        let mut image = Image::new(Uuid::new_v4(), "p", crate::now());
        image.extra_stores = vec!["second".into()];
        assert!(image_stores(&image).is_empty(), "queued, no data");
        image.manifest_id = Some(Uuid::new_v4().to_string());
        image.status = ImageStatus::Active;
        assert_eq!(image_stores(&image), ["local", "second"]);
    }
}
