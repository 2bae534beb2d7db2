//! A small NBD client speaking raw bytes, and in-memory exports, for driving the server in tests.

#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ims_formats::BlockStatus;
use ims_nbd::protocol::*;
use ims_nbd::{
    BoxedTransport, Export, ExportBackend, ExportTable, Extent, NbdError, NbdServer, ServerConfig,
    TlsUpgrade,
};
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Granularity of the in-memory disk's block status.
pub const BLOCK: u64 = 4096;

/// A disk in memory. Block status is computed from content: 4 KiB blocks of zeros are holes.
pub struct MemDisk {
    pub data: Mutex<Vec<u8>>,
    pub flushes: AtomicUsize,
    pub trims: Mutex<Vec<(u64, u64)>>,
}

impl MemDisk {
    pub fn new(data: Vec<u8>) -> Arc<MemDisk> {
        Arc::new(MemDisk {
            data: Mutex::new(data),
            flushes: AtomicUsize::new(0),
            trims: Mutex::new(Vec::new()),
        })
    }
    pub fn snapshot(&self) -> Vec<u8> {
        self.data.lock().unwrap().clone()
    }
}

impl ExportBackend for MemDisk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.data.lock().unwrap();
        let start = offset as usize;
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.data.lock().unwrap();
        let start = offset as usize;
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.trims.lock().unwrap().push((offset, len));
        Ok(())
    }
    fn block_status(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        let data = self.data.lock().unwrap();
        let mut out: Vec<Extent> = Vec::new();
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let block_end = ((at / BLOCK) + 1) * BLOCK;
            let stop = block_end.min(data.len() as u64);
            let zero = data[(at / BLOCK * BLOCK) as usize..stop as usize]
                .iter()
                .all(|&b| b == 0);
            let status = if zero {
                BlockStatus::Unallocated
            } else {
                BlockStatus::Data
            };
            let n = block_end.min(end) - at;
            match out.last_mut() {
                Some(last) if last.status == status => last.length += n,
                _ => out.push(Extent { length: n, status }),
            }
            at += n;
        }
        Ok(out)
    }
}

/// A backend whose every call fails, or panics.
pub struct Broken {
    pub panic: bool,
}

impl ExportBackend for Broken {
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        if self.panic {
            panic!("backend bug");
        }
        Err(io::Error::other("disk on fire at /secret/path"))
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::StorageFull))
    }
    fn block_status(&self, _: u64, _: u64) -> io::Result<Vec<Extent>> {
        if self.panic {
            panic!("backend bug");
        }
        Err(io::Error::other("metadata unreadable"))
    }
}

/// Size of the standard test exports.
pub const SIZE: u64 = 1 << 20;

/// The standard content: a pattern in the first 64 KiB and at 512 KiB, zeros elsewhere.
pub fn pattern() -> Vec<u8> {
    let mut data = vec![0u8; SIZE as usize];
    for (i, b) in data[..64 << 10].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    for b in &mut data[512 << 10..(512 << 10) + 8192] {
        *b = 0x5a;
    }
    data
}

/// Exports: `rw` (read-write MemDisk), `ro` (read-only MemDisk with a description), `broken`
/// (failing backend), `panicky` (panicking backend).
pub struct Fixture {
    pub table: Arc<ExportTable>,
    pub rw: Arc<MemDisk>,
    pub ro: Arc<MemDisk>,
}

pub fn fixture() -> Fixture {
    let table = Arc::new(ExportTable::new());
    let rw = MemDisk::new(pattern());
    let ro = MemDisk::new(pattern());
    table.insert("rw", Export::read_write(rw.clone(), SIZE));
    table.insert(
        "ro",
        Export::read_only(ro.clone(), SIZE).with_description("a read-only disk"),
    );
    table.insert(
        "broken",
        Export::read_write(Arc::new(Broken { panic: false }), SIZE),
    );
    table.insert(
        "panicky",
        Export::read_only(Arc::new(Broken { panic: true }), SIZE),
    );
    Fixture { table, rw, ro }
}

/// One in-memory connection to a server (plain, or TLS after [`Client::start_tls`]).
pub struct Client {
    pub s: BoxedTransport,
    pub server: JoinHandle<Result<(), NbdError>>,
}

pub fn connect(table: Arc<ExportTable>) -> Client {
    connect_with(table, ServerConfig::default())
}

pub fn connect_with(table: Arc<ExportTable>, config: ServerConfig) -> Client {
    connect_to(NbdServer::with_config(table, config))
}

/// A connection to a server that requires TLS set up by `tls`.
pub fn connect_tls(table: Arc<ExportTable>, tls: Arc<dyn TlsUpgrade>) -> Client {
    connect_to(NbdServer::with_tls(table, ServerConfig::default(), tls))
}

fn connect_to(server: NbdServer) -> Client {
    let (client, server_end) = tokio::io::duplex(256 << 10);
    let server = tokio::spawn(async move { server.serve_connection(server_end).await });
    Client {
        s: Box::new(client),
        server,
    }
}

/// A TLS client context offering the PSK `identity`/`key`, at most TLS `max` (None: 1.3).
pub fn psk_client(identity: &str, key: &[u8], max: Option<SslVersion>) -> SslContext {
    let (identity, key) = (identity.to_owned(), key.to_vec());
    let mut b = SslContext::builder(SslMethod::tls_client()).unwrap();
    b.set_max_proto_version(max).unwrap();
    b.set_cipher_list("ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256")
        .unwrap();
    b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
        id_out[..identity.len()].copy_from_slice(identity.as_bytes());
        id_out[identity.len()] = 0;
        key_out[..key.len()].copy_from_slice(&key);
        Ok(key.len())
    });
    b.build()
}

/// An option reply.
#[derive(Debug)]
pub struct OptReply {
    pub option: u32,
    pub reply_type: u32,
    pub data: Vec<u8>,
}

/// Any transmission reply.
#[derive(Debug)]
pub enum AnyReply {
    Simple { error: u32, cookie: u64 },
    Chunk(Chunk),
}

/// A structured reply chunk.
#[derive(Debug)]
pub struct Chunk {
    pub flags: u16,
    pub chunk_type: u16,
    pub cookie: u64,
    pub payload: Vec<u8>,
}

impl Chunk {
    pub fn error(&self) -> u32 {
        assert!(
            self.chunk_type & (1 << 15) != 0,
            "not an error chunk: {self:?}"
        );
        u32::from_be_bytes(self.payload[..4].try_into().unwrap())
    }
}

pub fn info_data(name: &str, requests: &[u16]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(&(requests.len() as u16).to_be_bytes());
    for r in requests {
        d.extend_from_slice(&r.to_be_bytes());
    }
    d
}

pub fn meta_data(name: &str, queries: &[&str]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(&(queries.len() as u32).to_be_bytes());
    for q in queries {
        d.extend_from_slice(&(q.len() as u32).to_be_bytes());
        d.extend_from_slice(q.as_bytes());
    }
    d
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// Reads the greeting, checks it, answers with `client_flags`; returns the handshake flags.
    pub async fn greet(&mut self, client_flags: u32) -> u16 {
        let mut g = [0u8; 18];
        self.read_exact(&mut g).await;
        assert_eq!(&g[..8], &NBD_MAGIC.to_be_bytes());
        assert_eq!(&g[8..16], &IHAVEOPT.to_be_bytes());
        self.s.write_all(&client_flags.to_be_bytes()).await.unwrap();
        u16::from_be_bytes([g[16], g[17]])
    }

    pub async fn read_exact(&mut self, buf: &mut [u8]) {
        tokio::time::timeout(TIMEOUT, self.s.read_exact(buf))
            .await
            .expect("server answers")
            .expect("read");
    }

    pub async fn read_vec(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.read_exact(&mut v).await;
        v
    }

    pub async fn send_option(&mut self, option: u32, data: &[u8]) {
        let h = OptionHeader {
            option,
            length: data.len() as u32,
        };
        self.s.write_all(&h.encode()).await.unwrap();
        self.s.write_all(data).await.unwrap();
    }

    pub async fn read_option_reply(&mut self) -> OptReply {
        let h = self.read_vec(20).await;
        assert_eq!(&h[..8], &OPTION_REPLY_MAGIC.to_be_bytes());
        let option = u32::from_be_bytes(h[8..12].try_into().unwrap());
        let reply_type = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        let data = self.read_vec(len as usize).await;
        OptReply {
            option,
            reply_type,
            data,
        }
    }

    /// Reads replies up to and including the first that is not `NBD_REP_INFO`/`SERVER`/`META_CONTEXT`.
    pub async fn read_option_replies(&mut self) -> Vec<OptReply> {
        let mut out = Vec::new();
        loop {
            let r = self.read_option_reply().await;
            let last = !matches!(r.reply_type, REP_INFO | REP_SERVER | REP_META_CONTEXT);
            out.push(r);
            if last {
                return out;
            }
        }
    }

    /// Full handshake: greet, optionally structured replies and `base:allocation`, then GO.
    /// Returns the transmission flags.
    pub async fn open(&mut self, name: &str, structured: bool, meta: bool) -> u16 {
        self.greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).await;
        self.open_after_greeting(name, structured, meta).await
    }

    /// [`Client::open`] without the greeting (already done, or done before TLS).
    pub async fn open_after_greeting(&mut self, name: &str, structured: bool, meta: bool) -> u16 {
        if structured {
            self.send_option(OPT_STRUCTURED_REPLY, &[]).await;
            assert_eq!(self.read_option_reply().await.reply_type, REP_ACK);
        }
        if meta {
            self.send_option(OPT_SET_META_CONTEXT, &meta_data(name, &[BASE_ALLOCATION]))
                .await;
            let replies = self.read_option_replies().await;
            assert_eq!(replies.len(), 2);
            assert_eq!(replies[0].reply_type, REP_META_CONTEXT);
            assert_eq!(replies[1].reply_type, REP_ACK);
        }
        self.send_option(OPT_GO, &info_data(name, &[])).await;
        let replies = self.read_option_replies().await;
        assert_eq!(
            replies.last().unwrap().reply_type,
            REP_ACK,
            "GO {name}: {replies:?}"
        );
        let export = &replies[0].data;
        assert_eq!(u16::from_be_bytes([export[0], export[1]]), INFO_EXPORT);
        u16::from_be_bytes([export[10], export[11]])
    }

    pub async fn request(
        &mut self,
        command: u16,
        flags: u16,
        cookie: u64,
        offset: u64,
        length: u32,
    ) {
        let h = RequestHeader {
            flags,
            command,
            cookie,
            offset,
            length,
        };
        self.s.write_all(&h.encode()).await.unwrap();
    }

    pub async fn write(&mut self, flags: u16, cookie: u64, offset: u64, data: &[u8]) {
        self.request(CMD_WRITE, flags, cookie, offset, data.len() as u32)
            .await;
        self.s.write_all(data).await.unwrap();
    }

    /// Runs a TLS client handshake with `context` on the connection and continues over TLS.
    pub async fn start_tls(&mut self, context: &SslContext) -> Result<(), openssl::ssl::Error> {
        let plain = std::mem::replace(&mut self.s, Box::new(tokio::io::duplex(1).0));
        let mut tls = tokio_openssl::SslStream::new(Ssl::new(context).unwrap(), plain).unwrap();
        let handshake = std::pin::Pin::new(&mut tls).connect();
        tokio::time::timeout(TIMEOUT, handshake)
            .await
            .expect("TLS handshake ends")?;
        self.s = Box::new(tls);
        Ok(())
    }

    /// Reads a simple reply header; returns (error, cookie).
    pub async fn read_simple(&mut self) -> (u32, u64) {
        let h = self.read_vec(16).await;
        assert_eq!(
            &h[..4],
            &SIMPLE_REPLY_MAGIC.to_be_bytes(),
            "simple reply magic"
        );
        (
            u32::from_be_bytes(h[4..8].try_into().unwrap()),
            u64::from_be_bytes(h[8..16].try_into().unwrap()),
        )
    }

    /// Reads one reply of either kind (simple replies must carry no payload).
    pub async fn read_any(&mut self) -> AnyReply {
        let magic = self.read_vec(4).await;
        if magic == SIMPLE_REPLY_MAGIC.to_be_bytes() {
            let h = self.read_vec(12).await;
            return AnyReply::Simple {
                error: u32::from_be_bytes(h[..4].try_into().unwrap()),
                cookie: u64::from_be_bytes(h[4..].try_into().unwrap()),
            };
        }
        assert_eq!(magic, STRUCTURED_REPLY_MAGIC.to_be_bytes(), "reply magic");
        let h = self.read_vec(16).await;
        let len = u32::from_be_bytes(h[12..16].try_into().unwrap());
        AnyReply::Chunk(Chunk {
            flags: u16::from_be_bytes([h[0], h[1]]),
            chunk_type: u16::from_be_bytes([h[2], h[3]]),
            cookie: u64::from_be_bytes(h[4..12].try_into().unwrap()),
            payload: self.read_vec(len as usize).await,
        })
    }

    pub async fn read_chunk(&mut self) -> Chunk {
        let h = self.read_vec(20).await;
        assert_eq!(
            &h[..4],
            &STRUCTURED_REPLY_MAGIC.to_be_bytes(),
            "structured reply magic"
        );
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        Chunk {
            flags: u16::from_be_bytes([h[4], h[5]]),
            chunk_type: u16::from_be_bytes([h[6], h[7]]),
            cookie: u64::from_be_bytes(h[8..16].try_into().unwrap()),
            payload: self.read_vec(len as usize).await,
        }
    }

    /// Reads chunks until one has `DONE` (all must carry `cookie`).
    pub async fn read_reply_chunks(&mut self, cookie: u64) -> Vec<Chunk> {
        let mut out = Vec::new();
        loop {
            let c = self.read_chunk().await;
            assert_eq!(c.cookie, cookie);
            let done = c.flags & REPLY_FLAG_DONE != 0;
            out.push(c);
            if done {
                return out;
            }
        }
    }

    /// A structured read reassembled: `Ok(bytes)` or `Err(error)`. Checks chunks stay in range and
    /// do not overlap.
    pub async fn structured_read(
        &mut self,
        cookie: u64,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, u32> {
        let chunks = self.read_reply_chunks(cookie).await;
        let mut out = vec![0xEEu8; len as usize];
        let mut covered = vec![false; len as usize];
        for c in &chunks {
            let (at, n) = match c.chunk_type {
                REPLY_TYPE_OFFSET_DATA => {
                    let at = u64::from_be_bytes(c.payload[..8].try_into().unwrap());
                    let data = &c.payload[8..];
                    let rel = (at - offset) as usize;
                    out[rel..rel + data.len()].copy_from_slice(data);
                    (rel, data.len())
                }
                REPLY_TYPE_OFFSET_HOLE => {
                    assert_eq!(c.payload.len(), 12);
                    let at = u64::from_be_bytes(c.payload[..8].try_into().unwrap());
                    let n = u32::from_be_bytes(c.payload[8..12].try_into().unwrap()) as usize;
                    assert!(n > 0);
                    let rel = (at - offset) as usize;
                    out[rel..rel + n].fill(0);
                    (rel, n)
                }
                REPLY_TYPE_NONE => continue,
                _ => return Err(c.error()),
            };
            for flag in &mut covered[at..at + n] {
                assert!(!*flag, "overlapping chunks");
                *flag = true;
            }
        }
        assert!(covered.iter().all(|&c| c), "read not fully covered");
        Ok(out)
    }

    /// Asserts the server closes the connection (EOF, possibly after unread bytes are discarded).
    pub async fn expect_closed(&mut self) {
        let mut sink = Vec::new();
        tokio::time::timeout(TIMEOUT, self.s.read_to_end(&mut sink))
            .await
            .expect("server closes the connection")
            .ok();
    }

    /// Waits for the server task and returns its result.
    pub async fn finish(self) -> Result<(), NbdError> {
        drop(self.s);
        tokio::time::timeout(TIMEOUT, self.server)
            .await
            .expect("server task ends")
            .expect("server task did not panic")
    }
}
