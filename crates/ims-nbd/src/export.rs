//! What the server serves: exports, the backends behind them, the registry that names them, and
//! adapters from the formats layer.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use ims_formats::{BlockStatus, DiskImage, FormatError, ReadAt, WriteAt};

/// A run of an export with one allocation status, as reported by [`ExportBackend::block_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Length in bytes; zero-length extents are ignored by the server.
    pub length: u64,
    /// What the run holds. `Data` is always a safe answer.
    pub status: BlockStatus,
}

/// The storage behind one export. Called from blocking threads (`spawn_blocking`), possibly from
/// several at once, so implementations must be thread-safe and may block.
///
/// The server checks every range against the export size before calling, so implementations may
/// rely on `offset + len <= Export::size` (with no overflow), and on never being asked to write
/// when the export is read-only. Concurrent calls on overlapping ranges happen only when the client
/// sends them concurrently; the backend need not order them (a disk does not either).
pub trait ExportBackend: Send + Sync + 'static {
    /// Fills all of `buf` with the export's bytes at `offset`. Must not return short data: any
    /// failure is an error, and the client then receives `EIO` (never wrong bytes).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Writes all of `buf` at `offset`. The write must be visible to every later `read_at` once this
    /// returns; it need not be durable until [`flush`](Self::flush). The default refuses with
    /// `PermissionDenied` (a read-only backend).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let _ = (buf, offset);
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "export is read-only",
        ))
    }

    /// Makes every write that has returned durable. Idempotent. The default does nothing, which is
    /// right for read-only backends and for backends whose writes are durable on return.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    /// A hint that `[offset, offset + len)` is no longer needed; afterwards its content is
    /// unspecified until written again. The default ignores the hint.
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Makes `[offset, offset + len)` read as zeros. `may_trim` is false when the client asked for
    /// the space to stay allocated (`NBD_CMD_FLAG_NO_HOLE`). The default writes zeros through
    /// [`write_at`](Self::write_at) in 1 MiB pieces.
    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool) -> io::Result<()> {
        let _ = may_trim;
        const PIECE: u64 = 1 << 20;
        let zeros = vec![0u8; PIECE.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = PIECE.min(len - done);
            self.write_at(&zeros[..n as usize], offset + done)?;
            done += n;
        }
        Ok(())
    }

    /// The allocation status of `[offset, offset + len)` as consecutive extents from `offset`. They
    /// may cover less than `len` (the client asks again for the rest) but should cover at least one
    /// byte; anything past `offset + len` is ignored. Must be cheap (metadata only). The default
    /// reports everything as data.
    fn block_status(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        let _ = offset;
        Ok(vec![Extent {
            length: len,
            status: BlockStatus::Data,
        }])
    }

    /// A hint that the client will soon read `[offset, offset + len)`; a backend over remote storage
    /// may prefetch it. Must not change what reads return. The default does nothing.
    fn cache(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Called when a connection that opened this export ends (`NBD_CMD_DISC`, the client hanging up,
    /// or the server shutting down), after every request it sent has been answered. A backend that
    /// keeps unsaved state saves it here. Called once per connection, so several times for an export
    /// several connections opened; an error is logged (the client is gone). The default does nothing.
    fn close(&self) -> io::Result<()> {
        Ok(())
    }
}

/// One export as the server sees it once a name has been resolved.
#[derive(Clone)]
pub struct Export {
    /// Size in bytes; every request is checked against it.
    pub size: u64,
    /// When true the server refuses writes, trims and write-zeroes with `EPERM` and never calls the
    /// backend's write methods.
    pub read_only: bool,
    /// Sent as `NBD_INFO_DESCRIPTION` when the client asks for it.
    pub description: Option<String>,
    /// Where the bytes live.
    pub backend: Arc<dyn ExportBackend>,
}

impl Export {
    /// A read-only export of `size` bytes over `backend`.
    pub fn read_only(backend: Arc<dyn ExportBackend>, size: u64) -> Export {
        Export {
            size,
            read_only: true,
            description: None,
            backend,
        }
    }

    /// A read-write export of `size` bytes over `backend`.
    pub fn read_write(backend: Arc<dyn ExportBackend>, size: u64) -> Export {
        Export {
            size,
            read_only: false,
            description: None,
            backend,
        }
    }

    /// The read-only guest disk of `image`: size is its virtual size, block status comes from the
    /// image's metadata (so holes are reported and skipped when reading).
    pub fn from_disk_image(image: Arc<dyn DiskImage>) -> Export {
        let size = image.virtual_size();
        Export::read_only(Arc::new(DiskImageBackend::new(image)), size)
    }

    /// Sets the description sent as `NBD_INFO_DESCRIPTION`.
    pub fn with_description(mut self, description: impl Into<String>) -> Export {
        self.description = Some(description.into());
        self
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("size", &self.size)
            .field("read_only", &self.read_only)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`ExportRegistry::resolve`].
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Option<Export>>> + Send + 'a>>;

/// Resolves export names. NBD carries no credentials: knowing a name is what grants access, so
/// names handed out by the API must be unguessable, and a registry must not reveal them.
pub trait ExportRegistry: Send + Sync + 'static {
    /// The export called `name` right now, or `None` when there is none (never existed, revoked or
    /// expired). Called for each `NBD_OPT_INFO`, `NBD_OPT_GO` and `NBD_OPT_EXPORT_NAME`; an export
    /// resolved for `NBD_OPT_GO` stays usable by that connection until it closes, even if the name
    /// is revoked meanwhile. An error is reported to the client like an unknown export (its text is
    /// logged, not sent).
    fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a>;

    /// Names answered to `NBD_OPT_LIST`. The default lists none, which is what a registry of secret
    /// names must do.
    fn list(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An in-memory registry: a map from name to export that can change while the server runs.
/// Lists nothing.
#[derive(Default)]
pub struct ExportTable {
    exports: RwLock<HashMap<String, Export>>,
}

impl ExportTable {
    /// An empty table.
    pub fn new() -> ExportTable {
        ExportTable::default()
    }

    /// Adds or replaces the export called `name`; new connections see it at once.
    pub fn insert(&self, name: impl Into<String>, export: Export) {
        self.exports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.into(), export);
    }

    /// Removes `name`; new connections can no longer open it (open ones keep their export).
    pub fn remove(&self, name: &str) -> Option<Export> {
        self.exports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    fn get(&self, name: &str) -> Option<Export> {
        self.exports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

impl fmt::Debug for ExportTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names are secrets: show only how many there are.
        let n = self.exports.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("ExportTable").field("exports", &n).finish()
    }
}

impl ExportRegistry for ExportTable {
    fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
        let export = self.get(name);
        Box::pin(std::future::ready(Ok(export)))
    }
}

/// Read-only backend over a parsed disk image: reads decode the guest disk, block status comes
/// from the image's metadata.
pub struct DiskImageBackend {
    image: Arc<dyn DiskImage>,
}

impl DiskImageBackend {
    /// Serves `image`'s guest disk.
    pub fn new(image: Arc<dyn DiskImage>) -> DiskImageBackend {
        DiskImageBackend { image }
    }
}

fn format_error(e: FormatError) -> io::Error {
    match e {
        FormatError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl ExportBackend for DiskImageBackend {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.image.read_at(buf, offset).map_err(format_error)
    }

    fn block_status(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        let extents = self.image.block_status(offset, len).map_err(format_error)?;
        Ok(extents
            .into_iter()
            .map(|e| Extent {
                length: e.length,
                status: e.status,
            })
            .collect())
    }
}

/// Read-write backend over any positional reader/writer (a file, a copy-on-write volume).
///
/// `WriteAt` has no durability operation, so `flush` does nothing: writes are as durable as the
/// sink makes them on return. Use [`FileBackend`] for a local file that must be synced.
pub struct ReadWriteBackend<T> {
    inner: Arc<T>,
}

impl<T: ReadAt + WriteAt + 'static> ReadWriteBackend<T> {
    /// Serves `inner`.
    pub fn new(inner: Arc<T>) -> ReadWriteBackend<T> {
        ReadWriteBackend { inner }
    }

    /// A read-write export of `inner`, sized as `inner` is now.
    pub fn export(inner: Arc<T>) -> io::Result<Export> {
        let size = inner.size()?;
        Ok(Export::read_write(
            Arc::new(ReadWriteBackend::new(inner)),
            size,
        ))
    }
}

impl<T: ReadAt + WriteAt + 'static> ExportBackend for ReadWriteBackend<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
}

/// Read-write backend over a local file: like [`ReadWriteBackend`], and `flush` syncs the file's
/// data to disk (`fdatasync`).
pub struct FileBackend {
    file: File,
}

impl FileBackend {
    /// Serves `file`, which must be open for reading and writing.
    pub fn new(file: File) -> FileBackend {
        FileBackend { file }
    }

    /// A read-write export of `file`, sized as the file is now.
    pub fn export(file: File) -> io::Result<Export> {
        let size = file.metadata()?.len();
        Ok(Export::read_write(Arc::new(FileBackend::new(file)), size))
    }
}

impl ExportBackend for FileBackend {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Recording(Mutex<Vec<(u64, usize)>>);

    impl ExportBackend for Recording {
        fn read_at(&self, buf: &mut [u8], _offset: u64) -> io::Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            assert!(buf.iter().all(|&b| b == 0));
            self.0.lock().unwrap().push((offset, buf.len()));
            Ok(())
        }
    }

    #[test]
    fn default_write_zeroes_covers_the_range_in_pieces() {
        let b = Recording(Mutex::new(Vec::new()));
        b.write_zeroes(10, (2 << 20) + 5, true).unwrap();
        assert_eq!(
            *b.0.lock().unwrap(),
            vec![
                (10, 1 << 20),
                (10 + (1 << 20), 1 << 20),
                (10 + (2 << 20), 5)
            ]
        );
        b.0.lock().unwrap().clear();
        b.write_zeroes(0, 0, true).unwrap();
        assert!(b.0.lock().unwrap().is_empty());
    }

    #[test]
    fn read_only_backend_refuses_writes_by_default() {
        struct Ro;
        impl ExportBackend for Ro {
            fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(
            Ro.write_at(b"x", 0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            Ro.block_status(5, 9).unwrap(),
            vec![Extent {
                length: 9,
                status: BlockStatus::Data
            }]
        );
    }

    #[test]
    fn table_inserts_resolves_and_removes() {
        let t = ExportTable::new();
        t.insert(
            "a",
            Export::read_only(Arc::new(Recording(Mutex::new(Vec::new()))), 0),
        );
        assert!(t.get("a").is_some());
        assert!(t.get("b").is_none());
        assert!(t.remove("a").is_some());
        assert!(t.get("a").is_none());
        assert!(t.list().is_empty());
        assert_eq!(format!("{t:?}"), "ExportTable { exports: 0 }");
    }
}
