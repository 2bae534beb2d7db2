//! Upload-path throughput: 512 MiB of semi-compressible data through a `ManifestWriter` into `memory://`.
//!
//! Run with `cargo bench -p ims-store` (or `cargo run --release --bench chunking -p ims-store`).
//! Prints two numbers: the chunk store alone, and the chunk store while another thread computes md5 + sha512
//! of the same stream (what the image upload path does). Optional argument: size in MiB (default 512);
//! `IMS_BENCH_ONLY=store` or `IMS_BENCH_ONLY=hashes` runs one of the two. Each runs twice: plaintext, and
//! encrypted (in an encryption domain: keyed ids and AES-256-GCM per chunk); `IMS_BENCH_ENCRYPTION=off|on`
//! keeps one of the two.
//! On a shared machine the wall-clock number depends on the other load; the CPU time per byte does not
//! (much), so the bench also prints the throughput the measured CPU cost allows when every core is ours.

use std::sync::mpsc;
use std::time::Instant;

use bytes::Bytes;
use ims_store::ChunkStore;
use md5::Digest;
use rand::{rngs::StdRng, Rng, SeedableRng};

const MIB: usize = 1024 * 1024;
/// Size of each `write` call (a typical HTTP body frame batch).
const PIECE: usize = 256 * 1024;

/// Semi-compressible data: 4 KiB blocks, about half random bytes and half text made of a small vocabulary,
/// so zstd saves roughly a third and nothing deduplicates.
fn generate(size: usize) -> Bytes {
    const WORDS: [&str; 16] = [
        "image ", "disk ", "cloud ", "server ", "volume ", "kernel ", "boot ", "the ", "data ", "root ",
        "snapshot ", "block ", "file ", "system ", "user ", "network ",
    ];
    let mut rng = StdRng::seed_from_u64(0x1a5);
    let mut out = vec![0u8; size];
    for block in out.chunks_mut(4096) {
        if rng.gen_bool(0.5) {
            rng.fill(block);
        } else {
            let mut i = 0;
            while i < block.len() {
                let w = WORDS[rng.gen_range(0..WORDS.len())].as_bytes();
                let n = w.len().min(block.len() - i);
                block[i..i + n].copy_from_slice(&w[..n]);
                i += n;
            }
        }
    }
    Bytes::from(out)
}

/// CPU time (user + system) used by this process so far, in seconds (Linux; 0 elsewhere).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

async fn run(data: &Bytes, with_hashes: bool, encrypted: bool) -> (f64, f64, ims_store::WriteSummary) {
    let mut store = ChunkStore::open("memory://").unwrap();
    if encrypted {
        store = store.in_domain(ims_store::EncryptionDomain::new(&ims_store::EncryptionDomain::generate_data_key()));
    }
    let (hash_tx, hash_rx) = mpsc::sync_channel::<Bytes>(16);
    let hasher = with_hashes.then(|| {
        std::thread::spawn(move || {
            let mut md5 = md5::Md5::new();
            let mut sha512 = sha2::Sha512::new();
            for piece in hash_rx {
                md5.update(&piece);
                sha512.update(&piece);
            }
            (md5.finalize(), sha512.finalize())
        })
    });
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let mut writer = store.writer();
    let mut at = 0;
    while at < data.len() {
        let piece = data.slice(at..(at + PIECE).min(data.len()));
        at += piece.len();
        if with_hashes {
            let tx = hash_tx.clone();
            let p = piece.clone();
            // Blocking send off the async threads, like a handler feeding a hashing thread.
            tokio::task::spawn_blocking(move || tx.send(p).unwrap()).await.unwrap();
        }
        writer.write(piece).await.unwrap();
    }
    drop(hash_tx);
    let summary = writer.finish().await.unwrap();
    if let Some(h) = hasher {
        h.join().unwrap();
    }
    (start.elapsed().as_secs_f64(), process_cpu_seconds() - cpu_start, summary)
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(512);
    let size = mib * MIB;
    let data = generate(size);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let only = std::env::var("IMS_BENCH_ONLY").ok();
    let encryption = std::env::var("IMS_BENCH_ENCRYPTION").ok();
    let runs = [
        ("chunk store", false, false),
        ("chunk store + md5/sha512 thread", true, false),
        ("encrypted chunk store", false, true),
        ("encrypted chunk store + md5/sha512 thread", true, true),
    ];
    for (label, with_hashes, encrypted) in runs {
        if only.as_deref().is_some_and(|o| o != if with_hashes { "hashes" } else { "store" }) {
            continue;
        }
        if encryption.as_deref().is_some_and(|e| e != if encrypted { "on" } else { "off" }) {
            continue;
        }
        let (secs, cpu, s) = run(&data, with_hashes, encrypted).await;
        println!(
            "{label}: {mib} MiB in {secs:.2} s = {:.0} MB/s ({:.0} MiB/s); CPU {cpu:.2} s = {:.2} ns/byte \
             (all {cores} cores busy would give {:.0} MB/s); {} chunks ({} new, {} dedup), {:.1}% stored",
            size as f64 / secs / 1e6,
            size as f64 / secs / MIB as f64,
            cpu * 1e9 / size as f64,
            cores as f64 * size as f64 / cpu / 1e6,
            s.chunks_total,
            s.chunks_new,
            s.chunks_deduplicated,
            100.0 * s.bytes_stored as f64 / size as f64,
        );
    }
}
