//! A real guest disk through the chunk store: chunking + hashing + compression throughput, then random
//! 4 KiB reads from a warm chunk cache.
//!
//! `cargo bench -p ims-store --bench disk -- DISK [READS]` where DISK is an image file (e.g. the ext4 disk
//! `bench/convert --keep DIR` leaves in `DIR/disk.raw`) and READS the number of random reads (default
//! 100000); `--encrypted` stores the disk in an encryption domain (keyed chunk ids, AES-256-GCM per chunk),
//! as an image created with a KMS key is stored. The store uses every core the process may run on: run it
//! under `taskset -c 0` for one core.
//! The file is read once before timing so that it comes from the page cache.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ims_store::ChunkStore;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Size of each `write` call.
const PIECE: usize = 1 << 20;

/// CPU time (user + system) used by this process so far, in seconds (Linux; 0 elsewhere).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn read_pieces(path: &str, mut each: impl FnMut(Bytes)) {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    loop {
        let mut buf = vec![0u8; PIECE];
        let mut filled = 0;
        while filled < PIECE {
            match file.read(&mut buf[filled..]).expect("read") {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        each(Bytes::from(buf));
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let Some(path) = args.first().cloned() else {
        eprintln!("usage: cargo bench -p ims-store --bench disk -- DISK [READS]");
        std::process::exit(2);
    };
    let reads: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let encrypted = std::env::args().any(|a| a == "--encrypted");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    read_pieces(&path, |_| {});

    // 1. Upload path: chunk, hash, compress and store into memory.
    let mut store = ChunkStore::open("memory://").unwrap();
    if encrypted {
        store = store.in_domain(ims_store::EncryptionDomain::new(&ims_store::EncryptionDomain::generate_data_key()));
    }
    store.set_chunk_cache_bytes(8 << 30);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let reader_path = path.clone();
    let feeder = std::thread::spawn(move || read_pieces(&reader_path, |piece| tx.blocking_send(piece).expect("send")));
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let mut writer = store.writer();
    while let Some(piece) = rx.recv().await {
        writer.write(piece).await.unwrap();
    }
    let summary = writer.finish().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_start;
    feeder.join().unwrap();
    let size = summary.manifest.size;
    println!(
        "store {path}{}: {} MiB on {cores} core(s) in {secs:.2} s = {:.0} MB/s; CPU {cpu:.2} s = {:.2} ns/byte; \
         {} chunks, {} MiB zero, {} MiB stored",
        if encrypted { " (encrypted)" } else { "" },
        size >> 20,
        size as f64 / secs / 1e6,
        cpu * 1e9 / size as f64,
        summary.chunks_total,
        summary.zero_bytes >> 20,
        summary.bytes_stored >> 20,
    );

    // 2. Random 4 KiB reads from a warm cache.
    let manifest = Arc::new(summary.manifest);
    let access = store.random_access(manifest.clone());
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0;
    while at < size {
        at += access.read_at(&mut buf, at).await.unwrap() as u64;
    }
    let warm = store.chunk_cache().stats();
    let mut rng = StdRng::seed_from_u64(1);
    let mut small = vec![0u8; 4096];
    let mut times: Vec<Duration> = Vec::with_capacity(reads);
    // A separate reader, so that the reads are not taken for sequential ones.
    let access = store.random_access(manifest);
    for _ in 0..reads {
        let offset = rng.gen_range(0..size / 4096) * 4096;
        let t = Instant::now();
        access.read_at(&mut small, offset).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let total: Duration = times.iter().sum();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let after = store.chunk_cache().stats();
    println!(
        "random 4 KiB reads, warm cache ({} MiB in {} frames): {reads} reads, mean {:.2} us, p50 {:.2} us, \
         p99 {:.2} us, max {:.2} us; {} misses",
        warm.bytes >> 20,
        warm.frames,
        total.as_secs_f64() * 1e6 / reads as f64,
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        times.last().map_or(0.0, |t| t.as_secs_f64() * 1e6),
        after.misses - warm.misses,
    );
}
