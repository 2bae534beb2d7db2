//! Lineage: where an image's data came from and which image it was derived from.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CatalogError, Image, ImageStatus, Result};

/// How an image got its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceType {
    /// Uploaded through `PUT /v2/images/{id}/file`.
    Upload,
    /// Imported (and possibly converted) from a bucket object by the IMS import pipeline.
    Import,
    /// Imported as is from a bucket object (IMS quick import).
    QuickImport,
    /// A bucket object registered to an existing image (IMS register).
    Register,
    /// A copy of another image.
    Copy,
    /// Staged and imported with Glance's `glance-direct` method.
    GlanceImport,
    /// Fetched from a URL with Glance's `web-download` method.
    WebDownload,
    /// Another image converted to a different disk format.
    Conversion,
    /// Captured from a server's volumes.
    Server,
}

impl SourceType {
    pub const ALL: [SourceType; 9] = [
        SourceType::Upload,
        SourceType::Import,
        SourceType::QuickImport,
        SourceType::Register,
        SourceType::Copy,
        SourceType::GlanceImport,
        SourceType::WebDownload,
        SourceType::Conversion,
        SourceType::Server,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Upload => "upload",
            SourceType::Import => "import",
            SourceType::QuickImport => "quick-import",
            SourceType::Register => "register",
            SourceType::Copy => "copy",
            SourceType::GlanceImport => "glance-import",
            SourceType::WebDownload => "web-download",
            SourceType::Conversion => "conversion",
            SourceType::Server => "server",
        }
    }
}

/// The `source_type` of images captured from a server.
pub const SOURCE_TYPE_SERVER: &str = "server";

impl fmt::Display for SourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceType {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        SourceType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| CatalogError::Invalid(format!("invalid image source type {s:?}")))
    }
}

/// An image's origin. Images created before lineage was recorded, and images with no data yet, have
/// none (`source_type` unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub source_type: Option<SourceType>,
    /// What the data came from: `bucket:key`, a URL (without credentials, query or fragment), the source
    /// image's id, or the server's id.
    pub source_ref: Option<String>,
    /// The image this one was derived from (copy, conversion), even once that image is deleted.
    pub parent_id: Option<Uuid>,
}

impl Lineage {
    /// Data uploaded by a client.
    pub fn upload() -> Lineage {
        Lineage { source_type: Some(SourceType::Upload), ..Lineage::default() }
    }

    /// Data read from the object `key` of `bucket` by `source_type` (import, quick-import, register).
    pub fn bucket_object(source_type: SourceType, bucket: &str, key: &str) -> Lineage {
        Lineage { source_type: Some(source_type), source_ref: Some(format!("{bucket}:{key}")), parent_id: None }
    }

    /// Data fetched from `url` (`web-download`); the caller leaves out its credentials, query and
    /// fragment.
    pub fn web_download(url: &str) -> Lineage {
        Lineage { source_type: Some(SourceType::WebDownload), source_ref: Some(url.to_string()), parent_id: None }
    }

    /// Data derived from the image `parent` (`Copy` or `Conversion`).
    pub fn derived(source_type: SourceType, parent: Uuid) -> Lineage {
        Lineage { source_type: Some(source_type), source_ref: Some(parent.to_string()), parent_id: Some(parent) }
    }

    /// Data captured from the server `server_id`; `parent` is the image the server was created from,
    /// when known.
    pub fn server(server_id: &str, parent: Option<Uuid>) -> Lineage {
        Lineage { source_type: Some(SourceType::Server), source_ref: Some(server_id.to_string()), parent_id: parent }
    }
}

/// Where an image record stands, as the lineage walk reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStanding {
    /// A live image (any status but deleted).
    Live,
    /// In the recycle bin: deleted, restorable until purged.
    Binned,
    /// Deleted for good (its record remains, its data is reclaimed).
    Deleted,
}

impl ImageStanding {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStanding::Live => "live",
            ImageStanding::Binned => "binned",
            ImageStanding::Deleted => "deleted",
        }
    }
}

/// Read access to image records in any state, for the lineage walk.
#[async_trait]
pub trait LineageRepository: Send + Sync {
    /// The record of image `id` whatever its state (live, binned or deleted) and where it stands, or
    /// `None` if no image with this id ever existed. A binned image is returned with the status it had
    /// before it was binned. Read-only; one snapshot.
    async fn any_state(&self, id: Uuid) -> Result<Option<(Image, ImageStanding)>>;
}

/// The standing of a row from its stored status and whether it is binned.
pub(crate) fn standing(status: ImageStatus, binned: bool) -> ImageStanding {
    match (status, binned) {
        (_, true) => ImageStanding::Binned,
        (ImageStatus::Deleted, false) => ImageStanding::Deleted,
        _ => ImageStanding::Live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_types_round_trip_through_strings() {
        for t in SourceType::ALL {
            assert_eq!(t.as_str().parse::<SourceType>().unwrap(), t);
        }
        assert_eq!(SourceType::Server.as_str(), SOURCE_TYPE_SERVER);
        assert!("floppy".parse::<SourceType>().is_err());
    }
}
