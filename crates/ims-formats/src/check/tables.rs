//! Table checks of the block-mapped formats with a block allocation table: every allocated block
//! and every metadata structure must lie inside the file and claim its own bytes.

use std::sync::Arc;

use crate::reader::fields::be32_at;
use crate::reader::Source;
use crate::vhd::{parse_dynamic_header, parse_footer, COOKIE, DYNAMIC_HEADER_LEN, FOOTER_LEN, TYPE_DYNAMIC};
use crate::{Limits, ReadAt, Result};

use super::extents::{check_claims, Claim};
use super::TableCheck;

const BAT_UNUSED: u32 = 0xffff_ffff;

/// Dynamic VHD: the footer copy, dynamic header, BAT, blocks (bitmap + data) and the footer must
/// not overlap, and must lie inside the file. Fixed disks have no tables.
pub(super) fn check_vhd(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<TableCheck> {
    let mut report = TableCheck::default();
    let source = Source::new(src, "vhd")?;
    let footer_len = FOOTER_LEN as u64;
    let file_len = source.size();
    let head = source.read_vec("footer copy", 0, footer_len.min(file_len))?;
    if !head.starts_with(&COOKIE) {
        return Ok(report);
    }
    let footer = parse_footer(&head)?;
    if footer.disk_type != TYPE_DYNAMIC {
        return Ok(report);
    }
    let dyn_buf = source.read_vec("dynamic disk header", footer.data_offset, DYNAMIC_HEADER_LEN as u64)?;
    let dh = parse_dynamic_header(&dyn_buf)?;
    let bat_len = u64::from(dh.max_table_entries) * 4;
    let bat = source.read_table("block allocation table", dh.table_offset, bat_len, limits)?;
    let block = u64::from(dh.block_size);
    let bitmap = (block / (8 * 512)).div_ceil(512) * 512;
    let mut claims = vec![
        Claim { offset: 0, length: footer_len, what: "footer copy".into() },
        Claim {
            offset: footer.data_offset,
            length: DYNAMIC_HEADER_LEN as u64,
            what: "dynamic disk header".into(),
        },
        Claim {
            offset: dh.table_offset,
            length: bat_len.next_multiple_of(512),
            what: "block allocation table".into(),
        },
        Claim {
            offset: file_len.saturating_sub(footer_len),
            length: footer_len,
            what: "footer".into(),
        },
    ];
    for i in 0..u64::from(dh.max_table_entries) {
        let e = be32_at(&bat, i).unwrap_or(BAT_UNUSED);
        if e != BAT_UNUSED {
            claims.push(Claim {
                offset: u64::from(e) * 512,
                length: bitmap + block,
                what: format!("block {i}"),
            });
        }
    }
    check_claims(&mut report, claims, file_len);
    Ok(report)
}

/// VHDX: the header area, log, regions and fully present payload blocks must not overlap, and
/// must lie inside the file.
pub(super) fn check_vhdx(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<TableCheck> {
    let mut report = TableCheck::default();
    let map = crate::vhdx::open_map(src, limits)?;
    check_claims(&mut report, map.claims(), map.file_len());
    Ok(report)
}

/// Sparse VMDK: header, descriptor, grain directory, grain tables and grains must not overlap, and
/// must lie inside the file. Compressed grains claim their marker sector (their length is checked
/// when they are read).
pub(super) fn check_vmdk(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<TableCheck> {
    let mut report = TableCheck::default();
    let map = crate::vmdk::open_map(src, limits)?;
    check_claims(&mut report, map.claims()?, map.file_len());
    Ok(report)
}
