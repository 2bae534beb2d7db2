//! The node's NBD server: the guest disks of images, reachable through the secret names minted by
//! `POST /v1/cloudimages/{id}/nbd` and resolved through the catalog (so any node serves a name minted on
//! another). The listener is bound when the node opens, and serves until the node shuts down.

use std::net::SocketAddr;
use std::sync::Arc;

use ims_core::nbd_exports::NbdExportService;
use ims_nbd::{Export, ExportRegistry, NbdServer, ResolveFuture};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Export names resolved through the catalog. Lists nothing (`NBD_OPT_LIST` reveals no name).
struct CatalogExports {
    exports: NbdExportService,
}

impl ExportRegistry for CatalogExports {
    fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let disk = self.exports.open(name).await.map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(disk.map(Export::from_disk_image))
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

    /// Serves the guest disks `exports` resolves until `stop` is cancelled; the returned task ends once
    /// every connection has closed.
    pub(crate) fn serve(self, exports: NbdExportService, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let server = NbdServer::new(Arc::new(CatalogExports { exports }));
        tracing::info!(address = %self.address, "NBD listening");
        tokio::spawn(async move { server.serve(self.listener, async move { stop.cancelled().await }).await })
    }
}
