//! An ephemeral PostgreSQL cluster on loopback.
//!
//! [`PostgresCluster::start`] runs `initdb` and `postgres` from the machine's server binaries (the newest
//! `/usr/lib/postgresql/<version>/bin`, where Debian puts them, else whatever `initdb` is on `PATH`) in a
//! temporary directory: trust authentication, listening on 127.0.0.1 on a free port with its Unix socket in
//! that directory, no flushing to disk (`fsync`, `full_page_writes` off; a commit still reaches the WAL
//! before it returns, so committed data survives a server crash or [`PostgresCluster::stop`], not an
//! operating system crash). When the process runs as root the cluster runs as the `postgres` system user, which owns the directory (PostgreSQL refuses to
//! run as root). Dropping the cluster stops it (`pg_ctl stop -m immediate`) and removes the directory.
//!
//! [`PostgresCluster::shared_or_start`] reuses the server that `scripts/postgres start` runs for the whole
//! test command when `IMS_TEST_POSTGRES_URL` (a superuser URL) is set, so that each test pays only for a
//! database, not for a cluster. Either way every test takes its own empty database from
//! [`PostgresCluster::fresh_database`].

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context};
use sqlx::{Connection, PgConnection};

/// The environment variable naming the shared server (a superuser URL).
pub const SHARED_URL_VAR: &str = "IMS_TEST_POSTGRES_URL";
/// How many times a start is tried on a new free port (another process may take the port first).
const START_ATTEMPTS: usize = 3;

/// A running PostgreSQL server: private to this process, or the shared one of the test command.
pub struct PostgresCluster {
    /// Superuser URL of the `postgres` database.
    url: String,
    /// `None` for the shared server (not ours to stop).
    server: Option<PrivateServer>,
}

/// The processes and files of a cluster this process started.
struct PrivateServer {
    bin: PathBuf,
    data: PathBuf,
    user: Option<SystemUser>,
    /// The `pg_ctl start -o` options the server runs with (its port among them), reused by a restart.
    options: String,
    log: PathBuf,
    /// Removed after the server stopped (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

/// The user and group the cluster's programs run as.
#[derive(Debug, Clone, Copy)]
struct SystemUser {
    uid: u32,
    gid: u32,
}

impl PostgresCluster {
    /// The shared server when `IMS_TEST_POSTGRES_URL` is set, else a private cluster started for the caller.
    pub async fn shared_or_start() -> anyhow::Result<PostgresCluster> {
        match std::env::var(SHARED_URL_VAR) {
            Ok(url) if !url.is_empty() => Ok(PostgresCluster { url, server: None }),
            _ => Self::start().await,
        }
    }

    /// Starts a private cluster and waits until it accepts connections. Fails (with the server log quoted)
    /// if no server binaries are installed or the server does not come up.
    pub async fn start() -> anyhow::Result<PostgresCluster> {
        tokio::task::spawn_blocking(start_private).await.context("starting PostgreSQL")?
    }

    /// The superuser URL of the server's `postgres` database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory of a cluster this process started (its `server.log` is next to it); `None` for
    /// the shared server.
    pub fn data_directory(&self) -> Option<&Path> {
        self.server.as_ref().map(|server| server.data.as_path())
    }

    /// Stops a cluster this process started, at once (`pg_ctl stop -m immediate`: open connections are cut,
    /// as when the server crashes); its data stays for [`PostgresCluster::start_again`]. Fails for the
    /// shared server, which is not ours to stop.
    pub async fn stop(&self) -> anyhow::Result<()> {
        let server = self.private()?;
        let mut stop = server.command("pg_ctl");
        stop.arg("stop").arg("-D").arg(&server.data).args(["-m", "immediate", "-w", "-t", "30"]);
        run_blocking(stop).await.context("stopping PostgreSQL")
    }

    /// Starts a cluster stopped by [`PostgresCluster::stop`] again, on the same port with the same data, and
    /// waits until it accepts connections. Fails for the shared server.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        let start = self.private()?.start_command();
        run_blocking(start).await.context("starting PostgreSQL again")
    }

    fn private(&self) -> anyhow::Result<&PrivateServer> {
        self.server.as_ref().context("the shared PostgreSQL server is not this process's to stop or start")
    }

    /// Creates a new, empty database owned by the superuser and returns its URL (same server and
    /// credentials as [`PostgresCluster::url`]). Names are random, so concurrent tests never share one.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        let name = format!("ims_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("connecting to the PostgreSQL server at {}", redact(&self.url)))?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await.ok();
        Ok(with_database(&self.url, &name))
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("stop").arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "-t", "30"]);
        if let Err(e) = run(&mut stop) {
            eprintln!("stopping the test PostgreSQL cluster in {}: {e:#}", self.data.display());
        }
    }
}

impl PrivateServer {
    /// Starts the server with its options and waits until it accepts connections.
    fn start(&self) -> anyhow::Result<()> {
        run(&mut self.start_command())
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn start_command(&self) -> Command {
        let mut start = self.command("pg_ctl");
        start.arg("start").arg("-D").arg(&self.data).arg("-l").arg(&self.log).args(["-w", "-t", "60", "-o"]);
        start.arg(&self.options);
        start
    }

    /// A command running the cluster's program `name` as the cluster's user.
    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        if let Some(user) = self.user {
            command.uid(user.uid).gid(user.gid);
        }
        command.stdin(Stdio::null());
        command
    }
}

fn start_private() -> anyhow::Result<PostgresCluster> {
    let bin = server_binaries()?;
    let dir = tempfile::Builder::new().prefix("ims-postgres-").tempdir().context("creating a temporary directory")?;
    let user = if running_as_root()? { Some(postgres_user()?) } else { None };
    if let Some(user) = user {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
            .with_context(|| format!("giving {} to the postgres user", dir.path().display()))?;
    }
    let log = dir.path().join("server.log");
    let mut server =
        PrivateServer { bin, data: dir.path().join("data"), user, options: String::new(), log: log.clone(), _dir: dir };
    let socket_dir = server._dir.path().to_path_buf();

    let mut initdb = server.command("initdb");
    initdb
        .arg("-D")
        .arg(&server.data)
        .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
    run(&mut initdb).context("initdb")?;

    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=300",
            socket_dir.display()
        );
        server.options = options;
        match server.start() {
            Ok(()) => {
                let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                return Ok(PostgresCluster { url, server: Some(server) });
            }
            Err(e) => last_error = Some(e),
        }
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no start attempted")))
        .with_context(|| format!("starting postgres; its log:\n{log_text}"))
}

/// The directory of the newest installed server binaries.
fn server_binaries() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    bail!("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH")
}

fn running_as_root() -> anyhow::Result<bool> {
    Ok(std::fs::metadata("/proc/self").context("reading /proc/self")?.uid() == 0)
}

/// The `postgres` system user (Debian's server packages create it).
fn postgres_user() -> anyhow::Result<SystemUser> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().context("running id")?;
        if !out.status.success() {
            bail!("running as root and there is no postgres user to run the cluster as");
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().context("parsing the output of id")
    };
    Ok(SystemUser { uid: id("-u")?, gid: id("-g")? })
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `command` to completion; an error quotes its output when it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let program = Path::new(command.get_program()).file_name().unwrap_or_default().to_string_lossy().into_owned();
    let Output { status, stdout, stderr } =
        command.output().with_context(|| format!("running {}", command.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!(
            "{program} failed ({status}): {}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    Ok(())
}

/// [`run`] on a blocking thread.
async fn run_blocking(mut command: Command) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run(&mut command)).await.context("waiting for a command")?
}

/// `url` with its database (the path) replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    match url[authority_start..].find('@') {
        Some(at) => {
            let userinfo = &url[authority_start..authority_start + at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..authority_start], &url[authority_start + at..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_swap_only_the_path() {
        assert_eq!(with_database("postgres://u@h:5/postgres", "d"), "postgres://u@h:5/d");
        assert_eq!(with_database("postgres://u:p@h:5", "d"), "postgres://u:p@h:5/d");
        assert_eq!(with_database("postgresql://h/x?sslmode=disable", "d"), "postgresql://h/d?sslmode=disable");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[tokio::test]
    async fn a_private_cluster_serves_fresh_databases_and_goes_away() {
        let cluster = PostgresCluster::start().await.expect("start a private cluster");
        let a = cluster.fresh_database().await.unwrap();
        let b = cluster.fresh_database().await.unwrap();
        assert_ne!(a, b);
        let mut conn = PgConnection::connect(&a).await.unwrap();
        let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut conn).await.unwrap();
        assert!(a.ends_with(&format!("/{name}")), "{a} names database {name}");
        conn.close().await.unwrap();
        let data = cluster.data_directory().expect("a private cluster").to_path_buf();
        drop(cluster);
        assert!(!data.exists(), "the cluster's directory is removed");
        assert!(PgConnection::connect(&a).await.is_err(), "the server is stopped");
    }

    #[tokio::test]
    async fn a_private_cluster_stops_and_starts_again_with_its_data() {
        let cluster = PostgresCluster::start().await.expect("start a private cluster");
        let db = cluster.fresh_database().await.unwrap();
        let mut conn = PgConnection::connect(&db).await.unwrap();
        sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)").execute(&mut conn).await.unwrap();
        cluster.stop().await.unwrap();
        assert!(sqlx::raw_sql("SELECT 1").execute(&mut conn).await.is_err(), "the open connection is cut");
        assert!(PgConnection::connect(&db).await.is_err(), "nothing listens while stopped");
        cluster.start_again().await.unwrap();
        let mut conn = PgConnection::connect(&db).await.unwrap();
        let n: i32 = sqlx::query_scalar("SELECT n FROM kept").fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 7, "same port, same data");
        conn.close().await.unwrap();
    }

    #[tokio::test]
    async fn the_shared_server_is_not_stopped() {
        let shared = PostgresCluster { url: "postgres://postgres@127.0.0.1:1/postgres".into(), server: None };
        assert!(shared.stop().await.is_err());
        assert!(shared.start_again().await.is_err());
    }
}
