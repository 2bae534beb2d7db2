//! `NBD_OPT_STARTTLS` with pre-shared keys: TLS is required before anything else, the upgrade
//! carries the handshake on, and clients without the right key get nowhere.

mod common;

use std::sync::Arc;

use common::*;
use ims_nbd::protocol::*;
use ims_nbd::{NbdError, PskKeys, PskTls, TlsUpgrade};
use openssl::ssl::SslVersion;
use tokio::io::AsyncWriteExt;

const FIXED: u32 = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;
const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn server_tls() -> Arc<dyn TlsUpgrade> {
    let keys = PskKeys::parse(&format!("qemu:{}\nother:{}\n", hex(&KEY), hex(&[7; 16]))).unwrap();
    Arc::new(PskTls::new(keys).unwrap())
}

/// Greets a TLS-requiring server and upgrades with `identity`/`key`.
async fn upgraded(identity: &str, key: &[u8], max: Option<SslVersion>) -> (Client, Fixture) {
    let f = fixture();
    let mut c = connect_tls(f.table.clone(), server_tls());
    c.greet(FIXED).await;
    c.send_option(OPT_STARTTLS, &[]).await;
    let ack = c.read_option_reply().await;
    assert_eq!((ack.option, ack.reply_type), (OPT_STARTTLS, REP_ACK));
    assert!(ack.data.is_empty());
    c.start_tls(&psk_client(identity, key, max))
        .await
        .expect("TLS handshake with the right key");
    (c, f)
}

/// Reads `len` bytes at `offset` with a simple read; returns the data.
async fn simple_read(c: &mut Client, cookie: u64, offset: u64, len: u32) -> Vec<u8> {
    c.request(CMD_READ, 0, cookie, offset, len).await;
    assert_eq!(c.read_simple().await, (0, cookie));
    c.read_vec(len as usize).await
}

#[tokio::test]
async fn options_before_starttls_are_refused_with_tls_reqd() {
    let f = fixture();
    let mut c = connect_tls(f.table.clone(), server_tls());
    c.greet(FIXED).await;
    for (option, data) in [
        (OPT_GO, info_data("rw", &[])),
        (OPT_INFO, info_data("ro", &[])),
        (OPT_LIST, vec![]),
        (OPT_STRUCTURED_REPLY, vec![]),
        (OPT_LIST_META_CONTEXT, meta_data("rw", &[])),
        (99, b"whatever".to_vec()),
    ] {
        c.send_option(option, &data).await;
        let reply = c.read_option_reply().await;
        assert_eq!(
            (reply.option, reply.reply_type),
            (option, REP_ERR_TLS_REQD),
            "option {option}"
        );
    }
    // STARTTLS with data is malformed, not an upgrade.
    c.send_option(OPT_STARTTLS, b"x").await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_INVALID);
    // ABORT still works and ends the connection cleanly.
    c.send_option(OPT_ABORT, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    assert!(c.finish().await.is_ok());
    assert_eq!(f.rw.snapshot(), pattern());
}

#[tokio::test]
async fn export_name_before_starttls_closes_the_connection() {
    let mut c = connect_tls(fixture().table, server_tls());
    c.greet(FIXED).await;
    c.send_option(OPT_EXPORT_NAME, b"rw").await;
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn starttls_then_go_serves_the_export_over_tls() {
    let (mut c, f) = upgraded("qemu", &KEY, None).await;
    // Haggling continues on the TLS stream; a second STARTTLS is refused.
    c.send_option(OPT_STARTTLS, &[]).await;
    let again = c.read_option_reply().await;
    assert_eq!(again.reply_type, REP_ERR_INVALID);
    assert!(String::from_utf8_lossy(&again.data).contains("already"));
    let flags = c.open_after_greeting("rw", true, true).await;
    assert_eq!(flags & FLAG_READ_ONLY, 0);
    c.request(CMD_READ, 0, 1, 0, 64 << 10).await;
    let got = c.structured_read(1, 0, 64 << 10).await.unwrap();
    assert_eq!(got, pattern()[..64 << 10]);
    c.write(0, 2, 4096, &[0xab; 8192]).await;
    match c.read_any().await {
        AnyReply::Simple { error, cookie } => assert_eq!((error, cookie), (0, 2)),
        AnyReply::Chunk(chunk) => {
            assert_eq!((chunk.cookie, chunk.chunk_type), (2, REPLY_TYPE_NONE))
        }
    }
    c.request(CMD_DISC, 0, 3, 0, 0).await;
    c.expect_closed().await;
    let ended = c.finish().await;
    assert!(ended.is_ok(), "{ended:?}");
    let mut expected = pattern();
    expected[4096..4096 + 8192].fill(0xab);
    assert_eq!(f.rw.snapshot(), expected);
}

#[tokio::test]
async fn tls_1_2_ecdhe_psk_clients_are_served_too() {
    let (mut c, _f) = upgraded("other", &[7; 16], Some(SslVersion::TLS1_2)).await;
    c.open_after_greeting("ro", false, false).await;
    assert_eq!(
        simple_read(&mut c, 9, 512 << 10, 8192).await,
        vec![0x5a; 8192]
    );
}

#[tokio::test]
async fn state_negotiated_in_the_clear_is_forgotten_after_starttls() {
    // Nothing can be negotiated in the clear in FORCEDTLS mode; check that the upgrade starts
    // haggling afresh anyway: meta contexts need structured replies negotiated over TLS.
    let (mut c, _f) = upgraded("qemu", &KEY, None).await;
    c.send_option(OPT_SET_META_CONTEXT, &meta_data("rw", &[BASE_ALLOCATION]))
        .await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_INVALID);
}

#[tokio::test]
async fn a_wrong_key_or_unknown_identity_fails_the_handshake() {
    for (identity, key, max) in [
        ("qemu", [9u8; 32].as_slice(), None),
        ("qemu", [9u8; 32].as_slice(), Some(SslVersion::TLS1_2)),
        ("mallory", KEY.as_slice(), None),
        ("mallory", KEY.as_slice(), Some(SslVersion::TLS1_2)),
    ] {
        let f = fixture();
        let mut c = connect_tls(f.table.clone(), server_tls());
        c.greet(FIXED).await;
        c.send_option(OPT_STARTTLS, &[]).await;
        assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
        let refused = c.start_tls(&psk_client(identity, key, max)).await;
        assert!(refused.is_err(), "{identity} {max:?}: handshake succeeded");
        let ended = c.finish().await;
        assert!(
            matches!(ended, Err(NbdError::Tls(_))),
            "{identity} {max:?}: {ended:?}"
        );
        assert_eq!(f.rw.snapshot(), pattern());
    }
}

#[tokio::test]
async fn bytes_sent_before_the_starttls_ack_are_refused() {
    let mut c = connect_tls(fixture().table, server_tls());
    c.greet(FIXED).await;
    // STARTTLS and, in the same write, an option in the clear: the client did not wait.
    let mut bytes = OptionHeader {
        option: OPT_STARTTLS,
        length: 0,
    }
    .encode()
    .to_vec();
    bytes.extend_from_slice(
        &OptionHeader {
            option: OPT_LIST,
            length: 0,
        }
        .encode(),
    );
    c.s.write_all(&bytes).await.unwrap();
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Protocol(_))));
}

#[tokio::test]
async fn garbage_instead_of_a_tls_hello_ends_the_connection() {
    let mut c = connect_tls(fixture().table, server_tls());
    c.greet(FIXED).await;
    c.send_option(OPT_STARTTLS, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ACK);
    c.s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    c.s.write_all(&[0u8; 4096]).await.unwrap();
    c.expect_closed().await;
    assert!(matches!(c.finish().await, Err(NbdError::Tls(_))));
}

#[tokio::test]
async fn a_server_without_tls_does_not_offer_it() {
    let mut c = connect(fixture().table);
    c.greet(FIXED).await;
    c.send_option(OPT_STARTTLS, &[]).await;
    assert_eq!(c.read_option_reply().await.reply_type, REP_ERR_UNSUP);
    // And nothing else is refused for want of TLS.
    c.open_after_greeting("ro", false, false).await;
}
