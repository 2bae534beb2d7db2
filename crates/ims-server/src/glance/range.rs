//! The single-range `Range: bytes=...` header of image downloads.

/// A satisfiable byte range `[start, end)` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Why a range cannot be served (416).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses `bytes=A-B`, `bytes=A-` or `bytes=-N` against a file of `size` bytes. Several ranges, bad
/// syntax, or a range that starts past the end are unsatisfiable; an end past the file is clipped.
pub fn parse(header: &str, size: u64) -> Result<ByteRange, Unsatisfiable> {
    let spec = header.trim().strip_prefix("bytes=").ok_or(Unsatisfiable)?.trim();
    if spec.contains(',') {
        return Err(Unsatisfiable);
    }
    let (first, last) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| Unsatisfiable);
    if first.trim().is_empty() {
        let suffix = number(last)?;
        if suffix == 0 || size == 0 {
            return Err(Unsatisfiable);
        }
        return Ok(ByteRange { start: size.saturating_sub(suffix), end: size });
    }
    let start = number(first)?;
    let end = if last.trim().is_empty() {
        size
    } else {
        let last = number(last)?;
        if last < start {
            return Err(Unsatisfiable);
        }
        last.saturating_add(1).min(size)
    };
    if start >= size {
        return Err(Unsatisfiable);
    }
    Ok(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("bytes=0-99", 1000), Ok(ByteRange { start: 0, end: 100 }));
        assert_eq!(parse("bytes=900-", 1000), Ok(ByteRange { start: 900, end: 1000 }));
        assert_eq!(parse("bytes=-100", 1000), Ok(ByteRange { start: 900, end: 1000 }));
        assert_eq!(parse("bytes=-5000", 1000), Ok(ByteRange { start: 0, end: 1000 }));
        assert_eq!(parse("bytes=990-5000", 1000), Ok(ByteRange { start: 990, end: 1000 }));
    }

    #[test]
    fn unsatisfiable() {
        for h in ["bytes=1000-", "bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=a-b", "bytes=-0", "bytes=-"] {
            assert_eq!(parse(h, 1000), Err(Unsatisfiable), "{h}");
        }
        assert_eq!(parse("bytes=0-", 0), Err(Unsatisfiable));
    }
}
