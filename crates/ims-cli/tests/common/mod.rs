//! Helpers for the `ims` CLI integration tests: a real `ims serve` on a free port with a temporary
//! data directory, and a runner for client commands against it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_TOKEN: &str = "cli-test-admin-token";

/// The `ims` binary under test.
pub fn ims_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ims")
}

/// A running `ims serve`. Dropping it kills the server; if the test is panicking, the server's log
/// is printed so that a failure explains itself.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    /// Starts a server with `IMS_ADMIN_TOKEN=ADMIN_TOKEN` and waits for `/healthcheck`.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("server.log");
        // A port can be taken between probing and binding: try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let log_file = std::fs::File::create(&log).expect("log file");
            let mut child = Command::new(ims_bin())
                .args(["serve", "--listen", &addr, "--data-dir"])
                .arg(dir.path().join("data"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("IMS_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("IMS_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log"))
                .stderr(log_file)
                .spawn()
                .expect("spawn ims serve");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    last_log = std::fs::read_to_string(&log).unwrap_or_default();
                    eprintln!("ims serve on {addr} exited early ({status}); retrying:\n{last_log}");
                    break;
                }
                if healthcheck(&addr) {
                    return Server { child: Some(child), url: format!("http://{addr}"), dir, log };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "ims serve did not become healthy in time:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("ims serve could not start:\n{last_log}");
    }

    /// A file path inside the test's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `ims ARGS` with `IMS_URL` set to this server and `IMS_TOKEN` to `token` (unset if None).
    pub fn ims(&self, token: Option<&str>, args: &[&str]) -> Run {
        run_ims(Some(&self.url), token, args, None)
    }

    /// Like [`Server::ims`] with the admin token.
    pub fn admin(&self, args: &[&str]) -> Run {
        self.ims(Some(ADMIN_TOKEN), args)
    }

    /// `ims ARGS`, asserting success, and its stdout parsed as JSON (`--output json` is appended).
    pub fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--output", "json"]);
        self.ims(Some(token), &full).ok().json()
    }

    /// Creates a project and a member user in it; returns (project id, user token).
    pub fn tenant(&self, project: &str, user: &str) -> (String, String) {
        let p = self.json(ADMIN_TOKEN, &["admin", "project", "create", project]);
        let u = self.json(ADMIN_TOKEN, &["admin", "user", "create", "--project", project, "--role", "member", user]);
        (str_of(&p, "id"), str_of(&u, "token"))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server and hands back its temporary directory (data directory included), which then
    /// outlives it.
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- ims serve log ({}) -----\n{}\n----- end of log -----", self.url, self.log());
        }
    }
}

/// The result of one `ims` invocation.
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "ims {}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.output.status,
            truncate(&self.stdout()),
            self.stderr()
        )
    }
    /// Asserts exit 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(self.output.status.success(), "expected success:\n{}", self.describe());
        self
    }
    /// Asserts exit 1 with an `error: ` line on stderr and nothing on stdout; returns stderr.
    #[track_caller]
    pub fn fails(self) -> String {
        assert_eq!(self.code(), Some(1), "expected exit 1:\n{}", self.describe());
        let err = self.stderr();
        assert!(
            err.starts_with("error: ") || err.contains("\nerror: "),
            "expected `error:` on stderr:\n{}",
            self.describe()
        );
        assert!(self.output.stdout.is_empty(), "a failing command printed on stdout:\n{}", self.describe());
        err
    }
    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 4000 {
        let mut end = 4000;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    } else {
        s.to_string()
    }
}

/// Runs the `ims` binary with a clean environment (only PATH, HOME, and the given URL/token).
pub fn run_ims(url: Option<&str>, token: Option<&str>, args: &[&str], stdin: Option<&Path>) -> Run {
    let mut cmd = Command::new(ims_bin());
    cmd.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    if let Some(url) = url {
        cmd.env("IMS_URL", url);
    }
    if let Some(token) = token {
        cmd.env("IMS_TOKEN", token);
    }
    match stdin {
        Some(path) => cmd.stdin(std::fs::File::open(path).expect("stdin file")),
        None => cmd.stdin(Stdio::null()),
    };
    let output = cmd.output().expect("run ims");
    Run { args: args.iter().map(|s| s.to_string()).collect(), output }
}

/// A string field of a JSON object, asserting it is there.
#[track_caller]
pub fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {v:#}")).to_string()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind :0").local_addr().expect("local_addr").port()
}

/// Whether `GET /healthcheck` answers 200.
fn healthcheck(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthcheck HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// `len` bytes of deterministic pseudo-random data with a zero run in the middle (not compressible,
/// so the chunk store really stores it, and with a zero extent to exercise that path).
pub fn disk_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    let zeros = len / 4..len / 4 + (len / 4).min(1 << 20);
    out[zeros].fill(0);
    out
}

/// Lowercase hex md5.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}
