//! The job of a location import: reads the data at the location into the chunk store (hashed and
//! inspected as an upload is), checks it against the validation data, and activates the image.
//! Restartable: an image already active is done; otherwise the data is read again from the start.
//! A failed job returns the image to `queued` without data, as Glance does.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use ims_catalog::{AuditEvent, CatalogError, Image, ImageStatus, Job};
use md5::Md5;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::locations::{HashAlgo, LocationParams, LocationSource};
use super::{GlanceImportService, FAILED_IMPORT};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::pipelines::{codes, job_error, job_image};
use crate::CoreError;

/// Runs location import jobs.
pub(crate) struct LocationImportHandler(pub(crate) GlanceImportService);

fn params(job: &Job) -> Result<LocationParams, JobError> {
    serde_json::from_value(job.params.clone())
        .map_err(|e| JobError::failed(codes::INTERNAL, format!("bad location parameters: {e}")))
}

/// A running digest of one of the algorithms validation data may name.
enum Digester {
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Digester {
    fn new(algo: HashAlgo) -> Digester {
        match algo {
            HashAlgo::Md5 => Digester::Md5(Md5::new()),
            HashAlgo::Sha1 => Digester::Sha1(Sha1::new()),
            HashAlgo::Sha256 => Digester::Sha256(Sha256::new()),
            HashAlgo::Sha512 => Digester::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Md5(d) => d.update(data),
            Digester::Sha1(d) => d.update(data),
            Digester::Sha256(d) => d.update(data),
            Digester::Sha512(d) => d.update(data),
        }
    }

    fn hex(self) -> String {
        match self {
            Digester::Md5(d) => hex::encode(d.finalize()),
            Digester::Sha1(d) => hex::encode(d.finalize()),
            Digester::Sha256(d) => hex::encode(d.finalize()),
            Digester::Sha512(d) => hex::encode(d.finalize()),
        }
    }
}

#[async_trait]
impl JobHandler for LocationImportHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<Value, JobError> {
        let p = params(job)?;
        let image = job_image(&self.0.images, &p.image_id).await?;
        match image.status {
            ImageStatus::Importing => {}
            // An earlier attempt activated it and stopped before recording the job's end.
            ImageStatus::Active => return Ok(json!({"image_id": p.image_id})),
            other => {
                return Err(JobError::failed(codes::WRONG_STATE, format!("image {} is {other}, not importing", image.id)))
            }
        }
        let source = LocationSource::parse(&p.url).map_err(|e| JobError::failed(codes::SOURCE_MISSING, e.to_string()))?;
        let (body, length) = self.open(&source).await?;
        // Hashed on the way in when the validation names an algorithm the upload path does not compute.
        let extra = p.validation_data.as_ref().map(|v| v.os_hash_algo).filter(|a| !matches!(a, HashAlgo::Md5 | HashAlgo::Sha512));
        let digester = Arc::new(Mutex::new(extra.map(Digester::new)));
        let total = length.unwrap_or(0) as f64;
        let (progress, hashing) = (ctx.clone(), digester.clone());
        let mut read = 0u64;
        let body = body
            .inspect(move |piece| {
                if let Ok(piece) = piece {
                    if let Some(d) = hashing.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        d.update(piece);
                    }
                    read += piece.len() as u64;
                    if total > 0.0 {
                        progress.set_progress(99.0 * read as f64 / total);
                    }
                }
            })
            .boxed();
        let mut stored = self.0.images.receive(image, length, body).await.map_err(|e| match e {
            CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, format!("{}: {m}", p.url)),
            other => job_error(other),
        })?;
        if let Some(expected) = &p.validation_data {
            let computed = match expected.os_hash_algo {
                HashAlgo::Md5 => stored.checksum.clone(),
                HashAlgo::Sha512 => stored.os_hash_value.clone(),
                HashAlgo::Sha1 | HashAlgo::Sha256 => {
                    digester.lock().unwrap_or_else(|p| p.into_inner()).take().map(Digester::hex)
                }
            };
            if computed.as_deref() != Some(expected.os_hash_value.as_str()) {
                self.drop_data(&stored).await;
                return Err(JobError::failed(
                    codes::SOURCE_CORRUPT,
                    format!(
                        "the data at {} does not match the validation data: its {} is {}",
                        crate::lineage::url_without_secrets(&p.url),
                        expected.os_hash_algo.as_str(),
                        computed.unwrap_or_default()
                    ),
                ));
            }
            stored.os_hash_algo = Some(expected.os_hash_algo.as_str().to_string());
            stored.os_hash_value = Some(expected.os_hash_value.clone());
        }
        ctx.check()?;
        self.activate(stored, &p, &source).await?;
        ctx.set_progress(100.0);
        Ok(json!({"image_id": p.image_id, "stores": [super::DEFAULT_STORE_ID]}))
    }

    async fn on_failed(&self, job: &Job, code: &str, reason: &str) {
        let Ok(p) = params(job) else { return };
        let images = &self.0.images;
        let Ok(mut image) = job_image(images, &p.image_id).await else { return };
        if image.status != ImageStatus::Importing {
            return;
        }
        image.status = ImageStatus::Queued;
        image.manifest_id = None;
        image.size = None;
        image.virtual_size = None;
        image.checksum = None;
        image.os_hash_algo = None;
        image.os_hash_value = None;
        image.updated_at = crate::now();
        image.properties.insert(FAILED_IMPORT.into(), super::DEFAULT_STORE_ID.into());
        let mut event = AuditEvent::new(&format!("job-{}", job.id), "image.import", format!("image:{}", image.id));
        event.project_id = Some(job.project_id.clone());
        event.result = "failure".into();
        event.detail = Some(format!("location import: {code}: {reason}"));
        if let Err(e) = images.catalog.images.save(&image, &[ImageStatus::Importing], &event).await {
            tracing::warn!(image = %image.id, error = %e, "could not return the image to queued after a failed location import");
        }
    }
}

impl LocationImportHandler {
    /// The source's data and its length when known.
    async fn open(&self, source: &LocationSource) -> Result<(BoxStream<'static, Result<Bytes, String>>, Option<u64>), JobError> {
        match source {
            LocationSource::Web(url) => {
                self.0.settings.web_download.open(url).await.map_err(|e| JobError::failed(codes::SOURCE_MISSING, e.0))
            }
            LocationSource::Bucket { bucket, key } => {
                let (size, body) = self.0.buckets.open_unchecked(bucket, key, None).await.map_err(|e| match e {
                    CoreError::NotFound(m) | CoreError::Invalid(m) => JobError::failed(codes::SOURCE_MISSING, m),
                    other => job_error(other),
                })?;
                Ok((body.map(|piece| piece.map_err(|e| e.to_string())).boxed(), Some(size)))
            }
        }
    }

    /// Drops data this job stored and never recorded on the image.
    async fn drop_data(&self, stored: &Image) {
        if let Some(m) = &stored.manifest_id {
            let _ = self.0.images.store.delete_manifest(m).await;
            let _ = self.0.images.store.release_pending(m).await;
        }
    }

    /// importing → active with the stored data; `IMAGE_GONE` if the image was deleted or changed meanwhile
    /// (the data is dropped then).
    async fn activate(&self, mut image: Image, p: &LocationParams, source: &LocationSource) -> Result<(), JobError> {
        let images = &self.0.images;
        image.status = ImageStatus::Active;
        image.updated_at = crate::now();
        image.properties.remove(FAILED_IMPORT);
        if let LocationSource::Web(url) = source {
            image.lineage = crate::lineage::web_download_lineage(url);
        }
        let mut event = AuditEvent::new("job", "image.import", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        event.detail = Some(format!("location import from {}", crate::lineage::url_without_secrets(&p.url)));
        if let Err(e) = images.save_activation(&image, &[ImageStatus::Importing], &event).await {
            self.drop_data(&image).await;
            return Err(match e {
                CatalogError::LimitExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
                CatalogError::Conflict(_) | CatalogError::NotFound(_) => {
                    JobError::failed(codes::IMAGE_GONE, format!("image {} was deleted or changed during the import", image.id))
                }
                other => job_error(other.into()),
            });
        }
        if let Some(m) = &image.manifest_id {
            if let Err(e) = images.store.release_pending(m).await {
                tracing::warn!(image = %image.id, error = %e, "pending manifest left to expire");
            }
        }
        Ok(())
    }
}
