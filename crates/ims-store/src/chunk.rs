//! Chunk identity and the on-store encoding of one chunk.
//!
//! A chunk object holds one header byte, the *codec tag*, followed by the payload:
//!
//! | tag | payload |
//! |-----|---------|
//! | `0` | the plaintext as is (used when zstd does not save at least 1/16) |
//! | `1` | one zstd frame (level 1) of the plaintext |
//!
//! | `0x80` | encrypted (see [`crate::crypto`]): nonce, then the AES-256-GCM sealed plaintext |
//! | `0x81` | encrypted: nonce, then the AES-256-GCM sealed zstd frame |
//!
//! Every other tag is reserved; unknown tags are rejected as corrupt rather than misread. Plaintext objects
//! (tags 0 and 1) are only accepted outside an encryption domain, encrypted ones only inside one.

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

/// A zstd context and a scratch buffer to gather a segmented chunk into, reused across chunks.
struct Encoder {
    cctx: CCtx<'static>,
    scratch: Vec<u8>,
}

/// Idle encoders. At most `MAX_IDLE_ENCODERS` are kept (each may hold a `MAX_CHUNK` scratch buffer).
static IDLE_ENCODERS: Mutex<Vec<Encoder>> = Mutex::new(Vec::new());
const MAX_IDLE_ENCODERS: usize = 4;

/// Encodes a chunk's plaintext (given as segments) into its object content: codec tag + payload.
/// CPU heavy: call it from a blocking thread. Compresses with zstd unless that saves less than 1/16 of the
/// size; the raw form references the segments without copying them.
pub fn encode(segments: &[Bytes]) -> PutPayload {
    encode_in(None, &ChunkId([0; 32]), segments)
}

/// Encodes a chunk like [`encode`], then, in an encryption domain, seals it under the domain's key for the
/// chunk `id` (which must be `domain.chunk_id(segments)`): tag `0x80 | codec`, a fresh random nonce, the
/// AES-256-GCM ciphertext and its tag. Without a domain `id` is unused and the result is [`encode`]'s.
pub fn encode_in(domain: Option<&EncryptionDomain>, id: &ChunkId, segments: &[Bytes]) -> PutPayload {
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
    let head = if domain.is_some() { 1 + NONCE_LEN } else { 1 };
    let compressed = encoder.compress(segments, total, head);
    let mut idle = IDLE_ENCODERS.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < MAX_IDLE_ENCODERS {
        idle.push(encoder);
    }
    drop(idle);
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
    let (codec, payload) = match ((tag & ENCRYPTED) != 0, domain) {
        (false, None) => (tag, object.slice(1..)),
        (true, Some(domain)) => {
            let payload = domain.open(id, &object)?;
            (tag & !ENCRYPTED, Bytes::from(payload))
        }
        (true, None) => return Err("chunk is encrypted and no data key was given".into()),
        (false, Some(_)) => return Err("chunk is not encrypted but its image is".into()),
    };
    let plain = match codec {
        CODEC_RAW => payload,
        CODEC_ZSTD => DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd init: {e}"))?);
            }
            let decompressor = slot.as_mut().expect("initialized above");
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
mod tests {
    use super::*;

    fn payload_bytes(p: PutPayload) -> Vec<u8> {
        p.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn compressible_data_is_zstd_and_round_trips() {
        let plain = Bytes::from(b"hello world, ".repeat(10_000));
        let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
        assert_eq!(obj[0], CODEC_ZSTD);
        assert!(obj.len() < plain.len() / 10);
        let id = ChunkId::of(&plain);
        assert_eq!(decode(Bytes::from(obj), &id, plain.len()).unwrap(), plain);
    }

    #[test]
    fn incompressible_and_tiny_data_is_raw() {
        let mut state = 0x9e3779b97f4a7c15u64;
        let random: Vec<u8> = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for plain in [Bytes::from(random), Bytes::from_static(b"x"), Bytes::new()] {
            let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
            assert_eq!(obj[0], CODEC_RAW);
            assert_eq!(&obj[1..], &plain[..]);
            let id = ChunkId::of(&plain);
            assert_eq!(decode(Bytes::from(obj), &id, plain.len()).unwrap(), plain);
        }
    }

    #[test]
    fn the_sample_decides_for_large_chunks_in_segments() {
        let mut state = 0x2545f4914f6cdd1du64;
        let random: Vec<u8> = (0..1_048_576)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let segments: Vec<Bytes> = random.chunks(40_000).map(Bytes::copy_from_slice).collect();
        assert_eq!(payload_bytes(encode(&segments))[0], CODEC_RAW, "random data is stored raw");
        let text = Bytes::from(b"a compressible sentence, ".repeat(50_000));
        let segments: Vec<Bytes> = text.chunks(30_000).map(Bytes::copy_from_slice).collect();
        let obj = payload_bytes(encode(&segments));
        assert_eq!(obj[0], CODEC_ZSTD);
        assert!(obj.len() < text.len() / 10);
    }

    #[test]
    fn decode_rejects_damage() {
        let plain = Bytes::from(b"abcdefgh".repeat(1000));
        let id = ChunkId::of(&plain);
        let obj = payload_bytes(encode(std::slice::from_ref(&plain)));
        let mut flipped = obj.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(decode(Bytes::from(flipped), &id, plain.len()).is_err());
        let mut tag = obj.clone();
        tag[0] = 7;
        assert!(decode(Bytes::from(tag), &id, plain.len()).unwrap_err().contains("codec"));
        assert!(decode(Bytes::from(obj.clone()), &id, plain.len() - 1).is_err());
        assert!(decode(Bytes::new(), &id, plain.len()).is_err());
        let raw = [&[CODEC_RAW][..], &plain[..10]].concat();
        assert!(decode(Bytes::from(raw), &id, 10).unwrap_err().contains("hashes"));
    }

    #[test]
    fn segmented_chunks_encode_hash_and_check_like_contiguous_ones() {
        let plain = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8 ^ (i / 7000) as u8).collect::<Vec<u8>>());
        let segments: Vec<Bytes> =
            [0..1, 1..4097, 4097..200_000, 200_000..300_000].into_iter().map(|r| plain.slice(r)).collect();
        let id = ChunkId::of(&plain);
        assert_eq!(id_of_segments(&segments), id);
        assert!(!segments_are_zero(&segments));
        let obj = payload_bytes(encode(&segments));
        assert_eq!(obj[0], CODEC_ZSTD);
        assert_eq!(decode(Bytes::from(obj), &id, plain.len()).unwrap(), plain);
        let zeros = Bytes::from(vec![0u8; 10_000]);
        assert!(segments_are_zero(&[zeros.slice(..10), zeros.slice(10..)]));
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
