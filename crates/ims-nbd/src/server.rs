//! The listener: accepts TCP connections and runs handshake then transmission on each.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::export::ExportRegistry;
use crate::handshake::{self, PREFERRED_BLOCK_SIZE};
use crate::tls::{BoxedTransport, TlsUpgrade};
use crate::{transmission, NbdError};

/// Limits of an [`NbdServer`]. Out-of-range values are raised to the smallest workable value when
/// the server is built (see each field).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest read or write payload accepted, advertised as the maximum in `NBD_INFO_BLOCK_SIZE`.
    /// Larger writes fail with `EINVAL`, larger reads with `EINVAL` (simple replies) or `EOVERFLOW`
    /// (structured replies). Default 32 MiB; at least 4096.
    pub max_payload: u32,
    /// Time a client has from connecting to entering transmission; then the server hangs up.
    /// Default 30 s.
    pub handshake_timeout: Duration,
    /// Connections served at once; connections beyond are closed on accept. Default 256; at least 1.
    pub max_connections: usize,
    /// Bytes of request and reply data one connection may have in flight; reading further requests
    /// waits until replies are written. Default 64 MiB; at least `max_payload` plus 256 KiB.
    pub inflight_bytes_per_connection: u32,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_payload: 32 << 20,
            handshake_timeout: Duration::from_secs(30),
            max_connections: 256,
            inflight_bytes_per_connection: 64 << 20,
        }
    }
}

impl ServerConfig {
    fn normalized(mut self) -> ServerConfig {
        self.max_payload = self.max_payload.max(PREFERRED_BLOCK_SIZE);
        self.max_connections = self.max_connections.max(1);
        let floor = self.max_payload.saturating_add(256 << 10);
        self.inflight_bytes_per_connection = self.inflight_bytes_per_connection.max(floor);
        self
    }
}

/// An NBD server (fixed newstyle) serving the exports a registry resolves, over plain TCP or, when
/// built [`NbdServer::with_tls`], over TLS only.
///
/// Cloning is cheap and clones share the registry and the connection counter.
#[derive(Clone)]
pub struct NbdServer {
    inner: Arc<Inner>,
}

struct Inner {
    exports: Arc<dyn ExportRegistry>,
    config: ServerConfig,
    tls: Option<Arc<dyn TlsUpgrade>>,
    next_connection: AtomicU64,
}

impl NbdServer {
    /// A server over `exports` with the default [`ServerConfig`].
    pub fn new(exports: Arc<dyn ExportRegistry>) -> NbdServer {
        NbdServer::with_config(exports, ServerConfig::default())
    }

    /// A server over `exports` with `config` (normalized as [`ServerConfig`] describes).
    pub fn with_config(exports: Arc<dyn ExportRegistry>, config: ServerConfig) -> NbdServer {
        NbdServer::build(exports, config, None)
    }

    /// A server over `exports` with `config` that requires TLS on every connection, set up by
    /// `tls` after the client's `NBD_OPT_STARTTLS` (the protocol's FORCEDTLS mode: every other
    /// option before it is refused with `NBD_REP_ERR_TLS_REQD`).
    pub fn with_tls(
        exports: Arc<dyn ExportRegistry>,
        config: ServerConfig,
        tls: Arc<dyn TlsUpgrade>,
    ) -> NbdServer {
        NbdServer::build(exports, config, Some(tls))
    }

    fn build(
        exports: Arc<dyn ExportRegistry>,
        config: ServerConfig,
        tls: Option<Arc<dyn TlsUpgrade>>,
    ) -> NbdServer {
        NbdServer {
            inner: Arc::new(Inner {
                exports,
                config: config.normalized(),
                tls,
                next_connection: AtomicU64::new(1),
            }),
        }
    }

    /// Whether every connection must use TLS.
    pub fn requires_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    /// The configuration in effect.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Accepts connections on `listener` until `shutdown` completes, then stops accepting, lets
    /// every connection finish the requests it has accepted (connections still negotiating are
    /// closed), and returns once all are closed. Accept errors (such as running out of file
    /// descriptors) are logged and retried, never fatal. Each connection runs in its own task; no
    /// client can crash or stall the server or other connections.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(self.inner.config.max_connections));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            tracing::warn!(%peer, "NBD connection limit reached; closing new connection");
                            continue;
                        };
                        // Requests and replies are small messages: do not let Nagle delay them.
                        let _ = stream.set_nodelay(true);
                        let server = self.clone();
                        let stop = stop_rx.clone();
                        connections.spawn(async move {
                            server.run(stream, Some(peer), stop).await;
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "NBD accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        while connections.join_next().await.is_some() {}
    }

    /// Serves one already-accepted connection (any byte stream: a TCP socket, a TLS stream, an
    /// in-memory pipe) until the client disconnects. `Ok` when the client left cleanly
    /// (`NBD_OPT_ABORT`, `NBD_CMD_DISC`, or closing between messages); an error when the connection
    /// broke or the server hung up on a protocol violation.
    pub async fn serve_connection<S>(&self, stream: S) -> Result<(), NbdError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        // The sender is kept alive by this frame, so no shutdown is ever signalled.
        let (_keep, stop) = watch::channel(false);
        self.connection(stream, stop).await
    }

    async fn run<S>(&self, stream: S, peer: Option<SocketAddr>, stop: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!(
            "nbd_connection",
            id,
            peer = peer.map(tracing::field::display)
        );
        async {
            match self.connection(stream, stop).await {
                Ok(()) => tracing::debug!("NBD connection closed"),
                Err(e) => tracing::info!(error = %e, "NBD connection ended"),
            }
        }
        .instrument(span)
        .await
    }

    async fn connection<S>(
        &self,
        stream: S,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NbdError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let config = &self.inner.config;
        let stream: BoxedTransport = Box::new(Box::pin(stream));
        let negotiated = tokio::select! {
            biased;
            _ = shutdown_requested(&mut stop) => return Ok(()),
            negotiated = tokio::time::timeout(
                config.handshake_timeout,
                handshake::negotiate(
                    stream,
                    self.inner.exports.as_ref(),
                    config,
                    self.inner.tls.as_deref(),
                ),
            ) => negotiated.map_err(|_| NbdError::HandshakeTimeout)??,
        };
        let Some((r, w, negotiated)) = negotiated else {
            return Ok(());
        };
        tracing::debug!(
            size = negotiated.export.size,
            read_only = negotiated.export.read_only,
            structured = negotiated.structured,
            "NBD transmission started"
        );
        transmission::serve(r, w, negotiated, config, stop).await
    }
}

/// Completes when `stop` says the server is shutting down; never if its sender is gone without
/// saying so.
pub(crate) async fn shutdown_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}
