//! Three `ims serve` processes sharing one PostgreSQL catalog and one Garage cluster (images and user
//! buckets both in S3): the node whose worker runs a conversion import is killed (SIGKILL) half-way; another
//! node takes the job over and completes it. The image is never active before its data is complete, ends
//! with the hashes of `qemu-img convert` of the source, and `ims admin store verify` finds nothing wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, ims_bin, run_ims, str_of, ADMIN_TOKEN};
use ims_testkit::garage::GarageCluster;
use ims_testkit::postgres::PostgresCluster;
use serde_json::Value;

/// One `ims serve` process of the cluster; killed on drop (its log shown if the test failed).
struct Node {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Node {
    /// Starts `ims serve` with `config` on its own data directory and waits until it answers.
    fn start(config: &Path, data: &Path, log: &Path) -> Node {
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
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if run_ims(Some(&url), Some(ADMIN_TOKEN), &["whoami"], None).output.status.success() {
                    return Node { child, url, log: log.to_path_buf() };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("ims serve did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }

}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("----- log of the node at {} -----\n{log}", self.url);
        }
    }
}

fn json_of(url: &str, token: &str, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["--output", "json"]);
    run_ims(Some(url), Some(token), &full, None).ok().json()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} is installed: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The lowercase hex sha512 of a file, streamed by `sha512sum`.
fn sha512_of(path: &Path) -> String {
    run("sha512sum", &[path.to_str().unwrap()]).split_whitespace().next().unwrap().to_string()
}

/// The lowercase hex md5 of a file, streamed by `md5sum`.
fn md5_of(path: &Path) -> String {
    run("md5sum", &[path.to_str().unwrap()]).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_conversion_whose_node_is_killed_is_finished_by_another_node() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let postgres = runtime.block_on(PostgresCluster::shared_or_start()).unwrap();
    let garage = runtime.block_on(GarageCluster::shared_or_start(3)).unwrap();
    let database = runtime.block_on(postgres.fresh_database()).unwrap();
    let images_bucket = runtime.block_on(garage.fresh_bucket()).unwrap();
    let user_bucket = runtime.block_on(garage.fresh_bucket()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ims.toml");
    let settings = format!(
        "database = {:?}\nstore = {:?}\nbuckets = {:?}\ns3_access_key_id = {:?}\ns3_secret_access_key = {:?}\n\
         job_stale_after = 2\ngc_interval = 0\n[import_conversions]\nqcow2 = \"raw\"\n",
        database,
        garage.store_url(&images_bucket),
        garage.store_url(&user_bucket),
        garage.access_key_id(),
        garage.secret_access_key(),
    );
    std::fs::write(&config, settings).unwrap();

    let raw = dir.path().join("guest.raw");
    let qcow2 = dir.path().join("guest.qcow2");
    std::fs::write(&raw, common::disk_bytes(384 << 20, 77)).unwrap();
    run("qemu-img", &["convert", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), qcow2.to_str().unwrap()]);
    let expected = dir.path().join("expected.raw");
    run("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", qcow2.to_str().unwrap(), expected.to_str().unwrap()]);
    std::fs::remove_file(&raw).unwrap();

    // The first node creates the master key; every other node gets a copy, as an operator installs it.
    let data = |i: usize| dir.path().join(format!("node{i}"));
    let log = |i: usize| dir.path().join(format!("node{i}.log"));
    let mut nodes: Vec<Option<Node>> = vec![Some(Node::start(&config, &data(0), &log(0)))];
    for i in 1..3 {
        std::fs::create_dir_all(data(i)).unwrap();
        std::fs::copy(data(0).join("master.key"), data(i).join("master.key")).unwrap();
        nodes.push(Some(Node::start(&config, &data(i), &log(i))));
    }
    let url = |nodes: &[Option<Node>], i: usize| nodes[i].as_ref().unwrap().url.clone();

    let first = url(&nodes, 0);
    json_of(&first, ADMIN_TOKEN, &["admin", "project", "create", "crash"]);
    let user = json_of(&first, ADMIN_TOKEN, &["admin", "user", "create", "--project", "crash", "--role", "member", "crasher"]);
    let user = str_of(&user, "token");
    run_ims(Some(&url(&nodes, 1)), Some(&user), &["bucket", "put", qcow2.to_str().unwrap(), "imports:guest.qcow2"], None).ok();
    let started = json_of(&url(&nodes, 2), &user, &["image", "import", "imports:guest.qcow2", "--name", "big", "--min-disk", "1"]);
    let job_id = str_of(&started, "job_id");

    // Once the conversion (the second half of the job) is under way, kill the node whose worker runs it.
    let deadline = Instant::now() + Duration::from_secs(600);
    let (victim, image_id) = loop {
        let job = json_of(&first, &user, &["job", "show", &job_id]);
        assert_ne!(job["status"], "FAIL", "{job}");
        assert_ne!(job["status"], "SUCCESS", "the job ended before it could be interrupted: {job}");
        let worker = job["worker"].as_str().unwrap_or_default();
        if job["progress"].as_f64().unwrap_or(0.0) > 55.0 && !worker.is_empty() {
            // Workers are named `<node id>/<n>`; the node list gives each node's address.
            let node_id = worker.split('/').next().unwrap();
            let listed = json_of(&first, ADMIN_TOKEN, &["admin", "node", "list"]);
            let address = listed.as_array().unwrap().iter().find(|n| n["id"] == node_id).map(|n| str_of(n, "address"));
            let address = address.unwrap_or_else(|| panic!("worker {worker} of no listed node: {listed}"));
            let victim = (0..3)
                .find(|&i| nodes[i].as_ref().unwrap().url == format!("http://{address}"))
                .unwrap_or_else(|| panic!("no node listens on {address}"));
            let node = nodes[victim].as_mut().unwrap();
            node.child.kill().unwrap(); // SIGKILL
            node.child.wait().unwrap();
            break (victim, str_of(&job["entities"], "image_id"));
        }
        assert!(Instant::now() < deadline, "the conversion did not start: {job}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let survivor = url(&nodes, (victim + 1) % 3);
    let other = url(&nodes, (victim + 2) % 3);

    // Right after the crash the image is still importing: never active before its data is complete.
    let image = json_of(&survivor, &user, &["image", "show", &image_id]);
    assert_eq!(image["status"], "importing", "{image}");
    let job = json_of(&survivor, &user, &["job", "wait", &job_id, "--timeout", "600"]);
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert!(job["attempts"].as_i64().unwrap() >= 2, "taken over after the crash: {job}");
    drop(nodes[victim].take());
    let listed = json_of(&survivor, ADMIN_TOKEN, &["admin", "node", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "the killed node stays listed, silent, until forgotten: {listed}");

    let image = json_of(&other, &user, &["image", "show", &image_id]);
    assert_eq!((image["status"].as_str(), image["disk_format"].as_str()), (Some("active"), Some("raw")), "{image}");
    assert_eq!(image["checksum"].as_str(), Some(md5_of(&expected).as_str()), "md5 of qemu-img's conversion");
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"].as_str(), Some(sha512_of(&expected).as_str()), "sha512 of qemu-img's conversion");
    let stored = dir.path().join("stored.raw");
    // `image download` checks the md5 against the image's checksum as it writes.
    run_ims(Some(&other), Some(&user), &["image", "download", &image_id, "--file", stored.to_str().unwrap()], None).ok();
    run("qemu-img", &["compare", "-f", "raw", "-F", "qcow2", stored.to_str().unwrap(), qcow2.to_str().unwrap()]);
    assert_eq!(md5_of(&stored), md5_of(&expected));

    let report = json_of(&survivor, ADMIN_TOKEN, &["admin", "store", "verify"]);
    assert_eq!(report["chunk_problems"].as_array().map(Vec::len), Some(0), "{report:#}");
    assert_eq!(report["manifest_problems"].as_array().map(Vec::len), Some(0), "{report:#}");
}
