//! Load: 200 concurrent clients for a minute against one real `ims serve` (the binary under test), on
//! loopback.
//!
//! Each client is its own user (ten projects of twenty users) with its own connection, and mixes
//! uploads (64 KiB to 4 MiB, log-uniform, streamed), downloads checked against the md5 computed while
//! uploading, and metadata calls (list, show, patch, tags), pausing 100-400 ms between operations.
//! A per-token rate limit is on (50 requests/s, burst 100): no paced client can reach it (an operation
//! is at most 3 requests, so at most 30 a second), while one extra client polls its image list from
//! 32 loops without pausing and is meant to get `429` with `Retry-After`, which it honours. Any other
//! failure, of any request, is an error.
//!
//! The server's RSS is read from `/proc` every 200 ms and must stay under [`RSS_BOUND_MIB`].
//! Afterwards every uploaded image must download byte for byte as uploaded and `store verify` must be
//! clean. Prints `load: clients=200 seconds=60 requests=N errors=0 rate_limited=N rss_peak_mib=M`.
//!
//! `IMS_LOAD_SECONDS` (default 60) and `IMS_LOAD_CLIENTS` (default 200) give a longer or larger run.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{free_port, ims_bin, ADMIN_TOKEN};
use futures::{StreamExt, TryStreamExt};
use ims_client::{Client, ListParams, PatchOp, Role};
use md5::{Digest, Md5};
use serde_json::json;

/// Per-token rate limit of the server under load.
const RATE_PER_SECOND: u32 = 50;
const RATE_BURST: u32 = 100;
/// Uploads per paced client at most, which bounds the data the final check reads back.
const MAX_UPLOADS_PER_CLIENT: usize = 2;
/// Smallest and largest upload.
const MIN_UPLOAD: u64 = 64 << 10;
const MAX_UPLOAD: u64 = 4 << 20;
/// Concurrent request loops of the client that is meant to be rate limited.
const NOISY_LOOPS: usize = 32;
/// Bound on the server's resident memory. The debug server idles at about 50 MiB; under this load
/// it holds at most 256 MiB of decoded chunks (the default chunk cache), and per connection one
/// content-defined chunk being cut (up to 4 MiB, FastCDC's maximum with a 1 MiB average) plus
/// compression and request buffers: 200 uploads in flight could in the worst case reach a few
/// hundred MiB more. 1 GiB leaves room for the allocator's fragmentation, and still catches
/// buffering whole images (200 × 4 MiB uploads plus as many downloads) or a leak per request.
const RSS_BOUND_MIB: u64 = 1024;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64: the test's only randomness, seeded per client, so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The bytes of upload `seed`, `size` long, in 256 KiB pieces (never whole in memory).
fn content(seed: u64, size: u64) -> impl Iterator<Item = Bytes> {
    const PIECE: u64 = 256 << 10;
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size.div_ceil(PIECE)).map(move |i| {
        let len = PIECE.min(size - i * PIECE) as usize;
        let mut piece = Vec::with_capacity(len + 8);
        while piece.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            piece.extend_from_slice(&state.to_le_bytes());
        }
        piece.truncate(len);
        Bytes::from(piece)
    })
}

fn md5_of_content(seed: u64, size: u64) -> String {
    let mut md5 = Md5::new();
    content(seed, size).for_each(|piece| md5.update(&piece));
    hex(&md5.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An image a client uploaded: what it must read back.
#[derive(Clone)]
struct Uploaded {
    id: String,
    size: u64,
    md5: String,
}

/// What all clients saw.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    /// Requests of the noisy client, and those of them served (200).
    noisy_requests: AtomicU64,
    noisy_served: AtomicU64,
    rate_limited: AtomicU64,
    errors: AtomicU64,
    /// The first few errors, for the failure message.
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 20 {
            first.push(what);
        }
    }
}

/// Downloads `image` whole and checks its length and md5 against what was uploaded.
async fn download_matches(client: &Client, image: &Uploaded) -> Result<(), String> {
    let download = client.download(&image.id, None).await.map_err(|e| e.to_string())?;
    if download.status != 200 {
        return Err(format!("download of {} answered {}", image.id, download.status));
    }
    let mut md5 = Md5::new();
    let mut len = 0u64;
    let mut stream = download.into_stream();
    while let Some(piece) = stream.try_next().await.map_err(|e| e.to_string())? {
        len += piece.len() as u64;
        md5.update(&piece);
    }
    let md5 = hex(&md5.finalize());
    if (len, md5.as_str()) != (image.size, image.md5.as_str()) {
        return Err(format!(
            "{} downloaded {len} bytes md5 {md5}, uploaded {} bytes md5 {}",
            image.id, image.size, image.md5
        ));
    }
    Ok(())
}

/// One paced client until `deadline`; returns what it uploaded.
async fn paced_client(client: Client, index: u64, deadline: Instant, tally: Arc<Tally>) -> Vec<Uploaded> {
    let mut rng = Rng(0x5eed_0000 + index * 7919);
    let mut uploaded: Vec<Uploaded> = Vec::new();
    let mut step = 0u64;
    while Instant::now() < deadline {
        step += 1;
        let roll = rng.below(100);
        let want_upload = uploaded.is_empty() || (roll < 15 && uploaded.len() < MAX_UPLOADS_PER_CLIENT);
        let result: Result<u64, String> = if want_upload {
            upload(&client, index, step, &mut rng).await.map(|image| {
                uploaded.push(image);
                3
            })
        } else {
            let image = uploaded[rng.below(uploaded.len() as u64) as usize].clone();
            match roll {
                0..=29 => download_matches(&client, &image).await.map(|()| 1),
                30..=49 => client
                    .list_images(&ListParams { limit: Some(20), ..Default::default() })
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|list| match list.images.iter().any(|i| i.id == image.id) || list.next.is_some() {
                        true => Ok(1),
                        false => Err(format!("list of client {index} misses its image {}", image.id)),
                    }),
                50..=69 => client.get_image(&image.id).await.map_err(|e| e.to_string()).and_then(|shown| {
                    match (shown.checksum.as_deref(), shown.size) == (Some(image.md5.as_str()), Some(image.size)) {
                        true => Ok(1),
                        false => Err(format!("{} shows {:?} {:?}", image.id, shown.checksum, shown.size)),
                    }
                }),
                70..=84 => {
                    let value = format!("step-{step}");
                    client
                        .update_image(&image.id, &[PatchOp::add("load_step", value.clone())])
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|patched| match patched.properties.get("load_step") == Some(&json!(value)) {
                            true => Ok(1),
                            false => Err(format!("patch of {} did not stick", image.id)),
                        })
                }
                _ => {
                    let tag = format!("t{}", step % 5);
                    match client.add_tag(&image.id, &tag).await {
                        Ok(()) => client.remove_tag(&image.id, &tag).await.map(|()| 2).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
        };
        match result {
            Ok(requests) => {
                tally.requests.fetch_add(requests, Ordering::Relaxed);
            }
            Err(e) => {
                tally.requests.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("client {index} step {step}: {e}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.below(300))).await;
    }
    uploaded
}

/// Creates an image and uploads 64 KiB to 4 MiB (log-uniform) to it, streamed; checks the record.
async fn upload(client: &Client, index: u64, step: u64, rng: &mut Rng) -> Result<Uploaded, String> {
    let doublings = (MAX_UPLOAD / MIN_UPLOAD).ilog2() as u64;
    let size = (MIN_UPLOAD << rng.below(doublings + 1)) + rng.below(MIN_UPLOAD);
    let size = size.min(MAX_UPLOAD);
    let seed = rng.next();
    let md5 = md5_of_content(seed, size);
    let body = json!({"name": format!("load-{index}-{step}"), "disk_format": "raw", "container_format": "bare"});
    let image = client.create_image(&body).await.map_err(|e| e.to_string())?;
    let stream = futures::stream::iter(content(seed, size).map(Ok::<Bytes, std::io::Error>));
    client.upload_stream(&image.id, stream, Some(size)).await.map_err(|e| e.to_string())?;
    let shown = client.get_image(&image.id).await.map_err(|e| e.to_string())?;
    if (shown.status.as_str(), shown.checksum.as_deref(), shown.size) != ("active", Some(md5.as_str()), Some(size)) {
        return Err(format!("uploaded {} is {} {:?} {:?}", image.id, shown.status, shown.checksum, shown.size));
    }
    Ok(Uploaded { id: image.id, size, md5 })
}

/// The client meant to be rate limited: its image list, polled without pause from [`NOISY_LOOPS`]
/// loops; a 429 must carry `Retry-After`, which it then waits.
async fn noisy_client(client: Client, deadline: Instant, tally: Arc<Tally>) {
    let loops = (0..NOISY_LOOPS).map(|_| {
        let (client, tally) = (client.clone(), tally.clone());
        async move {
            while Instant::now() < deadline {
                tally.requests.fetch_add(1, Ordering::Relaxed);
                tally.noisy_requests.fetch_add(1, Ordering::Relaxed);
                let response = client.raw(ims_client::reqwest::Method::GET, "/v2/images?limit=1").send().await;
                let answer = match response {
                    // The body is read so that the connection goes back to the pool.
                    Ok(r) => {
                        let (status, retry_after) = (r.status().as_u16(), r.headers().get("retry-after").cloned());
                        r.bytes().await.map(|_| (status, retry_after))
                    }
                    Err(e) => Err(e),
                };
                match answer {
                    Ok((200, _)) => {
                        tally.noisy_served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((429, Some(retry_after))) => {
                        tally.rate_limited.fetch_add(1, Ordering::Relaxed);
                        let seconds = retry_after.to_str().ok().and_then(|s| s.parse::<u64>().ok());
                        match seconds {
                            Some(s @ 1..=60) => tokio::time::sleep(Duration::from_secs(s)).await,
                            _ => tally.error(format!("429 with a bad Retry-After {retry_after:?}")),
                        }
                    }
                    Ok((status, _)) => tally.error(format!("noisy client: status {status}")),
                    Err(e) => tally.error(format!("noisy client: {e}")),
                }
            }
        }
    });
    futures::future::join_all(loops).await;
}

/// Resident set size of process `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Kills the server on drop (and shows the end of its log if the test failed).
struct Node(Child, std::path::PathBuf);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let tail: String = log.chars().rev().take(20_000).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("----- server log (end) -----\n{tail}");
        }
    }
}

/// `ims serve` with `config` on `dir`, healthy.
fn serve(dir: &Path, config: &Path) -> (Node, String) {
    let log = dir.join("server.log");
    for _ in 0..5 {
        let addr = format!("127.0.0.1:{}", free_port());
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(ims_bin())
            .args(["serve", "--listen", &addr, "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("IMS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("IMS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("spawn ims serve");
        let mut node = Node(child, log.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && node.0.try_wait().unwrap().is_none() {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return (node, format!("http://{addr}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = node.0.kill();
    }
    panic!("ims serve did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// Waits until call `k` of a burst may start without draining the caller's rate-limit bucket.
async fn pace(started: Instant, k: u64) {
    let headroom = u64::from(RATE_BURST) * 4 / 5;
    let interval = Duration::from_secs(1) / (RATE_PER_SECOND * 4 / 5);
    let at = started + interval * k.saturating_sub(headroom) as u32;
    tokio::time::sleep_until(at.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_for_a_minute() {
    let seconds = env_number("IMS_LOAD_SECONDS", 60);
    let clients = env_number("IMS_LOAD_CLIENTS", 200);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ims.toml");
    std::fs::write(&config, format!("rate_limit_per_second = {RATE_PER_SECOND}\nrate_limit_burst = {RATE_BURST}\n")).unwrap();
    let (node, url) = serve(dir.path(), &config);
    let pid = node.0.id();
    let admin = Client::new(&url, ADMIN_TOKEN).unwrap();
    admin.whoami().await.expect("the server answers");

    // Ten projects of users, one user (and connection pool) per client, created within the admin's rate.
    let setup = Instant::now();
    let projects = clients.div_ceil(20).max(1);
    for p in 0..projects {
        pace(setup, p).await;
        admin.create_project(&format!("load-{p}")).await.expect("create project");
    }
    let users: Vec<String> = futures::stream::iter(0..=clients)
        .map(|c| {
            let admin = admin.clone();
            async move {
                pace(setup, projects + c).await;
                let project = format!("load-{}", c % projects);
                let created = admin.create_user(&format!("load-user-{c}"), &project, Role::Member).await;
                created.expect("create user").token.token.expect("the new user's token")
            }
        })
        .buffered(8)
        .collect()
        .await;

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        })
    };
    let rss_before = rss_kib(pid).unwrap_or(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let noisy = tokio::spawn(noisy_client(Client::new(&url, &users[clients as usize]).unwrap(), deadline, tally.clone()));
    let paced: Vec<_> = (0..clients)
        .map(|c| {
            let client = Client::new(&url, &users[c as usize]).unwrap();
            tokio::spawn(paced_client(client, c, deadline, tally.clone()))
        })
        .collect();
    let mut uploaded = Vec::new();
    for task in paced {
        uploaded.push(task.await.expect("client task"));
    }
    noisy.await.expect("noisy client task");
    let load_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let rss_peak_mib = sampler.join().unwrap() / 1024;

    // Afterwards: every image reads back as uploaded, and the store verifies clean.
    let check = Instant::now();
    let images: Vec<(usize, Uploaded)> =
        uploaded.iter().enumerate().flat_map(|(c, list)| list.iter().map(move |i| (c, i.clone()))).collect();
    let mismatches: Vec<String> = futures::stream::iter(images.iter())
        .map(|(c, image)| {
            let client = Client::new(&url, &users[*c]).unwrap();
            async move { download_matches(&client, image).await.err() }
        })
        .buffer_unordered(8)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    let report = admin.store_verify(None).await.expect("store verify");
    let check_seconds = check.elapsed().as_secs_f64();

    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let rate_limited = tally.rate_limited.load(Ordering::Relaxed);
    println!("load: clients={clients} seconds={seconds} requests={requests} errors={errors} rate_limited={rate_limited} rss_peak_mib={rss_peak_mib}");
    println!(
        "load: images={} bytes={} rss_before_mib={} load_seconds={load_seconds:.1} check_seconds={check_seconds:.1} setup_seconds={:.1}",
        images.len(),
        images.iter().map(|(_, i)| i.size).sum::<u64>(),
        rss_before / 1024,
        (started - setup).as_secs_f64(),
    );
    assert_eq!(errors, 0, "errors other than intended 429s:\n{}", tally.first_errors.lock().unwrap().join("\n"));
    // The limiter serves the noisy client at most its burst plus the rate over the run, and refuses it
    // once it asks for more (on a slow machine it may not manage to ask for more).
    let allowed = u64::from(RATE_BURST) + u64::from(RATE_PER_SECOND) * (load_seconds.ceil() as u64 + 1);
    let (noisy_requests, noisy_served) = (tally.noisy_requests.load(Ordering::Relaxed), tally.noisy_served.load(Ordering::Relaxed));
    println!("load: noisy_requests={noisy_requests} noisy_served={noisy_served} allowed={allowed}");
    assert!(noisy_served <= allowed, "the noisy client was served {noisy_served} requests, more than the {allowed} the limit allows");
    assert!(
        rate_limited > 0 || noisy_requests <= allowed,
        "the noisy client asked {noisy_requests} times (the limit allows {allowed}) and was never rate limited"
    );
    assert!(rss_peak_mib < RSS_BOUND_MIB, "server RSS peaked at {rss_peak_mib} MiB, bound {RSS_BOUND_MIB} MiB");
    assert!(mismatches.is_empty(), "images do not read back as uploaded:\n{}", mismatches.join("\n"));
    assert!(report.is_clean(), "store verify is not clean: {report:?}");
    assert!(report.images_checked >= images.len() as u64, "store verify checked {} of {} images", report.images_checked, images.len());
    drop(node);
}
