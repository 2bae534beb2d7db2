//! The image record and its state machine.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CatalogError;

/// Life-cycle state of an image (Glance's states; the IMS API shares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Deactivated,
    Killed,
    PendingDelete,
    Deleted,
}

impl ImageStatus {
    pub const ALL: [ImageStatus; 9] = [
        ImageStatus::Queued,
        ImageStatus::Saving,
        ImageStatus::Uploading,
        ImageStatus::Importing,
        ImageStatus::Active,
        ImageStatus::Deactivated,
        ImageStatus::Killed,
        ImageStatus::PendingDelete,
        ImageStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Deactivated => "deactivated",
            ImageStatus::Killed => "killed",
            ImageStatus::PendingDelete => "pending_delete",
            ImageStatus::Deleted => "deleted",
        }
    }

    /// Whether the state machine allows `self → to`. Staying in the same state is not a transition.
    pub fn can_become(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        matches!(
            (self, to),
            (Queued, Saving | Uploading | Importing | Active | Deleted)
                | (Saving, Active | Killed | Deleted | Queued)
                | (Uploading, Importing | Queued | Deleted)
                | (Importing, Active | Deleted | Queued)
                | (Active, PendingDelete | Deleted | Deactivated)
                | (Deactivated, Active | Deleted)
                | (PendingDelete, Deleted | Active)
                | (Killed, Deleted)
        )
    }

    /// Checks `self → to` for `image`, including Glance's rule that leaving queued/uploading for
    /// saving, importing or active needs both `disk_format` and `container_format`.
    pub fn check_transition(self, to: ImageStatus, image: &Image) -> Result<(), CatalogError> {
        if !self.can_become(to) {
            return Err(CatalogError::Conflict(format!(
                "image status cannot change from {self} to {to}"
            )));
        }
        let leaving_queue = matches!(self, ImageStatus::Queued | ImageStatus::Uploading);
        let to_data = matches!(to, ImageStatus::Saving | ImageStatus::Importing | ImageStatus::Active);
        if leaving_queue && to_data && (image.disk_format.is_none() || image.container_format.is_none()) {
            return Err(CatalogError::Invalid(
                "properties 'container_format' and 'disk_format' must be set prior to saving data"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageStatus {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| CatalogError::Invalid(format!("invalid image status {s:?}")))
    }
}

/// Who may see an image (Glance's four visibilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Community,
    Shared,
    Private,
}

impl Visibility {
    pub const ALL: [Visibility; 4] =
        [Visibility::Public, Visibility::Community, Visibility::Shared, Visibility::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Community => "community",
            Visibility::Shared => "shared",
            Visibility::Private => "private",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Visibility {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Visibility::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| CatalogError::Invalid(format!("invalid visibility {s:?}")))
    }
}

/// One image record, shared by the Glance and IMS APIs.
///
/// IMS-specific fields live in `properties` under the `__` names of the IMS API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: Uuid,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    /// Owning project id.
    pub owner: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    /// Bytes of the stored file, set when data is stored.
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    /// MD5 of the file, hex.
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    /// Id of the chunk-store manifest that holds the file, set with the data.
    pub manifest_id: Option<String>,
    pub tags: BTreeSet<String>,
    pub properties: BTreeMap<String, String>,
    /// From this time on the image is deprecated: left out of default lists, still readable and usable.
    pub deprecate_at: Option<DateTime<Utc>>,
    /// Where the image's data came from and which image it was derived from.
    #[serde(default)]
    pub lineage: crate::Lineage,
    /// Ids of the Glance stores, besides the node's default store, that hold a copy of the image's data
    /// (its manifest and chunks), in the order the copies were made. Ids contain no commas.
    #[serde(default)]
    pub extra_stores: Vec<String>,
    /// Whether the node's default store holds a copy of the image's data (true unless the image was
    /// deleted from it while an extra store kept a copy; see [`Image::extra_stores`]).
    #[serde(default = "default_true")]
    pub in_default_store: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn default_true() -> bool {
    true
}

/// The store ids of a stored comma-separated list (as [`Image::extra_stores`] is kept); empty items dropped.
pub fn parse_store_list(stored: &str) -> Vec<String> {
    stored.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

impl Image {
    /// Whether the image is deprecated at `now` (its `deprecate_at` is `now` or earlier).
    pub fn is_deprecated_at(&self, now: DateTime<Utc>) -> bool {
        self.deprecate_at.is_some_and(|at| at <= now)
    }

    /// A new queued image owned by `owner`, with Glance's defaults (visibility shared).
    pub fn new(id: Uuid, owner: &str, now: DateTime<Utc>) -> Image {
        Image {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            owner: owner.to_string(),
            disk_format: None,
            container_format: None,
            min_disk: 0,
            min_ram: 0,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            manifest_id: None,
            tags: BTreeSet::new(),
            properties: BTreeMap::new(),
            deprecate_at: None,
            lineage: crate::Lineage::default(),
            extra_stores: Vec::new(),
            in_default_store: true,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image::new(Uuid::new_v4(), "p", Utc::now())
    }

    #[test]
    fn allowed_transitions_follow_glance() {
        use ImageStatus::*;
        assert!(Queued.can_become(Saving));
        assert!(Saving.can_become(Queued));
        assert!(Active.can_become(Deactivated));
        assert!(Deactivated.can_become(Active));
        assert!(!Active.can_become(Queued));
        assert!(!Deleted.can_become(Active));
        assert!(!Killed.can_become(Active));
        assert!(!Deactivated.can_become(Saving));
        for s in ImageStatus::ALL {
            assert!(!s.can_become(s), "{s} -> {s} is not a transition");
        }
    }

    #[test]
    fn leaving_queued_needs_formats() {
        let mut img = image();
        let err = ImageStatus::Queued.check_transition(ImageStatus::Saving, &img).unwrap_err();
        assert!(matches!(err, CatalogError::Invalid(_)));
        img.disk_format = Some("raw".into());
        assert!(ImageStatus::Queued.check_transition(ImageStatus::Saving, &img).is_err());
        img.container_format = Some("bare".into());
        ImageStatus::Queued.check_transition(ImageStatus::Saving, &img).unwrap();
        // Deleting never needs formats.
        ImageStatus::Queued.check_transition(ImageStatus::Deleted, &image()).unwrap();
    }

    #[test]
    fn status_and_visibility_round_trip_through_strings() {
        for s in ImageStatus::ALL {
            assert_eq!(s.as_str().parse::<ImageStatus>().unwrap(), s);
        }
        for v in Visibility::ALL {
            assert_eq!(v.as_str().parse::<Visibility>().unwrap(), v);
        }
        assert!("bogus".parse::<Visibility>().is_err());
    }
}
