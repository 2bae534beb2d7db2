//! Manifests: the list of extents that make up one stored file.

use serde::{Deserialize, Serialize};

use crate::{ChunkId, StoreError};

/// Version written into every stored manifest; `load` rejects others.
pub const MANIFEST_VERSION: u32 = 1;

/// Describes one stored file: its size and the extents covering it.
///
/// Invariant (checked by [`Manifest::validate`], enforced on save and load): extents are sorted,
/// contiguous, non-empty, and cover exactly `[0, size)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Size of the file in bytes.
    pub size: u64,
    /// The file's extents, in offset order.
    pub extents: Vec<Extent>,
}

/// One piece of a file: `length` bytes at `offset`, stored as chunk `chunk` (`None` = all zeros, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    /// Offset of the first byte in the file.
    pub offset: u64,
    /// Number of bytes (> 0).
    pub length: u32,
    /// The chunk holding these bytes, or `None` for a run of zeros.
    pub chunk: Option<ChunkId>,
}

impl Extent {
    /// Offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.length)
    }
}

impl Manifest {
    /// The ids of all stored chunks, in file order (repeats included; zero extents skipped).
    pub fn chunk_ids(&self) -> impl Iterator<Item = &ChunkId> {
        self.extents.iter().filter_map(|e| e.chunk.as_ref())
    }

    /// The extents that overlap `[start, end)`, found by binary search. Empty if `start >= end`.
    pub fn extents_overlapping(&self, start: u64, end: u64) -> &[Extent] {
        &self.extents[self.extent_indices_overlapping(start, end)]
    }

    /// Indices into `extents` of the extents that overlap `[start, end)` (binary search). Empty if `start >= end`.
    pub fn extent_indices_overlapping(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        if start >= end {
            return 0..0;
        }
        let first = self.extents.partition_point(|e| e.end() <= start);
        let last = self.extents.partition_point(|e| e.offset < end);
        first..last.max(first)
    }

    /// Checks the invariant: extents sorted, contiguous, non-empty, covering exactly `[0, size)`.
    pub fn validate(&self) -> Result<(), String> {
        let mut next = 0u64;
        for (i, e) in self.extents.iter().enumerate() {
            if e.offset != next {
                return Err(format!("extent {i} starts at {} but the previous one ends at {next}", e.offset));
            }
            if e.length == 0 {
                return Err(format!("extent {i} at {} is empty", e.offset));
            }
            next = e
                .offset
                .checked_add(u64::from(e.length))
                .ok_or_else(|| format!("extent {i} overflows"))?;
        }
        if next != self.size {
            return Err(format!("extents cover [0, {next}) but the size is {}", self.size));
        }
        Ok(())
    }

    /// Serializes to the stored form: compact JSON `{"version":1,"size":..,"extents":[{"offset":..,"length":..,"chunk":"<hex>"|null}]}`.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = StoredRef { version: MANIFEST_VERSION, size: self.size, extents: &self.extents };
        serde_json::to_vec(&stored).expect("manifest serializes")
    }

    /// Parses and validates the stored form. Any failure is `StoreError::Corrupt`.
    pub fn from_json(data: &[u8]) -> Result<Manifest, StoreError> {
        let stored: Stored =
            serde_json::from_slice(data).map_err(|e| StoreError::Corrupt(format!("manifest does not parse: {e}")))?;
        if stored.version != MANIFEST_VERSION {
            return Err(StoreError::Corrupt(format!("unsupported manifest version {}", stored.version)));
        }
        let manifest = Manifest { size: stored.size, extents: stored.extents };
        manifest.validate().map_err(|e| StoreError::Corrupt(format!("invalid manifest: {e}")))?;
        Ok(manifest)
    }
}

#[derive(Serialize)]
struct StoredRef<'a> {
    version: u32,
    size: u64,
    extents: &'a [Extent],
}

#[derive(Deserialize)]
struct Stored {
    version: u32,
    size: u64,
    extents: Vec<Extent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let id = ChunkId::of(b"a");
        Manifest {
            size: 25,
            extents: vec![
                Extent { offset: 0, length: 10, chunk: Some(id) },
                Extent { offset: 10, length: 5, chunk: None },
                Extent { offset: 15, length: 10, chunk: Some(ChunkId::of(b"b")) },
            ],
        }
    }

    #[test]
    fn overlapping_uses_half_open_ranges() {
        let m = sample();
        let offs = |s, e| m.extents_overlapping(s, e).iter().map(|x| x.offset).collect::<Vec<_>>();
        assert_eq!(offs(0, 25), vec![0, 10, 15]);
        assert_eq!(offs(0, 10), vec![0]);
        assert_eq!(offs(9, 11), vec![0, 10]);
        assert_eq!(offs(10, 15), vec![10]);
        assert_eq!(offs(24, 25), vec![15]);
        assert_eq!(offs(5, 5), Vec::<u64>::new());
        assert_eq!(offs(25, 25), Vec::<u64>::new());
        assert_eq!(offs(30, 40), Vec::<u64>::new());
        assert_eq!(Manifest::default().extents_overlapping(0, 10).len(), 0);
    }

    #[test]
    fn json_round_trip_and_validation() {
        let m = sample();
        let json = m.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.starts_with("{\"version\":1,"), "{text}");
        assert!(text.contains(&ChunkId::of(b"a").to_string()));
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        assert_eq!(m.chunk_ids().count(), 2);

        let mut gap = m.clone();
        gap.extents[1].offset = 11;
        assert!(gap.validate().is_err());
        assert!(matches!(Manifest::from_json(&gap.to_json()), Err(StoreError::Corrupt(_))));
        let mut short = m.clone();
        short.size = 26;
        assert!(short.validate().is_err());
        let mut empty = m.clone();
        empty.extents[1].length = 0;
        assert!(empty.validate().is_err());
        assert!(Manifest::default().validate().is_ok());
        assert!(matches!(Manifest::from_json(b"{nope"), Err(StoreError::Corrupt(_))));
        let v2 = String::from_utf8(json).unwrap().replace("\"version\":1", "\"version\":2");
        assert!(matches!(Manifest::from_json(v2.as_bytes()), Err(StoreError::Corrupt(_))));
    }
}
