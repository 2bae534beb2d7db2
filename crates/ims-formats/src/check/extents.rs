//! Overlap and end-of-file checks over the host ranges an image's tables claim.

use super::TableCheck;

/// A host file range claimed by a structure of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    /// What claims it, for messages: `block 12`, `block allocation table`.
    pub(crate) what: String,
}

impl Claim {
    pub(crate) fn new(offset: u64, length: u64, what: String) -> Claim {
        Claim { offset, length, what }
    }
}

/// Reports every claim that reaches past `file_len` and every pair of claims that overlap (each
/// claim that overlaps an earlier one counts once), as corruptions.
pub(super) fn check_claims(report: &mut TableCheck, mut claims: Vec<Claim>, file_len: u64) {
    claims.retain(|c| c.length > 0);
    claims.sort_by_key(|c| (c.offset, c.length));
    // The claim reaching furthest so far, by index.
    let mut reach: Option<usize> = None;
    for (i, c) in claims.iter().enumerate() {
        let end = c.offset.saturating_add(c.length);
        if end > file_len {
            report.corruption(format!(
                "ERROR {} at offset {:#x} ({} bytes) lies past the end of the file ({file_len} bytes)",
                c.what, c.offset, c.length
            ));
        }
        if let Some(r) = reach {
            let prev = &claims[r];
            if prev.offset.saturating_add(prev.length) > c.offset {
                report.corruption(format!(
                    "ERROR {} at offset {:#x} overlaps {} at offset {:#x}",
                    c.what, c.offset, prev.what, prev.offset
                ));
            }
        }
        let furthest = reach.map_or(0, |r| claims[r].offset.saturating_add(claims[r].length));
        if end > furthest {
            reach = Some(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(offset: u64, length: u64, what: &str) -> Claim {
        Claim { offset, length, what: what.into() }
    }

    #[test]
    fn finds_overlaps_and_ranges_past_the_end() {
        let mut r = TableCheck::default();
        check_claims(
            &mut r,
            vec![claim(0, 512, "footer copy"), claim(512, 512, "header"), claim(4096, 100, "block 0")],
            8192,
        );
        assert_eq!(r, TableCheck::default());
        let mut r = TableCheck::default();
        check_claims(
            &mut r,
            vec![
                claim(0, 4096, "block 0"),
                claim(1024, 10, "block 1"),
                claim(2048, 10, "block 2"),
                claim(8000, 400, "block 3"),
            ],
            8192,
        );
        assert_eq!(r.corruptions, 3, "{:?}", r.messages);
        assert!(r.messages[0].contains("block 1") && r.messages[0].contains("overlaps block 0"));
        assert!(r.messages[2].contains("past the end"));
    }
}
