//! Every command, in simple and structured mode, including malformed and out-of-range requests.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ims_nbd::protocol::*;
use ims_nbd::{NbdError, NbdServer, ServerConfig};
use tokio::io::AsyncWriteExt;

/// Block status descriptors of a `NBD_REPLY_TYPE_BLOCK_STATUS` chunk.
fn descriptors(chunk: &Chunk) -> Vec<(u32, u32)> {
    assert_eq!(chunk.chunk_type, REPLY_TYPE_BLOCK_STATUS, "{chunk:?}");
    assert_eq!(
        u32::from_be_bytes(chunk.payload[..4].try_into().unwrap()),
        BASE_ALLOCATION_ID
    );
    chunk.payload[4..]
        .chunks(8)
        .map(|d| {
            (
                u32::from_be_bytes(d[..4].try_into().unwrap()),
                u32::from_be_bytes(d[4..].try_into().unwrap()),
            )
        })
        .collect()
}

#[tokio::test]
async fn simple_read_write_flush_round_trip() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", false, false).await;
    c.write(0, 1, 4096, &[0xab; 8192]).await;
    assert_eq!(c.read_simple().await, (0, 1));
    c.request(CMD_READ, 0, 2, 4000, 300).await;
    assert_eq!(c.read_simple().await, (0, 2));
    let mut expected = pattern()[4000..4300].to_vec();
    expected[96..].fill(0xab);
    assert_eq!(c.read_vec(300).await, expected);
    let flushes = f.rw.flushes.load(Ordering::SeqCst);
    c.request(CMD_FLUSH, 0, 3, 0, 0).await;
    assert_eq!(c.read_simple().await, (0, 3));
    assert_eq!(f.rw.flushes.load(Ordering::SeqCst), flushes + 1);
    // FUA write flushes before replying.
    c.write(CMD_FLAG_FUA, 4, 0, b"hello").await;
    assert_eq!(c.read_simple().await, (0, 4));
    assert_eq!(f.rw.flushes.load(Ordering::SeqCst), flushes + 2);
    assert_eq!(&f.rw.snapshot()[..5], b"hello");
    c.request(CMD_DISC, 0, 5, 0, 0).await;
    c.expect_closed().await;
    assert!(c.finish().await.is_ok());
}

#[tokio::test]
async fn structured_read_sends_holes_and_data() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("ro", true, false).await;
    // 0..64K data, 64K..512K zeros, 512K..520K data: one read across all three.
    let (offset, len) = (60 << 10, 460 << 10);
    c.request(CMD_READ, 0, 7, offset, len).await;
    let chunks = c.read_reply_chunks(7).await;
    let types: Vec<u16> = chunks.iter().map(|c| c.chunk_type).collect();
    assert_eq!(
        types,
        vec![
            REPLY_TYPE_OFFSET_DATA,
            REPLY_TYPE_OFFSET_HOLE,
            REPLY_TYPE_OFFSET_DATA
        ]
    );
    // The hole chunk describes exactly the zero run.
    let hole = &chunks[1].payload;
    assert_eq!(u64::from_be_bytes(hole[..8].try_into().unwrap()), 64 << 10);
    assert_eq!(u32::from_be_bytes(hole[8..].try_into().unwrap()), 448 << 10);

    // Reassembled, any read equals the content.
    let content = pattern();
    for (cookie, (offset, len)) in [
        (0u64, 100u32),
        (4095, 2),
        (0, 1 << 20),
        (65535, 1),
        (100 << 10, 4096),
    ]
    .into_iter()
    .enumerate()
    {
        c.request(CMD_READ, 0, cookie as u64, offset, len).await;
        let got = c.structured_read(cookie as u64, offset, len).await.unwrap();
        assert_eq!(
            got,
            content[offset as usize..offset as usize + len as usize],
            "read {offset}+{len}"
        );
    }
}

#[tokio::test]
async fn dont_fragment_reads_are_one_data_chunk() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("ro", true, false).await;
    c.request(CMD_READ, CMD_FLAG_DF, 1, 0, 600 << 10).await;
    let chunks = c.read_reply_chunks(1).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].chunk_type, REPLY_TYPE_OFFSET_DATA);
    assert_eq!(&chunks[0].payload[8..], &pattern()[..600 << 10]);
}

#[tokio::test]
async fn zero_length_requests_succeed() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", true, false).await;
    c.request(CMD_READ, 0, 1, 100, 0).await;
    let chunks = c.read_reply_chunks(1).await;
    assert_eq!((chunks.len(), chunks[0].chunk_type), (1, REPLY_TYPE_NONE));
    for (cookie, cmd) in [
        (2, CMD_WRITE),
        (3, CMD_TRIM),
        (4, CMD_WRITE_ZEROES),
        (5, CMD_CACHE),
    ] {
        c.request(cmd, 0, cookie, SIZE, 0).await;
        assert_eq!(c.read_simple().await, (0, cookie));
    }
    assert_eq!(f.rw.snapshot(), pattern());
}

#[tokio::test]
async fn writes_to_a_read_only_export_are_refused() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("ro", false, false).await;
    c.write(0, 1, 0, &[1u8; 4096]).await;
    assert_eq!(c.read_simple().await, (EPERM, 1));
    c.request(CMD_TRIM, 0, 2, 0, 4096).await;
    assert_eq!(c.read_simple().await, (EPERM, 2));
    c.request(CMD_WRITE_ZEROES, 0, 3, 0, 4096).await;
    assert_eq!(c.read_simple().await, (EPERM, 3));
    // The refused write's payload was consumed: the stream is still in step.
    c.request(CMD_READ, 0, 4, 0, 8).await;
    assert_eq!(c.read_simple().await, (0, 4));
    assert_eq!(c.read_vec(8).await, pattern()[..8].to_vec());
    assert_eq!(f.ro.snapshot(), pattern());
}

#[tokio::test]
async fn requests_past_the_end_are_refused() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", false, false).await;
    c.request(CMD_READ, 0, 1, SIZE - 10, 11).await;
    assert_eq!(c.read_simple().await, (EINVAL, 1));
    c.request(CMD_READ, 0, 2, u64::MAX - 5, 10).await; // offset + length overflows
    assert_eq!(c.read_simple().await, (EINVAL, 2));
    c.write(0, 3, SIZE - 1, &[9u8; 2]).await;
    assert_eq!(c.read_simple().await, (ENOSPC, 3));
    c.request(CMD_WRITE_ZEROES, 0, 4, SIZE, 1).await;
    assert_eq!(c.read_simple().await, (ENOSPC, 4));
    c.request(CMD_TRIM, 0, 5, SIZE + 4096, 4096).await;
    assert_eq!(c.read_simple().await, (EINVAL, 5));
    c.request(CMD_CACHE, 0, 6, SIZE, 1).await;
    assert_eq!(c.read_simple().await, (EINVAL, 6));
    // Exactly up to the end is fine.
    c.request(CMD_READ, 0, 7, SIZE - 10, 10).await;
    assert_eq!(c.read_simple().await, (0, 7));
    assert_eq!(c.read_vec(10).await, vec![0u8; 10]);
    assert_eq!(f.rw.snapshot(), pattern());
}

#[tokio::test]
async fn oversized_requests_are_refused_and_the_stream_stays_in_step() {
    let f = fixture();
    let config = ServerConfig {
        max_payload: 64 << 10,
        ..ServerConfig::default()
    };
    let mut c = connect_with(f.table.clone(), config.clone());
    c.open("rw", false, false).await;
    c.request(CMD_READ, 0, 1, 0, (64 << 10) + 1).await;
    assert_eq!(c.read_simple().await, (EINVAL, 1));
    c.write(0, 2, 0, &vec![3u8; (64 << 10) + 512]).await;
    assert_eq!(c.read_simple().await, (EINVAL, 2));
    c.request(CMD_READ, 0, 3, 0, 64 << 10).await;
    assert_eq!(c.read_simple().await, (0, 3));
    assert_eq!(c.read_vec(64 << 10).await, pattern()[..64 << 10].to_vec());
    // No payload, no cap: write-zeroes and trim of the whole disk are fine.
    c.request(CMD_WRITE_ZEROES, 0, 4, 0, SIZE as u32).await;
    assert_eq!(c.read_simple().await, (0, 4));
    assert!(f.rw.snapshot().iter().all(|&b| b == 0));

    // With structured replies, an oversized read is NBD_EOVERFLOW.
    let mut c = connect_with(f.table.clone(), config);
    c.open("ro", true, false).await;
    c.request(CMD_READ, 0, 5, 0, 1 << 20).await;
    let chunks = c.read_reply_chunks(5).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].error(), EOVERFLOW);
}

#[tokio::test]
async fn trim_and_write_zeroes() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", true, false).await;
    c.request(CMD_TRIM, CMD_FLAG_FUA, 1, 4096, 8192).await;
    assert_eq!(c.read_simple().await, (0, 1));
    assert_eq!(*f.rw.trims.lock().unwrap(), vec![(4096, 8192)]);
    assert_eq!(f.rw.flushes.load(Ordering::SeqCst), 1);
    c.request(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 2, 100, 1000)
        .await;
    assert_eq!(c.read_simple().await, (0, 2));
    c.request(CMD_WRITE_ZEROES, CMD_FLAG_FUA, 3, 512 << 10, 4096)
        .await;
    assert_eq!(c.read_simple().await, (0, 3));
    assert_eq!(f.rw.flushes.load(Ordering::SeqCst), 2);
    let mut expected = pattern();
    expected[100..1100].fill(0);
    expected[512 << 10..(512 << 10) + 4096].fill(0);
    assert_eq!(f.rw.snapshot(), expected);
    // FAST_ZERO is not advertised, hence invalid.
    c.request(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 4, 0, 4096)
        .await;
    assert_eq!(c.read_chunk().await.error(), EINVAL);
    assert_eq!(f.rw.snapshot(), expected);
}

#[tokio::test]
async fn cache_is_accepted() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("ro", false, false).await;
    c.request(CMD_CACHE, 0, 1, 0, 1 << 20).await;
    assert_eq!(c.read_simple().await, (0, 1));
}

#[tokio::test]
async fn block_status_reports_holes() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("ro", true, true).await;
    c.request(CMD_BLOCK_STATUS, 0, 1, 0, SIZE as u32).await;
    let chunks = c.read_reply_chunks(1).await;
    assert_eq!(chunks.len(), 1);
    let hole = STATE_HOLE | STATE_ZERO;
    assert_eq!(
        descriptors(&chunks[0]),
        vec![
            (64 << 10, 0),
            (448 << 10, hole),
            (8192, 0),
            (504 << 10, hole)
        ]
    );
    // REQ_ONE: a single descriptor no longer than asked.
    c.request(
        CMD_BLOCK_STATUS,
        CMD_FLAG_REQ_ONE,
        2,
        60 << 10,
        1 << 20 >> 1,
    )
    .await;
    assert_eq!(
        descriptors(&c.read_reply_chunks(2).await[0]),
        vec![(4 << 10, 0)]
    );
    c.request(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 3, 100 << 10, 10)
        .await;
    assert_eq!(
        descriptors(&c.read_reply_chunks(3).await[0]),
        vec![(10, hole)]
    );
    // Past the end, or empty.
    c.request(CMD_BLOCK_STATUS, 0, 4, SIZE - 4096, 8192).await;
    assert_eq!(c.read_chunk().await.error(), EINVAL);
    c.request(CMD_BLOCK_STATUS, 0, 5, 0, 0).await;
    assert_eq!(c.read_chunk().await.error(), EINVAL);
    c.request(CMD_BLOCK_STATUS, CMD_FLAG_DF, 6, 0, 4096).await;
    assert_eq!(c.read_chunk().await.error(), EINVAL);
}

/// A read-only disk that is one hole, recording the ranges it is asked the status of.
struct OneHole {
    asked: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl ims_nbd::ExportBackend for OneHole {
    fn read_at(&self, buf: &mut [u8], _: u64) -> std::io::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn block_status(&self, offset: u64, len: u64) -> std::io::Result<Vec<ims_nbd::Extent>> {
        self.asked.lock().unwrap().push((offset, len));
        Ok(vec![ims_nbd::Extent {
            length: len,
            status: ims_formats::BlockStatus::Unallocated,
        }])
    }
}

#[tokio::test]
async fn req_one_looks_up_a_bounded_prefix_of_a_long_range() {
    let disk = std::sync::Arc::new(OneHole {
        asked: Default::default(),
    });
    let table = std::sync::Arc::new(ims_nbd::ExportTable::new());
    table.insert("big", ims_nbd::Export::read_only(disk.clone(), 8 << 30));
    let mut c = connect(table);
    c.open("big", true, true).await;
    let hole = STATE_HOLE | STATE_ZERO;
    // Asked about 3 GiB for one extent: 64 MiB are looked up and answered; the client asks again from there.
    c.request(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 1, 1 << 30, 3 << 30)
        .await;
    assert_eq!(
        descriptors(&c.read_reply_chunks(1).await[0]),
        vec![(64 << 20, hole)]
    );
    // Without REQ_ONE every extent of the range is wanted.
    c.request(CMD_BLOCK_STATUS, 0, 2, 1 << 30, 3 << 30).await;
    assert_eq!(
        descriptors(&c.read_reply_chunks(2).await[0]),
        vec![(3 << 30, hole)]
    );
    // A short range is looked up whole.
    c.request(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 3, 0, 4096)
        .await;
    assert_eq!(
        descriptors(&c.read_reply_chunks(3).await[0]),
        vec![(4096, hole)]
    );
    assert_eq!(
        *disk.asked.lock().unwrap(),
        [(1 << 30, 64 << 20), (1 << 30, 3 << 30), (0, 4096)]
    );
}

#[tokio::test]
async fn block_status_without_a_context_is_invalid() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("ro", false, false).await;
    c.request(CMD_BLOCK_STATUS, 0, 1, 0, 4096).await;
    assert_eq!(c.read_simple().await, (EINVAL, 1));
}

#[tokio::test]
async fn unknown_commands_and_flags_are_invalid() {
    let f = fixture();
    for structured in [false, true] {
        let mut c = connect(f.table.clone());
        c.open("rw", structured, false).await;
        let bad = [
            (8u16, 0u16),
            (100, 0),
            (0xffff, 0),
            (CMD_READ, CMD_FLAG_REQ_ONE),
            (CMD_FLUSH, CMD_FLAG_NO_HOLE),
            (CMD_READ, 1 << 15),
        ];
        for (cookie, (cmd, flags)) in bad.into_iter().enumerate() {
            c.request(cmd, flags, cookie as u64, 0, 512).await;
            if structured {
                let chunk = c.read_chunk().await;
                assert_eq!((chunk.error(), chunk.cookie), (EINVAL, cookie as u64));
                assert_ne!(chunk.flags & REPLY_FLAG_DONE, 0);
            } else {
                assert_eq!(c.read_simple().await, (EINVAL, cookie as u64));
            }
        }
        // DF without structured replies is invalid; FUA on a read is tolerated.
        c.request(CMD_READ, CMD_FLAG_DF, 50, 0, 512).await;
        if structured {
            assert_eq!(
                c.read_reply_chunks(50).await[0].chunk_type,
                REPLY_TYPE_OFFSET_DATA
            );
        } else {
            assert_eq!(c.read_simple().await, (EINVAL, 50));
        }
        c.request(CMD_READ, CMD_FLAG_FUA, 51, 0, 4).await;
        if structured {
            assert_eq!(
                c.structured_read(51, 0, 4).await.unwrap(),
                pattern()[..4].to_vec()
            );
        } else {
            assert_eq!(c.read_simple().await, (0, 51));
            assert_eq!(c.read_vec(4).await, pattern()[..4].to_vec());
        }
        // Flush with a range is invalid.
        c.request(CMD_FLUSH, 0, 52, 0, 1).await;
        if structured {
            assert_eq!(c.read_chunk().await.error(), EINVAL);
        } else {
            assert_eq!(c.read_simple().await, (EINVAL, 52));
        }
    }
}

#[tokio::test]
async fn bad_request_magic_closes_the_connection() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", false, false).await;
    let mut raw = RequestHeader {
        flags: 0,
        command: CMD_READ,
        cookie: 1,
        offset: 0,
        length: 512,
    }
    .encode();
    raw[3] ^= 0xff;
    c.s.write_all(&raw).await.unwrap();
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn truncated_write_payload_ends_the_connection_without_a_crash() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", false, false).await;
    c.request(CMD_WRITE, 0, 1, 0, 4096).await;
    c.s.write_all(&[1u8; 100]).await.unwrap();
    assert!(matches!(c.finish().await, Err(NbdError::Io(_))));
    assert_eq!(f.rw.snapshot(), pattern(), "nothing half-written");
}

#[tokio::test]
async fn truncated_request_header_ends_the_connection() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", false, false).await;
    c.s.write_all(&REQUEST_MAGIC.to_be_bytes()).await.unwrap();
    assert!(matches!(c.finish().await, Err(NbdError::Io(_))));
}

#[tokio::test]
async fn backend_failures_are_eio_without_details() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("broken", true, true).await;
    c.request(CMD_READ, 0, 1, 0, 4096).await;
    let chunks = c.read_reply_chunks(1).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].error(), EIO);
    assert!(
        !String::from_utf8_lossy(&chunks[0].payload).contains("secret"),
        "backend messages are not sent"
    );
    c.write(0, 2, 0, &[1u8; 512]).await;
    assert_eq!(c.read_chunk().await.error(), ENOSPC);
    c.request(CMD_BLOCK_STATUS, 0, 3, 0, 4096).await;
    assert_eq!(c.read_chunk().await.error(), EIO);

    let mut c = connect(f.table.clone());
    c.open("broken", false, false).await;
    c.request(CMD_READ, 0, 4, 0, 4096).await;
    assert_eq!(c.read_simple().await, (EIO, 4));
}

#[tokio::test]
async fn a_panicking_backend_fails_the_request_not_the_server() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("panicky", true, true).await;
    c.request(CMD_READ, CMD_FLAG_DF, 1, 0, 4096).await;
    assert_eq!(c.read_chunk().await.error(), EIO);
    c.request(CMD_BLOCK_STATUS, 0, 2, 0, 4096).await;
    assert_eq!(c.read_chunk().await.error(), EIO);
    c.request(CMD_DISC, 0, 3, 0, 0).await;
    c.expect_closed().await;
    assert!(c.finish().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_all_get_their_replies() {
    let f = fixture();
    let mut c = connect(f.table.clone());
    c.open("rw", true, false).await;
    // Writes to distinct blocks and reads of the untouched second half, all sent before any reply.
    let mut expected = pattern();
    for i in 0..64u64 {
        let data = vec![i as u8 + 1; 4096];
        expected[(i * 4096) as usize..((i + 1) * 4096) as usize].copy_from_slice(&data);
        c.write(0, i, i * 4096, &data).await;
        c.request(CMD_READ, 0, 1000 + i, (SIZE / 2) + i * 4096, 4096)
            .await;
    }
    c.request(CMD_DISC, 0, 9999, 0, 0).await;
    let mut seen = HashSet::new();
    for _ in 0..128 {
        let chunk = match c.read_any().await {
            AnyReply::Simple { error, cookie } => {
                assert_eq!(error, 0);
                assert!(cookie < 64, "writes get simple replies");
                assert!(seen.insert(cookie), "one reply per cookie");
                continue;
            }
            AnyReply::Chunk(chunk) => chunk,
        };
        assert_ne!(chunk.flags & REPLY_FLAG_DONE, 0);
        if chunk.cookie >= 1000 {
            let at = u64::from_be_bytes(chunk.payload[..8].try_into().unwrap()) as usize;
            let data = &chunk.payload[8..];
            if chunk.chunk_type == REPLY_TYPE_OFFSET_DATA {
                assert_eq!(data, &pattern()[at..at + 4096]);
            } else {
                assert_eq!(chunk.chunk_type, REPLY_TYPE_OFFSET_HOLE);
            }
        } else {
            panic!("unexpected chunk {chunk:?}");
        }
        assert!(seen.insert(chunk.cookie), "one reply per cookie");
    }
    // NBD_CMD_DISC: every accepted request was answered, then the connection closed.
    c.expect_closed().await;
    assert!(c.finish().await.is_ok());
    assert_eq!(f.rw.snapshot(), expected);
}

#[tokio::test]
async fn random_requests_never_crash_the_server() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(27);
    let f = fixture();
    for _ in 0..50 {
        let mut c = connect(f.table.clone());
        c.open(
            if rng.gen_bool(0.5) { "rw" } else { "ro" },
            rng.gen_bool(0.5),
            false,
        )
        .await;
        let mut bytes = Vec::new();
        for _ in 0..rng.gen_range(1..20) {
            let command = if rng.gen_bool(0.8) {
                rng.gen_range(0..9)
            } else {
                rng.gen()
            };
            let length = if rng.gen_bool(0.7) {
                rng.gen_range(0..8192)
            } else {
                rng.gen()
            };
            let offset = if rng.gen_bool(0.7) {
                rng.gen_range(0..2 * SIZE)
            } else {
                rng.gen()
            };
            let h = RequestHeader {
                flags: rng.gen_range(0..64),
                command,
                cookie: rng.gen(),
                offset,
                length,
            };
            bytes.extend_from_slice(&h.encode());
            if command == CMD_WRITE && length < 8192 {
                bytes.extend((0..length).map(|_| rng.gen::<u8>()));
            }
        }
        // Read replies concurrently so the server is never blocked on a full pipe.
        let (mut rd, mut wr) = tokio::io::split(c.s);
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut sink).await;
        });
        let _ = wr.write_all(&bytes).await;
        // Half-close: the server sees EOF (a split half alone would keep the stream open).
        let _ = wr.shutdown().await;
        let result = tokio::time::timeout(Duration::from_secs(10), c.server)
            .await
            .expect("no hang");
        assert!(result.is_ok(), "server task panicked");
        drain.await.unwrap();
    }
}

#[tokio::test]
async fn tcp_server_shuts_down_cleanly_with_clients_connected() {
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = NbdServer::new(f.table.clone());
    let serving = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stop_rx.await;
            })
            .await
    });
    // One client in transmission, one still negotiating.
    let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut greeting = [0u8; 18];
    tokio::io::AsyncReadExt::read_exact(&mut b, &mut greeting)
        .await
        .unwrap();
    tokio::io::AsyncReadExt::read_exact(&mut a, &mut greeting)
        .await
        .unwrap();
    a.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes())
        .await
        .unwrap();
    a.write_all(
        &OptionHeader {
            option: OPT_EXPORT_NAME,
            length: 2,
        }
        .encode(),
    )
    .await
    .unwrap();
    a.write_all(b"rw").await.unwrap();
    let mut export = [0u8; 10];
    tokio::io::AsyncReadExt::read_exact(&mut a, &mut export)
        .await
        .unwrap();

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns")
        .unwrap();
    // Both connections are closed and nothing listens any more.
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut a, &mut rest)
        .await
        .unwrap();
    tokio::io::AsyncReadExt::read_to_end(&mut b, &mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = NbdServer::with_config(f.table.clone(), config);
    let serving = tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut greeting = [0u8; 18];
    tokio::io::AsyncReadExt::read_exact(&mut a, &mut greeting)
        .await
        .unwrap();
    let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut b, &mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty(), "the second connection gets no greeting");
    // Once the first leaves, a new connection is served.
    drop(a);
    let mut served = false;
    for _ in 0..50 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        if tokio::io::AsyncReadExt::read_exact(&mut c, &mut greeting)
            .await
            .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served);
    serving.abort();
}
