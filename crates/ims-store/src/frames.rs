//! Framed chunk objects: a chunk stored as frames that are each decoded and verified on their own,
//! so a reader can fetch a small part of a large chunk and still check every byte it serves.
//!
//! A chunk longer than [`FRAME_LEN`] is cut into frames of `FRAME_LEN` bytes of plaintext (the last one
//! shorter). Each frame is compressed on its own (zstd level 1, or kept raw when that does not save
//! 1/16) and, in an encryption domain, sealed on its own. The object is:
//!
//! ```text
//! byte 0       tag: CODEC_FRAMED (2), or ENCRYPTED | CODEC_FRAMED (0x82)
//! frame table  one entry per frame; n = ceil(chunk length / FRAME_LEN), the length coming from the manifest:
//!                u8       codec of the frame: 0 raw, 1 zstd
//!                u32 LE   stored length of the frame (with its 16-byte GCM tag when encrypted)
//!                [u8; 12] nonce of the frame (encrypted objects only)
//!                [u8; 32] chaining value of the frame's plaintext
//! frames       the stored frames, back to back, in order
//! ```
//!
//! The table's length is a function of the chunk's length, so a reader asks for it without knowing
//! anything else of the object, then for exactly the frames it needs.
//!
//! # Verification
//!
//! A chunk id is the blake3 hash of the plaintext (keyed in a domain), and blake3 is a tree hash: the
//! input is hashed in 1 KiB pieces joined pairwise, the left side of each join always holding a power
//! of two of them. With frames of 64 of those pieces, each frame is one subtree of that tree, and its
//! *chaining value* (blake3's name for a subtree's hash; `blake3::hazmat`) depends on its plaintext and
//! its position only. Joining the table's chaining values as blake3 does gives the chunk's hash, so:
//! a table that joins up to the chunk's id is authentic, and a frame whose plaintext gives its
//! table entry's chaining value is authentic. One frame is verified without the rest of the chunk.
//!
//! # Encryption
//!
//! Frames are sealed with AES-256-GCM under the domain's cipher key, each with its own random nonce
//! (kept in the table; see [`crate::crypto`] for the nonce budget), and bound to their place by the
//! associated data: the tag byte, the chunk id, the frame's index (u32 LE) and its codec. Chaining
//! values are keyed by the domain's id key, so without the data key they tell nothing of the
//! plaintext; like chunk ids, they do show which frames of the domain are equal at equal offsets.

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode};
use bytes::Bytes;
use object_store::PutPayload;
use zstd::zstd_safe::CCtx;

use crate::chunk::{compress_into, with_decompressor, ChunkId, CODEC_RAW, CODEC_ZSTD};
use crate::crypto::{EncryptionDomain, ENCRYPTED, NONCE_LEN, TAG_LEN};

/// Plaintext bytes per frame (the last frame of a chunk may be shorter).
pub const FRAME_LEN: usize = 64 * 1024;
/// Codec tag of a framed object (with [`ENCRYPTED`] set when its frames are sealed).
pub const CODEC_FRAMED: u8 = 2;

const CV_LEN: usize = 32;

/// The number of frames of a chunk of `length` bytes (a chunk of at most one frame is stored unframed).
pub fn frame_count(length: usize) -> usize {
    length.div_ceil(FRAME_LEN)
}

/// Whether a chunk of `length` bytes is stored framed: when it is longer than one frame.
pub fn is_framed(length: usize) -> bool {
    length > FRAME_LEN
}

/// The length of the tag byte and frame table of a framed object for a chunk of `length` bytes.
pub fn table_len(length: usize, encrypted: bool) -> usize {
    1 + frame_count(length) * entry_len(encrypted)
}

fn entry_len(encrypted: bool) -> usize {
    1 + 4 + if encrypted { NONCE_LEN } else { 0 } + CV_LEN
}

/// The plaintext byte range of frame `index` in a chunk of `length` bytes.
pub fn frame_range(length: usize, index: usize) -> std::ops::Range<usize> {
    let start = (index * FRAME_LEN).min(length);
    start..(start + FRAME_LEN).min(length)
}

/// A chunk's identity, with the chaining values of its frames when it is stored framed (empty otherwise).
pub(crate) struct ChunkHash {
    pub id: ChunkId,
    pub frames: Vec<ChainingValue>,
}

/// Hashes a chunk given as segments: its id (keyed in `domain`) and, when it is longer than a frame, the
/// chaining values of its frames, from one pass over the data (the id is joined up from them).
pub(crate) fn hash_chunk(domain: Option<&EncryptionDomain>, segments: &[Bytes]) -> ChunkHash {
    let total: usize = segments.iter().map(Bytes::len).sum();
    if !is_framed(total) {
        return ChunkHash { id: crate::crypto::chunk_id_in(domain, segments), frames: Vec::new() };
    }
    let mut frames = Vec::with_capacity(frame_count(total));
    let mut hasher = frame_hasher(domain, 0);
    let mut filled = 0;
    for segment in segments {
        let mut rest = &segment[..];
        while !rest.is_empty() {
            let take = rest.len().min(FRAME_LEN - filled);
            hasher.update(&rest[..take]);
            filled += take;
            rest = &rest[take..];
            if filled == FRAME_LEN {
                frames.push(hasher.finalize_non_root());
                hasher = frame_hasher(domain, frames.len());
                filled = 0;
            }
        }
    }
    if filled > 0 {
        frames.push(hasher.finalize_non_root());
    }
    ChunkHash { id: root(&frames, mode(domain)), frames }
}

/// A hasher for the subtree of frame `index`.
fn frame_hasher(domain: Option<&EncryptionDomain>, index: usize) -> blake3::Hasher {
    let mut hasher = match domain {
        Some(domain) => blake3::Hasher::new_keyed(domain.id_key()),
        None => blake3::Hasher::new(),
    };
    hasher.set_input_offset((index * FRAME_LEN) as u64);
    hasher
}

fn frame_chaining_value(domain: Option<&EncryptionDomain>, index: usize, plaintext: &[u8]) -> ChainingValue {
    frame_hasher(domain, index).update(plaintext).finalize_non_root()
}

fn mode(domain: Option<&EncryptionDomain>) -> Mode<'_> {
    match domain {
        Some(domain) => Mode::KeyedHash(domain.id_key()),
        None => Mode::Hash,
    }
}

/// The number of frames in the left subtree of `n` ≥ 2 frames: the largest power of two below `n`
/// (blake3 puts a power of two of its 1 KiB pieces on the left, and a frame is 64 of them).
fn left_frames(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree(frames: &[ChainingValue], mode: Mode) -> ChainingValue {
    match frames {
        [one] => *one,
        _ => {
            let (left, right) = frames.split_at(left_frames(frames.len()));
            merge_subtrees_non_root(&subtree(left, mode), &subtree(right, mode), mode)
        }
    }
}

/// The chunk hash joined up from the chaining values of its (at least two) frames.
fn root(frames: &[ChainingValue], mode: Mode) -> ChunkId {
    let (left, right) = frames.split_at(left_frames(frames.len()));
    ChunkId(*merge_subtrees_root(&subtree(left, mode), &subtree(right, mode), mode).as_bytes())
}

/// Encodes a chunk longer than a frame, hashed into `hash`, into a framed object whose frames are all raw
/// and unsealed: the plaintext segments as they are behind a frame table (no copy).
pub(crate) fn encode_raw(hash: &ChunkHash, segments: &[Bytes]) -> PutPayload {
    let length: usize = segments.iter().map(Bytes::len).sum();
    assert_eq!(hash.frames.len(), frame_count(length), "the hash is of this chunk");
    let mut table = Vec::with_capacity(table_len(length, false));
    table.push(CODEC_FRAMED);
    for (index, cv) in hash.frames.iter().enumerate() {
        push_entry(&mut table, CODEC_RAW, frame_range(length, index).len(), None, cv);
    }
    std::iter::once(Bytes::from(table)).chain(segments.iter().cloned()).collect()
}

/// Encodes a chunk longer than a frame (its plaintext `src`, hashed into `hash`) into a framed object,
/// sealing every frame when there is a `domain`. With `compress` each frame is compressed by `cctx` when
/// that saves 1/16 of it; without, every frame is stored raw (the caller found the data incompressible).
pub(crate) fn encode(
    domain: Option<&EncryptionDomain>,
    hash: &ChunkHash,
    src: &[u8],
    cctx: &mut CCtx<'static>,
    compress: bool,
) -> PutPayload {
    let n = frame_count(src.len());
    assert_eq!(hash.frames.len(), n, "the hash is of this chunk");
    let encrypted = domain.is_some();
    let table = table_len(src.len(), encrypted);
    let tag = if encrypted { ENCRYPTED | CODEC_FRAMED } else { CODEC_FRAMED };
    let mut object = Vec::with_capacity(table + src.len() + n * TAG_LEN);
    object.resize(table, 0);
    object[0] = tag;
    let mut entries = Vec::with_capacity(table - 1);
    for (index, cv) in hash.frames.iter().enumerate() {
        let plaintext = &src[frame_range(src.len(), index)];
        let start = object.len();
        let codec = if compress && compress_into(cctx, plaintext, &mut object) {
            CODEC_ZSTD
        } else {
            object.extend_from_slice(plaintext);
            CODEC_RAW
        };
        let nonce = domain.map(|domain| {
            let aad = frame_aad(tag, &hash.id, index, codec);
            let (nonce, gcm_tag) = domain.seal_detached(&aad, &mut object[start..]);
            object.extend_from_slice(&gcm_tag);
            nonce
        });
        push_entry(&mut entries, codec, object.len() - start, nonce.as_ref(), cv);
    }
    object[1..table].copy_from_slice(&entries);
    PutPayload::from(object)
}

fn push_entry(out: &mut Vec<u8>, codec: u8, stored: usize, nonce: Option<&[u8; NONCE_LEN]>, cv: &ChainingValue) {
    out.push(codec);
    out.extend_from_slice(&u32::try_from(stored).expect("a stored frame is far below 4 GiB").to_le_bytes());
    if let Some(nonce) = nonce {
        out.extend_from_slice(nonce);
    }
    out.extend_from_slice(cv);
}

fn frame_aad(tag: u8, id: &ChunkId, index: usize, codec: u8) -> [u8; 38] {
    let mut aad = [0u8; 38];
    aad[0] = tag;
    aad[1..33].copy_from_slice(&id.0);
    aad[33..37].copy_from_slice(&(index as u32).to_le_bytes());
    aad[37] = codec;
    aad
}

/// Checks that an object with codec tag `tag` can be read in `domain`: in a domain every object must be
/// encrypted (no downgrade), outside any no object can be (no key).
pub(crate) fn check_domain(tag: u8, domain: Option<&EncryptionDomain>) -> Result<(), String> {
    match (tag & ENCRYPTED != 0, domain) {
        (true, None) => Err("chunk is encrypted and no data key was given".into()),
        (false, Some(_)) => Err("chunk is not encrypted but its image is".into()),
        _ => Ok(()),
    }
}

/// One entry of a frame table.
struct Entry<'a> {
    codec: u8,
    stored: usize,
    nonce: Option<&'a [u8; NONCE_LEN]>,
    cv: &'a ChainingValue,
}

/// The frame table of a framed object (its first [`table_len`] bytes), parsed and checked for shape: every
/// codec known, every stored length possible for its frame. Whether it is authentic is
/// [`FrameTable::verify`]'s question.
pub(crate) struct FrameTable<'a> {
    bytes: &'a [u8],
    length: usize,
    encrypted: bool,
}

impl<'a> FrameTable<'a> {
    /// Parses the table at the start of `bytes` (the object, or at least its first [`table_len`]
    /// bytes) of a framed object holding a chunk of `length` bytes.
    pub(crate) fn parse(bytes: &'a [u8], length: usize) -> Result<FrameTable<'a>, String> {
        let Some(&tag) = bytes.first() else { return Err("empty chunk object".into()) };
        if tag & !ENCRYPTED != CODEC_FRAMED {
            return Err(format!("codec tag {tag} is not a framed chunk"));
        }
        if !is_framed(length) {
            return Err(format!("a chunk of {length} bytes is never framed"));
        }
        let encrypted = tag & ENCRYPTED != 0;
        let len = table_len(length, encrypted);
        let bytes = bytes.get(..len).ok_or_else(|| format!("frame table cut short at {} bytes", bytes.len()))?;
        let table = FrameTable { bytes, length, encrypted };
        for index in 0..table.frames() {
            let entry = table.entry(index);
            let plain = frame_range(length, index).len();
            let seal = if encrypted { TAG_LEN } else { 0 };
            let possible = match entry.codec {
                CODEC_RAW => entry.stored == plain + seal,
                CODEC_ZSTD => entry.stored > seal && entry.stored <= plain + seal,
                other => return Err(format!("frame {index} has unknown codec {other}")),
            };
            if !possible {
                return Err(format!("frame {index} claims {} stored bytes for {plain} of plaintext", entry.stored));
            }
        }
        Ok(table)
    }

    /// The table's bytes (tag byte included).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn frames(&self) -> usize {
        frame_count(self.length)
    }

    fn entry(&self, index: usize) -> Entry<'a> {
        let at = 1 + index * entry_len(self.encrypted);
        let e = &self.bytes[at..at + entry_len(self.encrypted)];
        let stored = u32::from_le_bytes(e[1..5].try_into().expect("4 bytes")) as usize;
        let (nonce, cv) = match self.encrypted {
            true => (Some(e[5..5 + NONCE_LEN].try_into().expect("nonce")), &e[5 + NONCE_LEN..]),
            false => (None, &e[5..]),
        };
        Entry { codec: e[0], stored, nonce, cv: cv.try_into().expect("32 bytes") }
    }

    /// Checks that the table belongs to chunk `id` of `domain`: its chaining values join up to the id.
    pub(crate) fn verify(&self, domain: Option<&EncryptionDomain>, id: &ChunkId) -> Result<(), String> {
        check_domain(self.bytes[0], domain)?;
        let cvs: Vec<ChainingValue> = (0..self.frames()).map(|index| *self.entry(index).cv).collect();
        let joined = root(&cvs, mode(domain));
        match (joined == *id, self.encrypted) {
            (true, _) => {}
            (false, true) => {
                return Err("does not decrypt: its frame table does not hash to the chunk id under this data key \
                     (damaged, or written under another data key)"
                    .into())
            }
            (false, false) => return Err(format!("frame table joins up to {joined}, not to the chunk id")),
        }
        Ok(())
    }

    /// The byte range of frames `frames` in the object.
    pub(crate) fn stored_range(&self, frames: std::ops::Range<usize>) -> std::ops::Range<u64> {
        let before: usize = (0..frames.start).map(|i| self.entry(i).stored).sum();
        let within: usize = frames.map(|i| self.entry(i).stored).sum();
        let start = (self.bytes.len() + before) as u64;
        start..start + within as u64
    }

    /// Decodes frame `index` from its stored bytes into `out` (exactly the frame's plaintext length) and
    /// verifies it against the table. The table must have been verified for `id`.
    pub(crate) fn decode_frame_into(
        &self,
        domain: Option<&EncryptionDomain>,
        id: &ChunkId,
        index: usize,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), String> {
        let entry = self.entry(index);
        if stored.len() != entry.stored || out.len() != frame_range(self.length, index).len() {
            return Err(format!("frame {index} is {} bytes, the table says {}", stored.len(), entry.stored));
        }
        let mut opened;
        let payload = match (domain, entry.nonce) {
            (Some(domain), Some(nonce)) => {
                let (body, gcm_tag) = stored.split_at(stored.len() - TAG_LEN);
                opened = body.to_vec();
                let aad = frame_aad(self.bytes[0], id, index, entry.codec);
                domain
                    .open_detached(nonce, &aad, &mut opened, gcm_tag)
                    .map_err(|e| format!("frame {index} {e}"))?;
                &opened[..]
            }
            _ => stored,
        };
        match entry.codec {
            CODEC_RAW => out.copy_from_slice(payload),
            _ => {
                let written = decompress_into(payload, out).map_err(|e| format!("frame {index}: {e}"))?;
                if written != out.len() {
                    return Err(format!("frame {index} decodes to {written} bytes, expected {}", out.len()));
                }
            }
        }
        if frame_chaining_value(domain, index, out) != *entry.cv {
            return Err(format!("frame {index} does not match its chaining value"));
        }
        Ok(())
    }

    /// Decodes and verifies a whole framed object (`object`, table first) into the chunk's plaintext.
    /// When every frame is stored raw and unsealed, the plaintext is a slice of `object` (no copy).
    pub(crate) fn decode_object(
        &self,
        domain: Option<&EncryptionDomain>,
        id: &ChunkId,
        object: &Bytes,
    ) -> Result<Bytes, String> {
        self.verify(domain, id)?;
        let end = self.stored_range(0..self.frames()).end;
        if object.len() as u64 != end {
            return Err(format!("object is {} bytes, its frame table describes {end}", object.len()));
        }
        if !self.encrypted && (0..self.frames()).all(|index| self.entry(index).codec == CODEC_RAW) {
            let plaintext = object.slice(self.bytes.len()..);
            for index in 0..self.frames() {
                let frame = &plaintext[frame_range(self.length, index)];
                if frame_chaining_value(domain, index, frame) != *self.entry(index).cv {
                    return Err(format!("frame {index} does not match its chaining value"));
                }
            }
            return Ok(plaintext);
        }
        let mut plaintext = vec![0u8; self.length];
        for index in 0..self.frames() {
            let stored = self.stored_range(index..index + 1);
            let stored = &object[stored.start as usize..stored.end as usize];
            self.decode_frame_into(domain, id, index, stored, &mut plaintext[frame_range(self.length, index)])?;
        }
        Ok(Bytes::from(plaintext))
    }

    /// Decodes and verifies frames `frames`, stored back to back in `stored`, each into its own buffer.
    pub(crate) fn decode_frames(
        &self,
        domain: Option<&EncryptionDomain>,
        id: &ChunkId,
        frames: std::ops::Range<usize>,
        stored: &[u8],
    ) -> Result<Vec<Bytes>, String> {
        let expected = self.stored_range(frames.clone());
        if stored.len() as u64 != expected.end - expected.start {
            let want = expected.end - expected.start;
            return Err(format!("frames {frames:?} are {} bytes, the table says {want}", stored.len()));
        }
        let mut at = 0;
        frames
            .map(|index| {
                let bytes = &stored[at..at + self.entry(index).stored];
                at += bytes.len();
                let mut out = vec![0u8; frame_range(self.length, index).len()];
                self.decode_frame_into(domain, id, index, bytes, &mut out)?;
                Ok(Bytes::from(out))
            })
            .collect()
    }
}

/// Decompresses one zstd frame into `out`; returns the bytes written.
fn decompress_into(src: &[u8], out: &mut [u8]) -> Result<usize, String> {
    with_decompressor(|decompressor| {
        decompressor.decompress_to_buffer(src, out).map_err(|e| format!("zstd payload does not decode: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::tests::random as pseudo_random;

    #[test]
    fn joined_frame_hashes_are_blake3_hashes() {
        let key = [7u8; 32];
        let domain = EncryptionDomain::new(&key);
        for length in [FRAME_LEN + 1, 2 * FRAME_LEN, 2 * FRAME_LEN + 1, 3 * FRAME_LEN + 999, 5 * FRAME_LEN, 4 << 20, 4_000_001]
        {
            let data = Bytes::from(pseudo_random(length, length as u64));
            // Segments that do not line up with frames.
            let segments: Vec<Bytes> = data.chunks(40_000).map(Bytes::copy_from_slice).collect();
            let plain = hash_chunk(None, &segments);
            assert_eq!(plain.id, ChunkId::of(&data), "length {length}");
            assert_eq!(plain.frames.len(), frame_count(length));
            let keyed = hash_chunk(Some(&domain), &segments);
            assert_eq!(keyed.id, domain.chunk_id(std::slice::from_ref(&data)), "keyed, length {length}");
        }
        let small = [Bytes::from_static(b"one frame or less is hashed whole")];
        let hash = hash_chunk(None, &small);
        assert!(hash.frames.is_empty());
        assert_eq!(hash.id, ChunkId::of(b"one frame or less is hashed whole"));
    }

    #[test]
    fn left_subtrees_hold_the_largest_power_of_two_below() {
        assert_eq!([2, 3, 4, 5, 8, 9, 64].map(left_frames), [1, 2, 2, 4, 4, 8, 32]);
    }

    fn refusal(table: &[u8], length: usize) -> String {
        match FrameTable::parse(table, length) {
            Ok(_) => panic!("a bad table of {} bytes was accepted", table.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn stored_lengths_must_fit_their_frames() {
        let length = 2 * FRAME_LEN;
        let mut table = vec![CODEC_FRAMED];
        push_entry(&mut table, CODEC_RAW, FRAME_LEN, None, &[0; 32]);
        push_entry(&mut table, CODEC_RAW, FRAME_LEN - 1, None, &[0; 32]);
        assert!(refusal(&table, length).contains("frame 1"));
        let mut table = vec![CODEC_FRAMED];
        push_entry(&mut table, 9, FRAME_LEN, None, &[0; 32]);
        push_entry(&mut table, CODEC_RAW, FRAME_LEN, None, &[0; 32]);
        assert!(refusal(&table, length).contains("unknown codec"));
        assert!(refusal(&table[..40], length).contains("cut short"));
        assert!(refusal(&[CODEC_RAW], length).contains("not a framed"));
        refusal(&[CODEC_FRAMED], FRAME_LEN);
    }
}
