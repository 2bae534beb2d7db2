//! Integrity verification: every chunk of the images' manifests read back, decoded and hashed.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use ims_catalog::Image;
use ims_store::{ChunkId, StoreError};
use serde::Serialize;
use uuid::Uuid;

use super::{seconds, store_failure, IN_FLIGHT};
use crate::images::ImageService;
use crate::{CoreError, Result};

/// What is wrong with a chunk or a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The object does not exist.
    Missing,
    /// The object exists but does not decode, or its content does not match its id.
    Corrupt,
}

/// One use of a bad chunk: the image and the offset in the image's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkProblem {
    pub image_id: Uuid,
    /// Offset of the chunk in the image's file (the bytes a download would serve).
    pub offset: u64,
    pub length: u32,
    pub chunk: String,
    pub kind: ProblemKind,
    pub detail: String,
}

/// An image whose manifest cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestProblem {
    pub image_id: Uuid,
    pub manifest_id: String,
    pub kind: ProblemKind,
    pub detail: String,
}

/// An image whose chunks were not verified, and why: an encrypted image whose master key is disabled
/// or gone (its chunks cannot be decrypted, so nothing can be said of them until the key is back), or an
/// image held only by stores this node does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedImage {
    pub image_id: Uuid,
    pub reason: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Images whose manifests were read (skipped images excluded).
    pub images_checked: u64,
    /// Distinct chunks read and hashed (a chunk shared by images is read once).
    pub chunks_checked: u64,
    /// Plaintext bytes verified.
    pub bytes_checked: u64,
    /// Every use of a missing or corrupt chunk, ordered by image then offset.
    pub chunk_problems: Vec<ChunkProblem>,
    pub manifest_problems: Vec<ManifestProblem>,
    /// Images not verified, in id order. A report with skipped images is not clean.
    pub images_skipped: Vec<SkippedImage>,
    pub duration_seconds: f64,
}

impl VerifyReport {
    /// Whether every image was verified and nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.chunk_problems.is_empty() && self.manifest_problems.is_empty() && self.images_skipped.is_empty()
    }
}

/// One distinct chunk to verify, with every (image, offset) that uses it.
struct Use {
    length: u32,
    store: ims_store::ChunkStore,
    users: Vec<(Uuid, u64)>,
}

pub(super) async fn verify(images: &ImageService, list: Vec<Image>) -> Result<VerifyReport> {
    let started = Instant::now();
    let mut report = VerifyReport::default();
    // By the store the image is read from (an image deleted from the default store is read from an extra
    // store), then chunk id.
    let mut uses: BTreeMap<(String, ChunkId), Use> = BTreeMap::new();
    for image in list {
        let Some(manifest_id) = image.manifest_id.clone() else { continue };
        // The image's encryption domain decides how its chunks decode. Without its key they cannot be
        // read at all: the image is reported as skipped (never as clean), and the others are verified.
        let store = match images.store_for_reading(&image).await {
            Ok(store) => store,
            Err(CoreError::Forbidden(reason) | CoreError::Unavailable(reason)) => {
                report.images_skipped.push(SkippedImage { image_id: image.id, reason });
                continue;
            }
            Err(e) => return Err(e),
        };
        report.images_checked += 1;
        let manifest = match store.load_manifest(&manifest_id).await {
            Ok(m) => m,
            Err(e @ (StoreError::NotFound(_) | StoreError::Corrupt(_))) => {
                let kind = if matches!(e, StoreError::NotFound(_)) { ProblemKind::Missing } else { ProblemKind::Corrupt };
                report.manifest_problems.push(ManifestProblem {
                    image_id: image.id,
                    manifest_id,
                    kind,
                    detail: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(store_failure("reading a manifest", e)),
        };
        let home = images.home(&image)?.0;
        for extent in &manifest.extents {
            let Some(chunk) = extent.chunk else { continue };
            uses.entry((home.clone(), chunk))
                .or_insert_with(|| Use { length: extent.length, store: store.clone(), users: Vec::new() })
                .users
                .push((image.id, extent.offset));
        }
    }
    report.chunks_checked = uses.len() as u64;
    let work: Vec<((String, ChunkId), u32, ims_store::ChunkStore)> =
        uses.iter().map(|(key, u)| (key.clone(), u.length, u.store.clone())).collect();
    let outcomes: Vec<((String, ChunkId), u32, Option<(ProblemKind, String)>)> = futures::stream::iter(work)
        .map(|(key, length, store)| async move {
            let id = key.1;
            let problem = match store.verify_chunk(&id, length).await {
                Ok(true) => None,
                Ok(false) => Some((ProblemKind::Missing, format!("chunk {id} is missing"))),
                Err(StoreError::Corrupt(m)) => Some((ProblemKind::Corrupt, m)),
                Err(e) => return Err(store_failure(&format!("reading chunk {id}"), e)),
            };
            Ok::<_, CoreError>((key, length, problem))
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    for (key, length, problem) in outcomes {
        let Some((kind, detail)) = problem else {
            report.bytes_checked += u64::from(length);
            continue;
        };
        for &(image_id, offset) in &uses[&key].users {
            let detail = detail.clone();
            report.chunk_problems.push(ChunkProblem { image_id, offset, length, chunk: key.1.to_string(), kind, detail });
        }
    }
    report.chunk_problems.sort_by(|a, b| (a.image_id, a.offset).cmp(&(b.image_id, b.offset)));
    report.duration_seconds = seconds(started.elapsed());
    Ok(report)
}
