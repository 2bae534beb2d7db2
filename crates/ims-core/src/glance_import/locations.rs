//! The locations API of Glance 2.17. `POST /v2/images/{id}/locations` names where a queued image's
//! data is: IMS reads it from there into the chunk store as a job (a Glance `location_import` task),
//! checks it against the validation data given, and activates the image; the source is not kept
//! (IMS always serves an image from its own stores). `GET /v2/images/{id}/locations` lists the stores
//! holding an image's data.
//!
//! Sources IMS reads: `http://` and `https://` URLs that pass the web-download rules, and objects of
//! the IMS buckets the caller may use (`bucket:key`).

use ims_catalog::{ImageChange, ImageStatus, Job};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{image_stores, GlanceImportService, FAILED_IMPORT};
use crate::buckets::parse_bucket_url;
use crate::{CoreError, Policy, RequestContext, Result};

/// The job type of location imports.
pub const GLANCE_LOCATION_JOB: &str = "glance_location_import";

/// A hash algorithm that validation data may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    pub const ALL: [HashAlgo; 4] = [HashAlgo::Md5, HashAlgo::Sha1, HashAlgo::Sha256, HashAlgo::Sha512];

    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// Bytes of a digest.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }
}

/// The hash the data at a location must have; it becomes the image's `os_hash_algo`/`os_hash_value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationData {
    pub os_hash_algo: HashAlgo,
    /// Lowercase hex of `os_hash_algo`'s digest length.
    pub os_hash_value: String,
}

impl ValidationData {
    /// Validation data from its two fields, which go together (neither: `None`). `Invalid` for one
    /// without the other, an algorithm other than md5, sha1, sha256 and sha512, or a value that is not
    /// the hex of a digest of that algorithm.
    pub fn parse(algo: Option<&str>, value: Option<&str>) -> Result<Option<ValidationData>> {
        let (algo, value) = match (algo, value) {
            (None, None) => return Ok(None),
            (Some(algo), Some(value)) => (algo, value),
            _ => return Err(CoreError::Invalid("validation_data needs both os_hash_algo and os_hash_value".into())),
        };
        let algo = HashAlgo::ALL.into_iter().find(|a| a.as_str() == algo).ok_or_else(|| {
            CoreError::Invalid(format!("os_hash_algo {algo:?} is not one of md5, sha1, sha256, sha512"))
        })?;
        let digest = hex::decode(value)
            .map_err(|_| CoreError::Invalid(format!("os_hash_value ({value}) is not a valid hexadecimal value")))?;
        if digest.len() != algo.digest_len() {
            return Err(CoreError::Invalid(format!(
                "os_hash_value ({value}) is not the correct size for {} (should be {} bytes)",
                algo.as_str(),
                algo.digest_len()
            )));
        }
        Ok(Some(ValidationData { os_hash_algo: algo, os_hash_value: hex::encode(digest) }))
    }
}

/// What `POST /v2/images/{id}/locations` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRequest {
    pub url: String,
    pub validation_data: Option<ValidationData>,
}

/// Where a location's data is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocationSource {
    Web(String),
    Bucket { bucket: String, key: String },
}

impl LocationSource {
    /// `http(s)://...` or `bucket:key`; `Invalid` for any other URL.
    pub(crate) fn parse(url: &str) -> Result<LocationSource> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(LocationSource::Web(url.to_string()));
        }
        if url.contains("://") {
            return Err(CoreError::Invalid(format!(
                "Location {url} is not supported: IMS reads http(s) URLs and objects of its buckets (bucket:key)"
            )));
        }
        let (bucket, key) = parse_bucket_url(url)?;
        Ok(LocationSource::Bucket { bucket, key })
    }
}

/// One place an image's data is stored, as Glance lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLocation {
    /// `ims://<store>/<image id>`: the image's data in that store of this deployment.
    pub url: String,
    pub store: String,
}

/// The parameters of a location import job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LocationParams {
    pub image_id: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_data: Option<ValidationData>,
}

impl GlanceImportService {
    /// Adds a location to the queued image `id`: checks the source, then turns the image `importing`
    /// and enqueues the job that reads the data, in one transaction. `NotFound` for an image the caller
    /// cannot see (or a bucket it cannot use); `Forbidden` unless the caller may change the image;
    /// `Conflict` unless the image is queued; `Invalid` for a URL IMS does not read, one the
    /// web-download rules refuse, or a missing bucket object. Nothing changes when it fails.
    pub async fn add_location(&self, ctx: &RequestContext, id: Uuid, request: LocationRequest) -> Result<Job> {
        let source = LocationSource::parse(&request.url)?;
        let mut image = self.images.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        if image.status != ImageStatus::Queued {
            return Err(CoreError::Conflict(format!(
                "It's not allowed to add locations if image status is {}.",
                image.status
            )));
        }
        match &source {
            LocationSource::Web(url) => {
                self.settings
                    .web_download
                    .check(url)
                    .await
                    .map_err(|e| CoreError::Invalid(format!("Location {url} does not pass filtering: {e}")))?;
            }
            LocationSource::Bucket { bucket, key } => {
                self.buckets.check_access(ctx, bucket).await?;
                self.buckets.head_unchecked(bucket, key).await.map_err(|e| match e {
                    CoreError::NotFound(_) => CoreError::Invalid(format!("Location {}: no such object", request.url)),
                    other => other,
                })?;
            }
        }
        image.status.check_transition(ImageStatus::Importing, &image)?;
        image.status = ImageStatus::Importing;
        image.updated_at = crate::now();
        image.properties.remove(FAILED_IMPORT);
        let params = LocationParams {
            image_id: id.to_string(),
            url: request.url.clone(),
            validation_data: request.validation_data.clone(),
        };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let mut job = self.jobs.new_job(ctx, GLANCE_LOCATION_JOB, params, json!({"image_id": id.to_string()}))?;
        // The image's tasks are its owner's jobs: an admin's location import is listed there too.
        job.project_id = image.owner.clone();
        let change = ImageChange::Save { image: &image, expected: &[ImageStatus::Queued] };
        self.jobs.enqueue_with_image(ctx, &job, change).await.map_err(|e| match e {
            CoreError::Conflict(_) => CoreError::Conflict(format!("Image {id} changed meanwhile; it is no longer queued")),
            other => other,
        })?;
        Ok(job)
    }

    /// The stores holding image `id`'s data (none before it has data), default store first. Admins only
    /// (`Forbidden`); `NotFound` for a missing image.
    pub async fn locations(&self, ctx: &RequestContext, id: Uuid) -> Result<Vec<ImageLocation>> {
        Policy::check_admin(ctx)?;
        let image = self.images.get(ctx, id).await?;
        let staged = matches!(image.status, ImageStatus::Uploading | ImageStatus::Importing);
        if image.manifest_id.is_none() || staged {
            return Ok(Vec::new());
        }
        Ok(image_stores(&image)
            .into_iter()
            .map(|store| ImageLocation { url: format!("ims://{store}/{id}"), store })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_data_needs_both_fields_a_known_algorithm_and_a_digest_of_its_length() {
        assert_eq!(ValidationData::parse(None, None).unwrap(), None);
        let sha256 = "ab".repeat(32);
        let parsed = ValidationData::parse(Some("sha256"), Some(&sha256.to_uppercase())).unwrap().unwrap();
        assert_eq!(parsed, ValidationData { os_hash_algo: HashAlgo::Sha256, os_hash_value: sha256.clone() });
        for (algo, value) in [
            (None, Some(sha256.as_str())),
            (Some("sha256"), None),
            (Some("sha123"), Some(sha256.as_str())),
            (Some("sha512"), Some(sha256.as_str())),
            (Some("sha256"), Some("not hex")),
        ] {
            assert!(matches!(ValidationData::parse(algo, value), Err(CoreError::Invalid(_))), "{algo:?} {value:?}");
        }
        assert!(ValidationData::parse(Some("md5"), Some(&"0f".repeat(16))).unwrap().is_some());
        assert!(ValidationData::parse(Some("sha1"), Some(&"0f".repeat(20))).unwrap().is_some());
    }

    #[test]
    fn sources_are_web_urls_or_bucket_objects() {
        assert_eq!(LocationSource::parse("https://example.com/a.img").unwrap(), LocationSource::Web("https://example.com/a.img".into()));
        assert_eq!(
            LocationSource::parse("images:disks/a.qcow2").unwrap(),
            LocationSource::Bucket { bucket: "images".into(), key: "disks/a.qcow2".into() }
        );
        for url in ["cinder://lvm/39e6ffab", "file:///etc/passwd", "rbd://a/b/c/d", "no-key", "Bad_Bucket:key"] {
            assert!(matches!(LocationSource::parse(url), Err(CoreError::Invalid(_))), "{url}");
        }
    }
}
