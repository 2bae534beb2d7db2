//! Read-write NBD exports of server volumes: a [`CowVolume`] served through `ims-nbd`.
//!
//! Writes land in the volume's memory at once (reads see them); an NBD FLUSH (or a FUA write) stores
//! them as chunks and hands the volume's new manifest to a persist callback, which saves it and makes
//! the catalog reference it. The same happens when a connection ends (`NBD_CMD_DISC` or a client that
//! hangs up), so a client that disconnects without flushing loses nothing that reached the server.
//! Once a manifest is persisted, the pending manifests that protected its new chunks from garbage
//! collection are released.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, Weak};

use futures::future::BoxFuture;
use ims_nbd::{BlockStatus, Export, ExportBackend, Extent};
use ims_store::{CowVolume, Manifest, StoreError};
use tokio::runtime::Handle;

/// Persists a volume's manifest: saves it and makes the catalog reference it as the volume's
/// current manifest. Called only with a manifest that differs from the one persisted before, one call
/// at a time and in the order the manifests were made; an error fails the NBD request that asked for
/// the flush (the data stays in the volume and the next flush tries again).
pub type PersistManifest = Arc<dyn Fn(Manifest) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// An [`ExportBackend`] over a copy-on-write volume. Serve each volume through one backend (one
/// [`volume_export`]): the backend is what orders the volume's persists.
pub struct VolumeBackend {
    volume: Arc<CowVolume>,
    persist: PersistManifest,
    runtime: Handle,
    /// Version of the volume's manifest persisted last (0: the base, which is already persisted).
    /// Held from a flush to the end of its persist, so that manifests are persisted in order.
    persisted: tokio::sync::Mutex<u64>,
}

impl VolumeBackend {
    /// Serves `volume`, persisting its manifests through `persist`; the volume's async work runs on
    /// `runtime` (the export's calls come from blocking threads).
    pub fn new(volume: Arc<CowVolume>, persist: PersistManifest, runtime: Handle) -> VolumeBackend {
        VolumeBackend { volume, persist, runtime, persisted: tokio::sync::Mutex::new(0) }
    }

    /// The volume served.
    pub fn volume(&self) -> &Arc<CowVolume> {
        &self.volume
    }

    /// Makes every write that has returned durable: flushes the volume, persists its manifest when it
    /// changed since the last persist, then releases the pending manifests it no longer needs.
    /// Idempotent; concurrent calls persist one after the other, in order.
    pub async fn sync(&self) -> io::Result<()> {
        let mut persisted = self.persisted.lock().await;
        let flushed = self.volume.flush_with_pending().await.map_err(store_error)?;
        if flushed.version != *persisted {
            (self.persist)(flushed.manifest)
                .await
                .map_err(|e| io::Error::other(format!("persisting the volume's manifest failed: {e}")))?;
            *persisted = flushed.version;
        }
        if !flushed.pending.is_empty() {
            if let Err(e) = self.volume.release_pending(&flushed.pending).await {
                tracing::warn!(error = %e, "pending manifests of a persisted volume left to expire");
            }
        }
        Ok(())
    }
}

fn store_error(e: StoreError) -> io::Error {
    match e {
        StoreError::Invalid(m) => io::Error::new(io::ErrorKind::InvalidInput, m),
        other => io::Error::other(other.to_string()),
    }
}

impl ExportBackend for VolumeBackend {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.runtime.block_on(self.volume.read_at(buf, offset)).map_err(store_error)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.runtime.block_on(self.volume.write_at(buf, offset)).map_err(store_error)
    }

    fn flush(&self) -> io::Result<()> {
        self.runtime.block_on(self.sync())
    }

    /// Trimmed ranges read as zeros afterwards and store nothing.
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.runtime.block_on(self.volume.write_zeroes(offset, len)).map_err(store_error)
    }

    /// Zeros are never stored, so `may_trim` makes no difference: a zeroed range is a zero extent.
    fn write_zeroes(&self, offset: u64, len: u64, _may_trim: bool) -> io::Result<()> {
        self.runtime.block_on(self.volume.write_zeroes(offset, len)).map_err(store_error)
    }

    fn block_status(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        Ok(self
            .volume
            .block_status(offset, len)
            .into_iter()
            .map(|(_, length, allocated)| Extent {
                length,
                status: if allocated { BlockStatus::Data } else { BlockStatus::Unallocated },
            })
            .collect())
    }

    fn close(&self) -> io::Result<()> {
        self.runtime.block_on(self.sync())
    }
}

/// The volumes open for NBD right now, by a key naming the volume (its id): every connection to one
/// volume shares one [`CowVolume`] and one backend, so that each sees the others' writes at once and
/// their persists are ordered. A volume stays open while any connection (or any [`Export`] handed
/// out) uses it; the last connection's end persists it, and the next export opens it afresh.
#[derive(Default)]
pub struct OpenVolumes {
    open: Mutex<HashMap<String, Weak<VolumeBackend>>>,
}

impl OpenVolumes {
    /// No volume open.
    pub fn new() -> OpenVolumes {
        OpenVolumes::default()
    }

    /// A read-write export of the volume `key`: over the backend already open for it, or else over
    /// the volume and persist callback `open` gives (called only then). Must be called inside a
    /// tokio runtime, as [`volume_export`].
    pub fn export(&self, key: &str, open: impl FnOnce() -> (Arc<CowVolume>, PersistManifest)) -> Export {
        let mut volumes = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        volumes.retain(|_, backend| backend.strong_count() > 0);
        let backend = match volumes.get(key).and_then(Weak::upgrade) {
            Some(backend) => backend,
            None => {
                let (volume, persist) = open();
                let backend = Arc::new(VolumeBackend::new(volume, persist, Handle::current()));
                volumes.insert(key.to_string(), Arc::downgrade(&backend));
                backend
            }
        };
        let size = backend.volume.size();
        Export::read_write(backend, size)
    }

    /// How many volumes are open.
    pub fn len(&self) -> usize {
        let volumes = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        volumes.values().filter(|backend| backend.strong_count() > 0).count()
    }

    /// Whether no volume is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A read-write export of `volume` whose manifests are persisted through `persist` on every NBD
/// FLUSH and when a connection ends. Must be called inside a tokio runtime: the export runs the
/// volume on it.
pub fn volume_export(volume: Arc<CowVolume>, persist: PersistManifest) -> Export {
    let size = volume.size();
    Export::read_write(Arc::new(VolumeBackend::new(volume, persist, Handle::current())), size)
}
