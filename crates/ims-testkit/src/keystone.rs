//! An OpenStack Keystone on loopback, run by `scripts/keystone` (SQLite, fernet tokens, gunicorn).
//!
//! [`Keystone::shared_or_start`] reuses the server the test command started when `IMS_TEST_KEYSTONE_URL` is
//! set (with `IMS_TEST_KEYSTONE_ADMIN_USER`, `_ADMIN_PASSWORD` and `_ADMIN_PROJECT`). Otherwise the first test
//! process of a run starts one under `.cache/` and the others of the same run (children of the same test
//! runner) reuse it; it stops by itself once the runner exits. [`Keystone::start_private`] starts one for the
//! calling test alone, for settings no other test may share (a short token lifetime), and stops it on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// A running Keystone and its bootstrap administrator.
pub struct Keystone {
    /// The identity v3 URL, `http://127.0.0.1:PORT/v3`.
    pub url: String,
    pub admin_user: String,
    pub admin_password: String,
    /// The administrator's project (it holds the admin role there and on the system).
    pub admin_project: String,
    /// The state directory of a private server, stopped on drop.
    private: Option<(PathBuf, tempfile::TempDir)>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script() -> PathBuf {
    workspace().join("scripts/keystone")
}

impl Keystone {
    /// The test command's Keystone, else the one of this test run (started by the first caller).
    pub fn shared_or_start() -> anyhow::Result<Keystone> {
        if std::env::var("IMS_TEST_KEYSTONE_URL").is_ok_and(|url| !url.is_empty()) {
            let var = |name: &str| std::env::var(name).with_context(|| format!("IMS_TEST_KEYSTONE_URL is set but {name} is not"));
            return Ok(Keystone {
                url: var("IMS_TEST_KEYSTONE_URL")?,
                admin_user: var("IMS_TEST_KEYSTONE_ADMIN_USER")?,
                admin_password: var("IMS_TEST_KEYSTONE_ADMIN_PASSWORD")?,
                admin_project: var("IMS_TEST_KEYSTONE_ADMIN_PROJECT")?,
                private: None,
            });
        }
        // One server per test run: keyed on the runner (this process's parent), which it outlives by seconds.
        let runner = std::os::unix::process::parent_id();
        let cache = workspace().join(".cache");
        std::fs::create_dir_all(&cache)?;
        let state = cache.join(format!("keystone-run-{runner}"));
        let lock = cache.join("keystone-run.lock");
        // `--close`: the server and its watcher, started under the lock, must not inherit (and keep) it.
        let output = Command::new("flock")
            .arg("--close")
            .arg(&lock)
            .arg("bash")
            .arg("-c")
            .arg(r#""$1" env 2>/dev/null || "$1" start --stop-when-gone "$2""#)
            .arg("keystone-run")
            .arg(script())
            .arg(runner.to_string())
            .env("IMS_KEYSTONE_STATE", &state)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/keystone (is flock installed?)")?;
        if !output.status.success() {
            bail!("scripts/keystone start failed ({})", output.status);
        }
        Self::from_exports(&String::from_utf8_lossy(&output.stdout), None)
    }

    /// A Keystone for the caller alone, whose tokens live `token_expiration` seconds; stopped on drop.
    pub fn start_private(token_expiration: u64) -> anyhow::Result<Keystone> {
        let dir = tempfile::Builder::new().prefix("ims-keystone-").tempdir()?;
        let state = dir.path().join("state");
        let output = Command::new(script())
            .args(["start", "--stop-when-gone", &std::process::id().to_string()])
            .args(["--token-expiration", &token_expiration.to_string()])
            .env("IMS_KEYSTONE_STATE", &state)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/keystone")?;
        if !output.status.success() {
            bail!("scripts/keystone start failed ({})", output.status);
        }
        Self::from_exports(&String::from_utf8_lossy(&output.stdout), Some((state, dir)))
    }

    /// Reads the `export NAME=VALUE` lines `scripts/keystone` prints.
    fn from_exports(text: &str, private: Option<(PathBuf, tempfile::TempDir)>) -> anyhow::Result<Keystone> {
        let value = |name: &str| {
            text.lines()
                .filter_map(|line| line.strip_prefix("export "))
                .filter_map(|line| line.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
                .with_context(|| format!("scripts/keystone printed no {name}"))
        };
        Ok(Keystone {
            url: value("IMS_TEST_KEYSTONE_URL")?,
            admin_user: value("IMS_TEST_KEYSTONE_ADMIN_USER")?,
            admin_password: value("IMS_TEST_KEYSTONE_ADMIN_PASSWORD")?,
            admin_project: value("IMS_TEST_KEYSTONE_ADMIN_PROJECT")?,
            private,
        })
    }

    /// Stops a private server now (for tests of an unreachable Keystone); a shared one is left running.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some((state, _dir)) = self.private.take() {
            let status = Command::new(script()).arg("stop").env("IMS_KEYSTONE_STATE", &state).stdin(Stdio::null()).status()?;
            anyhow::ensure!(status.success(), "scripts/keystone stop failed ({status})");
        }
        Ok(())
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
