//! `ims admin migrate`: a single-node deployment (SQLite, file store) built through the API, moved to
//! PostgreSQL and a Garage bucket, then served from there: same images, same bytes, members, tags, tokens
//! and jobs, a clean `store verify`. A corrupt source chunk stops the migration naming it; the rerun
//! resumes and skips what is there; a target holding another deployment is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{disk_bytes, free_port, ims_bin, md5_hex, run_ims, str_of, Server, ADMIN_TOKEN};
use ims_testkit::garage::GarageCluster;
use ims_testkit::postgres::PostgresCluster;
use serde_json::Value;

const MIB: usize = 1 << 20;

/// `ims serve` on the cluster's catalog and store; killed on drop (its log shown if the test failed).
struct ClusterNode {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ClusterNode {
    fn start(data: &Path, database: &str, store: &str, garage: &GarageCluster) -> ClusterNode {
        let log = data.with_extension("log");
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let log_file = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(ims_bin())
                .args(["serve", "--listen", &addr, "--nbd-listen", "off", "--database", database, "--store", store])
                .arg("--data-dir")
                .arg(data)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("IMS_S3_ACCESS_KEY_ID", garage.access_key_id())
                .env("IMS_S3_SECRET_ACCESS_KEY", garage.secret_access_key())
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap();
            let url = format!("http://{addr}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if run_ims(Some(&url), Some(ADMIN_TOKEN), &["whoami"], None).output.status.success() {
                    return ClusterNode { child, url, log };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the cluster node did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--output", "json"]);
        run_ims(Some(&self.url), Some(token), &full, None).ok().json()
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- cluster node log -----\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

/// Runs `ims admin migrate` from the data directory `data` to `database` and `store`.
fn migrate(data: &Path, database: &str, store: &str, garage: &GarageCluster) -> Output {
    Command::new(ims_bin())
        .args(["admin", "migrate", "--to-database", database, "--to-store", store, "--data-dir"])
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IMS_S3_ACCESS_KEY_ID", garage.access_key_id())
        .env("IMS_S3_SECRET_ACCESS_KEY", garage.secret_access_key())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stored object files of the chunk store in `data`.
fn chunk_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(data.join("store").join("chunks")).unwrap().flatten() {
        out.extend(std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()));
    }
    out.sort();
    out
}

/// `(id, name, checksum, status)` of every image an admin lists, sorted.
fn listing(url: &str) -> Vec<(String, String, String, String)> {
    let listed = run_ims(Some(url), Some(ADMIN_TOKEN), &["image", "list", "--output", "json"], None).ok().json();
    let mut out: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let field = |k: &str| i[k].as_str().unwrap_or_default().to_string();
            (field("id"), field("name"), field("checksum"), field("status"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_single_node_moves_to_postgres_and_garage() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let postgres = runtime.block_on(PostgresCluster::shared_or_start()).unwrap();
    let garage = runtime.block_on(GarageCluster::shared_or_start(1)).unwrap();
    let database = runtime.block_on(postgres.fresh_database()).unwrap();
    let store = garage.store_url(&runtime.block_on(garage.fresh_bucket()).unwrap());

    // The single node: a plain image with tags, an encrypted one, a team's image shared with a guest
    // project (accepted), and a copy job.
    let s = Server::start();
    let (_, team_token) = s.tenant("team", "alice");
    let (guest_project, guest_token) = s.tenant("guest", "bob");
    let mut originals = Vec::new();
    for (i, (name, token, extra)) in [
        ("plain", ADMIN_TOKEN, vec![]),
        ("secret", ADMIN_TOKEN, vec!["--property".to_string()]),
        ("shared", team_token.as_str(), vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let data = disk_bytes(3 * MIB + i * 12345, 40 + i as u64);
        let path = s.path(name);
        std::fs::write(&path, &data).unwrap();
        let mut args: Vec<String> = ["image", "create", "--disk-format", "raw", "--container-format", "bare", "--file"]
            .map(String::from)
            .to_vec();
        args.push(path.to_str().unwrap().to_string());
        if !extra.is_empty() {
            let key = str_of(&s.json(ADMIN_TOKEN, &["admin", "kms", "create-key", "migrated-key"]), "id");
            args.extend([extra[0].clone(), format!("__system__cmkid={key}")]);
        }
        args.push(name.to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let image = s.json(token, &argv);
        originals.push((str_of(&image, "id"), name, md5_hex(&data), data));
    }
    let (plain, shared) = (originals[0].0.clone(), originals[2].0.clone());
    s.admin(&["image", "tag", "add", &plain, "golden"]).ok();
    s.admin(&["image", "tag", "add", &plain, "v1"]).ok();
    s.ims(Some(&team_token), &["image", "member", "add", &shared, &guest_project]).ok();
    s.ims(Some(&guest_token), &["image", "member", "accept", &shared]).ok();
    s.admin(&["image", "copy", &plain, "--name", "plain-copy", "--wait"]).ok();
    let jobs = s.json(ADMIN_TOKEN, &["job", "list", "--all-projects"]);
    let jobs = jobs.as_array().unwrap().clone();
    assert!(!jobs.is_empty() && jobs.iter().all(|j| j["status"] == "SUCCESS"), "{jobs:?}");
    let before = listing(&s.url);
    assert_eq!(before.len(), 4, "{before:?}");
    let dir = s.stop();
    let data = dir.path().join("data");

    // A corrupt source chunk: the migration fails naming it and writes no catalog row.
    let victim = chunk_files(&data)[0].clone();
    let good = std::fs::read(&victim).unwrap();
    let mut bad = good.clone();
    bad[10] ^= 0xff;
    std::fs::write(&victim, &bad).unwrap();
    let failed = migrate(&data, &database, &store, &garage);
    let stderr = text(&failed.stderr);
    assert!(!failed.status.success(), "{stderr}");
    let chunk_name = victim.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(chunk_name) && stderr.contains("corrupt at the source"), "{stderr}");
    assert!(stderr.contains("warning: a node of the source was alive"), "the killed node's heartbeat is noticed: {stderr}");

    // Repaired, the rerun resumes: the chunks copied by the failed run are found at the target.
    std::fs::write(&victim, &good).unwrap();
    let done = migrate(&data, &database, &store, &garage);
    let (stdout, stderr) = (text(&done.stdout), text(&done.stderr));
    assert!(done.status.success(), "{stderr}");
    let present: u64 = stdout
        .split(" already present")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("a summary with the objects already present: {stdout}"));
    assert!(present > 0, "{stdout}");
    assert!(stdout.contains("master.key"), "{stdout}");
    assert!(stderr.contains("images") && stderr.contains("chunks"), "progress is shown: {stderr}");

    // A third run finds everything there.
    let again = migrate(&data, &database, &store, &garage);
    let again_out = text(&again.stdout);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(again_out.contains(", 0 inserted)") && again_out.contains("0 bytes written"), "{again_out}");

    // The cluster node: the operator copies master.key.
    let node_data = dir.path().join("cluster-node");
    std::fs::create_dir_all(&node_data).unwrap();
    std::fs::copy(data.join("master.key"), node_data.join("master.key")).unwrap();
    let node = ClusterNode::start(&node_data, &database, &store, &garage);
    assert_eq!(listing(&node.url), before, "the same images, names, checksums and statuses");
    for (id, name, md5, bytes) in &originals {
        let out = dir.path().join(format!("{name}.out"));
        run_ims(Some(&node.url), Some(ADMIN_TOKEN), &["image", "download", "--file", out.to_str().unwrap(), id], None).ok();
        let downloaded = std::fs::read(&out).unwrap();
        assert!(downloaded == *bytes && md5_hex(&downloaded) == *md5, "{name} downloads the same bytes");
    }
    let tags = node.json(ADMIN_TOKEN, &["image", "show", &plain]);
    let mut tags: Vec<&str> = tags["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    tags.sort();
    assert_eq!(tags, ["golden", "v1"]);
    let members = node.json(&team_token, &["image", "member", "list", &shared]);
    assert_eq!(members[0]["member_id"].as_str(), Some(guest_project.as_str()), "{members}");
    assert_eq!(members[0]["status"], "accepted");
    let seen = node.json(&guest_token, &["image", "list"]);
    assert!(seen.as_array().unwrap().iter().any(|i| i["id"] == shared.as_str()), "the guest's token works: {seen}");
    let migrated_jobs = node.json(ADMIN_TOKEN, &["job", "list", "--all-projects"]);
    assert_eq!(migrated_jobs.as_array().unwrap().len(), jobs.len(), "{migrated_jobs}");
    let verify = node.json(ADMIN_TOKEN, &["admin", "store", "verify"]);
    assert_eq!(verify["chunk_problems"].as_array().map(Vec::len), Some(0), "{verify:#}");
    assert_eq!(verify["images_checked"].as_u64(), Some(4), "{verify:#}");
    // The cluster writes after the copied rows (ids and the audit chain move on).
    node.json(ADMIN_TOKEN, &["admin", "project", "create", "after-migration"]);
    run_ims(Some(&node.url), Some(ADMIN_TOKEN), &["admin", "audit", "verify"], None).ok();

    // Another single node (its own admin project) is refused: the target holds a different deployment.
    let other = Server::start();
    let other_dir = other.stop();
    let refused = migrate(&other_dir.path().join("data"), &database, &store, &garage);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("another deployment"), "{stderr}");
    drop(node);
}
