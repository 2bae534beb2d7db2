//! Uploading an image's data: streamed into the chunk store while md5 and sha512 are computed on
//! another thread, so that neither the file nor a hash pass ever needs the whole image at once.

use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use ims_catalog::{Image, ImageStatus};
use md5::Md5;
use openssl::hash::MessageDigest;
use sha2::digest::DynDigest;
use sha2::Sha512;
use uuid::Uuid;

use crate::images::ImageService;
use crate::inspection::{inspect_stored, inspected_format};
use crate::{CoreError, Policy, RequestContext, Result};

/// Bytes gathered from the request body before they are hashed and chunked.
const BATCH: usize = 1 << 20;

/// The hash algorithm recorded in `os_hash_algo`.
pub const HASH_ALGO: &str = "sha512";

/// The digests of an uploaded file.
struct Digests {
    md5: String,
    sha512: String,
}

/// One digest computed on its own thread, fed through a bounded channel, so that md5 and sha512
/// run in parallel with each other and with chunking.
struct DigestThread {
    tx: Option<tokio::sync::mpsc::Sender<Arc<Vec<Bytes>>>>,
    worker: Option<thread::JoinHandle<String>>,
}

/// A digest being computed: OpenSSL's implementation when it offers the algorithm (its assembly is about
/// a quarter faster than the pure-Rust crates for md5 and sha512 on x86-64, and these two hashes are most of
/// an upload's CPU), else the RustCrypto one (md5 under an OpenSSL restricted to FIPS algorithms).
enum Engine {
    OpenSsl(openssl::hash::Hasher),
    Rust(Box<dyn DynDigest + Send>),
}

impl Engine {
    fn new(algorithm: MessageDigest, fallback: fn() -> Box<dyn DynDigest + Send>) -> Engine {
        match openssl::hash::Hasher::new(algorithm) {
            Ok(hasher) => Engine::OpenSsl(hasher),
            Err(_) => Engine::Rust(fallback()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            // Updating a digest OpenSSL initialised does not fail (it only copies and compresses blocks).
            Engine::OpenSsl(hasher) => hasher.update(data).expect("OpenSSL digest update"),
            Engine::Rust(digest) => digest.update(data),
        }
    }

    fn finish_hex(self) -> String {
        match self {
            Engine::OpenSsl(mut hasher) => hex::encode(hasher.finish().expect("OpenSSL digest final")),
            Engine::Rust(digest) => hex::encode(digest.finalize()),
        }
    }
}

impl DigestThread {
    fn start(name: &str, engine: Engine) -> DigestThread {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(8);
        let worker = thread::Builder::new()
            .name(format!("ims-{name}"))
            .spawn(move || {
                let mut engine = engine;
                while let Some(frames) = rx.blocking_recv() {
                    for data in frames.iter() {
                        engine.update(data);
                    }
                }
                engine.finish_hex()
            })
            .expect("spawning a thread");
        DigestThread { tx: Some(tx), worker: Some(worker) }
    }

    /// Queues a batch of frames (in order); waits when the digest is behind (backpressure on the upload).
    async fn update(&mut self, data: Arc<Vec<Bytes>>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(data).await;
        }
    }

    async fn finish(mut self) -> String {
        drop(self.tx.take());
        let worker = self.worker.take().expect("digest thread is running");
        tokio::task::spawn_blocking(move || worker.join().expect("digest thread does not panic"))
            .await
            .expect("join")
    }
}

/// md5 (Glance's `checksum`) and sha512 (`os_hash_value`) of a stream.
struct Hasher {
    md5: DigestThread,
    sha512: DigestThread,
}

impl Hasher {
    fn start() -> Hasher {
        let md5 = Engine::new(MessageDigest::md5(), || Box::<Md5>::default());
        let sha512 = Engine::new(MessageDigest::sha512(), || Box::<Sha512>::default());
        Hasher { md5: DigestThread::start("md5", md5), sha512: DigestThread::start("sha512", sha512) }
    }

    async fn update(&mut self, data: Arc<Vec<Bytes>>) {
        self.md5.update(data.clone()).await;
        self.sha512.update(data).await;
    }

    async fn finish(self) -> Digests {
        Digests { md5: self.md5.finish().await, sha512: self.sha512.finish().await }
    }
}

/// Network frames gathered into batches of about [`BATCH`] bytes, so that the digest threads wake up once
/// per batch. The frames are shared, not copied: the chunker takes them as they are.
#[derive(Default)]
struct Batch {
    frames: Vec<Bytes>,
    len: usize,
}

impl Batch {
    /// Adds `frame`; returns the batch once it holds at least [`BATCH`] bytes.
    fn push(&mut self, frame: Bytes) -> Option<Arc<Vec<Bytes>>> {
        self.len += frame.len();
        self.frames.push(frame);
        (self.len >= BATCH).then(|| self.take())
    }

    /// The frames not yet returned, if any (at the end of the stream).
    fn rest(&mut self) -> Option<Arc<Vec<Bytes>>> {
        (!self.frames.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Arc<Vec<Bytes>> {
        self.len = 0;
        Arc::new(std::mem::take(&mut self.frames))
    }
}

/// md5 and sha512 (lowercase hex) and the length of `body`, hashed on their own threads as an upload's
/// are, without storing anything. The first error of the stream ends it.
pub(crate) async fn digest_stream<S, E>(mut body: S) -> std::result::Result<(String, String, u64), E>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    let mut hasher = Hasher::start();
    let (mut batch, mut total) = (Batch::default(), 0u64);
    while let Some(data) = body.next().await {
        let data = data?;
        total += data.len() as u64;
        if let Some(frames) = batch.push(data) {
            hasher.update(frames).await;
        }
    }
    if let Some(frames) = batch.rest() {
        hasher.update(frames).await;
    }
    let digests = hasher.finish().await;
    Ok((digests.md5, digests.sha512, total))
}

impl ImageService {
    /// Stores `body` as the image's data and makes the image active.
    ///
    /// The image must be `queued` (else `Conflict`) with both formats set (else `Invalid`). While data
    /// streams the image is `saving`; on any failure (body error, size mismatch with `declared_size`,
    /// size cap exceeded, store failure, client gone) it returns to `queued` with no data attached.
    /// The work runs in its own task, so it completes or rolls back even if the caller stops waiting.
    pub async fn upload<S, E>(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        declared_size: Option<u64>,
        body: S,
    ) -> Result<Image>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let mut body = body;
        let mut image = match self.check_upload(ctx, id, declared_size).await {
            Ok(image) => image,
            Err(e) => {
                discard(&mut body).await;
                return Err(e);
            }
        };
        image.status = ImageStatus::Saving;
        self.mark_transfer(&mut image);
        image.updated_at = crate::now();
        self.catalog
            .images
            .save(&image, &[ImageStatus::Queued], &ctx.event("image.upload.start", format!("image:{id}")))
            .await?;

        let service = self.clone();
        let task_ctx = ctx.clone();
        let task = tokio::spawn(async move {
            let outcome = service.receive(image.clone(), declared_size, body).await;
            match outcome {
                Ok(mut stored) => {
                    stored.lineage = ims_catalog::Lineage::upload();
                    service.activate(&task_ctx, stored).await
                }
                Err(e) => {
                    service.requeue(&task_ctx, image, &e).await;
                    Err(e)
                }
            }
        });
        task.await.map_err(|e| CoreError::Unavailable(format!("upload task failed: {e}")))?
    }

    /// The checks made before any data is read: the image may take data now.
    async fn check_upload(&self, ctx: &RequestContext, id: Uuid, declared_size: Option<u64>) -> Result<Image> {
        let image = self.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        if image.status != ImageStatus::Queued {
            return Err(CoreError::Conflict(format!(
                "Image status transition from {} to saving is not allowed",
                image.status
            )));
        }
        image.status.check_transition(ImageStatus::Saving, &image)?;
        let cap = self.limits.max_image_size;
        if declared_size.is_some_and(|size| size > cap) {
            return Err(too_large(cap));
        }
        if let (Some(size), Some(room)) = (declared_size, self.byte_room(&image).await?) {
            if size > room {
                return Err(self.bytes_refusal(&image.owner).await?);
            }
        }
        // An encrypted image's key must be usable (enabled) before any data is taken.
        self.store_for_upload(&image).await?;
        Ok(image)
    }

    /// Streams the body into the store; returns the image with its data fields filled in.
    pub(crate) async fn receive<S, E>(&self, mut image: Image, declared_size: Option<u64>, mut body: S) -> Result<Image>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let cap = self.limits.max_image_size;
        let limit = declared_size.map_or(cap, |d| d.min(cap));
        // What the owner's byte quota leaves; the activation checks it again, atomically.
        let room = self.byte_room(&image).await?;
        // The image's encryption domain (or plaintext): written through, inspected through, recorded.
        let (store, encryption) = self.store_for_upload(&image).await?;
        let mut writer = store.writer();
        let mut hasher = Hasher::start();
        let mut received: u64 = 0;
        let mut batch = Batch::default();
        loop {
            let next = body.next().await;
            let full = match &next {
                None => batch.rest(),
                Some(next) => {
                    let data = next.as_ref().map_err(|e| CoreError::Invalid(format!("upload interrupted: {e}")))?;
                    received += data.len() as u64;
                    if room.is_some_and(|room| received > room) {
                        return Err(self.bytes_refusal(&image.owner).await?);
                    }
                    if received > limit {
                        return Err(match declared_size {
                            Some(d) if received > d && d <= cap => size_mismatch(d, received),
                            _ => too_large(cap),
                        });
                    }
                    batch.push(data.clone())
                }
            };
            if let Some(frames) = full {
                hasher.update(frames.clone()).await;
                for frame in frames.iter() {
                    writer.write(frame.clone()).await?;
                }
            }
            if next.is_none() {
                break;
            }
        }
        if let Some(d) = declared_size {
            if d != received {
                return Err(size_mismatch(d, received));
            }
        }
        let summary = writer.finish().await?;
        // Until the manifest is saved, any early return gives the chunks back to garbage collection.
        let pending = ims_store::PendingRelease::new(&self.store, summary.pending_id.clone());
        let digests = hasher.finish().await;
        let manifest = Arc::new(summary.manifest);
        let inspected = match image.disk_format.as_deref().and_then(inspected_format) {
            Some(format) => Some(inspect_stored(&store, manifest.clone(), format, self.format_limits(), self.limits.inspection_timeout).await?),
            None => None,
        };
        if let Some(record) = &encryption {
            self.catalog.encryption.set_image_encryption(record).await?;
        }
        // Saved under the write's id, so its pending manifest protects it until `activate` releases that.
        let manifest_id = match &summary.pending_id {
            Some(id) => self.store.save_manifest_as(id, &manifest).await.map(|()| id.clone())?,
            None => self.store.save_manifest(&manifest).await?,
        };
        pending.keep();
        tracing::info!(
            image = %image.id,
            bytes = received,
            chunks = summary.chunks_total,
            new_chunks = summary.chunks_new,
            deduplicated = summary.chunks_deduplicated,
            stored = summary.bytes_stored,
            "image data stored"
        );
        image.size = Some(received as i64);
        image.checksum = Some(digests.md5);
        image.os_hash_algo = Some(HASH_ALGO.to_string());
        image.os_hash_value = Some(digests.sha512);
        image.manifest_id = Some(manifest_id);
        image.virtual_size = inspected.map(|i| i.virtual_size as i64);
        Ok(image)
    }

    /// Bounds for inspecting an uploaded file.
    pub(crate) fn format_limits(&self) -> ims_formats::Limits {
        ims_formats::Limits::default()
    }

    /// saving → active, with the data fields. If the image changed meanwhile (deleted), the data is dropped.
    async fn activate(&self, ctx: &RequestContext, mut image: Image) -> Result<Image> {
        image.status = ImageStatus::Active;
        image.properties.remove(crate::transfers::TRANSFER_NODE);
        image.updated_at = crate::now();
        let event = ctx.event("image.upload", format!("image:{}", image.id));
        if let Err(e) = self.save_activation(&image, &[ImageStatus::Saving], &event).await {
            if let Some(m) = &image.manifest_id {
                let _ = self.store.delete_manifest(m).await;
                let _ = self.store.release_pending(m).await;
            }
            if let ims_catalog::CatalogError::LimitExceeded(m) = e {
                // Back to queued, like any failed upload; its chunks are garbage for GC.
                let refused = CoreError::QuotaExceeded(m);
                image.size = None;
                image.virtual_size = None;
                image.checksum = None;
                image.os_hash_algo = None;
                image.os_hash_value = None;
                image.manifest_id = None;
                self.requeue(ctx, image, &refused).await;
                return Err(refused);
            }
            return Err(match e {
                ims_catalog::CatalogError::Conflict(_) | ims_catalog::CatalogError::NotFound(_) => {
                    CoreError::Conflict(format!("Image {} was changed or deleted during upload", image.id))
                }
                other => other.into(),
            });
        }
        // The catalog references the manifest now: its pending manifest is no longer needed.
        if let Some(m) = &image.manifest_id {
            if let Err(e) = self.store.release_pending(m).await {
                tracing::warn!(image = %image.id, error = %e, "pending manifest left to expire");
            }
        }
        Ok(image)
    }

    /// saving → queued after a failed upload, recording why.
    async fn requeue(&self, ctx: &RequestContext, mut image: Image, error: &CoreError) {
        image.status = ImageStatus::Queued;
        image.properties.remove(crate::transfers::TRANSFER_NODE);
        image.updated_at = crate::now();
        let mut event = ctx.event("image.upload", format!("image:{}", image.id));
        event.result = "failure".into();
        event.detail = Some(error.to_string());
        if let Err(e) = self.catalog.images.save(&image, &[ImageStatus::Saving], &event).await {
            tracing::warn!(image = %image.id, error = %e, "could not return image to queued after failed upload");
        }
    }
}

/// Largest refused body read and dropped so the client can read the refusal: a client still
/// sending when the answer comes and the connection closes sees a broken pipe instead.
const DISCARD_LIMIT: u64 = 64 << 20;

/// Reads and drops up to [`DISCARD_LIMIT`] bytes of a refused body, for at most a few seconds.
async fn discard<S, E>(body: &mut S)
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(data)) = body.next().await {
            seen += data.len() as u64;
            if seen > DISCARD_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

fn too_large(cap: u64) -> CoreError {
    CoreError::TooLarge(format!("Image exceeds the storage quota: the maximum image size is {cap} bytes"))
}

fn size_mismatch(declared: u64, received: u64) -> CoreError {
    CoreError::Invalid(format!(
        "Upload size mismatch: x-openstack-image-size says {declared} bytes but {received} bytes were sent"
    ))
}
