use std::fs::File;
use std::io;

/// Positional reads from a file-like source (a local file, a chunk-store manifest, a byte slice).
///
/// Implementations must be usable from several threads at once.
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read, 0 only at or past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The source's length in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Fills `buf` from `offset`; an `UnexpectedEof` error if the source ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected end of file"));
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// The parts of `[offset, offset + len)` that may hold non-zero bytes, as sorted, disjoint
    /// `(offset, length)` ranges inside that span, when the source knows them cheaply (the allocated
    /// extents of a sparse file, the non-zero chunks of a manifest). Bytes outside the ranges read as
    /// zeros. `None` when the source cannot tell: then every byte may be data. Never reads the data
    /// itself; an answer is a snapshot and may be stale if the source changes concurrently.
    fn data_ranges(&self, offset: u64, len: u64) -> io::Result<Option<Vec<(u64, u64)>>> {
        let _ = (offset, len);
        Ok(None)
    }
}

/// Positional writes to a seekable sink.
pub trait WriteAt: Send + Sync {
    /// Writes all of `buf` at `offset`, extending the sink as needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Sets the sink's length (used to make sparse raw files).
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    /// Asks the file system with `SEEK_DATA`/`SEEK_HOLE`; `None` where it does not support them.
    fn data_ranges(&self, offset: u64, len: u64) -> io::Result<Option<Vec<(u64, u64)>>> {
        file_data_ranges(self, offset, len)
    }
}

/// The allocated extents of `file` in `[offset, offset + len)`, found with `SEEK_DATA`/`SEEK_HOLE`
/// (they move the file position, which positional reads do not use).
fn file_data_ranges(file: &File, offset: u64, len: u64) -> io::Result<Option<Vec<(u64, u64)>>> {
    use rustix::fs::{seek, SeekFrom};
    use rustix::io::Errno;
    let end = offset.saturating_add(len);
    let mut out = Vec::new();
    let mut pos = offset;
    while pos < end {
        let data = match seek(file, SeekFrom::Data(pos)) {
            Ok(at) => at,
            // No data at or after `pos`.
            Err(Errno::NXIO) => break,
            // The file system (or file type) has no notion of holes.
            Err(Errno::INVAL | Errno::NOTSUP | Errno::SPIPE) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = match seek(file, SeekFrom::Hole(data)) {
            Ok(at) => at,
            // The file shrank between the two calls: nothing past `data`.
            Err(Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if hole <= data {
            // A file system that breaks the contract: stop trusting it.
            return Ok(None);
        }
        let stop = hole.min(end);
        out.push((data.max(pos), stop - data.max(pos)));
        pos = stop;
    }
    Ok(Some(out))
}

impl WriteAt for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let len = self.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let start = offset as usize;
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}
