//! A parsed image list request, independent of SQL dialect.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{ImageStatus, MemberStatus, Visibility};

/// Who is asking: decides which images are visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The caller's project; `None` for an anonymous caller (sees public images only).
    pub project_id: Option<String>,
    /// Admins see every image (see [`ImageQuery`] for the exact rule).
    pub is_admin: bool,
}

/// Column an image list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    Id,
    CreatedAt,
    UpdatedAt,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "container_format" => SortKey::ContainerFormat,
            "disk_format" => SortKey::DiskFormat,
            "size" => SortKey::Size,
            "id" => SortKey::Id,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

/// Comparison operator of a time filter (`gt:2024-01-01T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    Gt,
    Gte,
    Eq,
    Neq,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFilter {
    pub op: TimeOp,
    pub at: DateTime<Utc>,
}

/// Which visibility the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityFilter {
    /// One visibility (still subject to what the viewer may see).
    Only(Visibility),
    /// `visibility=all`: every visibility the viewer may see, community included.
    All,
}

/// Which membership answers make a shared image appear (`member_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatusFilter {
    Only(MemberStatus),
    All,
}

/// An image list request.
///
/// Visibility rule (Glance's), applied before every other filter, to images not `deleted`:
/// - a non-admin viewer with a project sees images it owns, `public` images, `community` images (only when
///   the visibility filter is `community` or `all`, or it owns them), `shared` images of which its
///   project is a member whose status matches `member_status` (default `accepted`), and images whose
///   marketplace listing its project subscribed to (on or off shelf, whatever their visibility);
/// - an anonymous viewer sees `public` images only;
/// - an admin sees every image, but community images it does not own only when the visibility filter is
///   `community` or `all`.
///
/// All filters combine with AND. `tags` needs every tag; `properties` needs every key to have that value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageQuery {
    pub viewer: Viewer,
    pub visibility: Option<VisibilityFilter>,
    /// Default (`None`) means accepted.
    pub member_status: Option<MemberStatusFilter>,
    /// Values for `name`; an image matches when its name is any of them (`in:` gives several).
    pub names: Vec<String>,
    pub ids: Vec<Uuid>,
    pub owner: Option<String>,
    pub statuses: Vec<ImageStatus>,
    pub disk_formats: Vec<String>,
    pub container_formats: Vec<String>,
    pub protected: Option<bool>,
    /// Default (`None`) hides images with `os_hidden = true`.
    pub os_hidden: Option<bool>,
    /// Deprecated images are those whose `deprecate_at` is at or before `deprecated_as_of`.
    /// `None` and `Some(false)` keep only images that are not deprecated; `Some(true)` keeps only the
    /// deprecated ones.
    pub deprecated: Option<bool>,
    /// The time `deprecated` is judged at; [`ImageQuery::new`] sets the current time.
    pub deprecated_as_of: DateTime<Utc>,
    pub tags: Vec<String>,
    pub properties: Vec<(String, String)>,
    /// Like `properties`, but an image without the key matches too (for values the API treats as the
    /// default of an absent property).
    pub properties_or_absent: Vec<(String, String)>,
    /// Only images with a marketplace listing that is on shelf. Browsing the marketplace is open to
    /// every viewer, so this replaces the visibility rule (and the visibility and member status filters)
    /// with "listed and on shelf"; the other filters still apply.
    pub market_on_shelf: bool,
    /// Leaves out images owned by this project.
    pub exclude_owner: Option<String>,
    /// Leaves out images of these visibilities.
    pub exclude_visibilities: Vec<Visibility>,
    /// Exact `min_disk` / `min_ram`.
    pub min_disk: Option<i64>,
    pub min_ram: Option<i64>,
    pub size_min: Option<i64>,
    pub size_max: Option<i64>,
    pub created_at: Vec<TimeFilter>,
    pub updated_at: Vec<TimeFilter>,
    /// Sort order; the implementation appends `id` (in the direction of the last key) as a tie-breaker
    /// so that paging is stable. Empty means `created_at desc`.
    pub sort: Vec<(SortKey, SortDir)>,
    /// Return images after this one in the sort order. The marker must be visible to the viewer,
    /// else the list fails with `CatalogError::Invalid`.
    pub marker: Option<Uuid>,
    pub limit: u32,
}

impl ImageQuery {
    /// A query with no filters for `viewer`, returning at most `limit` images.
    pub fn new(viewer: Viewer, limit: u32) -> ImageQuery {
        ImageQuery {
            viewer,
            visibility: None,
            member_status: None,
            names: vec![],
            ids: vec![],
            owner: None,
            statuses: vec![],
            disk_formats: vec![],
            container_formats: vec![],
            protected: None,
            os_hidden: None,
            deprecated: None,
            deprecated_as_of: Utc::now(),
            tags: vec![],
            properties: vec![],
            properties_or_absent: vec![],
            market_on_shelf: false,
            exclude_owner: None,
            exclude_visibilities: vec![],
            min_disk: None,
            min_ram: None,
            size_min: None,
            size_max: None,
            created_at: vec![],
            updated_at: vec![],
            sort: vec![],
            marker: None,
            limit,
        }
    }

    /// The total order of the results: `sort` with repeated keys dropped (empty means `created_at desc`),
    /// ending at `id` if `sort` has it, else with `id` appended in the direction of the last key. Every
    /// backend sorts and pages by exactly this order.
    pub fn total_order(&self) -> Vec<(SortKey, SortDir)> {
        let mut order: Vec<(SortKey, SortDir)> = Vec::new();
        for &(key, dir) in &self.sort {
            if !order.iter().any(|(k, _)| *k == key) {
                order.push((key, dir));
            }
        }
        if order.is_empty() {
            order.push((SortKey::CreatedAt, SortDir::Desc));
        }
        if let Some(pos) = order.iter().position(|(k, _)| *k == SortKey::Id) {
            // Keys after a unique key never decide anything.
            order.truncate(pos + 1);
        } else {
            let last_dir = order.last().map_or(SortDir::Desc, |(_, d)| *d);
            order.push((SortKey::Id, last_dir));
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_order_defaults_dedups_and_ends_with_id() {
        use SortDir::*;
        use SortKey::*;
        let order = |sort: &[(SortKey, SortDir)]| {
            let mut q = ImageQuery::new(Viewer { project_id: None, is_admin: false }, 1);
            q.sort = sort.to_vec();
            q.total_order()
        };
        assert_eq!(order(&[]), vec![(CreatedAt, Desc), (Id, Desc)]);
        assert_eq!(order(&[(Name, Asc), (Size, Desc), (Name, Desc)]), vec![(Name, Asc), (Size, Desc), (Id, Desc)]);
        assert_eq!(order(&[(Id, Asc), (Name, Desc)]), vec![(Id, Asc)]);
    }
}
