//! HTTPS for the API and the console: `tls_cert` and `tls_key` (PEM) make the node serve TLS only.
//!
//! [`TlsListener`] accepts TCP connections and runs each TLS handshake in a task of its own, so a slow or
//! silent client never holds up the others; finished handshakes are handed to `axum::serve`. A client
//! speaking plain HTTP fails its handshake and is disconnected.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderValue;
use axum::response::Response;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;

/// Longest time a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for `axum::serve` to take them.
const READY_BACKLOG: usize = 64;
/// What `Strict-Transport-Security` asks browsers: HTTPS only for this host, for a year.
pub const HSTS: &str = "max-age=31536000";

/// The TLS configuration `settings` ask for: none without `tls_cert` and `tls_key`, an error when only
/// one of them is set or when a file cannot be read or holds no usable certificate or key.
pub fn acceptor(settings: &Settings) -> anyhow::Result<Option<TlsAcceptor>> {
    let (cert_path, key_path) = match (&settings.tls_cert, &settings.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => anyhow::bail!("tls_cert is set but tls_key is not: HTTPS needs both (IMS_TLS_KEY, --tls-key)"),
        (None, Some(_)) => anyhow::bail!("tls_key is set but tls_cert is not: HTTPS needs both (IMS_TLS_CERT, --tls-cert)"),
    };
    let chain = read_certificates(cert_path)?;
    let key = read_private_key(key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| format!("the key {} does not go with the certificate {}", key_path.display(), cert_path.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading the TLS certificate {}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the TLS certificate {} is not valid PEM: {e}", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "the TLS certificate {} holds no CERTIFICATE block", path.display());
    Ok(chain)
}

fn read_private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("reading the TLS key {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| anyhow::anyhow!("the TLS key {} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}", path.display()))
}

/// A listener handing out TLS connections whose handshake succeeded.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener`, handshaking with `acceptor`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_BACKLOG);
        let accepting = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener { ready, local, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when the listener is dropped: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Middleware of a TLS node: `Strict-Transport-Security` on every response.
pub async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert("strict-transport-security", HeaderValue::from_static(HSTS));
    response
}
