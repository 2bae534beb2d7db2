//! The fixed newstyle handshake, option by option, including malformed and hostile input.

mod common;

use std::time::Duration;

use common::*;
use ims_nbd::protocol::*;
use ims_nbd::{NbdError, ServerConfig};
use tokio::io::AsyncWriteExt;

const FIXED: u32 = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;

fn u16_at(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}
fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}
fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(d[at..at + 8].try_into().unwrap())
}

#[tokio::test]
async fn greeting_advertises_fixed_newstyle_and_no_zeroes() {
    let mut c = connect(fixture().table);
    let flags = c.greet(FIXED).await;
    assert_eq!(flags, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    c.send_option(OPT_ABORT, &[]).await;
    let r = c.read_option_reply().await;
    assert_eq!((r.option, r.reply_type), (OPT_ABORT, REP_ACK));
    c.expect_closed().await;
    assert!(c.finish().await.is_ok());
}

#[tokio::test]
async fn unknown_client_flags_close_the_connection() {
    let mut c = connect(fixture().table);
    c.greet(FIXED | 1 << 5).await;
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn client_hanging_up_during_handshake_is_clean() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    assert!(c.finish().await.is_ok());
}

#[tokio::test]
async fn go_describes_the_export_and_enters_transmission() {
    let f = fixture();
    let mut c = connect(f.table);
    c.greet(FIXED).await;
    c.send_option(
        OPT_GO,
        &info_data(
            "ro",
            &[INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE, 0x7777],
        ),
    )
    .await;
    let replies = c.read_option_replies().await;
    assert!(replies.iter().all(|r| r.option == OPT_GO));
    assert_eq!(replies.last().unwrap().reply_type, REP_ACK);
    let infos: Vec<&Vec<u8>> = replies
        .iter()
        .filter(|r| r.reply_type == REP_INFO)
        .map(|r| &r.data)
        .collect();
    let export = infos
        .iter()
        .find(|d| u16_at(d, 0) == INFO_EXPORT)
        .expect("NBD_INFO_EXPORT");
    assert_eq!(export.len(), 12);
    assert_eq!(u64_at(export, 2), SIZE);
    let flags = u16_at(export, 10);
    assert_ne!(flags & FLAG_HAS_FLAGS, 0);
    assert_ne!(flags & FLAG_READ_ONLY, 0);
    let name = infos
        .iter()
        .find(|d| u16_at(d, 0) == INFO_NAME)
        .expect("NBD_INFO_NAME");
    assert_eq!(&name[2..], b"ro");
    let desc = infos
        .iter()
        .find(|d| u16_at(d, 0) == INFO_DESCRIPTION)
        .expect("NBD_INFO_DESCRIPTION");
    assert_eq!(&desc[2..], b"a read-only disk");
    let bs = infos
        .iter()
        .find(|d| u16_at(d, 0) == INFO_BLOCK_SIZE)
        .expect("NBD_INFO_BLOCK_SIZE");
    assert_eq!(bs.len(), 14);
    assert_eq!(
        (u32_at(bs, 2), u32_at(bs, 6), u32_at(bs, 10)),
        (1, 4096, 32 << 20)
    );
    assert_eq!(infos.len(), 4, "the unknown request 0x7777 is ignored");

    // Transmission works: a simple read of the first bytes.
    c.request(CMD_READ, 0, 9, 0, 16).await;
    assert_eq!(c.read_simple().await, (0, 9));
    assert_eq!(c.read_vec(16).await, pattern()[..16].to_vec());
    c.request(CMD_DISC, 0, 10, 0, 0).await;
    c.expect_closed().await;
    assert!(c.finish().await.is_ok());
}

#[tokio::test]
async fn info_and_go_agree_and_info_stays_in_negotiation() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_INFO, &info_data("rw", &[])).await;
    let info = c.read_option_replies().await;
    assert_eq!(info.last().unwrap().reply_type, REP_ACK);
    assert!(info.iter().all(|r| r.option == OPT_INFO));
    // Still negotiating: another option is answered.
    c.send_option(OPT_LIST, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    c.send_option(OPT_GO, &info_data("rw", &[])).await;
    let go = c.read_option_replies().await;
    assert_eq!(info[0].data, go[0].data, "same size and flags");
    let flags = u16_at(&go[0].data, 10);
    assert_eq!(flags & FLAG_READ_ONLY, 0);
    for f in [
        FLAG_SEND_FLUSH,
        FLAG_SEND_FUA,
        FLAG_SEND_TRIM,
        FLAG_SEND_WRITE_ZEROES,
    ] {
        assert_ne!(flags & f, 0);
    }
    assert_eq!(flags & FLAG_SEND_DF, 0, "DF only with structured replies");
}

#[tokio::test]
async fn unknown_export_is_an_error_and_negotiation_continues() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    for opt in [OPT_INFO, OPT_GO] {
        c.send_option(opt, &info_data("no-such-export", &[INFO_NAME]))
            .await;
        let replies = c.read_option_replies().await;
        assert_eq!(replies.len(), 1, "no info about unknown exports");
        assert_eq!(replies[0].reply_type, REP_ERR_UNKNOWN);
    }
    // The empty (default) name is unknown too.
    c.send_option(OPT_GO, &info_data("", &[])).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_UNKNOWN);
    c.send_option(OPT_GO, &info_data("rw", &[])).await;
    assert_eq!(
        c.read_option_replies().await.last().unwrap().reply_type,
        REP_ACK
    );
}

#[tokio::test]
async fn export_name_sends_size_flags_and_zeroes_unless_declined() {
    for (client_flags, expected_len) in [(FLAG_C_FIXED_NEWSTYLE, 134), (FIXED, 10)] {
        let mut c = connect(fixture().table);
        c.greet(client_flags).await;
        c.send_option(OPT_EXPORT_NAME, b"rw").await;
        let reply = c.read_vec(expected_len).await;
        assert_eq!(u64_at(&reply, 0), SIZE);
        assert_ne!(u16_at(&reply, 8) & FLAG_HAS_FLAGS, 0);
        assert!(reply[10..].iter().all(|&b| b == 0));
        c.request(CMD_READ, 0, 1, 0, 4).await;
        assert_eq!(c.read_simple().await, (0, 1));
        assert_eq!(c.read_vec(4).await, pattern()[..4].to_vec());
    }
}

#[tokio::test]
async fn export_name_of_unknown_export_closes_the_connection() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_EXPORT_NAME, b"nope").await;
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn list_reveals_no_names() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_LIST, &[]).await;
    let replies = c.read_option_replies().await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].reply_type, REP_ACK);
    c.send_option(OPT_LIST, b"junk").await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_INVALID);
}

#[tokio::test]
async fn starttls_is_refused() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_STARTTLS, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_UNSUP);
    c.send_option(OPT_STARTTLS, b"x").await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_INVALID);
}

#[tokio::test]
async fn unknown_options_are_unsupported_and_skipped() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    for (opt, data) in [
        (4u32, &b""[..]),
        (11, b"abc"),
        (0xdead_beef, &[0u8; 300][..]),
        (0, b"z"),
    ] {
        c.send_option(opt, data).await;
        let r = c.read_option_reply().await;
        assert_eq!((r.option, r.reply_type), (opt, REP_ERR_UNSUP));
    }
    c.send_option(OPT_GO, &info_data("rw", &[])).await;
    assert_eq!(
        c.read_option_replies().await.last().unwrap().reply_type,
        REP_ACK
    );
}

#[tokio::test]
async fn malformed_option_data_is_invalid() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_STRUCTURED_REPLY, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    let mut long_name = info_data("rw", &[]);
    long_name[..4].copy_from_slice(&1000u32.to_be_bytes());
    let mut nul = info_data("r\0w", &[]);
    nul[4] = b'r';
    let cases: Vec<(u32, Vec<u8>)> = vec![
        (OPT_GO, vec![]),                                   // no name length
        (OPT_GO, vec![0, 0]),                               // truncated name length
        (OPT_GO, long_name),                                // name length past the data
        (OPT_GO, info_data("rw", &[1, 2])[..11].to_vec()),  // truncated request list
        (OPT_GO, [info_data("rw", &[]), vec![0]].concat()), // trailing byte
        (OPT_INFO, info_data("r\0w", &[])),                 // NUL in the name
        (OPT_INFO, info_data(&"x".repeat(4097), &[])),      // name longer than 4096
        (
            OPT_INFO,
            [
                4u32.to_be_bytes().to_vec(),
                vec![0xff, 0xfe, 0xfd, 0xfc],
                vec![0, 0],
            ]
            .concat(),
        ), // not UTF-8
        (
            OPT_SET_META_CONTEXT,
            meta_data("rw", &[BASE_ALLOCATION])[..20].to_vec(),
        ),
        (
            OPT_LIST_META_CONTEXT,
            vec![0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ), // 4 billion queries, no data
        (OPT_STRUCTURED_REPLY, vec![1]),
    ];
    for (opt, data) in cases {
        c.send_option(opt, &data).await;
        let r = c.read_option_reply().await;
        assert_eq!(
            (r.option, r.reply_type),
            (opt, REP_ERR_INVALID),
            "option {opt} data {data:?}"
        );
    }
    c.send_option(OPT_GO, &info_data("rw", &[])).await;
    assert_eq!(
        c.read_option_replies().await.last().unwrap().reply_type,
        REP_ACK
    );
}

#[tokio::test]
async fn oversized_option_is_skipped_or_closes() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    // Too long to read into memory, short enough to skip: NBD_REP_ERR_TOO_BIG and carry on.
    c.send_option(OPT_GO, &vec![7u8; 100_000]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_TOO_BIG);
    c.send_option(OPT_LIST, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    // A 4 GiB option: the server hangs up rather than read it.
    let h = OptionHeader {
        option: OPT_GO,
        length: u32::MAX,
    };
    c.s.write_all(&h.encode()).await.unwrap();
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn oversized_export_name_closes() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    let h = OptionHeader {
        option: OPT_EXPORT_NAME,
        length: 70_000,
    };
    c.s.write_all(&h.encode()).await.unwrap();
    c.expect_closed().await;
}

#[tokio::test]
async fn bad_option_magic_closes_the_connection() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    let mut h = OptionHeader {
        option: OPT_LIST,
        length: 0,
    }
    .encode();
    h[0] = b'X';
    c.s.write_all(&h).await.unwrap();
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn truncated_option_data_ends_the_connection_without_a_crash() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    let h = OptionHeader {
        option: OPT_GO,
        length: 100,
    };
    c.s.write_all(&h.encode()).await.unwrap();
    c.s.write_all(&[0u8; 10]).await.unwrap();
    assert!(matches!(c.finish().await, Err(NbdError::Io(_))));
}

#[tokio::test]
async fn meta_contexts_need_structured_replies_and_list_base_allocation() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_SET_META_CONTEXT, &meta_data("rw", &[BASE_ALLOCATION]))
        .await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_INVALID);
    c.send_option(OPT_LIST_META_CONTEXT, &meta_data("rw", &[]))
        .await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_INVALID);

    c.send_option(OPT_STRUCTURED_REPLY, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    for queries in [
        &[][..],
        &["base:"][..],
        &[BASE_ALLOCATION][..],
        &["qemu:x", "base:"][..],
    ] {
        c.send_option(OPT_LIST_META_CONTEXT, &meta_data("rw", queries))
            .await;
        let replies = c.read_option_replies().await;
        assert_eq!(replies.len(), 2, "{queries:?}");
        assert_eq!(replies[0].reply_type, REP_META_CONTEXT);
        assert_eq!(&replies[0].data[4..], BASE_ALLOCATION.as_bytes());
        assert_eq!(replies[1].reply_type, REP_ACK);
    }
    for queries in [
        &["qemu:dirty-bitmap:a"][..],
        &["base:other"][..],
        &["nocolon"][..],
    ] {
        c.send_option(OPT_LIST_META_CONTEXT, &meta_data("rw", queries))
            .await;
        let replies = c.read_option_replies().await;
        assert_eq!(replies.len(), 1, "{queries:?}");
        assert_eq!(replies[0].reply_type, REP_ACK);
    }
    c.send_option(
        OPT_SET_META_CONTEXT,
        &meta_data("rw", &["base:", "x-foo:bar", BASE_ALLOCATION]),
    )
    .await;
    let replies = c.read_option_replies().await;
    assert_eq!(replies.len(), 2);
    assert_eq!(u32_at(&replies[0].data, 0), BASE_ALLOCATION_ID);
    assert_eq!(&replies[0].data[4..], BASE_ALLOCATION.as_bytes());

    c.send_option(OPT_GO, &info_data("rw", &[])).await;
    let flags = u16_at(&c.read_option_replies().await[0].data, 10);
    assert_ne!(flags & FLAG_SEND_DF, 0);
    c.request(CMD_BLOCK_STATUS, 0, 3, 0, 4096).await;
    let chunk = c.read_chunk().await;
    assert_eq!(chunk.chunk_type, REPLY_TYPE_BLOCK_STATUS);
}

#[tokio::test]
async fn meta_context_for_another_export_does_not_enable_block_status() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_STRUCTURED_REPLY, &[]).await;
    c.read_option_reply().await;
    c.send_option(OPT_SET_META_CONTEXT, &meta_data("ro", &[BASE_ALLOCATION]))
        .await;
    assert_eq!(c.read_option_replies().await.len(), 2);
    c.send_option(OPT_GO, &info_data("rw", &[])).await;
    c.read_option_replies().await;
    c.request(CMD_BLOCK_STATUS, 0, 3, 0, 4096).await;
    let chunk = c.read_chunk().await;
    assert_eq!(chunk.error(), EINVAL);
}

#[tokio::test]
async fn endless_options_end_the_connection() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    for _ in 0..1024 {
        c.send_option(OPT_LIST, &[]).await;
        assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    }
    // The server hangs up instead of reading this one.
    let _ =
        c.s.write_all(
            &OptionHeader {
                option: OPT_LIST,
                length: 0,
            }
            .encode(),
        )
        .await;
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn silent_client_times_out() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let mut c = connect_with(fixture().table, config);
    c.greet(FIXED).await;
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::HandshakeTimeout)));
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_never_crashes() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    for round in 0..200 {
        let f = fixture();
        let mut c = connect(f.table);
        c.greet(FIXED).await;
        // Valid-looking option headers with random options, lengths and data.
        let mut bytes = Vec::new();
        for _ in 0..rng.gen_range(1..6) {
            let option = if rng.gen_bool(0.5) {
                rng.gen_range(0..12)
            } else {
                rng.gen()
            };
            let len: u32 = rng.gen_range(0..64);
            bytes.extend_from_slice(
                &OptionHeader {
                    option,
                    length: len,
                }
                .encode(),
            );
            if rng.gen_bool(0.2) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            bytes.extend((0..len).map(|_| rng.gen::<u8>()));
        }
        let _ = c.s.write_all(&bytes).await;
        let result = c.finish().await;
        // Either a clean end, a protocol error, or an I/O error from the hang-up: never a panic
        // (finish() would fail) and never a hang.
        let _ = (round, result);
    }
}
