//! RAW writer: the guest disk byte for byte.

use std::io::Write;

use super::codec::internal;
use super::pipeline::{self, Payload, UnitSpec};
use super::seq::Counted;
use crate::{DiskImage, Result, WriteAt};

/// Granularity of hole detection: 64 KiB runs of zeros become holes.
const UNIT: u64 = 64 << 10;

const SPEC: UnitSpec = UnitSpec {
    unit_size: UNIT,
    pad_last: false,
    codec: None,
    raw_if_not_smaller: false,
    checksum: false,
};

/// Writes `src` to `out` as a sparse file: the length is set to the virtual size and only non-zero
/// 64 KiB units are written. Returns the virtual size.
pub(crate) fn write_sparse(
    src: &dyn DiskImage,
    out: &dyn WriteAt,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let vsize = src.virtual_size();
    out.set_len(0)?;
    out.set_len(vsize)?;
    pipeline::run(src, &SPEC, threads, progress, &mut |unit| {
        let data = match unit.payload {
            Payload::Raw(d) | Payload::Compressed(d) => d,
        };
        out.write_all_at(data, unit.index * UNIT)?;
        Ok(())
    })?;
    Ok(vsize)
}

/// Writes `src` to a sequential sink, zeros included. Returns the virtual size.
pub(crate) fn write_stream(
    src: &dyn DiskImage,
    out: &mut dyn Write,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let vsize = src.virtual_size();
    let mut w = Counted::new(out);
    pipeline::run(src, &SPEC, threads, progress, &mut |unit| {
        let at = unit.index * UNIT;
        w.zeros(
            at.checked_sub(w.pos())
                .ok_or_else(|| internal("raw units out of order"))?,
        )?;
        match unit.payload {
            Payload::Raw(d) | Payload::Compressed(d) => w.put(d)?,
        }
        Ok(())
    })?;
    w.zeros(
        vsize
            .checked_sub(w.pos())
            .ok_or_else(|| internal("raw output past the end"))?,
    )?;
    Ok(w.finish()?)
}
