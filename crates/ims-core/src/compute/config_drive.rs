//! Config drives: the NoCloud cloud-init seed a server made from a capsule boots with.
//!
//! The drive is an ISO 9660 image labelled [`CONFIG_DRIVE_LABEL`] holding two files at its root:
//! `user-data` (the capsule's user data, byte for byte) and `meta-data` (the server's instance id and
//! host name). The ISO writer streams the image on a blocking thread; its output goes through a small
//! channel into a manifest writer of the chunk store, so the drive is never staged on disk or held
//! whole in memory. The drive is a RAW disk exactly the size of the ISO image (a multiple of 2048).

use std::io::Read;

use bytes::Bytes;
use ims_formats::iso::{IsoLayout, IsoOptions, IsoTree};
use ims_store::ChunkStore;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::disk::GuestDisk;
use crate::{CoreError, Result};

/// Volume label cloud-init's NoCloud data source looks for.
pub const CONFIG_DRIVE_LABEL: &str = "cidata";
/// Bytes of the ISO stream handed to the store writer at once.
const PIECE: usize = 64 * 1024;
/// Pieces in flight between the ISO writer thread and the store writer.
const PIECES_IN_FLIGHT: usize = 4;

/// The `meta-data` file of a server: `instance-id` and `local-hostname` (the name quoted, so that any
/// server name is valid YAML).
pub fn meta_data(server_id: Uuid, server_name: &str) -> Vec<u8> {
    let hostname = serde_json::to_string(server_name).expect("a string always serializes");
    format!("instance-id: {server_id}\nlocal-hostname: {hostname}\n").into_bytes()
}

/// Writes the config drive holding `user_data` and `meta_data` into `store` and returns it saved as a
/// manifest. On error nothing the caller must clean up remains (chunks already stored are left to
/// garbage collection); on success the disk's pending manifest must be released once the catalog
/// references it (see [`super::disk::release`]).
pub async fn write_config_drive(store: &ChunkStore, user_data: Bytes, meta_data: Vec<u8>) -> Result<GuestDisk> {
    let invalid = |e: ims_formats::FormatError| CoreError::Invalid(format!("the config drive cannot be laid out: {e}"));
    let mut tree = IsoTree::new();
    tree.add_file("user-data", user_data.len() as u64, user_data.to_vec()).map_err(invalid)?;
    tree.add_file("meta-data", meta_data.len() as u64, meta_data).map_err(invalid)?;
    let layout = IsoLayout::new(tree, &IsoOptions::new(CONFIG_DRIVE_LABEL)).map_err(invalid)?;
    let size = layout.size();

    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(PIECES_IN_FLIGHT);
    let streaming = tokio::task::spawn_blocking(move || {
        let mut iso = layout.into_stream();
        loop {
            let mut buf = vec![0u8; PIECE];
            match iso.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut writer = store.writer();
    let written: Result<()> = async {
        while let Some(piece) = rx.recv().await {
            let piece = piece.map_err(|e| CoreError::Unavailable(format!("writing the config drive failed: {e}")))?;
            writer.write(piece).await?;
        }
        Ok(())
    }
    .await;
    drop(rx);
    streaming.await.map_err(|e| CoreError::Unavailable(format!("the config drive writer failed to run: {e}")))?;
    written?;
    let summary = writer.finish().await?;
    let pending: Vec<String> = summary.pending_id.into_iter().collect();
    if summary.manifest.size != size {
        super::disk::release(store, &GuestDisk { manifest_id: String::new(), size, pending }).await;
        return Err(CoreError::Unavailable(format!(
            "the config drive came out as {} bytes instead of {size}",
            summary.manifest.size
        )));
    }
    match store.save_manifest(&summary.manifest).await {
        Ok(manifest_id) => Ok(GuestDisk { manifest_id, size, pending }),
        Err(e) => {
            super::disk::release(store, &GuestDisk { manifest_id: String::new(), size, pending }).await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_quotes_the_host_name() {
        let id = Uuid::nil();
        let text = String::from_utf8(meta_data(id, "web: \"one\"")).unwrap();
        assert_eq!(text, format!("instance-id: {id}\nlocal-hostname: \"web: \\\"one\\\"\"\n"));
    }
}
