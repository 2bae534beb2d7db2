//! A Garage S3 cluster on loopback.
//!
//! [`GarageCluster::start`] runs N `garage server` processes (free loopback ports, a generated configuration
//! with replication factor N and SQLite metadata, everything under a temporary directory), connects them,
//! applies a layout, imports an access key and creates a bucket the key may read and write. Dropping the
//! cluster kills the processes and removes the directory.
//!
//! [`GarageCluster::shared_or_start`] reuses the cluster that `scripts/garage start` runs for the whole test
//! command when `IMS_TEST_S3_ENDPOINT` is set (with `IMS_TEST_S3_REGION`, `IMS_TEST_S3_ACCESS_KEY_ID`,
//! `IMS_TEST_S3_SECRET_ACCESS_KEY`, and `IMS_TEST_GARAGE_CONFIG`, the configuration file the `garage` CLI
//! uses to create buckets there); every test then takes its own bucket from [`GarageCluster::fresh_bucket`].

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

/// Region name the generated configuration gives the S3 API.
pub const REGION: &str = "garage";
/// How long a node, the cluster or a bucket may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Garage cluster (private to this process, or the shared one of the test command).
pub struct GarageCluster {
    garage: PathBuf,
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    bucket: String,
    /// Configuration of the node the `garage` CLI administers the cluster through.
    admin_config: PathBuf,
    /// Empty for a shared cluster (not ours to stop).
    nodes: Vec<GarageNode>,
    _dir: Option<tempfile::TempDir>,
}

struct GarageNode {
    config: PathBuf,
    /// `<64 hex>@127.0.0.1:<rpc port>`, known once the node has started the first time.
    id: String,
    log: PathBuf,
    process: Option<Child>,
}

impl GarageCluster {
    /// The shared cluster of the test command when `IMS_TEST_S3_ENDPOINT` is set, else a private cluster of
    /// `nodes` nodes started for this process.
    pub async fn shared_or_start(nodes: usize) -> anyhow::Result<GarageCluster> {
        match std::env::var("IMS_TEST_S3_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => Self::shared(endpoint).await,
            _ => Self::start(nodes).await,
        }
    }

    async fn shared(endpoint: String) -> anyhow::Result<GarageCluster> {
        let var = |name: &str| std::env::var(name).with_context(|| format!("IMS_TEST_S3_ENDPOINT is set but {name} is not"));
        let mut cluster = GarageCluster {
            garage: garage_binary()?,
            endpoint,
            region: var("IMS_TEST_S3_REGION")?,
            access_key_id: var("IMS_TEST_S3_ACCESS_KEY_ID")?,
            secret_access_key: var("IMS_TEST_S3_SECRET_ACCESS_KEY")?,
            bucket: String::new(),
            admin_config: PathBuf::from(var("IMS_TEST_GARAGE_CONFIG")?),
            nodes: Vec::new(),
            _dir: None,
        };
        cluster.bucket = cluster.fresh_bucket().await?;
        Ok(cluster)
    }

    /// Starts a private cluster of `nodes` nodes (replication factor `nodes`, at most 7) and waits until its
    /// S3 API stores and returns an object with the cluster's key. Fails (with the end of the nodes' logs) if the
    /// `garage` binary is missing or the cluster does not come up within a minute.
    pub async fn start(nodes: usize) -> anyhow::Result<GarageCluster> {
        if !(1..=7).contains(&nodes) {
            bail!("a test cluster has 1 to 7 nodes, not {nodes}");
        }
        let garage = garage_binary()?;
        let dir = tempfile::Builder::new().prefix("ims-garage-").tempdir()?;
        let rpc_secret = random_hex64();
        let mut members = Vec::new();
        let mut endpoint = String::new();
        // Held until every port is chosen, so that no two are the same.
        let mut reserved = Vec::new();
        for i in 0..nodes {
            let (rpc_port, s3_port) = (free_port(&mut reserved)?, free_port(&mut reserved)?);
            let home = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&home)?;
            let config = home.join("garage.toml");
            std::fs::write(&config, node_config(&home, nodes, &rpc_secret, rpc_port, s3_port))?;
            if i == 0 {
                endpoint = format!("http://127.0.0.1:{s3_port}");
            }
            members.push(GarageNode { config, id: String::new(), log: home.join("garage.log"), process: None });
        }
        drop(reserved);
        let mut cluster = GarageCluster {
            garage,
            endpoint,
            region: REGION.to_string(),
            access_key_id: format!("GK{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
            secret_access_key: random_hex64(),
            bucket: String::new(),
            admin_config: members[0].config.clone(),
            nodes: members,
            _dir: Some(dir),
        };
        for i in 0..nodes {
            cluster.spawn(i)?;
        }
        cluster.form().await.map_err(|e| cluster.with_logs(e))?;
        Ok(cluster)
    }

    /// Connects the nodes, applies a layout with every node in it, imports the key and makes the first bucket.
    async fn form(&mut self) -> anyhow::Result<()> {
        let mut ids = Vec::new();
        for node in &self.nodes {
            let out = retry("reading a node id", || self.garage_cli(&node.config, &["node", "id", "-q"])).await?;
            ids.push(out.trim().to_string());
        }
        for (node, id) in self.nodes.iter_mut().zip(&ids) {
            node.id = id.clone();
            // A restarted node then connects to the others at once (they retry a lost peer only every 30 s).
            let peers: Vec<String> = ids.iter().filter(|other| *other != id).map(|other| format!("{other:?}")).collect();
            let config = std::fs::read_to_string(&node.config)?;
            std::fs::write(&node.config, format!("bootstrap_peers = [{}]\n{config}", peers.join(", ")))?;
        }
        for id in &ids[1..] {
            let connect = ["node", "connect", id.as_str()];
            retry("connecting the nodes", || self.garage_cli(&self.admin_config, &connect)).await?;
        }
        let short_ids: Vec<&str> = ids.iter().map(|id| &id[..16]).collect();
        let mut assign = vec!["layout", "assign", "-z", "dc1", "-c", "1G"];
        assign.extend(&short_ids);
        retry("assigning the layout", || self.garage_cli(&self.admin_config, &assign)).await?;
        self.garage_cli(&self.admin_config, &["layout", "apply", "--version", "1"]).await?;
        let import =
            ["key", "import", "--yes", "-n", "ims-test", self.access_key_id.as_str(), self.secret_access_key.as_str()];
        retry("importing the key", || self.garage_cli(&self.admin_config, &import)).await?;
        self.bucket = self.fresh_bucket().await?;
        let store = &self.object_store(&self.bucket)?;
        let probe = &ObjectPath::from("ims-testkit-probe");
        retry("storing a probe object", || async move {
            store.put(probe, PutPayload::from_static(b"probe")).await?;
            let back = store.get(probe).await?.bytes().await?;
            anyhow::ensure!(back.as_ref() == b"probe", "the probe object read back wrong");
            store.delete(probe).await?;
            Ok(String::new())
        })
        .await?;
        Ok(())
    }

    /// Creates a new, empty bucket the cluster's key may read, write and administer, and returns its name.
    /// Returns once a listing of the bucket succeeds through the S3 API.
    pub async fn fresh_bucket(&self) -> anyhow::Result<String> {
        let bucket = format!("ims-test-{}", uuid::Uuid::new_v4().simple());
        let create = ["bucket", "create", bucket.as_str()];
        retry("creating a bucket", || self.garage_cli(&self.admin_config, &create)).await?;
        let allow = ["bucket", "allow", "--read", "--write", "--owner", bucket.as_str(), "--key", self.access_key_id.as_str()];
        self.garage_cli(&self.admin_config, &allow).await?;
        let store = &self.object_store(&bucket)?;
        retry("listing the new bucket", || async move {
            store.list_with_delimiter(None).await?;
            Ok(String::new())
        })
        .await?;
        Ok(bucket)
    }

    /// The `s3://` store URL of `bucket` on this cluster (credentials not included).
    pub fn store_url(&self, bucket: &str) -> String {
        format!("s3://{bucket}?endpoint={}&region={}", self.endpoint, self.region)
    }

    /// An `object_store` client for `bucket`, with the cluster's key (for looking at objects in tests).
    pub fn object_store(&self, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_allow_http(true)
            .build()?;
        Ok(Arc::new(store))
    }

    /// The S3 endpoint (`http://127.0.0.1:PORT`, served by node 0).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The bucket made when the cluster was started or joined.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Number of nodes this process controls (0 for the shared cluster).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Kills node `i` (SIGKILL, no clean shutdown) and waits for it to exit. Node 0 serves the S3 endpoint
    /// and the administration; stop another one to keep S3 reachable. Only for a private cluster.
    pub fn stop_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(i).ok_or_else(|| anyhow!("no node {i} in this cluster (shared or too small)"))?;
        let mut child = node.process.take().ok_or_else(|| anyhow!("node {i} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts node `i` again with its data and waits until node 0 counts it among the healthy nodes (before
    /// that, node 0 would not use it to reach a quorum).
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        if self.nodes.get(i).ok_or_else(|| anyhow!("no node {i} in this cluster"))?.process.is_some() {
            bail!("node {i} is already running");
        }
        self.spawn(i)?;
        let short_id = &self.nodes[i].id[..16];
        let this = &*self;
        retry("waiting for node 0 to see the restarted node", || async move {
            let status = this.garage_cli(&this.admin_config, &["status"]).await?;
            let healthy = status.split("==== FAILED NODES ====").next().unwrap_or_default();
            anyhow::ensure!(healthy.contains(short_id), "node {i} is not healthy yet");
            Ok(String::new())
        })
        .await?;
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = std::process::Command::new(&self.garage)
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=info,garage_api_s3=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.garage.display()))?;
        node.process = Some(child);
        Ok(())
    }

    /// Runs `garage -c CONFIG ARGS...` and returns its standard output, or fails with its error output.
    async fn garage_cli(&self, config: &Path, args: &[&str]) -> anyhow::Result<String> {
        let output = tokio::process::Command::new(&self.garage)
            .arg("-c")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", self.garage.display()))?;
        if !output.status.success() {
            bail!("garage {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Adds the end of every node's log to `error` (the logs go with the temporary directory).
    fn with_logs(&self, error: anyhow::Error) -> anyhow::Error {
        let mut logs = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            logs.push_str(&format!("\n--- node {i}:\n{}", lines[lines.len().saturating_sub(15)..].join("\n")));
        }
        error.context(format!("the Garage cluster did not come up; the end of its logs:{logs}"))
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The `garage` binary: on `PATH`, else where `cargo install` puts it.
pub fn garage_binary() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("garage")).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    on_path
        .into_iter()
        .chain(cargo_home.map(|home| home.join("bin").join("garage")))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow!("garage is not installed (scripts/install-garage installs it)"))
}

fn node_config(home: &Path, nodes: usize, rpc_secret: &str, rpc_port: u16, s3_port: u16) -> String {
    format!(
        r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = {nodes}
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
        meta = home.join("meta").display(),
        data = home.join("data").display(),
    )
}

/// 64 random hex digits.
fn random_hex64() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A free port on 127.0.0.1, kept bound in `reserved` until the caller lets it go (the node binds it right after).
fn free_port(reserved: &mut Vec<std::net::TcpListener>) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    reserved.push(listener);
    Ok(port)
}

/// Retries `step` every 250 ms until it succeeds or [`READY_TIMEOUT`] passes (then its last error).
async fn retry<F, Fut>(what: &str, mut step: F) -> anyhow::Result<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match step().await {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() >= deadline => return Err(e.context(format!("{what}: gave up after {READY_TIMEOUT:?}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
