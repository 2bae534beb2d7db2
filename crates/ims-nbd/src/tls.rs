//! TLS for NBD connections (`NBD_OPT_STARTTLS`), and its pre-shared-key implementation.
//!
//! The handshake code sees only [`TlsUpgrade`]: it hands over the plain connection once the client
//! has asked for TLS and gets back an encrypted one. [`PskTls`] is the upgrade qemu's clients speak
//! with `--object tls-creds-psk,...`: TLS 1.3 (or TLS 1.2 with an ephemeral-key PSK cipher) where the
//! client proves it holds the key of a known identity, without certificates.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use openssl::ssl::{Ssl, SslContext, SslMethod, SslOptions, SslVersion};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

/// A byte stream a connection runs over: plain TCP, TLS, or an in-memory pipe.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// An owned [`Transport`] of any kind.
pub type BoxedTransport = Box<dyn Transport>;

/// What [`TlsUpgrade::upgrade`] returns.
pub type UpgradeFuture<'a> = Pin<Box<dyn Future<Output = io::Result<BoxedTransport>> + Send + 'a>>;

/// Turns a plain connection into a TLS one, server side. A server given one requires TLS on every
/// connection: options other than `NBD_OPT_STARTTLS` and `NBD_OPT_ABORT` are refused with
/// `NBD_REP_ERR_TLS_REQD` until the upgrade succeeded.
pub trait TlsUpgrade: Send + Sync {
    /// Runs the server side of a TLS handshake on `stream`, of which nothing has been read past the
    /// client's `NBD_OPT_STARTTLS`. Returns the encrypted stream once the client is authenticated;
    /// an error (and the connection is then dropped) when the client's credentials are refused or
    /// the handshake breaks. Never blocks the executor; bounded in time only by the caller.
    fn upgrade(&self, stream: BoxedTransport) -> UpgradeFuture<'_>;
}

/// Longest identity accepted in a keys file (OpenSSL's limit on PSK identities is 128 bytes).
const MAX_IDENTITY_LEN: usize = 128;
/// Longest key accepted, in bytes (OpenSSL hands the callback a 512-byte buffer at most).
const MAX_KEY_LEN: usize = 256;
/// Shortest key accepted, in bytes: shorter keys are guessable.
const MIN_KEY_LEN: usize = 16;

/// Pre-shared keys by identity, as in qemu's `keys.psk`: one `identity:hexkey` line per client.
#[derive(Clone, Default)]
pub struct PskKeys {
    keys: HashMap<String, Vec<u8>>,
}

/// Why a keys file was refused. Never quotes a key.
#[derive(Debug, Error)]
pub enum PskKeysError {
    /// The file could not be read.
    #[error("cannot read the PSK file: {0}")]
    Read(#[from] io::Error),
    /// A line is not `identity:hexkey` with a usable identity and key.
    #[error("PSK file line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file holds no key.
    #[error("the PSK file holds no key")]
    Empty,
}

impl PskKeys {
    /// Parses `identity:hexkey` lines. Blank lines are skipped; a key must be 16 to 256 bytes of hex,
    /// an identity 1 to 128 bytes without `:`, and no identity may appear twice.
    pub fn parse(text: &str) -> Result<PskKeys, PskKeysError> {
        let mut keys = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |reason| PskKeysError::Line { line, reason };
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (identity, hex) = trimmed
                .split_once(':')
                .ok_or(err("expected identity:hexkey"))?;
            if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN {
                return Err(err("the identity must be 1 to 128 bytes"));
            }
            let key = decode_hex(hex).ok_or(err("the key is not hexadecimal"))?;
            if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
                return Err(err(
                    "the key must be 16 to 256 bytes (32 to 512 hex digits)",
                ));
            }
            if keys.insert(identity.to_owned(), key).is_some() {
                return Err(err("the identity appears twice"));
            }
        }
        if keys.is_empty() {
            return Err(PskKeysError::Empty);
        }
        Ok(PskKeys { keys })
    }

    /// Reads and parses a keys file (see [`PskKeys::parse`]).
    pub fn from_file(path: &Path) -> Result<PskKeys, PskKeysError> {
        PskKeys::parse(&std::fs::read_to_string(path)?)
    }

    /// The identities that have a key, sorted.
    pub fn identities(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    fn key(&self, identity: &[u8]) -> Option<&[u8]> {
        let identity = std::str::from_utf8(identity).ok()?;
        self.keys.get(identity).map(Vec::as_slice)
    }
}

impl fmt::Debug for PskKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PskKeys")
            .field("identities", &self.identities())
            .finish_non_exhaustive()
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let pairs = hex.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    pairs
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// TLS with pre-shared keys, as qemu's `tls-creds-psk` (GnuTLS) speaks it: TLS 1.3 with an external
/// PSK (key exchange with ephemeral (EC)DHE), or TLS 1.2 with an ECDHE-PSK cipher. A client whose
/// identity is unknown or whose key differs fails the handshake. No session tickets are issued.
pub struct PskTls {
    context: SslContext,
}

impl fmt::Debug for PskTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PskTls").finish_non_exhaustive()
    }
}

/// TLS 1.2 ciphers offered: PSK with an ephemeral key exchange, authenticated encryption first.
const TLS12_PSK_CIPHERS: &str = "ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384:\
                                 ECDHE-PSK-AES128-CBC-SHA256";
/// TLS 1.3 suites offered. An external PSK set through the PSK callback is bound to SHA-256.
const TLS13_SUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

impl PskTls {
    /// A server-side TLS configuration accepting the clients of `keys`.
    pub fn new(keys: PskKeys) -> io::Result<PskTls> {
        let keys = Arc::new(keys);
        let mut builder = SslContext::builder(SslMethod::tls_server()).map_err(io::Error::other)?;
        builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(io::Error::other)?;
        builder
            .set_cipher_list(TLS12_PSK_CIPHERS)
            .map_err(io::Error::other)?;
        builder
            .set_ciphersuites(TLS13_SUITES)
            .map_err(io::Error::other)?;
        builder.set_num_tickets(0).map_err(io::Error::other)?;
        builder.set_options(SslOptions::NO_TICKET | SslOptions::NO_RENEGOTIATION);
        builder.set_psk_server_callback(move |_ssl, identity, out| {
            // Returning 0 refuses the identity: the handshake then fails.
            let Some(key) = identity.and_then(|id| keys.key(id)) else {
                tracing::info!("NBD TLS client offered an unknown PSK identity");
                return Ok(0);
            };
            if key.len() > out.len() {
                return Ok(0);
            }
            out[..key.len()].copy_from_slice(key);
            Ok(key.len())
        });
        Ok(PskTls {
            context: builder.build(),
        })
    }
}

impl TlsUpgrade for PskTls {
    fn upgrade(&self, stream: BoxedTransport) -> UpgradeFuture<'_> {
        Box::pin(async move {
            let ssl = Ssl::new(&self.context).map_err(io::Error::other)?;
            let mut tls = SslStream::new(ssl, stream).map_err(io::Error::other)?;
            Pin::new(&mut tls).accept().await.map_err(|e| {
                let cause = e
                    .ssl_error()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.to_string());
                io::Error::new(io::ErrorKind::PermissionDenied, cause)
            })?;
            tracing::debug!(
                version = tls.ssl().version_str(),
                cipher = tls.ssl().current_cipher().map(|c| c.name()),
                "NBD TLS established"
            );
            Ok(Box::new(tls) as BoxedTransport)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn keys_files_parse_like_qemus() {
        let keys =
            PskKeys::parse(&format!("qemu:{KEY}\n\n  alice:{}  \n", KEY.to_uppercase())).unwrap();
        assert_eq!(keys.identities(), ["alice", "qemu"]);
        assert_eq!(keys.key(b"qemu").unwrap()[..2], [0x00, 0x11]);
        assert_eq!(keys.key(b"alice").unwrap()[15], 0xff);
        assert!(keys.key(b"bob").is_none());
        assert!(
            !format!("{keys:?}").contains("0011"),
            "keys stay out of debug output"
        );
    }

    #[test]
    fn bad_keys_files_are_refused_with_the_line() {
        for (text, line) in [
            ("", 0),
            ("\n\n", 0),
            ("qemu", 1),
            (&format!(":{KEY}") as &str, 1),
            (&format!("qemu:{KEY}\nqemu:{KEY}"), 2),
            ("qemu:0011", 1),
            (&format!("qemu:{KEY}0"), 1),
            (&format!("qemu:{}zz", &KEY[2..]), 1),
            (&format!("a:{KEY}\n{}:{KEY}", "x".repeat(129)), 2),
            (&format!("qemu:{}", "ab".repeat(257)), 1),
        ] {
            match PskKeys::parse(text) {
                Err(PskKeysError::Empty) => assert_eq!(line, 0, "{text:?}"),
                Err(PskKeysError::Line { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }
}
