//! The VMDK text descriptor, parsed with a strict grammar: every line must be a comment, a blank,
//! a `key=value` header field, a `ddb.*` database entry or an extent line. Anything else is refused.

use crate::reader::quote;
use crate::{FormatError, Result};

/// Largest descriptor read (as qemu and oslo.utils bound it).
pub const MAX_DESCRIPTOR_BYTES: usize = (1 << 20) - 1;

/// Extent access mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `RW`.
    ReadWrite,
    /// `RDONLY`.
    ReadOnly,
    /// `NOACCESS`.
    NoAccess,
}

/// One extent line: `ACCESS SECTORS TYPE "FILE" [OFFSET]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Access mode.
    pub access: Access,
    /// Extent size in 512-byte sectors.
    pub sectors: u64,
    /// Upper-cased: SPARSE, FLAT, ZERO, VMFS, VMFSSPARSE, VMFSRDM, VMFSRAW, SESPARSE.
    pub kind: String,
    /// Extent file name as written in the descriptor.
    pub file_name: String,
    /// Start offset in sectors (FLAT extents).
    pub offset: Option<u64>,
    /// 1-based line number in the descriptor.
    pub line: usize,
}

/// A parsed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Header fields in order (`version`, `CID`, `parentCID`, `createType`, ...), values unquoted.
    pub fields: Vec<(String, String)>,
    /// Extent lines in order.
    pub extents: Vec<Extent>,
    /// Disk database entries (`ddb.geometry.cylinders`, ...), values unquoted.
    pub ddb: Vec<(String, String)>,
}

impl Descriptor {
    /// The value of header field `key` (case-insensitive).
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
    /// `createType`.
    pub fn create_type(&self) -> Option<&str> {
        self.field("createType")
    }
}

const EXTENT_TYPES: [&str; 8] = [
    "SPARSE",
    "FLAT",
    "ZERO",
    "VMFS",
    "VMFSSPARSE",
    "VMFSRDM",
    "VMFSRAW",
    "SESPARSE",
];

fn refuse(line_no: usize, line: &str, why: &str) -> FormatError {
    FormatError::Unsafe(format!(
        "vmdk: descriptor line {line_no} {why}: {}",
        quote(line.as_bytes())
    ))
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// True when `text` looks like a descriptor file: only text, with a `version=` line after comments
/// and blanks (qemu's probe) or a `createType` field.
pub fn looks_like_descriptor(text: &[u8]) -> bool {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let Some(t) = text.get(..end) else { return false };
    if t.is_empty()
        || !t
            .iter()
            .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return false;
    }
    let Ok(s) = std::str::from_utf8(t) else { return false };
    for line in s.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l == "version=1" || l == "version=2" || l == "version=3" {
            return true;
        }
        break;
    }
    s.to_ascii_lowercase().contains("createtype=")
}

/// Parses descriptor text (up to the first NUL byte) with the strict grammar.
///
/// `Unsafe` when a line is not of an allowed form or the text is not UTF-8 (non-ASCII is accepted
/// only in `ddb.*` values).
pub fn parse_descriptor(bytes: &[u8]) -> Result<Descriptor> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(MAX_DESCRIPTOR_BYTES);
    let text = std::str::from_utf8(bytes.get(..end).unwrap_or(&[]))
        .map_err(|_| FormatError::Unsafe("vmdk: descriptor is not UTF-8 text".into()))?;
    let mut d = Descriptor::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r').trim_matches(|c| c == ' ' || c == '\t');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("ddb.") {
            let Some((k, v)) = line.split_once('=') else {
                return Err(refuse(line_no, line, "is not a ddb entry"));
            };
            let k = k.trim();
            if !is_key(k) {
                return Err(refuse(line_no, line, "has an invalid ddb key"));
            }
            d.ddb.push((k.to_string(), unquote(v.trim()).to_string()));
            continue;
        }
        if !line.is_ascii() {
            return Err(refuse(line_no, line, "is not ASCII"));
        }
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        let access = match first {
            "RW" => Some(Access::ReadWrite),
            "RDONLY" => Some(Access::ReadOnly),
            "NOACCESS" => Some(Access::NoAccess),
            _ => None,
        };
        if let Some(access) = access {
            d.extents.push(parse_extent(line_no, line, access)?);
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let k = k.trim();
            let v = v.trim();
            if is_key(k) && !v.contains('\n') {
                let value = unquote(v);
                if value.contains('"') {
                    return Err(refuse(line_no, line, "has a malformed value"));
                }
                d.fields.push((k.to_string(), value.to_string()));
                continue;
            }
        }
        return Err(refuse(line_no, line, "is not allowed"));
    }
    Ok(d)
}

fn parse_extent(line_no: usize, line: &str, access: Access) -> Result<Extent> {
    let bad = |why: &str| refuse(line_no, line, why);
    let (head, rest) = line
        .split_once('"')
        .ok_or_else(|| bad("is an extent without a quoted file name"))?;
    let (name, tail) = rest
        .split_once('"')
        .ok_or_else(|| bad("is an extent with an unterminated file name"))?;
    let mut words = head.split_ascii_whitespace();
    let _access = words.next();
    let sectors = words
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("is an extent without a sector count"))?;
    let kind = words
        .next()
        .ok_or_else(|| bad("is an extent without a type"))?
        .to_ascii_uppercase();
    if words.next().is_some() || !EXTENT_TYPES.contains(&kind.as_str()) {
        return Err(bad("is an extent of an unknown form"));
    }
    let mut tail_words = tail.split_ascii_whitespace();
    let offset = match tail_words.next() {
        None => None,
        Some(w) => Some(
            w.parse::<u64>()
                .map_err(|_| bad("is an extent with an invalid offset"))?,
        ),
    };
    if tail_words.next().is_some() {
        return Err(bad("is an extent with trailing words"));
    }
    Ok(Extent {
        access,
        sectors,
        kind,
        file_name: name.to_string(),
        offset,
        line: line_no,
    })
}

/// True when an extent file name could only name the image file itself: no directory part, no
/// protocol prefix, not `.` or `..`, not empty.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', ':'])
        && !name.chars().any(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_SPARSE: &str = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
        createType=\"monolithicSparse\"\n\n# Extent description\nRW 2048 SPARSE \"test.vmdk\"\n\n\
        # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"2\"\n\
        ddb.adapterType = \"ide\"\n";

    #[test]
    fn parses_qemu_descriptor() {
        let d = parse_descriptor(QEMU_SPARSE.as_bytes()).unwrap();
        assert_eq!(d.create_type(), Some("monolithicSparse"));
        assert_eq!(d.extents.len(), 1);
        assert_eq!(d.extents[0].file_name, "test.vmdk");
        assert_eq!(d.extents[0].sectors, 2048);
        assert_eq!(d.extents[0].kind, "SPARSE");
        assert_eq!(d.ddb.len(), 3);
        assert!(looks_like_descriptor(QEMU_SPARSE.as_bytes()));
    }

    #[test]
    fn flat_extent_with_offset() {
        let d =
            parse_descriptor(b"version=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/passwd\" 0\n").unwrap();
        assert_eq!(d.extents[0].offset, Some(0));
        assert!(!is_plain_file_name(&d.extents[0].file_name));
    }

    #[test]
    fn refuses_unknown_lines() {
        for bad in [
            "version=1\nthis is not a field\n",
            "RW 12 SPARSE noquotes\n",
            "RW abc SPARSE \"x\"\n",
            "RW 12 WEIRD \"x\"\n",
            "RW 12 FLAT \"x\" 0 extra\n",
            "key with space=1\n",
            "createType=\"a\"b\"\n",
            "k\u{e9}y=1\n",
        ] {
            assert!(parse_descriptor(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_descriptor(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn stops_at_nul_and_names() {
        let d = parse_descriptor(b"version=1\n\0garbage that is not allowed\n").unwrap();
        assert_eq!(d.field("VERSION"), Some("1"));
        assert!(is_plain_file_name("disk.vmdk"));
        for n in ["", ".", "..", "../x", "a/b", "c:\\x", "nbd:host", "a\nb"] {
            assert!(!is_plain_file_name(n), "{n:?}");
        }
        assert!(!looks_like_descriptor(b"\x7fELF"));
        assert!(!looks_like_descriptor(b""));
    }
}
