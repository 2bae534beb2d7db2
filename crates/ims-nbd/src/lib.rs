//! NBD server: the guest disks of images (read-only) and server volumes (read-write) over the
//! Network Block Device protocol, so that qemu, `qemu-img` and the Linux kernel client can use them
//! in place.
//!
//! Written for IMS from the protocol specification (`doc/proto.md` of NetworkBlockDevice/nbd):
//! fixed newstyle handshake only (`NBD_OPT_GO`, `NBD_OPT_INFO`, `NBD_OPT_EXPORT_NAME`,
//! `NBD_OPT_LIST`, `NBD_OPT_ABORT`, `NBD_OPT_STRUCTURED_REPLY`, `NBD_OPT_{SET,LIST}_META_CONTEXT`
//! with `base:allocation`, and `NBD_OPT_STARTTLS` when the server is given a [`TlsUpgrade`], which
//! then makes TLS mandatory), and the commands READ (with hole chunks
//! when structured replies are negotiated), WRITE, FLUSH, TRIM, CACHE, WRITE_ZEROES, BLOCK_STATUS
//! and DISC, pipelined on each connection.
//!
//! Every client is untrusted: all lengths are checked before anything is allocated or read, a
//! malformed request gets an NBD error (or, where the protocol leaves no way to answer, a closed
//! connection), and nothing a client sends can panic the server. NBD itself carries no credentials,
//! so an export is reachable only through a name its [`ExportRegistry`] resolves; names are never
//! logged and, by default, never listed. With [`PskTls`] the client must also hold a pre-shared key,
//! and names and data travel encrypted.
//!
//! ```no_run
//! # async fn demo(image: std::sync::Arc<dyn ims_formats::DiskImage>) {
//! use std::sync::Arc;
//! use ims_nbd::{Export, ExportTable, NbdServer};
//!
//! let exports = Arc::new(ExportTable::new());
//! exports.insert("3f7c9a1e5b2d4c6f", Export::from_disk_image(image));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:10809").await.unwrap();
//! NbdServer::new(exports).serve(listener, std::future::pending()).await;
//! # }
//! ```

#![warn(missing_docs)]

mod error;
mod export;
mod handshake;
pub mod protocol;
mod server;
mod tls;
mod transmission;

pub use error::NbdError;
pub use export::{
    DiskImageBackend, Export, ExportBackend, ExportRegistry, ExportTable, Extent, FileBackend,
    ReadWriteBackend, ResolveFuture,
};
pub use ims_formats::BlockStatus;
pub use server::{NbdServer, ServerConfig};
pub use tls::{
    BoxedTransport, PskKeys, PskKeysError, PskTls, TlsUpgrade, Transport, UpgradeFuture,
};
