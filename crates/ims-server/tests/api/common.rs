//! A server per test, on a free port, with a temporary data directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ims_client::{Client, CreateImage, Role};
use ims_server::Settings;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestServer {
    pub url: String,
    /// A client holding the bootstrap admin token.
    pub admin: Client,
    pub data_dir: PathBuf,
    _dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

/// A user of its own project, with a client holding its token.
pub struct Tenant {
    pub project_id: String,
    pub client: Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on SQLite and the local file store in a temporary directory.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            data_dir: dir.path().join("data"),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            // Deletions are final unless a test turns the recycle bin on (`v1_recycle_bin`).
            recycle_bin_retention: 0,
            ..Settings::default()
        };
        configure(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let data_dir = settings.data_dir.clone();
        let node = ims_server::Node::open(settings).await.unwrap();
        tokio::spawn(async move {
            node.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let admin = Client::new(&url, ADMIN_TOKEN).unwrap();
        TestServer { url, admin, data_dir, _dir: dir, _shutdown: tx }
    }

    /// Starts a server whose chunk store is `bucket` of a Garage cluster (S3), with the cluster's key given
    /// through the settings.
    pub async fn start_on_s3(cluster: &ims_testkit::garage::GarageCluster, bucket: &str) -> TestServer {
        Self::start_with(|settings| {
            settings.store = Some(cluster.store_url(bucket));
            settings.s3_access_key_id = Some(cluster.access_key_id().to_string());
            settings.s3_secret_access_key = Some(cluster.secret_access_key().to_string());
        })
        .await
    }

    /// Starts a server whose catalog is the PostgreSQL database at `database` (see
    /// `ims_testkit::postgres::PostgresCluster::fresh_database`); `configure` may change the other settings
    /// (a second node of the same catalog shares the first one's `store`).
    pub async fn start_on_postgres(database: &str, configure: impl FnOnce(&mut Settings)) -> TestServer {
        Self::start_with(|settings| {
            settings.database = Some(database.to_string());
            configure(settings);
        })
        .await
    }

    /// A new project with one user of `role` in it.
    pub async fn tenant(&self, name: &str, role: Role) -> Tenant {
        let project = self.admin.create_project(name).await.unwrap();
        let created = self.admin.create_user(&format!("{name}-user"), &project.id, role).await.unwrap();
        Tenant { project_id: project.id, client: self.admin.with_token(created.token.token.clone().unwrap()) }
    }

    /// A raw request to the server (for status codes and headers the typed client hides).
    pub fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.admin.raw(method, path)
    }
}

/// A queued raw/bare image named `name`.
pub fn raw_image(name: &str) -> CreateImage {
    CreateImage {
        name: Some(name.to_string()),
        disk_format: Some("raw".into()),
        container_format: Some("bare".into()),
        ..Default::default()
    }
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The HTTP status of a failed client call.
pub fn status<T: std::fmt::Debug>(r: Result<T, ims_client::ClientError>) -> u16 {
    r.expect_err("the call should fail").status().expect("an HTTP error")
}

/// Every chunk object file of a server's local chunk store (under `data_dir/store/chunks`, at any depth).
pub fn chunk_files(data_dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&data_dir.join("store").join("chunks"), &mut out);
    out
}
