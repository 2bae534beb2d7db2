//! CRC-32C (Castagnoli), as VHDX uses for its headers, region tables and log entries.

// Indices are loop counters below 256 over a 256-entry array.
#[allow(clippy::indexing_slicing)]
const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

fn table_entry(index: u32) -> u32 {
    TABLE.get((index & 0xff) as usize).copied().unwrap_or(0)
}

/// CRC-32C of `data`.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    update(0, data)
}

/// Continues a CRC-32C: `update(crc32c(a), b) == crc32c(a ++ b)`.
pub(crate) fn update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = table_entry(c ^ u32::from(b)) ^ (c >> 8);
    }
    !c
}

/// CRC-32C of `data` with the 4 bytes at `field` taken as zeros (how VHDX checksums its structures).
pub(crate) fn crc32c_with_zeroed_field(data: &[u8], field: usize) -> u32 {
    let split = field.min(data.len());
    let (head, rest) = data.split_at(split);
    let mut c = update(0, head);
    let field_len = rest.len().min(4);
    c = update(c, [0u8; 4].get(..field_len).unwrap_or(&[]));
    update(c, rest.get(field_len..).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(update(crc32c(b"1234"), b"56789"), 0xE306_9283);
        let mut d = b"ab\xff\xff\xff\xffcd".to_vec();
        let c = crc32c_with_zeroed_field(&d, 2);
        d[2..6].fill(0);
        assert_eq!(c, crc32c(&d));
    }
}
