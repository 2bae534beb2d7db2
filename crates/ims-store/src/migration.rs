//! Moving the live objects of one chunk store into another (`ims admin migrate`): the chunks and the
//! manifests the catalog references, each read back from the target and verified after it is written.
//!
//! The target must not be written by anything else meanwhile (it is a new deployment's store being
//! filled); the copy is not a write in the sense of the `gc` module. A rerun skips every object already
//! at the target that verifies, so a copy that was interrupted resumes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use crate::{ChunkId, ChunkStore, EncryptionDomain, Manifest, StoreError};

/// Counters of a migration in progress, or done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationProgress {
    pub manifests_total: u64,
    pub manifests_done: u64,
    pub chunks_total: u64,
    pub chunks_done: u64,
    /// Objects found at the target already, verified, and not written again.
    pub objects_present: u64,
    /// Stored bytes written to the target.
    pub bytes_written: u64,
}

/// An object that could not be migrated, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFailure {
    /// The object's path in the store (`chunks/ab/ab12...`, `manifests/<uuid>`).
    pub object: String,
    pub detail: String,
}

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub progress: MigrationProgress,
    /// Objects missing or corrupt at the source, or that did not verify once written; empty when the
    /// target holds a verified copy of everything.
    pub failures: Vec<ObjectFailure>,
}

/// What became of one object.
enum Outcome {
    Present,
    Written(u64),
    Failed(String),
}

impl ChunkStore {
    /// Copies the manifests `manifest_ids` of this store, and every chunk they reference, into `target`,
    /// `in_flight` chunks at a time, calling `progress` as objects complete.
    ///
    /// Every chunk is verified the way reads verify it: decoded (decrypted with the one of `domains` it
    /// was written in, for an encrypted chunk) and hashed against its id, at the source before it is
    /// written and at the target after it is read back. A chunk or manifest already at the target that
    /// verifies (a manifest: equal bytes) is skipped. Chunks go before manifests, so a manifest at the
    /// target only ever names chunks that were there and verified. A missing or corrupt source object, or
    /// a copy that does not verify, is listed in the report's `failures` (the other objects are still
    /// copied); backend failures abort with an error. Memory: about `in_flight` chunks, plus 36 bytes per
    /// distinct chunk.
    pub async fn migrate_objects(
        &self,
        target: &ChunkStore,
        manifest_ids: &[String],
        domains: Vec<EncryptionDomain>,
        in_flight: usize,
        progress: &(dyn Fn(&MigrationProgress) + Sync),
    ) -> Result<MigrationReport, StoreError> {
        let mut report = MigrationReport::default();
        let mut chunks: BTreeMap<ChunkId, u32> = BTreeMap::new();
        let mut manifests = Vec::new();
        for id in manifest_ids {
            let path = manifest_object(id)?;
            match self.get_object(&path).await? {
                None => report.failures.push(failure(&path, "the manifest is missing at the source")),
                Some(data) => match Manifest::from_json(&data) {
                    Err(e) => report.failures.push(failure(&path, &format!("the manifest is corrupt at the source: {e}"))),
                    Ok(manifest) => {
                        for extent in &manifest.extents {
                            if let Some(chunk) = extent.chunk {
                                chunks.insert(chunk, extent.length);
                            }
                        }
                        manifests.push(path);
                    }
                },
            }
        }
        let counters = Counters::default();
        counters.manifests_total.store(manifests.len() as u64, Ordering::Relaxed);
        counters.chunks_total.store(chunks.len() as u64, Ordering::Relaxed);
        progress(&counters.snapshot());
        let domains = Arc::new(domains);
        let hint = Arc::new(AtomicUsize::new(0));
        let outcomes: Vec<(Path, Outcome)> = futures::stream::iter(chunks)
            .map(|(id, length)| {
                let (domains, hint, counters) = (domains.clone(), hint.clone(), &counters);
                async move {
                    let outcome = self.migrate_chunk(target, id, length, domains, hint).await?;
                    counters.count(&outcome, &counters.chunks_done);
                    progress(&counters.snapshot());
                    Ok::<_, StoreError>((id.object_path(), outcome))
                }
            })
            .buffer_unordered(in_flight.max(1))
            .try_collect()
            .await?;
        let mut failed_chunks = false;
        for (path, outcome) in outcomes {
            if let Outcome::Failed(detail) = outcome {
                report.failures.push(failure(&path, &detail));
                failed_chunks = true;
            }
        }
        if !failed_chunks {
            for path in manifests {
                let outcome = self.migrate_manifest(target, &path).await?;
                counters.count(&outcome, &counters.manifests_done);
                progress(&counters.snapshot());
                if let Outcome::Failed(detail) = outcome {
                    report.failures.push(failure(&path, &detail));
                }
            }
        }
        report.progress = counters.snapshot();
        report.failures.sort_by(|a, b| a.object.cmp(&b.object));
        Ok(report)
    }

    async fn migrate_chunk(
        &self,
        target: &ChunkStore,
        id: ChunkId,
        length: u32,
        domains: Arc<Vec<EncryptionDomain>>,
        hint: Arc<AtomicUsize>,
    ) -> Result<Outcome, StoreError> {
        let path = id.object_path();
        let check = |data: Bytes| {
            let (domains, hint) = (domains.clone(), hint.clone());
            crate::cpu::run("verifying a chunk", move || verify_chunk(&data, &id, length, &domains, &hint))
        };
        if let Some(existing) = target.get_object(&path).await? {
            if check(existing).await?.is_ok() {
                return Ok(Outcome::Present);
            }
        }
        let Some(data) = self.get_object(&path).await? else {
            return Ok(Outcome::Failed("the chunk is missing at the source".into()));
        };
        if let Err(why) = check(data.clone()).await? {
            return Ok(Outcome::Failed(format!("the chunk is corrupt at the source: {why}")));
        }
        crate::backend::put_object(target.objects().as_ref(), &path, data.clone()).await?;
        let Some(back) = target.get_object(&path).await? else {
            return Ok(Outcome::Failed("the chunk is missing at the target right after it was written".into()));
        };
        if back != data {
            return Ok(Outcome::Failed("the chunk read back from the target differs from the source".into()));
        }
        match check(back).await? {
            Ok(()) => Ok(Outcome::Written(data.len() as u64)),
            Err(why) => Ok(Outcome::Failed(format!("the chunk does not verify at the target: {why}"))),
        }
    }

    async fn migrate_manifest(&self, target: &ChunkStore, path: &Path) -> Result<Outcome, StoreError> {
        let Some(data) = self.get_object(path).await? else {
            return Ok(Outcome::Failed("the manifest is missing at the source".into()));
        };
        if target.get_object(path).await?.as_ref() == Some(&data) {
            return Ok(Outcome::Present);
        }
        crate::backend::put_object(target.objects().as_ref(), path, data.clone()).await?;
        match target.get_object(path).await? {
            Some(back) if back == data => Ok(Outcome::Written(data.len() as u64)),
            _ => Ok(Outcome::Failed("the manifest read back from the target differs from the source".into())),
        }
    }

    /// The object at `path`, or `None` if there is none.
    async fn get_object(&self, path: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.objects().get(path).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Decodes and hashes a chunk object: plaintext outside any domain, an encrypted one in the domain among
/// `domains` that opens it (tried from `hint`, the last one that did, which it updates).
fn verify_chunk(
    data: &Bytes,
    id: &ChunkId,
    length: u32,
    domains: &[EncryptionDomain],
    hint: &AtomicUsize,
) -> Result<(), String> {
    let encrypted = data.first().is_some_and(|tag| tag & crate::crypto::ENCRYPTED != 0);
    if !encrypted {
        return crate::chunk::decode(data.clone(), id, length as usize).map(drop);
    }
    if domains.is_empty() {
        return Err("the chunk is encrypted and no data key was given".into());
    }
    let first = hint.load(Ordering::Relaxed) % domains.len();
    for i in (first..domains.len()).chain(0..first) {
        if crate::chunk::decode_in(Some(&domains[i]), data.clone(), id, length as usize).is_ok() {
            hint.store(i, Ordering::Relaxed);
            return Ok(());
        }
    }
    Err("the chunk does not decrypt and verify under any data key of the catalog".into())
}

fn manifest_object(id: &str) -> Result<Path, StoreError> {
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| StoreError::Invalid(format!("bad manifest id {id:?}")))?;
    Ok(Path::from(format!("manifests/{}", uuid.hyphenated())))
}

fn failure(path: &Path, detail: &str) -> ObjectFailure {
    ObjectFailure { object: path.to_string(), detail: detail.to_string() }
}

#[derive(Default)]
struct Counters {
    manifests_total: AtomicU64,
    manifests_done: AtomicU64,
    chunks_total: AtomicU64,
    chunks_done: AtomicU64,
    objects_present: AtomicU64,
    bytes_written: AtomicU64,
}

impl Counters {
    fn count(&self, outcome: &Outcome, done: &AtomicU64) {
        done.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Present => {
                self.objects_present.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Written(bytes) => {
                self.bytes_written.fetch_add(*bytes, Ordering::Relaxed);
            }
            Outcome::Failed(_) => {}
        }
    }

    fn snapshot(&self) -> MigrationProgress {
        MigrationProgress {
            manifests_total: self.manifests_total.load(Ordering::Relaxed),
            manifests_done: self.manifests_done.load(Ordering::Relaxed),
            chunks_total: self.chunks_total.load(Ordering::Relaxed),
            chunks_done: self.chunks_done.load(Ordering::Relaxed),
            objects_present: self.objects_present.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }
}
