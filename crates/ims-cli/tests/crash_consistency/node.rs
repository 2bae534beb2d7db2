//! One `ims serve` process on a data directory that outlives it: started, killed with SIGKILL, started again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, ims_bin, ADMIN_TOKEN};

/// The settings every round runs with: SQLite and file store in the data directory, two job workers, a
/// job taken over one second after its worker stopped heartbeating, a short GC grace (writers refresh
/// reused chunks accordingly), no background GC (the rounds run it themselves), qcow2 imports converted
/// to raw.
const SETTINGS: &str = "job_stale_after = 1\njob_workers = 2\ngc_interval = 0\ngc_grace = 2\n\
                        [import_conversions]\nqcow2 = \"raw\"\n";

/// The job takeover time the settings give.
pub const JOB_STALE_AFTER: Duration = Duration::from_secs(1);

pub struct CrashNode {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the running process.
    pub url: String,
    /// `127.0.0.1:PORT`, as the node list shows it.
    pub address: String,
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

impl CrashNode {
    /// A node (not started) keeping its data and log under `dir`.
    pub fn new(dir: &Path) -> CrashNode {
        let config = dir.join("ims.toml");
        std::fs::write(&config, SETTINGS).expect("write the configuration");
        CrashNode {
            child: None,
            url: String::new(),
            address: String::new(),
            config,
            data: dir.join("data"),
            log: dir.join("server.log"),
        }
    }

    /// The SQLite catalog file.
    pub fn database(&self) -> PathBuf {
        self.data.join("ims.db")
    }

    /// Starts the server on a fresh port and waits until `/healthcheck` answers; returns how long that took.
    pub fn start(&mut self) -> Duration {
        assert!(self.child.is_none(), "the node is already running");
        let began = Instant::now();
        for _ in 0..5 {
            let address = format!("127.0.0.1:{}", free_port());
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("server log");
            let mut child = Command::new(ims_bin())
                .args(["serve", "--listen", &address, "--config"])
                .arg(&self.config)
                .arg("--data-dir")
                .arg(&self.data)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("IMS_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("IMS_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log"))
                .stderr(log)
                .spawn()
                .expect("spawn ims serve");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().expect("try_wait").is_some() {
                    break; // the port was taken meanwhile, or a real failure: the log tells
                }
                if healthy(&address) {
                    self.url = format!("http://{address}");
                    self.address = address;
                    self.child = Some(child);
                    return began.elapsed();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("ims serve did not start:\n{}", self.log_tail(200));
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
        }
    }

    /// The last `lines` lines of the server log (every start appends to it).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for CrashNode {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("----- end of the server log -----\n{}\n-----", self.log_tail(300));
        }
    }
}

/// Whether `GET /healthcheck` answers 200.
fn healthy(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address.parse().expect("address"), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthcheck HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}
