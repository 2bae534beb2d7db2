//! The code behind the fuzz targets of the service's request parsers: the NBD protocol, the AK/SK
//! `Authorization` header, JSON-patch bodies and image-list query strings; and of the chunk object
//! decoder, which reads what the store and replication peers give.
//!
//! This file is shared with the regression test `crates/ims-server/tests/fuzz_regressions.rs`,
//! which includes it with `#[path]`, so a saved input goes through exactly the code its target ran.
//! It therefore uses only crates `ims-server` depends on, and no crate-level attributes.
//!
//! Every function must return normally for any input: a panic in the parsers or in the assertions
//! below (properties the parsers promise) is a bug, and so is a hang or an unbounded allocation.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ims_nbd::protocol::{
    OptionHeader, RequestHeader, WireReader, OPTION_HEADER_LEN, REQUEST_HEADER_LEN,
};
use ims_nbd::{
    BlockStatus, Export, ExportBackend, ExportTable, Extent, NbdServer, ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every target, by name (the names of the `fuzz_targets/*.rs` binaries and the prefixes of the
/// regression files).
pub const TARGETS: [(&str, fn(&[u8])); 5] = [
    ("nbd_session", nbd_session),
    ("sdk_authorization", sdk_authorization),
    ("json_patch", json_patch),
    ("list_query", list_query),
    ("chunk_object", chunk_object),
];

/// Runs target `name` on `data`; false when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => {
            f(data);
            true
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// NBD

/// The export names the NBD target serves: the seeds (captured `qemu-img`/`qemu-io` sessions)
/// open these, so mutations start from a session that reaches transmission.
pub const NBD_READ_ONLY_EXPORT: &str = "fuzz-ro";
/// The read-write export (writes, trims and write-zeroes reach a backend).
pub const NBD_READ_WRITE_EXPORT: &str = "fuzz-rw";
/// Size of both exports.
pub const NBD_DISK_SIZE: usize = 1 << 20;
/// Largest payload the fuzzed server accepts: small, so that one input cannot ask for huge reads.
const NBD_MAX_PAYLOAD: u32 = 256 << 10;

/// A disk in memory: the first half reports as data, the rest as zeros, so that block status and
/// structured reads with holes have both kinds of extent to describe.
struct MemoryDisk {
    bytes: Mutex<Vec<u8>>,
}

impl MemoryDisk {
    fn check(&self, offset: u64, len: usize) -> io::Result<usize> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        match start.checked_add(len) {
            Some(end) if end <= NBD_DISK_SIZE => Ok(start),
            // The server validates every range against the export size before calling a backend.
            _ => panic!("NBD server passed a range past the export: {offset}+{len}"),
        }
    }
}

impl ExportBackend for MemoryDisk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = self.check(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes.lock().unwrap()[start..start + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let start = self.check(offset, buf.len())?;
        self.bytes.lock().unwrap()[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?)?;
        Ok(())
    }

    fn block_status(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        let half = NBD_DISK_SIZE as u64 / 2;
        let end = offset.saturating_add(len).min(NBD_DISK_SIZE as u64);
        let mut extents = Vec::new();
        if offset < half {
            extents.push(Extent { length: half.min(end) - offset, status: BlockStatus::Data });
        }
        if end > half {
            extents.push(Extent { length: end - half.max(offset), status: BlockStatus::Zero });
        }
        Ok(extents)
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// The input is everything a client sends on one NBD connection. The server's session (fixed
/// newstyle handshake, option haggling, then transmission) runs over an in-memory pipe against a
/// read-only and a read-write 1 MiB export; the client's side sends the input, closes, and drains
/// the replies. The session must end (by itself, once the input is consumed) without a panic.
/// The option and request header parsers also run on the input directly.
pub fn nbd_session(data: &[u8]) {
    // A session starts with the 4-byte client flags, then the first option header.
    for at in [0, 4] {
        if let Some(buf) = data.get(at..).and_then(|d| d.first_chunk::<OPTION_HEADER_LEN>()) {
            if let Some(header) = OptionHeader::parse(buf) {
                assert_eq!(&header.encode(), buf, "option header does not round-trip");
            }
        }
    }
    if let Some(buf) = data.first_chunk::<REQUEST_HEADER_LEN>() {
        if let Some(header) = RequestHeader::parse(buf) {
            assert_eq!(&header.encode(), buf, "request header does not round-trip");
        }
    }
    let mut wire = WireReader::new(data);
    while wire.u16().is_some() && wire.u32().is_some() && wire.u64().is_some() {}

    let exports = Arc::new(ExportTable::new());
    let disk = |read_only: bool| {
        let mut bytes = vec![0u8; NBD_DISK_SIZE];
        for (i, b) in bytes[..NBD_DISK_SIZE / 2].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let backend = Arc::new(MemoryDisk { bytes: Mutex::new(bytes) });
        if read_only {
            Export::read_only(backend, NBD_DISK_SIZE as u64)
        } else {
            Export::read_write(backend, NBD_DISK_SIZE as u64)
        }
    };
    exports.insert(NBD_READ_ONLY_EXPORT, disk(true));
    exports.insert(NBD_READ_WRITE_EXPORT, disk(false));
    let config = ServerConfig {
        max_payload: NBD_MAX_PAYLOAD,
        handshake_timeout: Duration::from_secs(5),
        max_connections: 1,
        inflight_bytes_per_connection: 2 * NBD_MAX_PAYLOAD,
    };
    let server = NbdServer::with_config(exports, config);
    let (client, server_side) = tokio::io::duplex(64 << 10);
    let (mut replies, mut requests) = tokio::io::split(client);
    runtime().block_on(async {
        let session = server.serve_connection(server_side);
        let send = async {
            // The server may hang up before reading everything: a broken pipe is expected then.
            let _ = requests.write_all(data).await;
            let _ = requests.shutdown().await;
            drop(requests);
        };
        let drain = async {
            let mut buf = vec![0u8; 64 << 10];
            while matches!(replies.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        let limit = Duration::from_secs(8);
        let (result, (), ()) = tokio::time::timeout(limit, async { tokio::join!(session, send, drain) })
            .await
            .expect("NBD session did not end after the client closed its side");
        // Errors are the normal answer to garbage; only a panic or a hang is a failure.
        let _ = result;
    });
}

// ---------------------------------------------------------------------------------------------
// AK/SK signatures

/// The input is lines: an `Authorization` header value, then a method, a raw path, a raw query
/// string, an `X-Sdk-Date` value, then headers as `name:value`. It runs the whole pure part of
/// `SDK-HMAC-SHA256` verification: parsing the header, canonicalizing the request with the
/// signed headers it names, the string to sign, and the date.
pub fn sdk_authorization(data: &[u8]) {
    use ims_server::signature::{
        canonical_query, canonical_request, canonical_uri, parse_sdk_date, string_to_sign,
        Authorization, ALGORITHM, EMPTY_HASH,
    };
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let authorization = lines.next().unwrap_or("");
    let method = lines.next().unwrap_or("GET");
    let path = lines.next().unwrap_or("/");
    let query = lines.next().unwrap_or("");
    let date = lines.next().unwrap_or("");
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }

    let uri = canonical_uri(path);
    assert!(uri.ends_with('/'), "canonical URI {uri:?} does not end with /");
    assert!(
        uri.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)),
        "canonical URI {uri:?} has a character that should be encoded"
    );
    assert_eq!(canonical_uri(&uri), uri, "canonical URI is not canonical");
    let canonical = canonical_query(query);
    assert_eq!(canonical_query(&canonical), canonical, "canonical query is not canonical");
    let _ = parse_sdk_date(date);

    let Some(auth) = Authorization::parse(authorization) else { return };
    assert!(!auth.access.is_empty(), "parsed an empty access key");
    for name in &auth.signed_headers {
        assert!(!name.is_empty(), "parsed an empty signed header name");
        assert_eq!(*name, name.to_ascii_lowercase(), "signed header name not lowercased");
    }
    let reformatted = format!(
        "{ALGORITHM} Access={}, SignedHeaders={}, Signature={}",
        auth.access,
        auth.signed_headers.join(";"),
        auth.signature
    );
    assert_eq!(
        Authorization::parse(&reformatted).as_ref(),
        Some(&auth),
        "Authorization does not round-trip through {reformatted:?}"
    );
    if let Ok(request) = canonical_request(method, path, query, &headers, &auth.signed_headers, EMPTY_HASH) {
        let _ = string_to_sign(date, &request);
    }
}

// ---------------------------------------------------------------------------------------------
// JSON patch

/// The input is a PATCH body for `/v2/images/{id}`: the first byte picks the media type (even:
/// `openstack-images-v2.1-json-patch`, odd: v2.0), the rest is the body. A body that parses is
/// applied to an image with Glance's rules, as the service does on a copy of the stored image.
pub fn json_patch(data: &[u8]) {
    use ims_server::glance_patch::{parse, PATCH_V20, PATCH_V21};
    let Some((selector, body)) = data.split_first() else { return };
    let media_type = if selector % 2 == 0 { PATCH_V21 } else { PATCH_V20 };
    let Ok(ops) = parse(media_type, body) else { return };
    let ctx = ims_core::RequestContext::new("fuzz".into(), None);
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let mut image = ims_catalog::Image::new(uuid::Uuid::nil(), "project", epoch);
    image.properties.insert("os_distro".into(), "debian".into());
    for op in &ops {
        assert!(!op.path.is_empty(), "parsed an empty operation path");
        // A deeper pointer (`/a/b`, `//a`) keeps its slashes, and no image attribute has one: the
        // use case must refuse it.
        if op.path.contains('/') {
            let refused = ims_core::patch::apply_patch(&ctx, &mut image.clone(), std::slice::from_ref(op));
            assert!(refused.is_err(), "a patch of the nested path {:?} was applied", op.path);
        }
    }
    let before = image.clone();
    if ims_core::patch::apply_patch(&ctx, &mut image, &ops).is_ok() {
        assert_eq!(image.id, before.id, "a patch changed the image id");
        assert_eq!(image.status, before.status, "a patch changed the status");
        assert_eq!(image.checksum, before.checksum, "a patch changed the checksum");
        assert_eq!(image.size, before.size, "a patch changed the size");
    }
}

// ---------------------------------------------------------------------------------------------
// Image-list queries

/// The input is the raw query string of `GET /v2/images`: decoded the way the handler does, then
/// parsed into an image query (filters, `in:` lists, time comparisons, sorting, paging).
pub fn list_query(data: &[u8]) {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else { return };
    let Ok(query) = ims_server::glance_list_query::parse(&pairs) else { return };
    let max = ims_server::glance_list_query::MAX_LIMIT;
    assert!(query.limit <= max, "page limit {} above the maximum {max}", query.limit);
    for (_, value) in &pairs {
        let _ = ims_server::glance_list_query::parse_time(value);
    }
}

/// Largest chunk length the `chunk_object` target claims (8 frames; real chunks reach 4 MiB, but the
/// decoder treats every frame alike and smaller inputs keep the fuzzer fast).
const FUZZ_CHUNK_MAX: usize = 512 << 10;

/// The input drives a chunk object through `ims_store::chunk::decode_in`, the decoder a node runs on
/// every object it fetches from its store or receives from a replication peer. Byte 0 picks the mode,
/// bytes 1-3 (little endian) the chunk length the manifest claims (at most [`FUZZ_CHUNK_MAX`]).
///
/// - Mode bit 0 clear: the rest is the object as stored, decoded in no domain or (bit 1) in one, under
///   an id of the input's choosing. It must be refused, or decode to exactly the claimed length and id.
/// - Mode bit 0 set: the rest, repeated to the claimed length, is a plaintext; the store's own encoder
///   writes its object (framed above 64 KiB), which must decode back to it. Then the object is damaged
///   at the places the input names (up to 4 triples: 2 bytes of position, 1 byte XORed in): it must
///   be refused or still decode to the very same plaintext. No damage may yield other bytes.
pub fn chunk_object(data: &[u8]) {
    use bytes::Bytes;
    use ims_store::chunk::{decode, decode_in, encode, ChunkId};
    use ims_store::EncryptionDomain;

    let [mode, a, b, c, rest @ ..] = data else { return };
    let length = u32::from_le_bytes([*a, *b, *c, 0]) as usize % (FUZZ_CHUNK_MAX + 1);
    if mode & 1 == 0 {
        let domain = (mode & 2 != 0).then(|| EncryptionDomain::new(&[7; 32]));
        let id = ChunkId(std::array::from_fn(|i| rest.get(i).copied().unwrap_or(0)));
        if let Ok(plain) = decode_in(domain.as_ref(), Bytes::copy_from_slice(rest), &id, length) {
            assert_eq!(plain.len(), length, "decoded to another length than claimed");
        }
        return;
    }
    if rest.is_empty() {
        return;
    }
    let plain: Bytes = rest.iter().cycle().take(length).copied().collect::<Vec<u8>>().into();
    let id = ChunkId::of(&plain);
    let object: Vec<u8> = encode(std::slice::from_ref(&plain)).iter().flat_map(|b| b.iter().copied()).collect();
    let decoded = decode(Bytes::from(object.clone()), &id, length).expect("the encoder's object decodes");
    assert_eq!(decoded, plain, "round trip");
    if object.is_empty() {
        return;
    }
    let mut damaged = object.clone();
    for damage in rest.chunks_exact(3).take(4) {
        let at = usize::from(u16::from_le_bytes([damage[0], damage[1]])) * object.len() / 65_536;
        damaged[at] ^= damage[2];
    }
    if let Ok(decoded) = decode(Bytes::from(damaged), &id, length) {
        assert_eq!(decoded, plain, "a damaged object decoded to other bytes");
    }
}
