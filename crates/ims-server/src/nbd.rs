//! The node's NBD server: the guest disks of images, reachable through the secret names minted by
//! `POST /v1/cloudimages/{id}/nbd` and resolved through the catalog (so any node serves a name minted on
//! another). The listener is bound when the node opens, and serves until the node shuts down.
//!
//! Volume exports (names minted by `POST /compute/v1/volumes/{id}/attachments`) are read-write: the
//! first connection opens the volume's current manifest as a copy-on-write volume, and what clients
//! write is persisted as the volume's new manifest on every NBD FLUSH and when a connection closes.
//! Connections to one volume on this node share one open volume (see [`OpenVolumes`]), so each sees
//! the others' writes and their persists are ordered.
//!
//! With a file of pre-shared keys (`nbd_tls_psk_file`) every connection must use TLS with one of
//! them; a listener on an address other hosts can reach refuses to start without one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use ims_core::compute::ComputeService;
use ims_core::nbd_exports::NbdExportService;
use ims_nbd::{Export, ExportRegistry, NbdServer, PskKeys, PskTls, ResolveFuture, ServerConfig};

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

/// The TLS a listener on `address` requires: TLS with the keys of `psk_file` when one is given;
/// none on a loopback address without one; an error on any other address without one, since NBD
/// itself carries neither encryption nor credentials.
pub(crate) fn tls_for(address: SocketAddr, psk_file: Option<&Path>) -> anyhow::Result<Option<Arc<PskTls>>> {
    match psk_file {
        Some(path) => {
            let keys = PskKeys::from_file(path).with_context(|| format!("NBD TLS key file {}", path.display()))?;
            let tls = PskTls::new(keys).context("setting up NBD TLS")?;
            Ok(Some(Arc::new(tls)))
        }
        None if address.ip().is_loopback() => Ok(None),
        None => anyhow::bail!(
            "the NBD listener {address} is reachable from other hosts, so it requires TLS: set nbd_tls_psk_file \
             (--nbd-tls-psk-file) to a file of identity:hexkey lines, or listen on a loopback address"
        ),
    }
}

/// A bound NBD listener, not yet serving.
pub(crate) struct NbdListener {
    listener: TcpListener,
    address: SocketAddr,
    tls: Option<Arc<PskTls>>,
}

impl NbdListener {
    /// Binds `address` (port 0 picks a free port; [`NbdListener::address`] tells which). With `tls`,
    /// every connection must use it.
    pub(crate) async fn bind(address: SocketAddr, tls: Option<Arc<PskTls>>) -> std::io::Result<NbdListener> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        Ok(NbdListener { listener, address, tls })
    }

    /// The bound address.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Whether clients must use TLS.
    pub(crate) fn requires_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves the guest disks `exports` resolves and the volumes of `compute` until `stop` is cancelled;
    /// the returned task ends once every connection has closed.
    pub(crate) fn serve(self, exports: NbdExportService, compute: ComputeService, stop: CancellationToken)
        -> tokio::task::JoinHandle<()> {
        let registry = Arc::new(CatalogExports { exports, compute, open_volumes: OpenVolumes::new() });
        let server = match self.tls {
            Some(tls) => NbdServer::with_tls(registry, ServerConfig::default(), tls),
            None => NbdServer::new(registry),
        };
        tracing::info!(address = %self.address, tls = server.requires_tls(), "NBD listening");
        tokio::spawn(async move { server.serve(self.listener, async move { stop.cancelled().await }).await })
    }
}
