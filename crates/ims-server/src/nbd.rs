//! The node's NBD server: the guest disks of images, reachable through the secret names minted by
//! `POST /v1/cloudimages/{id}/nbd` and resolved through the catalog (so any node serves a name minted on
//! another). The listener is bound when the node opens, and serves until the node shuts down.
//!
//! Volume exports (names minted by `POST /compute/v1/volumes/{id}/attachments`) are read-write: the
//! first connection opens the volume's current manifest as a copy-on-write volume, and what clients
//! write is persisted as the volume's new manifest on every NBD FLUSH and when a connection closes.
//! Connections to one volume on this node share one open volume (see [`OpenVolumes`]), so each sees
//! the others' writes and their persists are ordered.

use std::net::SocketAddr;
use std::sync::Arc;

use ims_core::compute::ComputeService;
use ims_core::nbd_exports::NbdExportService;
use ims_nbd::{Export, ExportRegistry, NbdServer, ResolveFuture};

use crate::nbd_volume::OpenVolumes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Export names resolved through the catalog. Lists nothing (`NBD_OPT_LIST` reveals no name).
struct CatalogExports {
    exports: NbdExportService,
    compute: ComputeService,
    open_volumes: OpenVolumes,
}

impl CatalogExports {
    /// The read-write export of the volume `name` opens, if it opens one.
    async fn open_volume(&self, name: &str) -> std::io::Result<Option<Export>> {
        let opened = self.compute.open_volume_export(name).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        let Some(opened) = opened else { return Ok(None) };
        let volume_id = opened.volume.id;
        let compute = self.compute.clone();
        let persist: crate::nbd_volume::PersistManifest = Arc::new(move |manifest| {
            let compute = compute.clone();
            Box::pin(async move {
                compute.persist_volume_manifest(volume_id, &manifest).await.map(drop).map_err(|e| e.to_string())
            })
        });
        let export = self.open_volumes.export(&volume_id.to_string(), move || {
            (Arc::new(ims_store::CowVolume::new(opened.store, Arc::new(opened.manifest))), persist)
        });
        Ok(Some(export))
    }
}

impl ExportRegistry for CatalogExports {
    fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let disk = self.exports.open(name).await.map_err(|e| std::io::Error::other(e.to_string()))?;
            match disk {
                Some(disk) => Ok(Some(Export::from_disk_image(disk))),
                None => self.open_volume(name).await,
            }
        })
    }
}

/// A bound NBD listener, not yet serving.
pub(crate) struct NbdListener {
    listener: TcpListener,
    address: SocketAddr,
}

impl NbdListener {
    /// Binds `address` (port 0 picks a free port; [`NbdListener::address`] tells which).
    pub(crate) async fn bind(address: SocketAddr) -> std::io::Result<NbdListener> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        Ok(NbdListener { listener, address })
    }

    /// The bound address.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves the guest disks `exports` resolves and the volumes of `compute` until `stop` is cancelled;
    /// the returned task ends once every connection has closed.
    pub(crate) fn serve(self, exports: NbdExportService, compute: ComputeService, stop: CancellationToken)
        -> tokio::task::JoinHandle<()> {
        let server = NbdServer::new(Arc::new(CatalogExports { exports, compute, open_volumes: OpenVolumes::new() }));
        tracing::info!(address = %self.address, "NBD listening");
        tokio::spawn(async move { server.serve(self.listener, async move { stop.cancelled().await }).await })
    }
}
