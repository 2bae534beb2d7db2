//! `ims serve`: runs one IMS node.
//!
//! Settings come from defaults, then the TOML file (`--config`/`IMS_CONFIG`), then `IMS_*`
//! environment variables, then flags: clap reads each flag or its variable, and only values given
//! there override the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use ims_server::{Node, Overrides, Settings};
use tokio::net::TcpListener;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "IMS_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTP API [default: 127.0.0.1:9292].
    #[arg(long, env = "IMS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory for the embedded defaults [default: ./ims-data].
    #[arg(long, env = "IMS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Catalog URL: sqlite://PATH [default: <data-dir>/ims.db] or postgres://...
    #[arg(long, env = "IMS_DATABASE_URL")]
    database: Option<String>,
    /// Chunk store URL: file:///PATH [default: <data-dir>/store], s3://bucket?endpoint=..., memory://
    #[arg(long, env = "IMS_STORE_URL")]
    store: Option<String>,
    /// Address of the NBD server, or `off` [default: 127.0.0.1:10809 when that port is free].
    #[arg(long, env = "IMS_NBD_LISTEN", value_parser = parse_nbd_listen)]
    nbd_listen: Option<NbdListen>,
    /// File of NBD client keys, `identity:hexkey` lines as in qemu's keys.psk: NBD then requires TLS
    /// with one of them (required when the NBD listener is not a loopback address).
    #[arg(long, env = "IMS_NBD_TLS_PSK_FILE")]
    nbd_tls_psk_file: Option<PathBuf>,
    /// Largest image file accepted, in bytes [default: 1 TiB].
    #[arg(long, env = "IMS_IMAGE_SIZE_CAP")]
    image_size_cap: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "IMS_LOG_FORMAT")]
    log_format: Option<String>,
    /// Base URL clients use to reach this node, for links in responses.
    #[arg(long, env = "IMS_PUBLIC_URL")]
    public_url: Option<String>,
    /// Jobs (imports, exports, copies) this node runs at once; 0 runs none [default: 2].
    #[arg(long, env = "IMS_JOB_WORKERS")]
    job_workers: Option<usize>,
    /// User buckets URL: file:///PATH [default: <data-dir>/buckets], s3://bucket?endpoint=..., memory://
    #[arg(long, env = "IMS_BUCKETS_URL")]
    buckets: Option<String>,
    /// PEM certificate chain: with --tls-key, the API and console are served over HTTPS only.
    #[arg(long, env = "IMS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "IMS_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The settings these arguments select: file (or defaults), then environment and flags.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        settings.apply(Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database: self.database.clone(),
            store: self.store.clone(),
            nbd_listen: match self.nbd_listen {
                Some(NbdListen::At(address)) => Some(address),
                _ => None,
            },
            nbd_tls_psk_file: self.nbd_tls_psk_file.clone(),
            // Secrets come from the environment only, never from a flag visible in `ps`.
            admin_token: std::env::var("IMS_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
            s3_access_key_id: std::env::var("IMS_S3_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty()),
            s3_secret_access_key: std::env::var("IMS_S3_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty()),
            image_size_cap: self.image_size_cap,
            log_format: self.log_format.clone(),
            public_url: self.public_url.clone(),
            job_workers: self.job_workers,
            buckets: self.buckets.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            metrics_token: std::env::var("IMS_METRICS_TOKEN").ok().filter(|t| !t.is_empty()),
            ..Overrides::auth_from_env()?
        });
        match self.nbd_listen {
            Some(NbdListen::Off) => settings.nbd_listen = None,
            Some(NbdListen::At(_)) => {}
            None if settings.nbd_listen.is_none() => settings.nbd_listen = default_nbd_listen(),
            None => {}
        }
        Ok(settings)
    }
}

/// `--nbd-listen`: an address, or no NBD server at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NbdListen {
    At(SocketAddr),
    Off,
}

fn parse_nbd_listen(text: &str) -> Result<NbdListen, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(NbdListen::Off);
    }
    text.parse().map(NbdListen::At).map_err(|e| format!("expected ADDRESS:PORT or off: {e}"))
}

/// Where `ims serve` runs its NBD server when nothing says otherwise: 127.0.0.1:10809 (NBD's port), if
/// that port is free. When another process holds it, the node runs no NBD server and says so (an address
/// given explicitly that cannot be bound stops the node instead).
fn default_nbd_listen() -> Option<SocketAddr> {
    let address = SocketAddr::from(([127, 0, 0, 1], 10809));
    match std::net::TcpListener::bind(address) {
        Ok(probe) => {
            drop(probe);
            Some(address)
        }
        Err(e) => {
            eprintln!("NBD: the default address {address} is not available ({e}); running no NBD server");
            None
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    init_logging(&settings.log_format);
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let node = Node::open(settings).await?;
    if let Some(token) = &node.generated_admin_token {
        eprintln!("Created the admin project, user and token. Admin token: {token}");
    }
    node.serve(listener, shutdown_signal()).await
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("IMS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
