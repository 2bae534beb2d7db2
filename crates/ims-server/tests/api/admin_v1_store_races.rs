//! `/admin/v1/store/gc` racing uploads, and what dedup saves as the stats report it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ims_client::Client;
use sha2::{Digest, Sha256};

use crate::common::{pattern, raw_image, TestServer};

const MIB: usize = 1 << 20;

/// Grace period of the racing test: short, so that collections really delete while uploads run.
const GRACE_SECONDS: u64 = 2;

/// An image of `parts` MiB taken from a shared pool of 1 MiB blocks, so that images overlap.
fn overlapping_image(pool: &[Vec<u8>], seed: usize, parts: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts * MIB);
    for i in 0..parts {
        out.extend_from_slice(&pool[(seed * 7 + i * 3) % pool.len()]);
    }
    out
}

async fn upload(client: &Client, name: &str, data: Vec<u8>) -> Result<String, ims_client::ClientError> {
    let image = client.create_image(&raw_image(name)).await?;
    client.upload_bytes(&image.id, data).await?;
    Ok(image.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_racing_uploads_never_loses_a_chunk_of_a_saved_image() {
    let s = TestServer::start_with(|settings| {
        settings.gc_grace = GRACE_SECONDS;
        settings.gc_interval = 0;
    })
    .await;
    let pool: Arc<Vec<Vec<u8>>> = Arc::new((0..12).map(|i| pattern(MIB, 100 + i)).collect());
    let stop = Arc::new(AtomicBool::new(false));

    // Collections back to back, with the grace the writers assume.
    let collector = {
        let client = s.admin.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut runs, mut deleted, mut late) = (0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let report = client.store_gc(Some(GRACE_SECONDS)).await.expect("collection");
                runs += 1;
                deleted += report.chunks_deleted;
                late += u64::from(report.deadline_reached);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (runs, deleted, late)
        })
    };

    // Uploaders: each uploads overlapping images, deletes some (making garbage that later uploads dedup
    // against), and keeps the rest with their expected digests.
    let started = Instant::now();
    let mut uploaders = Vec::new();
    for worker in 0..3usize {
        let client = s.admin.clone();
        let pool = pool.clone();
        uploaders.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut round = 0usize;
            while started.elapsed() < Duration::from_secs(9) {
                let mut data = overlapping_image(&pool, worker * 31 + round, 3 + round % 4);
                // A block of its own in every image that is deleted, used again four rounds later (after a
                // pause): that upload dedups against garbage that collections are sweeping at the time.
                let own = match round {
                    r if r % 3 == 0 => Some(r),
                    r if r >= 4 && (r - 4) % 3 == 0 => Some(r - 4),
                    _ => None,
                };
                if let Some(own) = own {
                    data.extend(pattern(MIB, 10_000 + (worker * 1000 + own) as u64));
                }
                let digest = hex::encode(Sha256::digest(&data));
                match upload(&client, &format!("w{worker}-{round}"), data).await {
                    Ok(id) if round % 3 == 0 => client.delete_image(&id).await.unwrap(),
                    Ok(id) => kept.push((id, digest)),
                    // A write that lost a reused chunk fails cleanly and is retryable: never a saved hole.
                    Err(e) => assert_eq!(e.status(), Some(503), "{e}"),
                }
                round += 1;
                if round % 4 == 0 {
                    // Let old garbage age past the grace period so collections delete it.
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                }
            }
            kept
        }));
    }
    let mut kept = Vec::new();
    for u in uploaders {
        kept.extend(u.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, deleted, late) = collector.await.unwrap();
    eprintln!("gc race: {runs} collections ({late} stopped at the deadline) deleted {deleted} chunks; {} images kept", kept.len());
    assert!(runs >= 5, "only {runs} collections ran");
    assert!(deleted > 0, "the collections deleted nothing: the race was not exercised");
    assert!(kept.len() >= 6, "only {} images were kept", kept.len());

    // One more collection once everything is old, then every kept image reads back intact.
    tokio::time::sleep(Duration::from_secs(GRACE_SECONDS + 1)).await;
    s.admin.store_gc(Some(GRACE_SECONDS)).await.unwrap();
    for (id, digest) in &kept {
        let data = s.admin.download(id, None).await.unwrap().bytes().await.unwrap();
        assert_eq!(&hex::encode(Sha256::digest(&data)), digest, "image {id}");
    }
    let verify = s.admin.store_verify(None).await.unwrap();
    assert!(verify.is_clean(), "{verify:?}");
    let stats = s.admin.store_stats().await.unwrap();
    assert_eq!(stats.unreferenced_chunks, 0, "everything unreferenced was collected: {stats:?}");
}

#[tokio::test]
async fn derived_images_cost_little_more_than_their_base() {
    const BASE: usize = 256 * MIB;
    const BLOCK: usize = MIB;
    let s = TestServer::start().await;
    let base = pattern(BASE, 42);
    let client = &s.admin;
    let base_id = upload(client, "base", base.clone()).await.unwrap();
    let base_physical = s.admin.store_stats().await.unwrap().chunk_bytes;

    // Five derived images, each with 1% of the base's 1 MiB blocks rewritten: one run of adjacent blocks
    // (an update rewriting a region), somewhere else in each. Every edge of a rewritten region also costs
    // the rest of the chunk it falls in (about a chunk per edge with ~1 MiB chunks), so the same blocks
    // scattered cost more: about 1.16x for three separate 1 MiB blocks per image.
    let blocks = BASE / BLOCK;
    let rewritten = blocks.div_ceil(100);
    for d in 0..5usize {
        let mut derived = base.clone();
        let first = 10 + d * 47;
        for k in 0..rewritten {
            let block = (first + k) % blocks;
            let fresh = pattern(BLOCK, 1000 + (d * 100 + k) as u64);
            derived[block * BLOCK..(block + 1) * BLOCK].copy_from_slice(&fresh);
        }
        upload(client, &format!("derived-{d}"), derived).await.unwrap();
    }
    let stats = s.admin.store_stats().await.unwrap();
    let ratio = stats.chunk_bytes as f64 / base_physical as f64;
    eprintln!(
        "dedup: base {base_physical} bytes stored; base + 5 derived: {} bytes ({ratio:.3}x), logical {} bytes",
        stats.chunk_bytes, stats.logical_bytes
    );
    assert_eq!(stats.logical_bytes, 6 * BASE as u64);
    assert!(ratio <= 1.15, "base and 5 derived images occupy {ratio:.3}x the base");
    assert_eq!(stats.unreferenced_bytes, 0);
    assert!(s.admin.get_image(&base_id).await.unwrap().status == "active");
}
