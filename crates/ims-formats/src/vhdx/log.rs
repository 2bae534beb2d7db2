//! The VHDX metadata log: finding the active sequence and replaying it in memory.
//!
//! A VHDX whose header names a log must have that log replayed before its metadata is trusted.
//! Writing the file is not an option (the source is read-only and shared), so the replay builds an
//! overlay of 4 KiB sectors over the file, and the reader reads through it.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use crate::reader::crc32c::crc32c_with_zeroed_field;
use crate::reader::Fields;
use crate::{ReadAt, Result};

use super::layout::{corrupt, MB};

const SECTOR: u64 = 4096;
const SECTOR_BYTES: usize = 4096;
const ENTRY_HEADER_LEN: usize = 64;

/// One replay operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp {
    /// Write this 4 KiB sector at `file_offset`.
    /// Write this 4 KiB sector at `file_offset`.
    Data {
        /// Where to write (4 KiB-aligned).
        file_offset: u64,
        /// The 4096 bytes to write.
        sector: Vec<u8>,
    },
    /// Zero `length` bytes (a multiple of 4 KiB) at `file_offset`.
    /// Zero `length` bytes (a multiple of 4 KiB) at `file_offset`.
    Zero {
        /// Where to start (4 KiB-aligned).
        file_offset: u64,
        /// How many bytes to zero.
        length: u64,
    },
}

/// A valid log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position of the entry in the log (bytes from the log start).
    pub position: u64,
    /// Length of the entry in bytes (a multiple of 4 KiB).
    pub length: u64,
    /// Log position of the first entry of the sequence this entry ends.
    pub tail: u64,
    /// Entry sequence number (never 0).
    pub sequence_number: u64,
    /// File size the entry expects at least.
    pub flushed_file_offset: u64,
    /// File size after the replay.
    pub last_file_offset: u64,
    /// Replay operations, in order.
    pub ops: Vec<LogOp>,
}

/// Reads `len` bytes of the circular `log` from `pos`.
fn circular(log: &[u8], pos: u64, len: u64) -> Option<Vec<u8>> {
    let total = log.len() as u64;
    if len > total || pos >= total {
        return None;
    }
    let start = usize::try_from(pos).ok()?;
    let len = usize::try_from(len).ok()?;
    let first = (log.len() - start).min(len);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(log.get(start..start + first)?);
    out.extend_from_slice(log.get(..len - first)?);
    Some(out)
}

/// The length of the entry whose header is at `position`, when the header's fields (all but the
/// checksum, which covers the whole entry) are those of an entry of the log identified by `log_guid`:
/// what checking the entry's checksum would cost. `None` when no entry can start there.
fn candidate_length(log: &[u8], position: u64, log_guid: &[u8; 16]) -> Option<u64> {
    let head = circular(log, position, ENTRY_HEADER_LEN as u64)?;
    let f = Fields::new(&head, "vhdx", "log entry header");
    let length = u64::from(f.u32_le(8).ok()?);
    let tail = u64::from(f.u32_le(12).ok()?);
    let valid = f.slice(0, 4).ok()? == b"loge"
        && length != 0
        && length.is_multiple_of(SECTOR)
        && length <= log.len() as u64
        && f.u64_le(16).ok()? != 0
        && &f.guid(32).ok()? == log_guid
        && tail.is_multiple_of(SECTOR)
        && tail < log.len() as u64;
    valid.then_some(length)
}

/// Parses and validates the log entry at `position` of `log` (the whole log region), for the log
/// identified by `log_guid`. `None` when there is no valid entry there.
pub fn parse_entry(log: &[u8], position: u64, log_guid: &[u8; 16]) -> Option<LogEntry> {
    let length = candidate_length(log, position, log_guid)?;
    let head = circular(log, position, ENTRY_HEADER_LEN as u64)?;
    let f = Fields::new(&head, "vhdx", "log entry header");
    let checksum = f.u32_le(4).ok()?;
    let tail = u64::from(f.u32_le(12).ok()?);
    let seq = f.u64_le(16).ok()?;
    let count = u64::from(f.u32_le(24).ok()?);
    let entry = circular(log, position, length)?;
    if crc32c_with_zeroed_field(&entry, 4) != checksum {
        return None;
    }
    let desc_sectors = (count + 2).div_ceil(128);
    let total_sectors = length / SECTOR;
    if desc_sectors > total_sectors {
        return None;
    }
    let e = Fields::new(&entry, "vhdx", "log entry");
    let mut ops = Vec::new();
    let mut data_index = desc_sectors;
    for i in 0..usize::try_from(count).ok()? {
        let at = ENTRY_HEADER_LEN + i * 32;
        let sig = e.slice(at, 4).ok()?;
        let file_offset = e.u64_le(at + 16).ok()?;
        if e.u64_le(at + 24).ok()? != seq || !file_offset.is_multiple_of(SECTOR) {
            return None;
        }
        match sig {
            b"zero" => {
                let length = e.u64_le(at + 8).ok()?;
                if !length.is_multiple_of(SECTOR) {
                    return None;
                }
                ops.push(LogOp::Zero { file_offset, length });
            }
            b"desc" => {
                if data_index >= total_sectors {
                    return None;
                }
                let ds = usize::try_from(data_index * SECTOR).ok()?;
                let d = Fields::new(e.slice(ds, SECTOR_BYTES).ok()?, "vhdx", "log data sector");
                let seq_high = u64::from(d.u32_le(4).ok()?);
                let seq_low = u64::from(d.u32_le(4092).ok()?);
                if d.slice(0, 4).ok()? != b"data" || (seq_high << 32 | seq_low) != seq {
                    return None;
                }
                let mut sector = Vec::with_capacity(SECTOR_BYTES);
                sector.extend_from_slice(e.slice(at + 8, 8).ok()?); // leading bytes
                sector.extend_from_slice(d.slice(8, 4084).ok()?);
                sector.extend_from_slice(e.slice(at + 4, 4).ok()?); // trailing bytes
                ops.push(LogOp::Data { file_offset, sector });
                data_index += 1;
            }
            _ => return None,
        }
    }
    Some(LogEntry {
        position,
        length,
        tail,
        sequence_number: seq,
        flushed_file_offset: f.u64_le(48).ok()?,
        last_file_offset: f.u64_le(56).ok()?,
        ops,
    })
}

/// How many times the log's size the search for its head may checksum (see [`active_sequence`]).
pub const SCAN_BUDGET_FACTOR: u64 = 4;

/// Finds the active sequence of `log`: the valid entry with the highest sequence number is the
/// head; its tail names the first entry; every entry from tail to head must be valid and numbered
/// consecutively. Returns the entries in replay order (empty when the log holds no valid entry).
///
/// The search checksums every candidate entry whole, so a log crafted with an entry header in every
/// sector would cost (log size / 4 KiB) × log size. A real log never needs more than about twice its
/// size (intact entries do not overlap; an overwritten one fails its checksum at most once per
/// wrap-around), so the search gives up with `Corrupt` past [`SCAN_BUDGET_FACTOR`] times the log size.
pub fn active_sequence(log: &[u8], log_guid: &[u8; 16]) -> Result<Vec<LogEntry>> {
    let mut head: Option<LogEntry> = None;
    let mut pos = 0u64;
    let budget = (log.len() as u64).saturating_mul(SCAN_BUDGET_FACTOR);
    let mut checksummed = 0u64;
    while pos < log.len() as u64 {
        if let Some(length) = candidate_length(log, pos, log_guid) {
            checksummed += length;
            if checksummed > budget {
                return Err(corrupt(format!(
                    "log holds too many overlapping entry candidates (more than {SCAN_BUDGET_FACTOR} times \
                     its size to checksum by log offset {pos:#x})"
                )));
            }
        }
        if let Some(e) = parse_entry(log, pos, log_guid) {
            if head.as_ref().is_none_or(|h| e.sequence_number > h.sequence_number) {
                head = Some(e);
            }
        }
        pos += SECTOR;
    }
    let Some(head) = head else { return Ok(Vec::new()) };
    let mut seq = Vec::new();
    let mut pos = head.tail;
    // At most one entry per log sector.
    for _ in 0..=(log.len() as u64 / SECTOR) {
        let e = parse_entry(log, pos, log_guid).ok_or_else(|| {
            corrupt(format!(
                "log sequence ending at sequence number {} is broken at log offset {pos:#x}",
                head.sequence_number
            ))
        })?;
        if let Some(prev) = seq.last().map(|p: &LogEntry| p.sequence_number) {
            if e.sequence_number != prev.wrapping_add(1) {
                return Err(corrupt(format!(
                    "log sequence numbers are not consecutive at log offset {pos:#x}"
                )));
            }
        }
        let done = e.position == head.position;
        pos = (e.position + e.length) % log.len() as u64;
        seq.push(e);
        if done {
            return Ok(seq);
        }
    }
    Err(corrupt("log sequence does not reach its head".into()))
}

#[derive(Clone)]
enum Piece {
    Zero,
    /// Exactly one 4 KiB sector.
    Data(Arc<Vec<u8>>),
}

/// The image file with a replayed log laid over it. Reads past the end of the underlying file (but
/// within the replayed size) read zeros, as the file would after a replay extended it.
pub struct Replayed {
    base: Arc<dyn ReadAt>,
    base_size: u64,
    size: u64,
    /// Disjoint, 4 KiB-aligned intervals: start -> (end, piece).
    pieces: BTreeMap<u64, (u64, Piece)>,
}

impl Replayed {
    /// Replays `entries` (in order) over `base`. `Corrupt` when an entry expects a longer file than
    /// `base` is (truncated after the log was written).
    pub fn new(base: Arc<dyn ReadAt>, entries: &[LogEntry]) -> Result<Replayed> {
        let base_size = base.size()?;
        let mut r = Replayed {
            base,
            base_size,
            size: base_size,
            pieces: BTreeMap::new(),
        };
        for e in entries {
            if e.flushed_file_offset > base_size {
                return Err(corrupt(format!(
                    "log entry {} expects a file of at least {} bytes, but it has {base_size}",
                    e.sequence_number, e.flushed_file_offset
                )));
            }
            for op in &e.ops {
                match op {
                    LogOp::Data { file_offset, sector } => {
                        let end = file_offset
                            .checked_add(SECTOR)
                            .ok_or_else(|| corrupt("log write overflows".into()))?;
                        r.put(*file_offset, end, Piece::Data(Arc::new(sector.clone())));
                    }
                    LogOp::Zero { file_offset, length } => {
                        let end = file_offset
                            .checked_add(*length)
                            .ok_or_else(|| corrupt("log zero overflows".into()))?;
                        if *length > 0 {
                            r.put(*file_offset, end, Piece::Zero);
                        }
                    }
                }
            }
            if e.last_file_offset > r.size {
                // A replay extends the file to last_file_offset, rounded up to 1 MiB.
                r.size = e.last_file_offset.div_ceil(MB).saturating_mul(MB);
            }
        }
        Ok(r)
    }

    /// Number of intervals in the overlay (for tests).
    pub fn overlay_len(&self) -> usize {
        self.pieces.len()
    }

    fn put(&mut self, start: u64, end: u64, piece: Piece) {
        let overlapping: Vec<u64> = self
            .pieces
            .range(..end)
            .rev()
            .take_while(|(_, (e, _))| *e > start)
            .map(|(s, _)| *s)
            .collect();
        for s in overlapping {
            if let Some((e, p)) = self.pieces.remove(&s) {
                // Data pieces are single aligned sectors, always inside [start, end) here.
                if s < start {
                    self.pieces.insert(s, (start, p.clone()));
                }
                if e > end {
                    self.pieces.insert(end, (e, p));
                }
            }
        }
        self.pieces.insert(start, (end, piece));
        self.size = self.size.max(end);
    }
}

impl ReadAt for Replayed {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let clamp = |n: u64, max: usize| usize::try_from(n).unwrap_or(max).min(max);
        let want = clamp(self.size - offset, buf.len());
        let (out, _) = buf.split_at_mut(want);
        // Inside a piece?
        if let Some((&s, (e, piece))) = self.pieces.range(..=offset).next_back() {
            if *e > offset {
                let (chunk, _) = out.split_at_mut(clamp(*e - offset, out.len()));
                match piece {
                    Piece::Zero => chunk.fill(0),
                    Piece::Data(d) => {
                        let at = usize::try_from(offset - s).unwrap_or(usize::MAX);
                        let src = at.checked_add(chunk.len()).and_then(|end| d.get(at..end));
                        match src {
                            Some(src) => chunk.copy_from_slice(src),
                            None => return Err(io::Error::other("vhdx: log overlay is inconsistent")),
                        }
                    }
                }
                return Ok(chunk.len());
            }
        }
        // Up to the next piece, from the base file (zeros past its end).
        let next = self.pieces.range(offset..).next().map(|(s, _)| *s).unwrap_or(u64::MAX);
        let (chunk, _) = out.split_at_mut(clamp(next - offset, out.len()));
        let from_base = if offset >= self.base_size {
            0
        } else {
            clamp(self.base_size - offset, chunk.len())
        };
        let (head, zeros) = chunk.split_at_mut(from_base);
        if !head.is_empty() {
            self.base.read_exact_at(head, offset)?;
        }
        zeros.fill(0);
        Ok(chunk.len())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

/// Builds a log entry (for tests and handcrafted images): `ops` at sequence `seq`, positioned as
/// its own tail.
#[cfg(test)]
pub(crate) fn build_entry(log_guid: &[u8; 16], seq: u64, tail: u32, ops: &[LogOp], file_size: u64) -> Vec<u8> {
    let count = ops.len() as u64;
    let desc_sectors = (count + 2).div_ceil(128);
    let data: Vec<&Vec<u8>> = ops
        .iter()
        .filter_map(|o| match o {
            LogOp::Data { sector, .. } => Some(sector),
            _ => None,
        })
        .collect();
    let total = (desc_sectors + data.len() as u64) * SECTOR;
    let mut b = vec![0u8; total as usize];
    b[0..4].copy_from_slice(b"loge");
    b[8..12].copy_from_slice(&(total as u32).to_le_bytes());
    b[12..16].copy_from_slice(&tail.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    b[24..28].copy_from_slice(&(count as u32).to_le_bytes());
    b[32..48].copy_from_slice(log_guid);
    b[48..56].copy_from_slice(&file_size.to_le_bytes());
    b[56..64].copy_from_slice(&file_size.to_le_bytes());
    let mut di = desc_sectors as usize;
    for (i, op) in ops.iter().enumerate() {
        let at = 64 + i * 32;
        match op {
            LogOp::Zero { file_offset, length } => {
                b[at..at + 4].copy_from_slice(b"zero");
                b[at + 8..at + 16].copy_from_slice(&length.to_le_bytes());
                b[at + 16..at + 24].copy_from_slice(&file_offset.to_le_bytes());
            }
            LogOp::Data { file_offset, sector } => {
                b[at..at + 4].copy_from_slice(b"desc");
                b[at + 4..at + 8].copy_from_slice(&sector[4092..4096]);
                b[at + 8..at + 16].copy_from_slice(&sector[0..8]);
                b[at + 16..at + 24].copy_from_slice(&file_offset.to_le_bytes());
                let ds = di * 4096;
                b[ds..ds + 4].copy_from_slice(b"data");
                b[ds + 4..ds + 8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
                b[ds + 8..ds + 4092].copy_from_slice(&sector[8..4092]);
                b[ds + 4092..ds + 4096].copy_from_slice(&(seq as u32).to_le_bytes());
                di += 1;
            }
        }
        b[at + 24..at + 32].copy_from_slice(&seq.to_le_bytes());
    }
    let c = crate::reader::crc32c::crc32c(&b);
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: [u8; 16] = [7; 16];

    #[test]
    fn finds_and_replays_sequence() {
        let mut log = vec![0u8; 1 << 20];
        let s1 = vec![0xAAu8; 4096];
        let e1 = build_entry(
            &GUID,
            10,
            0,
            &[LogOp::Data {
                file_offset: 8192,
                sector: s1,
            }],
            1 << 16,
        );
        let e1_len = e1.len();
        log[..e1_len].copy_from_slice(&e1);
        let e2 = build_entry(
            &GUID,
            11,
            0,
            &[
                LogOp::Zero {
                    file_offset: 8192,
                    length: 4096,
                },
                LogOp::Data {
                    file_offset: 4096,
                    sector: vec![0xBB; 4096],
                },
            ],
            1 << 16,
        );
        log[e1_len..e1_len + e2.len()].copy_from_slice(&e2);
        let seq = active_sequence(&log, &GUID).unwrap();
        assert_eq!(seq.iter().map(|e| e.sequence_number).collect::<Vec<_>>(), vec![10, 11]);
        // Another log guid: nothing valid.
        assert!(active_sequence(&log, &[1; 16]).unwrap().is_empty());

        let base: Arc<dyn ReadAt> = Arc::new(vec![0x11u8; 1 << 16]);
        let r = Replayed::new(base, &seq).unwrap();
        let mut buf = vec![0u8; 3 * 4096];
        r.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0x11));
        assert!(buf[4096..8192].iter().all(|&b| b == 0xBB));
        assert!(buf[8192..].iter().all(|&b| b == 0)); // zeroed after the data write
    }

    #[test]
    fn a_log_of_overlapping_bad_entries_is_refused_after_a_bounded_search() {
        // Every sector of a 1 MiB log starts a header claiming the whole log, with a wrong checksum:
        // an unbounded search would checksum 256 MiB.
        let mut log = vec![0u8; 1 << 20];
        let mut entry = build_entry(&GUID, 1, 0, &[], 0);
        entry[8..12].copy_from_slice(&(log.len() as u32).to_le_bytes());
        entry[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        for sector in log.chunks_mut(SECTOR_BYTES) {
            sector[..entry.len().min(SECTOR_BYTES)].copy_from_slice(&entry[..entry.len().min(SECTOR_BYTES)]);
        }
        let err = active_sequence(&log, &GUID).unwrap_err();
        assert!(err.to_string().contains("too many overlapping entry candidates"), "{err}");
        // A valid log still replays: the budget is far above what a real log needs.
        let mut log = vec![0u8; 1 << 20];
        for (i, seq) in (1..=4u64).enumerate() {
            let e = build_entry(&GUID, seq, 0, &[LogOp::Zero { file_offset: 0, length: SECTOR }], 0);
            log[i * SECTOR_BYTES..][..e.len()].copy_from_slice(&e);
        }
        assert_eq!(active_sequence(&log, &GUID).unwrap().len(), 4);
    }

    #[test]
    fn broken_chain_is_corrupt() {
        let mut log = vec![0u8; 1 << 20];
        // Head names a tail that holds no entry.
        let e = build_entry(&GUID, 5, 8192 * 4, &[], 0);
        log[..e.len()].copy_from_slice(&e);
        assert!(active_sequence(&log, &GUID).is_err());
        // A damaged entry is ignored.
        let mut e = build_entry(&GUID, 5, 0, &[], 0);
        e[100] ^= 1;
        log[..e.len()].copy_from_slice(&e);
        assert!(active_sequence(&log, &GUID).unwrap().is_empty());
    }

    #[test]
    fn overlay_splits_zero_ranges() {
        let base: Arc<dyn ReadAt> = Arc::new(vec![0x22u8; 1 << 20]);
        let entry = LogEntry {
            position: 0,
            length: 4096,
            tail: 0,
            sequence_number: 1,
            flushed_file_offset: 0,
            last_file_offset: 3 << 20,
            ops: vec![
                LogOp::Zero {
                    file_offset: 0,
                    length: 16 * 4096,
                },
                LogOp::Data {
                    file_offset: 4 * 4096,
                    sector: vec![1; 4096],
                },
            ],
        };
        let r = Replayed::new(base, &[entry]).unwrap();
        assert_eq!(r.overlay_len(), 3);
        assert_eq!(r.size().unwrap(), 3 << 20);
        let mut b = vec![9u8; 20 * 4096];
        r.read_exact_at(&mut b, 0).unwrap();
        assert!(b[..4 * 4096].iter().all(|&x| x == 0));
        assert!(b[4 * 4096..5 * 4096].iter().all(|&x| x == 1));
        assert!(b[5 * 4096..16 * 4096].iter().all(|&x| x == 0));
        assert!(b[16 * 4096..].iter().all(|&x| x == 0x22));
        let mut tail = vec![9u8; 4096];
        r.read_exact_at(&mut tail, (3 << 20) - 4096).unwrap();
        assert!(tail.iter().all(|&x| x == 0));
    }
}
