//! The safety inspector: what an untrusted image file is, and whether it may be used.

use std::sync::Arc;

use crate::detect::detect;
use crate::reader::Fields;
use crate::{open, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

/// What [`inspect`] found out about an image file that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The format the file was opened as (the declared one, which the content matched).
    pub format: Format,
    /// Size of the guest disk.
    pub virtual_size: u64,
    /// Format facts.
    pub details: ImageDetails,
    /// Size of the file itself.
    pub actual_size: u64,
}

/// Inspects an untrusted image file before anything else trusts it.
///
/// 1. Detects the format from the content ([`detect`]); when `declared` is given, the content must
///    be of that format (`Unsafe` "image content is qcow2, not the declared raw" otherwise). A raw
///    image may contain an ISO file system or a partitioned disk; a declared ISO must really be one.
/// 2. For raw images, refuses content that another tool would take for an image format IMS does
///    not read (LUKS, parallels, bochs, cloop, dmg), and an MBR that fails the sanity checks
///    Glance applies.
/// 3. Opens the file with its reader, which refuses backing files, external data files,
///    differencing parents, unknown incompatible features, tables outside the file or above
///    `limits`, and virtual sizes above `limits.max_virtual_size`.
///
/// Every refusal is `Unsafe` (or `Corrupt`/`Unsupported` for damaged or unsupported files) with a
/// message that starts with the format name. Reads only `src`, never another file; never panics;
/// allocations are bounded by `limits`.
pub fn inspect(src: Arc<dyn ReadAt>, declared: Option<Format>, limits: &Limits) -> Result<Inspection> {
    let actual_size = src.size()?;
    let content = detect(&*src)?;
    let format = match declared {
        None => content,
        Some(d) => {
            let matches = d == content || (d == Format::Raw && content == Format::Iso);
            if !matches {
                return Err(FormatError::Unsafe(format!(
                    "image content is {content}, not the declared {d}"
                )));
            }
            d
        }
    };
    let mut extra = Vec::new();
    if format == Format::Raw {
        if let Some(foreign) = foreign_format(&*src)? {
            return Err(FormatError::Unsafe(format!(
                "image content is {foreign}, not the declared raw"
            )));
        }
        let mut sector = vec![0u8; usize::try_from(actual_size.min(512)).unwrap_or(0)];
        src.read_exact_at(&mut sector, 0)?;
        if let Some(table) = check_mbr(&sector)? {
            extra.push(("partition_table".to_string(), table.to_string()));
        }
    }
    let image = open(src, format, limits)?;
    let mut details = image.details();
    details.features.extend(extra);
    Ok(Inspection {
        format,
        virtual_size: image.virtual_size(),
        details,
        actual_size,
    })
}

/// Image formats IMS does not read but qemu would recognise by probing: a raw image must not look
/// like one of them.
fn foreign_format(src: &dyn ReadAt) -> Result<Option<&'static str>> {
    let size = src.size()?;
    let mut head = vec![0u8; usize::try_from(size.min(128)).unwrap_or(0)];
    src.read_exact_at(&mut head, 0)?;
    let magics: [(&[u8], &str); 5] = [
        (b"LUKS\xba\xbe", "luks"),
        (b"WithoutFreeSpace", "parallels"),
        (b"WithouFreSpacExt", "parallels"),
        (b"Bochs Virtual HD Image", "bochs"),
        (b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop", "cloop"),
    ];
    if let Some((_, name)) = magics.iter().find(|(m, _)| head.starts_with(m)) {
        return Ok(Some(name));
    }
    if size >= 512 {
        let mut tail = [0u8; 4];
        src.read_exact_at(&mut tail, size - 512)?;
        if &tail == b"koly" {
            return Ok(Some("dmg"));
        }
    }
    Ok(None)
}

/// Sanity checks on a master boot record (the first sector), as Glance applies them to raw images:
/// `None` when the sector has no MBR signature (or is a FAT boot sector), `Some("mbr"|"gpt")` when
/// the partition table is sane, `Unsafe` otherwise.
pub fn check_mbr(sector: &[u8]) -> Result<Option<&'static str>> {
    let f = Fields::new(sector, "raw", "first sector");
    if f.slice(0, 512).is_err() || f.u16_le(510)? != 0xAA55 {
        return Ok(None);
    }
    // A FAT volume boot record also ends in 0x55AA: two FATs and a fixed-disk media descriptor.
    if f.u8(0x10)? == 2 && f.u8(0x15)? == 0xF8 {
        return Ok(None);
    }
    let mut used = Vec::new();
    let mut gpt = false;
    for i in 0..4usize {
        let at = 446 + 16 * i;
        let boot = f.u8(at)?;
        if boot != 0x00 && boot != 0x80 {
            return Err(FormatError::Unsafe(format!(
                "raw: MBR partition entry {i} has an invalid boot flag {boot:#04x}"
            )));
        }
        let kind = f.u8(at + 4)?;
        if kind != 0 {
            used.push(i);
        }
        if kind == 0xEE {
            gpt = true;
            if f.slice(at + 1, 3)? != [0x00, 0x02, 0x00] {
                return Err(FormatError::Unsafe(
                    "raw: GPT protective MBR has an invalid start CHS".into(),
                ));
            }
            if f.u32_le(at + 8)? != 1 {
                return Err(FormatError::Unsafe(
                    "raw: GPT protective MBR has an invalid start LBA".into(),
                ));
            }
        }
    }
    if gpt && used != [0] {
        return Err(FormatError::Unsafe(
            "raw: GPT protective MBR defines other partitions".into(),
        ));
    }
    if used.is_empty() {
        return Err(FormatError::Unsafe(
            "raw: MBR signature present but no partition is defined".into(),
        ));
    }
    Ok(Some(if gpt { "gpt" } else { "mbr" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr(entries: &[(u8, u8, [u8; 3], u32)]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        for (i, (boot, kind, chs, lba)) in entries.iter().enumerate() {
            let at = 446 + 16 * i;
            s[at] = *boot;
            s[at + 1..at + 4].copy_from_slice(chs);
            s[at + 4] = *kind;
            s[at + 8..at + 12].copy_from_slice(&lba.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn mbr_checks() {
        assert_eq!(check_mbr(&[0u8; 512]).ok(), Some(None));
        assert_eq!(
            check_mbr(&mbr(&[(0x80, 0x83, [0, 1, 1], 2048)])).ok(),
            Some(Some("mbr"))
        );
        assert_eq!(check_mbr(&mbr(&[(0, 0xEE, [0, 2, 0], 1)])).ok(), Some(Some("gpt")));
        assert!(check_mbr(&mbr(&[(0x12, 0x83, [0, 1, 1], 2048)])).is_err());
        assert!(check_mbr(&mbr(&[(0, 0xEE, [0, 2, 0], 2)])).is_err());
        assert!(check_mbr(&mbr(&[(0, 0xEE, [0, 2, 0], 1), (0, 0x83, [0, 1, 1], 9)])).is_err());
        assert!(check_mbr(&mbr(&[])).is_err());
        let mut fat = mbr(&[]);
        fat[0x10] = 2;
        fat[0x15] = 0xF8;
        assert_eq!(check_mbr(&fat).ok(), Some(None));
        assert_eq!(check_mbr(&[0x55, 0xAA]).ok(), Some(None));
    }

    #[test]
    fn declared_mismatch() {
        let mut q = crate::qcow2::tests_support::minimal_qcow2();
        q.truncate(q.len());
        let r = inspect(Arc::new(q), Some(Format::Raw), &Limits::default());
        match r {
            Err(FormatError::Unsafe(m)) => assert_eq!(m, "image content is qcow2, not the declared raw"),
            other => panic!("{other:?}"),
        }
        let r = inspect(Arc::new(vec![0u8; 4096]), Some(Format::Iso), &Limits::default());
        assert!(matches!(r, Err(FormatError::Unsafe(m)) if m == "image content is raw, not the declared iso"));
        let r = inspect(Arc::new(vec![0u8; 4096]), Some(Format::Raw), &Limits::default()).unwrap();
        assert_eq!((r.format, r.virtual_size, r.actual_size), (Format::Raw, 4096, 4096));
        let mut luks = b"LUKS\xba\xbe".to_vec();
        luks.resize(4096, 0);
        assert!(inspect(Arc::new(luks), Some(Format::Raw), &Limits::default()).is_err());
    }
}
