//! Streaming content-defined chunking (FastCDC 2020, normalization level 1).
//!
//! Cut points depend only on content: a cut is searched for only once at least `MAX_CHUNK` bytes are
//! buffered (or the input has ended), and the search never looks past `MAX_CHUNK` bytes, so how the input
//! was split into writes never changes the chunks. The cut points are exactly those of
//! `fastcdc::v2020::FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)` over the whole file.
//!
//! The input is never copied into a contiguous window: the chunker keeps the written `Bytes` as a rope and
//! runs the gear hash across piece boundaries, so a chunk is a list of slices of the caller's buffers.
//! Only tiny pieces (< `SMALL_PIECE`) are copied, into a shared buffer, to bound the per-piece overhead.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use fastcdc::v2020;

/// Smallest chunk (except the last one of a file).
pub const MIN_CHUNK: usize = 256 * 1024;
/// Target average chunk size.
pub const AVG_CHUNK: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// Pieces shorter than this are copied into a coalescing buffer instead of being kept as rope segments.
const SMALL_PIECE: usize = 16 * 1024;
/// The coalescing buffer becomes a rope segment once it holds this much.
const SMALL_FLUSH: usize = 128 * 1024;
/// Bytes hashed between two checks for a run of zeros that can be skipped (even, see [`Chunker::scan`]).
const ZERO_BLOCK: usize = 1024;

/// The bytes of one chunk: consecutive slices (never empty ones) whose concatenation is the chunk.
pub type Segments = Vec<Bytes>;

/// Splits a byte stream into content-defined chunks.
pub struct Chunker {
    rope: VecDeque<Bytes>,
    /// Bytes in `rope`.
    len: usize,
    small: BytesMut,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    /// The hash that a run of zeros holds at pair boundaries once it is 64 bytes long, whatever came before.
    zero_hash: u64,
}

impl Default for Chunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunker {
    /// A chunker at the start of a file.
    pub fn new() -> Chunker {
        // Same masks and tables as v2020::FastCDC::new (normalization level 1, no seed).
        let bits = v2020::logarithm2(AVG_CHUNK as u32);
        let (gear, gear_ls) = v2020::get_gear_with_seed(0);
        // A pair shifts the hash by two bits, so after 32 pairs of zeros nothing of the earlier hash is left.
        let zero_hash = (0..32).fold(0u64, |h, _| (h << 2).wrapping_add(gear_ls[0]).wrapping_add(gear[0]));
        Chunker {
            rope: VecDeque::new(),
            len: 0,
            small: BytesMut::new(),
            mask_s: v2020::MASKS[(bits + 1) as usize],
            mask_l: v2020::MASKS[(bits - 1) as usize],
            gear,
            gear_ls,
            zero_hash,
        }
    }

    /// Feeds the next bytes; calls `emit` with each chunk completed by them, in order.
    /// Stops early (returning false) as soon as `emit` returns false.
    pub fn push(&mut self, data: Bytes, emit: &mut impl FnMut(Segments) -> bool) -> bool {
        if data.is_empty() {
            return true;
        }
        if data.len() < SMALL_PIECE {
            if self.small.capacity() - self.small.len() < data.len() {
                self.flush_small();
                self.small = BytesMut::with_capacity(SMALL_FLUSH + SMALL_PIECE);
            }
            self.small.extend_from_slice(&data);
            if self.small.len() >= SMALL_FLUSH {
                self.flush_small();
            }
        } else {
            self.flush_small();
            self.len += data.len();
            self.rope.push_back(data);
        }
        while self.len >= MAX_CHUNK {
            if !self.emit_next(emit) {
                return false;
            }
        }
        true
    }

    /// Ends the input: emits the remaining chunks (the last one may be shorter than `MIN_CHUNK`).
    pub fn finish(&mut self, emit: &mut impl FnMut(Segments) -> bool) -> bool {
        self.flush_small();
        while self.len > 0 {
            if !self.emit_next(emit) {
                return false;
            }
        }
        true
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            let piece = self.small.split().freeze();
            self.len += piece.len();
            self.rope.push_back(piece);
        }
    }

    fn emit_next(&mut self, emit: &mut impl FnMut(Segments) -> bool) -> bool {
        let n = self.cut_point();
        emit(self.take_front(n))
    }

    /// Removes and returns the first `n` bytes of the rope (zero-copy).
    fn take_front(&mut self, mut n: usize) -> Segments {
        self.len -= n;
        let mut out = Vec::new();
        while n > 0 {
            let front = self.rope.front_mut().expect("rope holds at least n bytes");
            if front.len() <= n {
                n -= front.len();
                out.push(self.rope.pop_front().expect("non-empty"));
            } else {
                out.push(front.split_to(n));
                n = 0;
            }
        }
        out
    }

    /// Length of the next chunk: `v2020::cut` applied to the rope (which holds at least `MAX_CHUNK` bytes
    /// unless the input has ended).
    fn cut_point(&self) -> usize {
        let len = self.len;
        if len <= MIN_CHUNK {
            return len;
        }
        let (remaining, center) = if len > MAX_CHUNK {
            (MAX_CHUNK, AVG_CHUNK)
        } else if len < AVG_CHUNK {
            (len, len)
        } else {
            (len, AVG_CHUNK)
        };
        // v2020::cut hashes bytes in pairs from MIN_CHUNK on: positions below `small_end` are tested
        // against the small (stricter) masks, the rest against the large ones, up to `end`. A hit at
        // position p cuts the chunk to length p. Without a hit, the chunk is `remaining` long.
        let start = MIN_CHUNK / 2 * 2;
        let small_end = center / 2 * 2;
        let end = remaining / 2 * 2;
        let mut hash = 0u64;
        let mut seg_start = 0usize;
        for seg in &self.rope {
            let seg_end = seg_start + seg.len();
            for (lo, hi, mask) in [(start, small_end, self.mask_s), (small_end.max(start), end, self.mask_l)] {
                let (from, to) = (lo.max(seg_start), hi.min(seg_end));
                if from < to {
                    let bytes = &seg[from - seg_start..to - seg_start];
                    if let Some(p) = self.scan(bytes, from, &mut hash, mask) {
                        return p;
                    }
                }
            }
            if seg_end >= end {
                break;
            }
            seg_start = seg_end;
        }
        remaining
    }

    /// Runs the gear hash over `bytes` (which start at chunk position `at`), as v2020::cut does; returns the
    /// position of the first byte whose hash matches `mask`.
    ///
    /// Runs of zeros are skipped where that changes nothing: once the hash holds `zero_hash` at a pair
    /// boundary, a further pair of zeros takes it through one value and back to `zero_hash`; if neither
    /// value matches `mask`, no zero of the run can cut, so an even-length block of zeros leaves the hash
    /// as it was and is not hashed at all.
    #[inline]
    fn scan(&self, bytes: &[u8], at: usize, hash: &mut u64, mask: u64) -> Option<usize> {
        let mut h = *hash;
        let mut i = 0;
        if at % 2 == 1 {
            h = h.wrapping_add(self.gear[bytes[0] as usize]);
            if h & mask == 0 {
                return Some(at);
            }
            i = 1;
        }
        let zeros_cut = self.zeros_cut(mask);
        while i < bytes.len() {
            let block = &bytes[i..(i + ZERO_BLOCK).min(bytes.len())];
            let skip = !zeros_cut && h == self.zero_hash && block.len() % 2 == 0 && crate::chunk::is_all_zero(block);
            if !skip {
                if let Some(p) = self.scan_pairs(block, at + i, &mut h, mask) {
                    return Some(p);
                }
            }
            i += block.len();
        }
        *hash = h;
        None
    }

    /// Whether a long run of zeros has a cut point under `mask` (then runs of zeros are hashed like any bytes).
    fn zeros_cut(&self, mask: u64) -> bool {
        let between = (self.zero_hash << 2).wrapping_add(self.gear_ls[0]);
        between & (mask << 1) == 0 || self.zero_hash & mask == 0
    }

    /// [`scan`](Self::scan) without the zero-run shortcut, for `bytes` starting at an even position `at`: a
    /// byte at an even position shifts the hash by two and adds the left-shifted table, one at an odd
    /// position adds the plain table.
    #[inline]
    fn scan_pairs(&self, bytes: &[u8], at: usize, hash: &mut u64, mask: u64) -> Option<usize> {
        let (gear, gear_ls, mask_ls) = (&*self.gear, &*self.gear_ls, mask << 1);
        let mut h = *hash;
        let mut i = 0;
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            h = (h << 2).wrapping_add(gear_ls[pair[0] as usize]);
            if h & mask_ls == 0 {
                return Some(at + i);
            }
            h = h.wrapping_add(gear[pair[1] as usize]);
            if h & mask == 0 {
                return Some(at + i + 1);
            }
            i += 2;
        }
        if let [last] = pairs.remainder() {
            h = (h << 2).wrapping_add(gear_ls[*last as usize]);
            if h & mask_ls == 0 {
                return Some(at + i);
            }
        }
        *hash = h;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Chunks `data` written in pieces whose sizes cycle through `sizes`; checks the chunks reassemble it.
    fn chunk_lengths(data: &[u8], sizes: &[usize]) -> Vec<usize> {
        let shared = Bytes::copy_from_slice(data);
        let mut out = Vec::new();
        let mut joined = Vec::with_capacity(data.len());
        let mut c = Chunker::new();
        let mut emit = |segs: Segments| {
            assert!(segs.iter().all(|s| !s.is_empty()));
            out.push(segs.iter().map(|s| s.len()).sum());
            segs.iter().for_each(|s| joined.extend_from_slice(s));
            true
        };
        let mut at = 0;
        for &n in sizes.iter().cycle() {
            if at >= data.len() {
                break;
            }
            let end = (at + n).min(data.len());
            assert!(c.push(shared.slice(at..end), &mut emit));
            at = end;
        }
        assert!(c.finish(&mut emit));
        assert!(joined == data);
        out
    }

    fn reference(data: &[u8]) -> Vec<usize> {
        v2020::FastCDC::new(data, MIN_CHUNK as u32, AVG_CHUNK as u32, MAX_CHUNK as u32)
            .map(|c| c.length)
            .collect()
    }

    #[test]
    fn cut_points_match_fastcdc_whatever_the_write_sizes() {
        let data = pseudo_random(24 * 1024 * 1024 + 12345, 7);
        let expected = reference(&data);
        assert_eq!(chunk_lengths(&data, &[data.len()]), expected);
        assert_eq!(chunk_lengths(&data, &[65_537]), expected);
        assert_eq!(chunk_lengths(&data, &[1, 4097, 3, 20_000, 1_000_001, 7]), expected);
        assert!(expected.iter().all(|&n| n <= MAX_CHUNK));
        assert!(expected[..expected.len() - 1].iter().all(|&n| n >= MIN_CHUNK));
        let avg = data.len() / expected.len();
        assert!(avg > AVG_CHUNK / 2 && avg < AVG_CHUNK * 2, "average chunk {avg}");
        let small = &data[..6 * 1024 * 1024];
        assert_eq!(chunk_lengths(small, &[1]), reference(small));
    }

    #[test]
    fn short_tails_and_low_entropy_data_match_fastcdc() {
        for len in [0, 1, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, AVG_CHUNK + 3, MAX_CHUNK, MAX_CHUNK + 1] {
            let data = pseudo_random(len, len as u64);
            assert_eq!(chunk_lengths(&data, &[17_000, 9]), reference(&data), "len {len}");
        }
        let zeros = vec![0u8; 13 * 1024 * 1024];
        assert_eq!(chunk_lengths(&zeros, &[100_000]), reference(&zeros));
        let text: Vec<u8> = (0..11 * 1024 * 1024).map(|i| b"abcab"[i % 5] ^ (i >> 19) as u8).collect();
        assert_eq!(chunk_lengths(&text, &[33_333, 5]), reference(&text));
    }

    /// Data with runs of zeros of every kind of length, at odd and even positions, cuts as fastcdc cuts it
    /// (runs of zeros are skipped rather than hashed: see `Chunker::scan`).
    #[test]
    fn runs_of_zeros_cut_as_fastcdc_cuts_them() {
        let c = Chunker::new();
        assert!(!c.zeros_cut(c.mask_s) && !c.zeros_cut(c.mask_l), "the zero-run shortcut applies to both masks");
        let runs = [1, 2, 63, 64, 65, 127, 1000, 1024, 1025, 4097, 70_001, 300_000, 1_048_577, 2_500_000, 5_000_000];
        let mut data = Vec::new();
        for (n, &run) in runs.iter().enumerate() {
            data.extend(pseudo_random(n * 100_003 % 700_000 + n % 2, n as u64 + 11));
            data.resize(data.len() + run, 0);
        }
        let expected = reference(&data);
        assert_eq!(chunk_lengths(&data, &[data.len()]), expected);
        assert_eq!(chunk_lengths(&data, &[1_048_576]), expected);
        assert_eq!(chunk_lengths(&data, &[1, 4097, 3, 20_000, 1_000_001, 7]), expected);
        let mut zeros_first = vec![0u8; 9_000_001];
        zeros_first.extend(pseudo_random(3_000_000, 5));
        assert_eq!(chunk_lengths(&zeros_first, &[65_535, 2]), reference(&zeros_first));
    }
}
