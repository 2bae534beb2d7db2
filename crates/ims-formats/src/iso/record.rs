//! The building blocks of an ISO 9660 file system (ECMA-119): sectors, both-endian numbers,
//! directory records, recording times and the volume descriptor kinds.

use crate::{FormatError, Result};

/// Logical block (sector) size; the only one written and read.
pub const SECTOR: u64 = 2048;
/// Sector of the first volume descriptor.
pub(crate) const FIRST_DESCRIPTOR_SECTOR: u64 = 16;
/// Directory record flag: the entry is a directory.
pub(crate) const FLAG_DIRECTORY: u8 = 0x02;
/// Directory record flag: an associated file (a resource fork), not part of the tree.
pub(crate) const FLAG_ASSOCIATED: u8 = 0x04;
/// Directory record flag: the file continues in the next record (multi-extent files).
pub(crate) const FLAG_MULTI_EXTENT: u8 = 0x80;
/// Length of a directory record without its identifier.
pub(crate) const RECORD_HEADER: usize = 33;
/// Joliet escape sequences (UCS-2 level 1, 2 and 3) in a supplementary volume descriptor.
pub(crate) const JOLIET_ESCAPES: [&[u8; 3]; 3] = [b"%/@", b"%/C", b"%/E"];

/// Writes `v` as a both-endian 16-bit field (little-endian copy, then big-endian).
pub(crate) fn put_both_u16(out: &mut [u8], v: u16) {
    out[0..2].copy_from_slice(&v.to_le_bytes());
    out[2..4].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` as a both-endian 32-bit field.
pub(crate) fn put_both_u32(out: &mut [u8], v: u32) {
    out[0..4].copy_from_slice(&v.to_le_bytes());
    out[4..8].copy_from_slice(&v.to_be_bytes());
}

/// The length of a directory record whose identifier is `id_len` bytes: header, identifier, and a
/// pad byte that keeps the record length even.
pub(crate) fn record_len(id_len: usize) -> usize {
    RECORD_HEADER + id_len + usize::from(id_len % 2 == 0)
}

/// A calendar time in UTC, as directory records and volume descriptors store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl IsoTime {
    /// The UTC calendar time of `unix_seconds` (clamped to the years 1970..=2155 that records hold).
    pub fn from_unix(unix_seconds: u64) -> IsoTime {
        let max = 5_869_583_999; // 2155-12-31T23:59:59Z
        let secs = unix_seconds.min(max);
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, for non-negative days).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        IsoTime {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The 7-byte form of a directory record (years since 1900, ..., offset from GMT 0).
    pub(crate) fn record_bytes(&self) -> [u8; 7] {
        [
            (self.year.saturating_sub(1900)).min(255) as u8,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0,
        ]
    }

    /// The 17-byte form of a volume descriptor (`YYYYMMDDHHMMSScc` digits, offset from GMT 0).
    pub(crate) fn descriptor_bytes(&self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(text.as_bytes());
        out
    }
}

/// Appends a directory record to `out`.
pub(crate) fn put_record(out: &mut Vec<u8>, extent: u32, size: u32, time: &IsoTime, flags: u8, id: &[u8]) {
    let len = record_len(id.len());
    let start = out.len();
    out.resize(start + len, 0);
    let r = &mut out[start..];
    r[0] = len as u8;
    put_both_u32(&mut r[2..10], extent);
    put_both_u32(&mut r[10..18], size);
    r[18..25].copy_from_slice(&time.record_bytes());
    r[25] = flags;
    put_both_u16(&mut r[28..32], 1);
    r[32] = id.len() as u8;
    r[33..33 + id.len()].copy_from_slice(id);
}

/// A directory record read from an image. Numbers are taken from the little-endian halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirRecord {
    pub extent: u32,
    pub size: u32,
    pub flags: u8,
    pub id: Vec<u8>,
}

/// Parses the record at the start of `bytes`: `Ok(None)` for a zero length byte (the rest of the
/// sector is padding), else the record and its length. `Corrupt` when the record is shorter than
/// its header or its identifier runs past the record or the buffer.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<Option<(DirRecord, usize)>> {
    let Some(&len) = bytes.first() else { return Ok(None) };
    let len = usize::from(len);
    if len == 0 {
        return Ok(None);
    }
    let corrupt = |why: &str| Err(FormatError::Corrupt(format!("iso: directory record {why}")));
    if len < RECORD_HEADER + 1 {
        return corrupt(&format!("of {len} bytes is shorter than its header"));
    }
    let Some(r) = bytes.get(..len) else {
        return corrupt("crosses a sector boundary");
    };
    let id_len = usize::from(r[32]);
    if RECORD_HEADER + id_len > len {
        return corrupt(&format!("of {len} bytes has an identifier of {id_len} bytes"));
    }
    let u32_le = |at: usize| u32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
    let record = DirRecord {
        extent: u32_le(2),
        size: u32_le(10),
        flags: r[25],
        id: r[33..33 + id_len].to_vec(),
    };
    Ok(Some((record, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_become_calendar_dates() {
        let t = IsoTime::from_unix(0);
        assert_eq!((t.year, t.month, t.day, t.hour), (1970, 1, 1, 0));
        // 2024-02-29T12:34:56Z
        let t = IsoTime::from_unix(1_709_210_096);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2024, 2, 29, 12, 34, 56));
        assert_eq!(&t.descriptor_bytes()[..16], b"2024022912345600");
        assert_eq!(IsoTime::from_unix(u64::MAX).year, 2155);
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        let t = IsoTime::from_unix(0);
        put_record(&mut out, 42, 4096, &t, FLAG_DIRECTORY, b"DIR");
        assert_eq!(out.len(), 36);
        let (r, len) = parse_record(&out).unwrap().unwrap();
        assert_eq!((r.extent, r.size, r.flags, r.id.as_slice(), len), (42, 4096, FLAG_DIRECTORY, &b"DIR"[..], 36));
        assert!(parse_record(&[0u8; 40]).unwrap().is_none());
        assert!(parse_record(&out[..20]).is_err());
        let mut bad = out.clone();
        bad[32] = 200;
        assert!(parse_record(&bad).is_err());
        bad[0] = 10;
        assert!(parse_record(&bad).is_err());
    }
}
