//! RAW guest disks of volumes, as manifests of the chunk store.
//!
//! A volume's data is always a RAW disk: byte `n` of the manifest is byte `n` of the disk.
//! - From a RAW image, the volume takes the image's manifest as it is (the same manifest object when the
//!   sizes match; a new manifest listing the same extents plus a zero tail when the volume is larger), so
//!   no data is read or copied.
//! - From an image of any other format, the guest disk is converted inline, while the volume is created:
//!   the format reader (`ims-formats`) runs over the stored image on a blocking thread, only the ranges its
//!   metadata reports as data are read and stored as new chunks (streamed, at most a few MiB in flight),
//!   and every hole or zero range becomes a zero extent that stores nothing. Chunks that already exist
//!   (in the same encryption domain) are not stored again.
//! - An empty volume is a manifest of zero extents.

use std::sync::Arc;

use bytes::Bytes;
use ims_formats::{BlockStatus, DiskImage, Format};
use ims_store::{ChunkStore, Extent, Manifest};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::inspection::ManifestReader;
use crate::{CoreError, Result};

/// Longest zero extent written into a volume manifest (an extent's length is a `u32`).
const MAX_ZERO_EXTENT: u64 = 1 << 31;
/// Bytes of the guest disk read from a format reader at once.
const READ_PIECE: u64 = 1 << 20;
/// Pieces in flight between the reading thread and the store writer.
const PIECES_IN_FLIGHT: usize = 4;
/// Range of the guest disk whose block status is asked for at once (bounds the extent list in memory).
const STATUS_WINDOW: u64 = 1 << 30;

/// A volume's disk made by [`disk_from_raw`], [`disk_from_format`] or [`empty_disk`].
#[derive(Debug, Clone)]
pub struct GuestDisk {
    /// The saved manifest holding the disk.
    pub manifest_id: String,
    /// Size of the disk in bytes.
    pub size: u64,
    /// Pending manifests that keep newly stored chunks from garbage collection until the catalog
    /// references `manifest_id`; release them with [`release`] then.
    pub pending: Vec<String>,
}

/// Releases what kept `disk`'s new chunks from garbage collection. Call once the catalog references the
/// disk's manifest (or once the disk is abandoned). Failures are logged: pending manifests expire anyway.
pub async fn release(store: &ChunkStore, disk: &GuestDisk) {
    release_pending(store, &disk.pending).await;
}

async fn release_pending(store: &ChunkStore, pending: &[String]) {
    for id in pending {
        if let Err(e) = store.release_pending(id).await {
            tracing::warn!(pending = %id, error = %e, "pending manifest left to expire");
        }
    }
}

/// Appends zero extents covering `[from, to)` to `extents`.
fn push_zeros(extents: &mut Vec<Extent>, mut from: u64, to: u64) {
    while from < to {
        let length = (to - from).min(MAX_ZERO_EXTENT);
        extents.push(Extent { offset: from, length: length as u32, chunk: None });
        from += length;
    }
}

/// An empty disk of `size` bytes: zero extents only, nothing stored but the manifest.
pub async fn empty_disk(store: &ChunkStore, size: u64) -> Result<GuestDisk> {
    let mut extents = Vec::new();
    push_zeros(&mut extents, 0, size);
    let manifest_id = store.save_manifest(&Manifest { size, extents }).await?;
    Ok(GuestDisk { manifest_id, size, pending: Vec::new() })
}

/// The disk of a RAW image stored as `manifest_id`, grown with zeros to `size` bytes. No data is copied:
/// the volume references the image's chunks. `Invalid` if `size` is smaller than the image.
pub async fn disk_from_raw(store: &ChunkStore, manifest_id: &str, manifest: &Manifest, size: u64) -> Result<GuestDisk> {
    if size < manifest.size {
        return Err(CoreError::Invalid(format!(
            "a volume of {size} bytes cannot hold an image of {} bytes",
            manifest.size
        )));
    }
    if size == manifest.size {
        return Ok(GuestDisk { manifest_id: manifest_id.to_string(), size, pending: Vec::new() });
    }
    let mut grown = manifest.clone();
    push_zeros(&mut grown.extents, manifest.size, size);
    grown.size = size;
    let manifest_id = store.save_manifest(&grown).await?;
    Ok(GuestDisk { manifest_id, size, pending: Vec::new() })
}

/// What the reading thread hands the store writer.
enum Piece {
    Data { offset: u64, bytes: Bytes },
    Zero { offset: u64, length: u64 },
}

/// Opens the guest disk of the image file `manifest` (stored in `store`'s domain) with the reader of
/// `format`, on a blocking thread. `Corrupt` if the file does not parse as that format.
pub async fn open_guest_disk(store: &ChunkStore, manifest: Arc<Manifest>, format: Format) -> Result<Arc<dyn DiskImage>> {
    let reader = ManifestReader::new(store.clone(), manifest, Handle::current());
    let limits = ims_formats::Limits::default();
    let disk = tokio::task::spawn_blocking(move || ims_formats::open(Arc::new(reader), format, &limits))
        .await
        .map_err(|e| CoreError::Unavailable(format!("opening the guest disk failed to run: {e}")))?
        .map_err(|e| CoreError::Corrupt(format!("the guest disk cannot be opened: {e}")))?;
    Ok(Arc::from(disk))
}

/// Converts `disk` (a guest disk read by its format reader) into a RAW disk of `size` bytes in `store`:
/// data ranges become chunks, holes and zero ranges zero extents, the tail past the guest disk zeros.
/// `Invalid` if `size` is smaller than the guest disk.
pub async fn disk_from_format(store: &ChunkStore, disk: Arc<dyn DiskImage>, size: u64) -> Result<GuestDisk> {
    let virtual_size = disk.virtual_size();
    if size < virtual_size {
        return Err(CoreError::Invalid(format!(
            "a volume of {size} bytes cannot hold a guest disk of {virtual_size} bytes"
        )));
    }
    let (tx, mut rx) = mpsc::channel::<Result<Piece>>(PIECES_IN_FLIGHT);
    let reading = tokio::task::spawn_blocking(move || read_pieces(disk.as_ref(), &tx));

    let mut extents: Vec<Extent> = Vec::new();
    let mut pending = Vec::new();
    // The data run being written: where it starts, its writer, and where the next byte must be.
    let mut run: Option<(u64, ims_store::ManifestWriter, u64)> = None;
    let outcome: Result<()> = async {
        while let Some(piece) = rx.recv().await {
            match piece? {
                Piece::Data { offset, bytes } => {
                    let contiguous = matches!(&run, Some((_, _, next)) if *next == offset);
                    if !contiguous {
                        finish_run(run.take(), &mut extents, &mut pending).await?;
                        run = Some((offset, store.writer(), offset));
                    }
                    let (_, writer, next) = run.as_mut().expect("a run was started above");
                    *next += bytes.len() as u64;
                    writer.write(bytes).await?;
                }
                Piece::Zero { offset, length } => {
                    finish_run(run.take(), &mut extents, &mut pending).await?;
                    push_zeros(&mut extents, offset, offset + length);
                }
            }
        }
        finish_run(run.take(), &mut extents, &mut pending).await
    }
    .await;
    drop(rx);
    let read = reading.await.map_err(|e| CoreError::Unavailable(format!("reading the guest disk failed to run: {e}")));
    if let Err(e) = outcome.and(read) {
        release_pending(store, &pending).await;
        return Err(e);
    }
    push_zeros(&mut extents, virtual_size, size);
    let manifest = Manifest { size, extents };
    match store.save_manifest(&manifest).await {
        Ok(manifest_id) => Ok(GuestDisk { manifest_id, size, pending }),
        Err(e) => {
            release_pending(store, &pending).await;
            Err(e.into())
        }
    }
}

/// Ends the data run `run`: its extents, shifted to where the run starts, join `extents`.
async fn finish_run(
    run: Option<(u64, ims_store::ManifestWriter, u64)>,
    extents: &mut Vec<Extent>,
    pending: &mut Vec<String>,
) -> Result<()> {
    let Some((start, writer, _)) = run else { return Ok(()) };
    let summary = writer.finish().await?;
    pending.extend(summary.pending_id);
    extents.extend(summary.manifest.extents.into_iter().map(|e| Extent { offset: e.offset + start, ..e }));
    Ok(())
}

/// Walks the guest disk in order on a blocking thread and sends its data in pieces and its holes as zero
/// ranges; stops at the first error (sent) or when the receiver is gone.
fn read_pieces(disk: &dyn DiskImage, tx: &mpsc::Sender<Result<Piece>>) {
    let size = disk.virtual_size();
    let mut window = 0;
    while window < size {
        let window_len = (size - window).min(STATUS_WINDOW);
        let runs = match disk.block_status(window, window_len) {
            Ok(runs) => runs,
            Err(e) => {
                let _ = tx.blocking_send(Err(CoreError::Corrupt(format!("guest disk at {window}: {e}"))));
                return;
            }
        };
        for run in runs {
            if run.status != BlockStatus::Data {
                if tx.blocking_send(Ok(Piece::Zero { offset: run.offset, length: run.length })).is_err() {
                    return;
                }
                continue;
            }
            let mut offset = run.offset;
            while offset < run.offset + run.length {
                let len = (run.offset + run.length - offset).min(READ_PIECE);
                let mut buf = vec![0u8; len as usize];
                let piece = disk
                    .read_at(&mut buf, offset)
                    .map(|()| Piece::Data { offset, bytes: Bytes::from(buf) })
                    .map_err(|e| CoreError::Corrupt(format!("guest disk at {offset}: {e}")));
                let failed = piece.is_err();
                if tx.blocking_send(piece).is_err() || failed {
                    return;
                }
                offset += len;
            }
        }
        window += window_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_extents_are_split_to_fit_a_u32() {
        let mut extents = Vec::new();
        push_zeros(&mut extents, 10, 10 + 5 * MAX_ZERO_EXTENT + 3);
        assert_eq!(extents.len(), 6);
        assert_eq!(extents.last().map(|e| (e.offset, e.length)), Some((10 + 5 * MAX_ZERO_EXTENT, 3)));
        assert!(extents.windows(2).all(|w| w[0].end() == w[1].offset));
    }
}
