//! Reading ZVHD front to back from a sequential source (a pipe, an upload body), no seeking.

use std::io::{self, Read};

use super::header::{self, corrupt, Header, CODEC_ZLIB};
use super::image::{check_entry, inflate_exact, FLAG_STORED, FLAG_ZERO};
use super::record::{decode_record, decode_trailer, RECORD_LEN, TRAILER_LEN, TRAILER_TAG};
use super::{MAGIC, MAJOR, NAME};
use crate::write::seq::Counted;
use crate::write::Target;
use crate::{FormatError, Limits, Result};

/// Decodes a ZVHD stream from `input` and writes the guest disk it holds to `out`: sparsely to a
/// [`Target::Seekable`] (truncated first, then sized to the virtual size), zeros included to a
/// [`Target::Stream`]. Returns the virtual size.
///
/// Verifies everything a random-access reader does (header, every record and payload checksum,
/// order, exact decompressed lengths, the trailer's counts and checksum) and that the input ends
/// right after the trailer. Memory: one block. On error, `out` holds a partial disk.
pub fn decode_stream(input: &mut dyn Read, out: Target<'_>, limits: &Limits) -> Result<u64> {
    let mut first = [0u8; header::HEADER_LEN as usize];
    read_full(input, &mut first, "file is shorter than its header")?;
    if first[..8] != MAGIC[..] {
        return Err(corrupt(NAME, "bad magic: not a file of this format"));
    }
    let len = header::claimed_len(&first, NAME)?;
    let mut hbuf = first.to_vec();
    hbuf.resize(len as usize, 0);
    read_full(
        input,
        &mut hbuf[first.len()..],
        "file is shorter than its header",
    )?;
    let h = header::decode(&hbuf, MAGIC, MAJOR, CODEC_ZLIB, NAME, limits)?;
    let mut sink = Sink::new(out, &h)?;

    let mut at = u64::from(h.header_len);
    let mut prev = None;
    let mut count = 0u64;
    let mut data_bytes = 0u64;
    let mut headers_crc = crc32fast::Hasher::new();
    let mut payload = Vec::new();
    loop {
        let mut tag = [0u8; 4];
        read_full(
            input,
            &mut tag,
            "stream ends without a trailer (truncated?)",
        )?;
        if tag == *TRAILER_TAG {
            let mut t = [0u8; TRAILER_LEN];
            t[..4].copy_from_slice(&tag);
            read_full(input, &mut t[4..], "trailer is truncated")?;
            let trailer = decode_trailer(&t, at)?;
            if trailer.offset != at
                || trailer.records != count
                || trailer.data_bytes != data_bytes
                || trailer.headers_crc != headers_crc.finalize()
            {
                return Err(corrupt(
                    NAME,
                    "trailer does not match the records (records lost or altered)",
                ));
            }
            if input.read(&mut [0u8; 1])? != 0 {
                return Err(corrupt(NAME, "unexpected bytes after the trailer"));
            }
            break;
        }
        let mut rec = [0u8; RECORD_LEN];
        rec[..4].copy_from_slice(&tag);
        read_full(input, &mut rec[4..], "record is truncated")?;
        let e = decode_record(&rec, at)?;
        let payload_end = e
            .offset
            .checked_add(u64::from(e.stored_len))
            .ok_or_else(|| corrupt(NAME, "record length overflows"))?;
        // The stream's length is unknown: bound payloads by their own end (checked on reading).
        check_entry(&e, prev.as_ref(), &h, e.offset, payload_end, NAME)?;
        headers_crc.update(&rec);
        payload.resize(e.stored_len as usize, 0);
        read_full(input, &mut payload, "block payload is truncated")?;
        if e.flags & FLAG_ZERO == 0 {
            let bad = |what: String| {
                corrupt(
                    NAME,
                    &format!("block {} at file offset {}: {what}", e.block, e.offset),
                )
            };
            let raw: std::borrow::Cow<'_, [u8]> = if e.flags & FLAG_STORED != 0 {
                (&payload[..]).into()
            } else {
                let mut out = vec![0u8; e.raw_len as usize];
                inflate_exact(&payload, &mut out).map_err(bad)?;
                out.into()
            };
            if crc32fast::hash(&raw) != e.crc {
                return Err(bad("checksum mismatch".into()));
            }
            sink.block(e.block, &raw)?;
            data_bytes = data_bytes.saturating_add(u64::from(e.raw_len));
        }
        count += 1;
        at = payload_end;
        prev = Some(e);
    }
    sink.finish()
}

/// `read_exact`, with end of input turned into a `Corrupt` error saying `what`.
fn read_full(input: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(NAME, what),
        _ => FormatError::Io(e),
    })
}

/// Where decoded blocks go.
enum Sink<'a> {
    Seekable(&'a dyn crate::WriteAt, u64, u64),
    Stream(Counted<'a>, u64, u64),
}

impl<'a> Sink<'a> {
    fn new(out: Target<'a>, h: &Header) -> Result<Sink<'a>> {
        Ok(match out {
            Target::Seekable(w) => {
                w.set_len(0)?;
                w.set_len(h.virtual_size)?;
                Sink::Seekable(w, h.block_size, h.virtual_size)
            }
            Target::Stream(w) => Sink::Stream(Counted::new(w), h.block_size, h.virtual_size),
        })
    }

    fn block(&mut self, index: u64, data: &[u8]) -> Result<()> {
        match self {
            Sink::Seekable(w, bs, _) => {
                let start = index
                    .checked_mul(*bs)
                    .ok_or_else(|| corrupt(NAME, "block offset overflows"))?;
                crate::write::seq::write_skipping_zeros(*w, data, start)?
            }
            Sink::Stream(w, bs, _) => {
                let start = index
                    .checked_mul(*bs)
                    .ok_or_else(|| corrupt(NAME, "block offset overflows"))?;
                w.zeros(
                    start
                        .checked_sub(w.pos())
                        .ok_or_else(|| corrupt(NAME, "blocks out of order"))?,
                )?;
                w.put(data)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<u64> {
        match self {
            Sink::Seekable(_, _, size) => Ok(size),
            Sink::Stream(mut w, _, size) => {
                w.zeros(
                    size.checked_sub(w.pos())
                        .ok_or_else(|| corrupt(NAME, "data past the end of the disk"))?,
                )?;
                w.finish()?;
                Ok(size)
            }
        }
    }
}
