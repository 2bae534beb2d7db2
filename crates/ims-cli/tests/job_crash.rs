//! A node killed (SIGKILL) in the middle of a conversion job: on restart the job is taken over and completes;
//! meanwhile the image is still importing, never active with missing data. Driven through the `ims` CLI
//! (`bucket put`, `image import`, `job show|wait`, `image download`), against the real `ims serve` binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, ims_bin, run_ims, str_of, ADMIN_TOKEN};
use serde_json::Value;

/// `ims serve` with `config` on `data`, healthy; the caller kills it.
fn serve(config: &Path, data: &Path, log: &Path) -> (Child, String) {
    for _ in 0..5 {
        let addr = format!("127.0.0.1:{}", free_port());
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(ims_bin())
            .args(["serve", "--listen", &addr, "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("IMS_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("spawn ims serve");
        let url = format!("http://{addr}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if run_ims(Some(&url), Some(ADMIN_TOKEN), &["whoami"], None).output.status.success() {
                return (child, url);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("ims serve did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

fn json_of(url: &str, token: &str, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["--output", "json"]);
    run_ims(Some(url), Some(token), &full, None).ok().json()
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().expect("qemu-img is installed");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Kills the server on drop (and shows its log if the test failed).
struct Node(Child, PathBuf);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!("----- server log -----\n{}", std::fs::read_to_string(&self.1).unwrap_or_default());
        }
    }
}

#[test]
fn a_conversion_killed_midway_is_taken_over_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log, config) = (dir.path().join("data"), dir.path().join("server.log"), dir.path().join("ims.toml"));
    std::fs::write(&config, "job_stale_after = 2\n[import_conversions]\nqcow2 = \"raw\"\n").unwrap();
    let raw = dir.path().join("guest.raw");
    let qcow2 = dir.path().join("guest.qcow2");
    std::fs::write(&raw, common::disk_bytes(384 << 20, 99)).unwrap();
    qemu_img(&["convert", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), qcow2.to_str().unwrap()]);

    let (child, url) = serve(&config, &data, &log);
    let mut node = Node(child, log.clone());
    let (_, user) = {
        let p = json_of(&url, ADMIN_TOKEN, &["admin", "project", "create", "crash"]);
        let u = json_of(&url, ADMIN_TOKEN, &["admin", "user", "create", "--project", "crash", "--role", "member", "crasher"]);
        (str_of(&p, "id"), str_of(&u, "token"))
    };
    run_ims(Some(&url), Some(&user), &["bucket", "put", qcow2.to_str().unwrap(), "imports:guest.qcow2"], None).ok();
    let started = json_of(&url, &user, &["image", "import", "imports:guest.qcow2", "--name", "big", "--min-disk", "1"]);
    let job_id = str_of(&started, "job_id");

    // Kill the node once the conversion (the second half of the job) is under way.
    let deadline = Instant::now() + Duration::from_secs(300);
    let image_id = loop {
        let job = json_of(&url, &user, &["job", "show", &job_id]);
        assert_ne!(job["status"], "FAIL", "{job}");
        assert_ne!(job["status"], "SUCCESS", "the job ended before it could be interrupted: {job}");
        if job["progress"].as_f64().unwrap_or(0.0) > 55.0 {
            node.0.kill().unwrap(); // SIGKILL
            node.0.wait().unwrap();
            break str_of(&job["entities"], "image_id");
        }
        assert!(Instant::now() < deadline, "the conversion did not start: {job}");
        std::thread::sleep(Duration::from_millis(20));
    };

    // Restarted on the same data: the image is still importing, then the job is taken over and completes.
    let (child, url) = serve(&config, &data, &log);
    let _node = Node(child, log.clone());
    drop(node);
    let image = json_of(&url, &user, &["image", "show", &image_id]);
    assert_eq!(image["status"], "importing", "never active before its data is complete: {image}");
    let job = json_of(&url, &user, &["job", "wait", &job_id, "--timeout", "300"]);
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert!(job["attempts"].as_i64().unwrap() >= 2, "taken over after the crash: {job}");

    let image = json_of(&url, &user, &["image", "show", &image_id]);
    assert_eq!((image["status"].as_str(), image["disk_format"].as_str()), (Some("active"), Some("raw")));
    let out = dir.path().join("stored.raw");
    // `image download` checks the md5 against the image's checksum.
    run_ims(Some(&url), Some(&user), &["image", "download", &image_id, "--file", out.to_str().unwrap()], None).ok();
    qemu_img(&["compare", "-f", "raw", "-F", "qcow2", out.to_str().unwrap(), qcow2.to_str().unwrap()]);
}
