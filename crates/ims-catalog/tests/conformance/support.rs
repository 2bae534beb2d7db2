//! What every check needs: the backend under test, fixtures, an ordering oracle and error matchers.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ims_catalog::query::{MemberStatusFilter, VisibilityFilter};
use ims_catalog::postgres::PostgresCatalog;
use ims_catalog::sqlite::SqliteCatalog;
use ims_catalog::{AuditEvent, Catalog, CatalogError, Image, ImageQuery, Result, SortDir, SortKey, Viewer};
use ims_testkit::postgres::PostgresCluster;
use uuid::Uuid;

/// Reads a backend's audit trail. Not part of the repository traits: each backend offers it its own way.
#[async_trait]
pub trait AuditProbe: Send + Sync {
    /// Rows in the audit trail.
    async fn count(&self) -> u64;
    /// The newest row.
    async fn latest(&self) -> Option<AuditEvent>;
}

#[async_trait]
impl AuditProbe for SqliteCatalog {
    async fn count(&self) -> u64 {
        self.audit_count().await.expect("audit count")
    }
    async fn latest(&self) -> Option<AuditEvent> {
        self.recent_audit_events(1).await.expect("audit events").pop()
    }
}

#[async_trait]
impl AuditProbe for PostgresCatalog {
    async fn count(&self) -> u64 {
        self.audit_count().await.expect("audit count")
    }
    async fn latest(&self) -> Option<AuditEvent> {
        self.recent_audit_events(1).await.expect("audit events").pop()
    }
}

/// One backend under test: a fresh, empty catalog.
pub struct Backend {
    pub catalog: Catalog,
    pub audit: Arc<dyn AuditProbe>,
    /// Keeps the backend's files alive for the test.
    _dir: Option<tempfile::TempDir>,
    /// Keeps the backend's PostgreSQL server running for the test.
    _postgres: Option<PostgresCluster>,
}

impl Backend {
    pub fn new(catalog: Catalog, audit: Arc<dyn AuditProbe>, dir: Option<tempfile::TempDir>) -> Backend {
        Backend { catalog, audit, _dir: dir, _postgres: None }
    }

    /// The same backend, keeping `server` (where its database lives) running as long as the backend.
    pub fn on_postgres(mut self, server: PostgresCluster) -> Backend {
        self._postgres = Some(server);
        self
    }
}

/// A fixed instant plus `secs` seconds and a few nanoseconds, so that sub-microsecond precision is exercised.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("valid date")
        + Duration::seconds(secs)
        + Duration::nanoseconds(123_456_789)
}

pub fn event(action: &str, resource: &str) -> AuditEvent {
    let mut e = AuditEvent::new(&format!("req-{}", Uuid::new_v4()), action, resource.to_string());
    e.at = t(0);
    e
}

pub fn image_event(id: Uuid) -> AuditEvent {
    event("image.update", &format!("image:{id}"))
}

/// A queued image named `name` owned by `owner`, created at `t(0)`.
pub fn image(owner: &str, name: &str) -> Image {
    let mut img = Image::new(Uuid::new_v4(), owner, t(0));
    img.name = Some(name.to_string());
    img
}

pub async fn create(c: &Catalog, img: &Image) {
    c.images.create(img, &image_event(img.id)).await.expect("create image");
}

pub fn viewer(project: &str) -> Viewer {
    Viewer { project_id: Some(project.to_string()), is_admin: false }
}

pub fn admin(project: &str) -> Viewer {
    Viewer { project_id: Some(project.to_string()), is_admin: true }
}

pub fn anonymous() -> Viewer {
    Viewer { project_id: None, is_admin: false }
}

/// A query for `viewer` with no filters and room for every image of a test.
pub fn query(viewer: Viewer) -> ImageQuery {
    ImageQuery::new(viewer, 1000)
}

pub fn with_visibility(mut q: ImageQuery, v: Option<VisibilityFilter>, ms: Option<MemberStatusFilter>) -> ImageQuery {
    q.visibility = v;
    q.member_status = ms;
    q
}

pub async fn list(c: &Catalog, q: &ImageQuery) -> Vec<Image> {
    c.images.list(q).await.expect("list images")
}

/// The names of the images `q` lists.
pub async fn names(c: &Catalog, q: &ImageQuery) -> BTreeSet<String> {
    list(c, q).await.into_iter().map(|i| i.name.unwrap_or_default()).collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every image of `q`, fetched `page` at a time by marker; fails if a page is longer than `page`.
pub async fn walk(c: &Catalog, q: &ImageQuery, page: u32) -> Vec<Image> {
    let mut q = q.clone();
    q.limit = page;
    q.marker = None;
    let mut all = Vec::new();
    loop {
        let batch = list(c, &q).await;
        assert!(batch.len() <= page as usize, "page of {} > limit {page}", batch.len());
        match batch.last() {
            None => return all,
            Some(last) => q.marker = Some(last.id),
        }
        all.extend(batch);
    }
}

/// The total order the catalog must use for `sort`, computed independently of it: default `created_at desc`,
/// repeated keys ignored, `id` appended in the last key's direction unless present, NULL smallest.
pub fn oracle_order(sort: &[(SortKey, SortDir)]) -> impl Fn(&Image, &Image) -> Ordering {
    let mut keys: Vec<(SortKey, SortDir)> = Vec::new();
    for &(k, d) in sort {
        if !keys.iter().any(|(x, _)| *x == k) {
            keys.push((k, d));
        }
    }
    if keys.is_empty() {
        keys.push((SortKey::CreatedAt, SortDir::Desc));
    }
    if !keys.iter().any(|(k, _)| *k == SortKey::Id) {
        let last = keys.last().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
        keys.push((SortKey::Id, last));
    }
    move |a: &Image, b: &Image| {
        for &(key, dir) in &keys {
            let o = match key {
                SortKey::Name => a.name.cmp(&b.name),
                SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
                SortKey::ContainerFormat => a.container_format.cmp(&b.container_format),
                SortKey::DiskFormat => a.disk_format.cmp(&b.disk_format),
                SortKey::Size => a.size.cmp(&b.size),
                SortKey::Id => a.id.cmp(&b.id),
                SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
                SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            };
            let o = if dir == SortDir::Desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

pub fn ids(images: &[Image]) -> Vec<Uuid> {
    images.iter().map(|i| i.id).collect()
}

#[track_caller]
pub fn expect_conflict<T: Debug>(r: Result<T>) {
    match r {
        Err(CatalogError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[track_caller]
pub fn expect_not_found<T: Debug>(r: Result<T>) {
    match r {
        Err(CatalogError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn expect_invalid<T: Debug>(r: Result<T>) {
    match r {
        Err(CatalogError::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
}
