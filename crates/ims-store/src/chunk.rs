//! Chunk identity and the on-store encoding of one chunk.
//!
//! A chunk object holds one header byte, the *codec tag*, followed by the payload:
//!
//! | tag | payload |
//! |-----|---------|
//! | `0` | the plaintext as is (used when zstd does not save at least 1/16) |
//! | `1` | one zstd frame (level 1) of the plaintext |
//! | `2` | framed: a frame table, then frames of 64 KiB of plaintext each compressed, sealed and verified on its own (see [`crate::frames`]) |
//! | `0x80` | encrypted (see [`crate::crypto`]): nonce, then the AES-256-GCM sealed plaintext |
//! | `0x81` | encrypted: nonce, then the AES-256-GCM sealed zstd frame |
//! | `0x82` | encrypted framed: every frame sealed on its own |
//!
//! Chunks longer than [`FRAME_LEN`] are written framed, shorter ones with tag 0 or 1 (0x80 or 0x81
//! encrypted); objects written before frames existed keep their tag and are read whole.
//!
//! Every other tag is reserved; unknown tags are rejected as corrupt rather than misread. Plaintext objects
//! (tags 0, 1 and 2) are only accepted outside an encryption domain, encrypted ones only inside one.

use std::cell::RefCell;
use std::fmt;
use std::io::Cursor;
use std::sync::Mutex;

use bytes::Bytes;
use object_store::path::Path;
use object_store::PutPayload;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zstd::zstd_safe::{CCtx, CParameter, ResetDirective};

use crate::crypto::{EncryptionDomain, ENCRYPTED, NONCE_LEN, TAG_LEN};
use crate::frames::{self, is_framed, FrameTable, CODEC_FRAMED};
pub(crate) use crate::frames::{hash_chunk, ChunkHash};
pub use crate::frames::FRAME_LEN;

/// Codec tag: the payload is the plaintext.
pub const CODEC_RAW: u8 = 0;
/// Codec tag: the payload is a zstd frame of the plaintext.
pub const CODEC_ZSTD: u8 = 1;
/// zstd level used for chunks (fast; the upload path is throughput bound).
pub const ZSTD_LEVEL: i32 = 1;

/// Identity of a chunk: the blake3 hash of its plaintext.
///
/// `Display` (and serde) use the 64-character lowercase hex form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Hashes `data` (blake3) into its id.
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(data).as_bytes())
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the 64-character hex form (either case).
    pub fn from_hex(s: &str) -> Result<ChunkId, crate::StoreError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| crate::StoreError::Invalid(format!("bad chunk id {s:?}: {e}")))?;
        Ok(ChunkId(out))
    }

    /// Object path of this chunk: `chunks/<first 2 hex>/<64 hex>`.
    pub fn object_path(&self) -> Path {
        let hex = self.to_hex();
        Path::from(format!("chunks/{}/{}", &hex[..2], hex))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

impl Serialize for ChunkId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 bytes fit 32 bytes of hex");
        serializer.serialize_str(std::str::from_utf8(&buf).expect("hex is ascii"))
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ChunkId::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// True if every byte of `data` is zero. Exits at the first non-zero 4 KiB block; within a block the
/// OR-reduction is branch-free so the compiler vectorizes it.
pub fn is_all_zero(data: &[u8]) -> bool {
    data.chunks(4096).all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Zero check of a chunk given as segments.
pub fn segments_are_zero(segments: &[Bytes]) -> bool {
    segments.iter().all(|s| is_all_zero(s))
}

/// The id of a chunk given as segments (blake3 over their concatenation).
pub fn id_of_segments(segments: &[Bytes]) -> ChunkId {
    let mut hasher = blake3::Hasher::new();
    for s in segments {
        hasher.update(s);
    }
    ChunkId(*hasher.finalize().as_bytes())
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Runs `job` with this thread's zstd decompressor (made on first use, then reused).
pub(crate) fn with_decompressor<R>(
    job: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> Result<R, String>,
) -> Result<R, String> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd init: {e}"))?);
        }
        job(slot.as_mut().expect("initialized above"))
    })
}

/// A zstd context and a scratch buffer to gather a segmented chunk into, reused across chunks.
struct Encoder {
    cctx: CCtx<'static>,
    scratch: Vec<u8>,
}

/// Idle encoders. At most `MAX_IDLE_ENCODERS` are kept (each may hold a `MAX_CHUNK` scratch buffer).
static IDLE_ENCODERS: Mutex<Vec<Encoder>> = Mutex::new(Vec::new());
const MAX_IDLE_ENCODERS: usize = 4;

/// Encodes a chunk's plaintext (given as segments) into its object content, outside any encryption
/// domain. CPU heavy: call it from a blocking thread. See [`encode_in`].
pub fn encode(segments: &[Bytes]) -> PutPayload {
    encode_in(None, &hash_chunk(None, segments), segments)
}

/// Encodes a chunk (given as segments, hashed into `hash` by [`hash_chunk`] in the same domain) into its
/// object content. A chunk longer than [`FRAME_LEN`] is framed (see [`crate::frames`]); a shorter one is
/// one payload: zstd unless that saves less than 1/16 of the size (the raw form references the segments
/// without copying them). In an encryption domain the object is sealed under the domain's key and bound
/// to the chunk's id: tag `0x80 | codec`, then, for an unframed chunk, a fresh random nonce, the
/// AES-256-GCM ciphertext and its tag.
pub(crate) fn encode_in(domain: Option<&EncryptionDomain>, hash: &ChunkHash, segments: &[Bytes]) -> PutPayload {
    let total: usize = segments.iter().map(Bytes::len).sum();
    let idle = IDLE_ENCODERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut encoder = match idle {
        Some(encoder) => encoder,
        None => {
            let mut cctx = CCtx::create();
            // Cannot fail for a level within zstd's range.
            let _ = cctx.set_parameter(CParameter::CompressionLevel(ZSTD_LEVEL));
            Encoder { cctx, scratch: Vec::new() }
        }
    };
    let payload = match is_framed(total) {
        true => encoder.encode_framed(domain, hash, segments, total),
        false => encoder.encode_whole(domain, &hash.id, segments, total),
    };
    let mut idle = IDLE_ENCODERS.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < MAX_IDLE_ENCODERS {
        idle.push(encoder);
    }
    payload
}

impl Encoder {
    /// A chunk longer than a frame: frames compressed one by one unless a sample says the data does not
    /// compress, then sealed one by one in a domain.
    fn encode_framed(
        &mut self,
        domain: Option<&EncryptionDomain>,
        hash: &ChunkHash,
        segments: &[Bytes],
        total: usize,
    ) -> PutPayload {
        let compress = !self.sample_is_incompressible(segments, total);
        if !compress && domain.is_none() {
            return frames::encode_raw(hash, segments);
        }
        let src: &[u8] = if let [single] = segments {
            single
        } else {
            self.scratch.clear();
            for segment in segments {
                self.scratch.extend_from_slice(segment);
            }
            &self.scratch
        };
        frames::encode(domain, hash, src, &mut self.cctx, compress)
    }

    /// A chunk of at most one frame: one payload, sealed as a whole in a domain.
    fn encode_whole(&mut self, domain: Option<&EncryptionDomain>, id: &ChunkId, segments: &[Bytes], total: usize) -> PutPayload {
        let head = if domain.is_some() { 1 + NONCE_LEN } else { 1 };
        let compressed = self.compress(segments, total, head);
        let Some(domain) = domain else {
            return match compressed {
                Some(out) => PutPayload::from(out),
                None => std::iter::once(Bytes::from_static(&[CODEC_RAW])).chain(segments.iter().cloned()).collect(),
            };
        };
        let mut object = match compressed {
            Some(mut out) => {
                out[0] = ENCRYPTED | CODEC_ZSTD;
                out.reserve_exact(TAG_LEN);
                out
            }
            None => {
                let mut out = Vec::with_capacity(head + total + TAG_LEN);
                out.push(ENCRYPTED | CODEC_RAW);
                out.resize(head, 0);
                for segment in segments {
                    out.extend_from_slice(segment);
                }
                out
            }
        };
        // Encrypting a buffer we own cannot fail (only over-long inputs would, and chunks are at most MAX_CHUNK).
        domain.seal_in_place(id, &mut object).expect("AES-GCM encrypts a chunk");
        PutPayload::from(object)
    }
}

/// Appends the zstd frame of `src` (compressed by `cctx`) to `out` and returns true, or leaves `out` as it
/// was and returns false when that would not save at least 1/16 of `src`.
pub(crate) fn compress_into(cctx: &mut CCtx<'static>, src: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let limit = src.len() - src.len() / 16;
    out.resize(start + limit, 0);
    match cctx.compress2(&mut out[start..], src) {
        Ok(written) if written > 0 => {
            out.truncate(start + written);
            true
        }
        _ => {
            out.truncate(start);
            // Probably "destination too small"; start the next frame from a clean session.
            let _ = cctx.reset(ResetDirective::SessionOnly);
            false
        }
    }
}

impl Encoder {
    /// `CODEC_ZSTD` and `head - 1` zero bytes followed by one zstd frame of the segments, or `None` if that
    /// would not save at least 1/16 of `total`. The output buffer is only that large (plus room for an
    /// encryption tag), so incompressible data fails fast.
    fn compress(&mut self, segments: &[Bytes], total: usize, head: usize) -> Option<Vec<u8>> {
        if total == 0 || self.sample_is_incompressible(segments, total) {
            return None;
        }
        // One-shot compression of contiguous input is zstd's fastest path (streaming over separate
        // segments falls into its slower external-dictionary mode), so gather the segments first:
        // a copy into a reused, cache-warm buffer.
        let src: &[u8] = if let [single] = segments {
            single
        } else {
            self.scratch.clear();
            for segment in segments {
                self.scratch.extend_from_slice(segment);
            }
            &self.scratch
        };
        let limit = total - total / 16;
        let mut out = Vec::with_capacity(head + limit + TAG_LEN);
        out.push(CODEC_ZSTD);
        out.resize(head, 0);
        let mut cursor = Cursor::new(out);
        cursor.set_position(head as u64);
        let written = self.cctx.compress2(&mut cursor, src);
        let mut out = cursor.into_inner();
        match written {
            Ok(n) if n <= limit && out.len() == head + n => {
                // The buffer was sized for the worst case; don't keep the slack alive with the object.
                if out.capacity() - out.len() > 64 * 1024 {
                    out.shrink_to_fit();
                }
                Some(out)
            }
            _ => {
                // Probably "destination too small"; start the next frame from a clean session.
                let _ = self.cctx.reset(ResetDirective::SessionOnly);
                None
            }
        }
    }
}

impl Encoder {
    /// Whether a sample from the start of a large chunk fails to compress by 1/16: then the whole
    /// chunk is stored raw without spending a full compression pass on it (encrypted, compressed or
    /// random data, the common case for uploaded files that do not compress).
    fn sample_is_incompressible(&mut self, segments: &[Bytes], total: usize) -> bool {
        if total < 4 * SAMPLE {
            return false;
        }
        let sample: &[u8] = match segments.first() {
            Some(first) if first.len() >= SAMPLE => &first[..SAMPLE],
            _ => {
                self.scratch.clear();
                for segment in segments {
                    let want = SAMPLE - self.scratch.len();
                    self.scratch.extend_from_slice(&segment[..want.min(segment.len())]);
                    if self.scratch.len() == SAMPLE {
                        break;
                    }
                }
                &self.scratch
            }
        };
        let mut out = [0u8; SAMPLE - SAMPLE / 16];
        let fits = self.cctx.compress2(&mut out[..], sample).is_ok();
        let _ = self.cctx.reset(ResetDirective::SessionOnly);
        !fits
    }
}

/// Bytes tried first to decide whether a chunk is worth compressing.
const SAMPLE: usize = 64 * 1024;

/// Decodes a chunk object back into its plaintext and verifies it: the plaintext must be exactly
/// `expected_len` bytes and hash to `id`. CPU heavy: call it from a blocking thread.
/// The error string says what failed (the caller adds where).
pub fn decode(object: Bytes, id: &ChunkId, expected_len: usize) -> Result<Bytes, String> {
    decode_in(None, object, id, expected_len)
}

/// Decodes a chunk object like [`decode`], in an encryption domain or outside any: in a domain the object
/// must be encrypted, is authenticated and decrypted with the domain's key, and its plaintext must hash to
/// `id` with the domain's keyed hash. Outside a domain an encrypted object is refused (no key), and in a
/// domain a plaintext object is refused (no downgrade).
pub fn decode_in(
    domain: Option<&EncryptionDomain>,
    object: Bytes,
    id: &ChunkId,
    expected_len: usize,
) -> Result<Bytes, String> {
    let Some(&tag) = object.first() else {
        return Err("empty chunk object".into());
    };
    if tag & !ENCRYPTED == CODEC_FRAMED {
        frames::check_domain(tag, domain)?;
        let table = FrameTable::parse(&object, expected_len)?;
        return table.decode_object(domain, id, &object);
    }
    frames::check_domain(tag, domain)?;
    let (codec, payload) = match domain {
        None => (tag, object.slice(1..)),
        Some(domain) => (tag & !ENCRYPTED, Bytes::from(domain.open(id, &object)?)),
    };
    let plain = match codec {
        CODEC_RAW => payload,
        CODEC_ZSTD => with_decompressor(|decompressor| {
            decompressor
                .decompress(&payload, expected_len)
                .map(Bytes::from)
                .map_err(|e| format!("zstd payload does not decode: {e}"))
        })?,
        _ => return Err(format!("unknown codec tag {tag}")),
    };
    if plain.len() != expected_len {
        return Err(format!("plaintext is {} bytes, expected {expected_len}", plain.len()));
    }
    let actual = match domain {
        Some(domain) => domain.chunk_id(std::slice::from_ref(&plain)),
        None => ChunkId::of(&plain),
    };
    if actual != *id {
        return Err(format!("plaintext hashes to {actual}"));
    }
    Ok(plain)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn payload_bytes(p: PutPayload) -> Vec<u8> {
        p.iter().flat_map(|b| b.iter().copied()).collect()
    }

    /// `len` pseudo-random bytes (xorshift from `seed`): data that does not compress.
    pub(crate) fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// The codec of each frame of a plaintext framed object.
    fn frame_codecs(object: &[u8], length: usize) -> Vec<u8> {
        (0..frames::frame_count(length)).map(|i| object[1 + i * 37]).collect()
    }

    #[test]
    fn compressible_data_is_zstd_and_round_trips() {
        for plain in [Bytes::from(b"hello world, ".repeat(5_000)), Bytes::from(b"hello world, ".repeat(100_000))] {
            let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
            let framed = frames::is_framed(plain.len());
            assert_eq!(obj[0], if framed { CODEC_FRAMED } else { CODEC_ZSTD });
            if framed {
                assert!(frame_codecs(&obj, plain.len()).iter().all(|&c| c == CODEC_ZSTD));
            }
            assert!(obj.len() < plain.len() / 10);
            let id = ChunkId::of(&plain);
            assert_eq!(decode(Bytes::from(obj), &id, plain.len()).unwrap(), plain);
        }
    }

    #[test]
    fn incompressible_and_tiny_data_is_raw() {
        for plain in [Bytes::from(random(60_000, 1)), Bytes::from_static(b"x"), Bytes::new()] {
            let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
            assert_eq!(obj[0], CODEC_RAW);
            assert_eq!(&obj[1..], &plain[..]);
            let id = ChunkId::of(&plain);
            assert_eq!(decode(Bytes::from(obj), &id, plain.len()).unwrap(), plain);
        }
        let plain = Bytes::from(random(300_000, 2));
        let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
        let table = frames::table_len(plain.len(), false);
        assert_eq!(obj[0], CODEC_FRAMED);
        assert_eq!(&obj[table..], &plain[..], "raw frames are the plaintext behind the frame table");
        assert_eq!(decode(Bytes::from(obj), &ChunkId::of(&plain), plain.len()).unwrap(), plain);
    }

    #[test]
    fn the_sample_decides_for_large_chunks_in_segments() {
        let random = random(1_048_576, 3);
        let segments: Vec<Bytes> = random.chunks(40_000).map(Bytes::copy_from_slice).collect();
        let obj = payload_bytes(encode(&segments));
        assert!(frame_codecs(&obj, random.len()).iter().all(|&c| c == CODEC_RAW), "random data is stored raw");
        let text = Bytes::from(b"a compressible sentence, ".repeat(50_000));
        let segments: Vec<Bytes> = text.chunks(30_000).map(Bytes::copy_from_slice).collect();
        let obj = payload_bytes(encode(&segments));
        assert!(frame_codecs(&obj, text.len()).iter().all(|&c| c == CODEC_ZSTD));
        assert!(obj.len() < text.len() / 10);
    }

    #[test]
    fn decode_rejects_damage() {
        for plain in [Bytes::from(b"abcdefgh".repeat(1000)), Bytes::from(b"abcdefgh".repeat(100_000))] {
            let id = ChunkId::of(&plain);
            let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
            // The tag, a frame's codec, stored length and chaining value, the last payload byte.
            let places = if frames::is_framed(plain.len()) { vec![0, 1, 2, 20, obj.len() - 1] } else { vec![obj.len() - 1] };
            for at in places {
                let mut flipped = obj.clone();
                flipped[at] ^= 0x10;
                assert!(decode(Bytes::from(flipped), &id, plain.len()).is_err(), "byte {at} flipped");
            }
            let mut tag = obj.clone();
            tag[0] = 7;
            assert!(decode(Bytes::from(tag), &id, plain.len()).unwrap_err().contains("codec"));
            assert!(decode(Bytes::from(obj.clone()), &id, plain.len() - 1).is_err());
            assert!(decode(Bytes::from(obj[..obj.len() - 1].to_vec()), &id, plain.len()).is_err());
            assert!(decode(Bytes::new(), &id, plain.len()).is_err());
        }
        let plain = Bytes::from(b"abcdefgh".repeat(1000));
        let raw = [&[CODEC_RAW][..], &plain[..10]].concat();
        assert!(decode(Bytes::from(raw), &ChunkId::of(&plain), 10).unwrap_err().contains("hashes"));
    }

    #[test]
    fn segmented_chunks_encode_hash_and_check_like_contiguous_ones() {
        let plain = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8 ^ (i / 7000) as u8).collect::<Vec<u8>>());
        let segments: Vec<Bytes> =
            [0..1, 1..4097, 4097..200_000, 200_000..300_000].into_iter().map(|r| plain.slice(r)).collect();
        let id = ChunkId::of(&plain);
        assert_eq!(id_of_segments(&segments), id);
        assert_eq!(hash_chunk(None, &segments).id, id);
        assert!(!segments_are_zero(&segments));
        let obj = payload_bytes(encode(&segments));
        assert_eq!(obj[0], CODEC_FRAMED);
        assert_eq!(decode(Bytes::from(obj), &id, plain.len()).unwrap(), plain);
        let zeros = Bytes::from(vec![0u8; 10_000]);
        assert!(segments_are_zero(&[zeros.slice(..10), zeros.slice(10..)]));
    }

    #[test]
    fn encrypted_framed_chunks_round_trip_and_are_bound_to_their_id_and_frames() {
        let domain = EncryptionDomain::new(&[9; 32]);
        let mut plain = b"some text ".repeat(20_000);
        plain.extend(random(100_000, 4));
        let plain = Bytes::from(plain);
        let hash = hash_chunk(Some(&domain), std::slice::from_ref(&plain));
        let obj = payload_bytes(encode_in(Some(&domain), &hash, std::slice::from_ref(&plain)));
        assert_eq!(obj[0], ENCRYPTED | CODEC_FRAMED);
        let decoded = decode_in(Some(&domain), Bytes::from(obj.clone()), &hash.id, plain.len()).unwrap();
        assert_eq!(decoded, plain);
        let other = ChunkId::of(b"another chunk");
        assert!(decode_in(Some(&domain), Bytes::from(obj.clone()), &other, plain.len()).unwrap_err().contains("decrypt"));
        let wrong_key = EncryptionDomain::new(&[8; 32]);
        assert!(decode_in(Some(&wrong_key), Bytes::from(obj.clone()), &hash.id, plain.len()).is_err());
        assert!(decode(Bytes::from(obj.clone()), &hash.id, plain.len()).unwrap_err().contains("no data key"));
        // Two frames of equal length swapped (with their table entries' stored lengths unchanged)
        // fail authentication: the associated data names each frame's place.
        let table = frames::table_len(plain.len(), true);
        let mut swapped = obj.clone();
        let first = table..table + 1000;
        let second = table + 1000..table + 2000;
        let (a, b) = (obj[first.clone()].to_vec(), obj[second.clone()].to_vec());
        swapped[first].copy_from_slice(&b);
        swapped[second].copy_from_slice(&a);
        assert!(decode_in(Some(&domain), Bytes::from(swapped), &hash.id, plain.len()).is_err());
    }

    #[test]
    fn zero_check() {
        assert!(is_all_zero(&[]));
        assert!(is_all_zero(&vec![0u8; 10_001]));
        let mut v = vec![0u8; 10_001];
        v[10_000] = 1;
        assert!(!is_all_zero(&v));
        v[10_000] = 0;
        v[0] = 1;
        assert!(!is_all_zero(&v));
    }

    #[test]
    fn id_hex_and_serde() {
        let id = ChunkId::of(b"abc");
        let hex = id.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(ChunkId::from_hex(&hex).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ChunkId>("\"abcd\"").is_err());
        assert_eq!(id.object_path().as_ref(), format!("chunks/{}/{}", &hex[..2], hex));
    }
}
