//! File identifiers of the two directory hierarchies the writer produces: ISO 9660 level 2 names
//! (upper-case d-characters, at most 31 bytes, made unique per directory) and Joliet names (the
//! original name in UCS-2 big-endian, case preserved).

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::{FormatError, Result};

/// Longest Joliet name in UTF-16 code units (the `-joliet-long` limit that Linux, Windows and
/// cloud-init read).
pub const MAX_JOLIET_UNITS: usize = 103;
/// Longest ISO 9660 level 2 file name with its extension and the dot between them (`;1` not counted).
const MAX_PRIMARY_FILE: usize = 30;
/// Longest ISO 9660 level 2 directory identifier.
const MAX_PRIMARY_DIR: usize = 31;

/// Characters Joliet forbids in names (besides control characters).
const JOLIET_FORBIDDEN: &[char] = &['*', '/', ':', ';', '?', '\\'];

/// The Joliet identifier of `name`: UTF-16 big-endian. `Unsupported` naming the problem when the
/// name is empty, `.`/`..`, longer than [`MAX_JOLIET_UNITS`] units, or holds a character Joliet
/// forbids.
pub(crate) fn joliet_id(name: &str) -> Result<Vec<u8>> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(FormatError::Unsupported(format!("iso: {name:?} cannot be a file name")));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || JOLIET_FORBIDDEN.contains(c)) {
        return Err(FormatError::Unsupported(format!(
            "iso: the name {name:?} holds {c:?}, which Joliet names cannot hold"
        )));
    }
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.len() > MAX_JOLIET_UNITS {
        return Err(FormatError::Unsupported(format!(
            "iso: the name {name:?} is longer than the {MAX_JOLIET_UNITS} characters a Joliet name may have"
        )));
    }
    Ok(units.iter().flat_map(|u| u.to_be_bytes()).collect())
}

/// ISO 9660 level 2 identifiers for the entries of one directory, in the order given: names mapped
/// to d-characters (`A-Z 0-9 _`), files as `NAME.EXT;1`, directories without extension, each at
/// most 31 bytes, and made unique by a numeric suffix where the mapping collides.
pub(crate) fn primary_ids(entries: &[(&str, bool)]) -> Vec<Vec<u8>> {
    let mut taken = HashSet::new();
    entries
        .iter()
        .map(|&(name, is_dir)| {
            let (base, ext) = match name.rfind('.') {
                Some(dot) if !is_dir && dot > 0 => (&name[..dot], d_chars(&name[dot + 1..], 8)),
                _ => (name, String::new()),
            };
            let room = if is_dir { MAX_PRIMARY_DIR } else { MAX_PRIMARY_FILE - 1 - ext.len() };
            let base = d_chars(base, room);
            let mut counter = 0u32;
            loop {
                let candidate = if counter == 0 {
                    base.clone()
                } else {
                    let suffix = format!("_{counter}");
                    let keep = room.saturating_sub(suffix.len()).min(base.len());
                    format!("{}{suffix}", &base[..keep])
                };
                let full = if is_dir {
                    candidate.clone()
                } else {
                    format!("{candidate}.{ext}")
                };
                if taken.insert(full.clone()) {
                    let mut id = full.into_bytes();
                    if !is_dir {
                        id.extend_from_slice(b";1");
                    }
                    return id;
                }
                counter += 1;
            }
        })
        .collect()
}

/// `s` as at most `max` d-characters: letters upper-cased, anything else an underscore; `_` if empty.
fn d_chars(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .take(max)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The order of records in a directory (ECMA-119 §9.3): by name, then extension, each compared as
/// if padded with spaces (for Joliet, with UCS-2 spaces), then by version. `joliet` selects 2-byte
/// characters.
pub(crate) fn compare_ids(a: &[u8], b: &[u8], joliet: bool) -> Ordering {
    let width = if joliet { 2 } else { 1 };
    let split = |id: &[u8]| -> (Vec<u8>, Vec<u8>) {
        let chars: Vec<&[u8]> = id.chunks(width).collect();
        let is = |c: &[u8], ch: u8| c.last() == Some(&ch) && c[..c.len() - 1].iter().all(|&b| b == 0);
        let end = chars.iter().position(|c| is(c, b';')).unwrap_or(chars.len());
        let dot = chars[..end].iter().position(|c| is(c, b'.')).unwrap_or(end);
        let name = chars[..dot].concat();
        let ext = chars[(dot + 1).min(end)..end].concat();
        (name, ext)
    };
    let padded = |x: &[u8], y: &[u8]| -> Ordering {
        let n = x.len().max(y.len());
        let space = |i: usize| if width == 2 && i % 2 == 0 { 0 } else { b' ' };
        (0..n)
            .map(|i| (x.get(i).copied().unwrap_or(space(i)), y.get(i).copied().unwrap_or(space(i))))
            .map(|(p, q)| p.cmp(&q))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    let (an, ae) = split(a);
    let (bn, be) = split(b);
    padded(&an, &bn).then_with(|| padded(&ae, &be)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_names_are_d_characters_and_unique() {
        let ids = primary_ids(&[
            ("user-data", false),
            ("User_Data", false),
            ("meta-data.json", false),
            ("a very long directory name that goes on", true),
            ("archive.tar.gz", false),
            (".hidden", false),
        ]);
        let text: Vec<String> = ids.iter().map(|i| String::from_utf8(i.clone()).unwrap()).collect();
        assert_eq!(text[0], "USER_DATA.;1");
        assert_eq!(text[1], "USER_DATA_1.;1");
        assert_eq!(text[2], "META_DATA.JSON;1");
        assert_eq!(text[3].len(), 31);
        assert_eq!(text[4], "ARCHIVE_TAR.GZ;1");
        assert_eq!(text[5], "_HIDDEN.;1");
        for id in &ids {
            assert!(id.len() <= 32);
        }
    }

    #[test]
    fn joliet_names_keep_case_and_refuse_what_joliet_cannot_hold() {
        assert_eq!(joliet_id("Ab").unwrap(), vec![0, b'A', 0, b'b']);
        assert!(joliet_id(&"x".repeat(MAX_JOLIET_UNITS)).is_ok());
        assert!(joliet_id(&"x".repeat(MAX_JOLIET_UNITS + 1)).is_err());
        assert!(joliet_id("a:b").is_err());
        assert!(joliet_id("..").is_err());
        assert!(joliet_id("").is_err());
    }

    #[test]
    fn records_sort_by_padded_name_then_extension() {
        let mut ids: Vec<&[u8]> = vec![b"A0;1", b"A;1", b"A.B;1", b"AB;1"];
        ids.sort_by(|a, b| compare_ids(a, b, false));
        assert_eq!(ids, vec![&b"A;1"[..], b"A.B;1", b"A0;1", b"AB;1"]);
    }
}
