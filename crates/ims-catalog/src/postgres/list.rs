//! `ImageRepository::list`: the visibility rule, filters, sort order and keyset paging as SQL.
//!
//! Sort order: [`ImageQuery::total_order`]. NULL sorts as the smallest value (first when ascending, last
//! when descending); text sorts in byte order (the columns use the "C" collation). Paging is keyset paging:
//! the page after a marker is the rows strictly after the marker's key values in that total order, so a
//! page never repeats or skips a row that existed through the whole walk, whatever the keys and directions.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::images::{image_from_row, IMAGE_FIELDS};
use super::{db_err, split_time};
use crate::query::{MemberStatusFilter, VisibilityFilter};
use crate::{
    CatalogError, Image, ImageQuery, MemberStatus, Result, SortDir, SortKey, TimeFilter, TimeOp, Viewer, Visibility,
};

/// Runs `query`. The marker is looked up first; the page (rows with their tags and properties) is one
/// statement, so one snapshot.
pub(super) async fn list(pool: &PgPool, query: &ImageQuery) -> Result<Vec<Image>> {
    let order = query.total_order();

    let marker = match query.marker {
        None => None,
        Some(marker) => {
            // The marker must be an image the viewer can see at all (Glance's `is_image_visible`): the
            // viewer rule with every visibility and every membership answer allowed, no other filter.
            let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {IMAGE_FIELDS} FROM images WHERE id = "));
            qb.push_bind(marker).push(" AND deleted_at IS NULL");
            if query.market_on_shelf {
                push_on_shelf(&mut qb);
            } else {
                push_visibility(&mut qb, &query.viewer, Some(VisibilityFilter::All), Some(MemberStatusFilter::All));
            }
            let row = qb
                .build()
                .fetch_optional(pool)
                .await
                .map_err(db_err)?
                .ok_or_else(|| CatalogError::Invalid("marker not found".to_string()))?;
            Some(image_from_row(&row)?)
        }
    };

    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {IMAGE_FIELDS} FROM images WHERE deleted_at IS NULL"));
    if query.market_on_shelf {
        push_on_shelf(&mut qb);
    } else {
        push_visibility(&mut qb, &query.viewer, query.visibility, query.member_status);
    }
    push_filters(&mut qb, query);
    if let Some(marker) = &marker {
        push_after(&mut qb, &order, marker);
    }
    push_order_by(&mut qb, &order);
    qb.push(" LIMIT ").push_bind(i64::from(query.limit));

    let rows = qb.build().fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(image_from_row).collect()
}

/// Appends "has a marketplace listing that is on shelf" (see [`ImageQuery::market_on_shelf`]).
fn push_on_shelf(qb: &mut QueryBuilder<'_, Postgres>) {
    qb.push(" AND EXISTS (SELECT 1 FROM market_listings l WHERE l.image_id = images.id AND NOT l.offshelved)");
}

/// Appends the visibility rule of [`ImageQuery`] for `viewer` as `AND ...` conditions.
fn push_visibility(
    qb: &mut QueryBuilder<'_, Postgres>,
    viewer: &Viewer,
    visibility: Option<VisibilityFilter>,
    member_status: Option<MemberStatusFilter>,
) {
    let community_asked =
        matches!(visibility, Some(VisibilityFilter::All) | Some(VisibilityFilter::Only(Visibility::Community)));
    match (&viewer.project_id, viewer.is_admin) {
        (project, true) => {
            if !community_asked {
                qb.push(" AND (visibility <> 'community'");
                if let Some(project) = project {
                    qb.push(" OR owner = ").push_bind(project.clone());
                }
                qb.push(")");
            }
        }
        (None, false) => {
            qb.push(" AND visibility = 'public'");
        }
        (Some(project), false) => {
            qb.push(" AND (owner = ").push_bind(project.clone()).push(" OR visibility = 'public'");
            if community_asked {
                qb.push(" OR visibility = 'community'");
            }
            qb.push(
                " OR (visibility = 'shared' AND EXISTS (SELECT 1 FROM image_members m \
                 WHERE m.image_id = images.id AND m.member = ",
            )
            .push_bind(project.clone());
            match member_status.unwrap_or(MemberStatusFilter::Only(MemberStatus::Accepted)) {
                MemberStatusFilter::Only(status) => {
                    qb.push(" AND m.status = ").push_bind(status.as_str());
                }
                MemberStatusFilter::All => {}
            }
            qb.push(
                ")) OR EXISTS (SELECT 1 FROM market_subscriptions s JOIN market_listings l ON l.id = s.listing_id \
                 WHERE l.image_id = images.id AND s.project_id = ",
            )
            .push_bind(project.clone())
            .push("))");
        }
    }
    if let Some(VisibilityFilter::Only(v)) = visibility {
        qb.push(" AND visibility = ").push_bind(v.as_str());
    }
}

/// Appends every filter of `query` (all combined with AND).
fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &ImageQuery) {
    push_any(qb, "name", query.names.clone());
    push_any(qb, "id", query.ids.clone());
    if let Some(owner) = &query.owner {
        qb.push(" AND owner = ").push_bind(owner.clone());
    }
    push_any(qb, "status", query.statuses.iter().map(|s| s.as_str().to_string()).collect());
    push_any(qb, "disk_format", query.disk_formats.clone());
    push_any(qb, "container_format", query.container_formats.clone());
    if let Some(protected) = query.protected {
        qb.push(" AND protected = ").push_bind(protected);
    }
    qb.push(" AND os_hidden = ").push_bind(query.os_hidden.unwrap_or(false));
    // (deprecate_at, deprecate_at_ns) compared as a pair: the stored time to the nanosecond.
    let (as_of, as_of_ns) = split_time(&query.deprecated_as_of);
    if query.deprecated == Some(true) {
        qb.push(" AND deprecate_at IS NOT NULL AND (deprecate_at, deprecate_at_ns) <= (")
            .push_bind(as_of)
            .push(", ")
            .push_bind(as_of_ns)
            .push(")");
    } else {
        qb.push(" AND (deprecate_at IS NULL OR (deprecate_at, deprecate_at_ns) > (")
            .push_bind(as_of)
            .push(", ")
            .push_bind(as_of_ns)
            .push("))");
    }
    for tag in &query.tags {
        qb.push(" AND EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id AND t.tag = ")
            .push_bind(tag.clone())
            .push(")");
    }
    for (key, value) in &query.properties {
        qb.push(" AND EXISTS (SELECT 1 FROM image_properties p WHERE p.image_id = images.id AND p.key = ")
            .push_bind(key.clone())
            .push(" AND p.value = ")
            .push_bind(value.clone())
            .push(")");
    }
    for (key, value) in &query.properties_or_absent {
        qb.push(" AND (EXISTS (SELECT 1 FROM image_properties p WHERE p.image_id = images.id AND p.key = ")
            .push_bind(key.clone())
            .push(" AND p.value = ")
            .push_bind(value.clone())
            .push(") OR NOT EXISTS (SELECT 1 FROM image_properties p WHERE p.image_id = images.id AND p.key = ")
            .push_bind(key.clone())
            .push("))");
    }
    if let Some(owner) = &query.exclude_owner {
        qb.push(" AND owner <> ").push_bind(owner.clone());
    }
    for v in &query.exclude_visibilities {
        qb.push(" AND visibility <> ").push_bind(v.as_str());
    }
    if let Some(min_disk) = query.min_disk {
        qb.push(" AND min_disk = ").push_bind(min_disk);
    }
    if let Some(min_ram) = query.min_ram {
        qb.push(" AND min_ram = ").push_bind(min_ram);
    }
    // A NULL size compares as unknown, so images without a size never match a size filter.
    if let Some(min) = query.size_min {
        qb.push(" AND size >= ").push_bind(min);
    }
    if let Some(max) = query.size_max {
        qb.push(" AND size <= ").push_bind(max);
    }
    push_times(qb, "created_at", &query.created_at);
    push_times(qb, "updated_at", &query.updated_at);
}

/// Appends `AND column = ANY(values)` unless `values` is empty.
fn push_any<T>(qb: &mut QueryBuilder<'_, Postgres>, column: &str, values: Vec<T>)
where
    Vec<T>: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send + 'static,
{
    if values.is_empty() {
        return;
    }
    qb.push(format!(" AND {column} = ANY(")).push_bind(values).push(")");
}

/// Appends one comparison per time filter, comparing (column, column_ns) as a row.
fn push_times(qb: &mut QueryBuilder<'_, Postgres>, column: &str, filters: &[TimeFilter]) {
    for filter in filters {
        let op = match filter.op {
            TimeOp::Gt => ">",
            TimeOp::Gte => ">=",
            TimeOp::Eq => "=",
            TimeOp::Neq => "<>",
            TimeOp::Lt => "<",
            TimeOp::Lte => "<=",
        };
        let (at, ns) = split_time(&filter.at);
        qb.push(format!(" AND ({column}, {column}_ns) {op} (")).push_bind(at).push(", ").push_bind(ns).push(")");
    }
}

/// A sort key's value in one row.
#[derive(Debug, Clone)]
enum KeyValue {
    Text(Option<String>),
    Int(Option<i64>),
    Id(Uuid),
    Time(DateTime<Utc>),
}

impl KeyValue {
    fn is_null(&self) -> bool {
        matches!(self, KeyValue::Text(None) | KeyValue::Int(None))
    }
}

/// The column of a sort key and whether it can be NULL. A time key is the pair (column, column_ns).
fn column(key: SortKey) -> (&'static str, bool) {
    match key {
        SortKey::Name => ("name", true),
        SortKey::Status => ("status", false),
        SortKey::ContainerFormat => ("container_format", true),
        SortKey::DiskFormat => ("disk_format", true),
        SortKey::Size => ("size", true),
        SortKey::Id => ("id", false),
        SortKey::CreatedAt => ("created_at", false),
        SortKey::UpdatedAt => ("updated_at", false),
    }
}

/// The value of `key` in `image`, exactly as stored.
fn key_value(key: SortKey, image: &Image) -> KeyValue {
    match key {
        SortKey::Name => KeyValue::Text(image.name.clone()),
        SortKey::Status => KeyValue::Text(Some(image.status.as_str().to_string())),
        SortKey::ContainerFormat => KeyValue::Text(image.container_format.clone()),
        SortKey::DiskFormat => KeyValue::Text(image.disk_format.clone()),
        SortKey::Size => KeyValue::Int(image.size),
        SortKey::Id => KeyValue::Id(image.id),
        SortKey::CreatedAt => KeyValue::Time(image.created_at),
        SortKey::UpdatedAt => KeyValue::Time(image.updated_at),
    }
}

/// Appends `ORDER BY` for `order`, NULL smallest.
fn push_order_by(qb: &mut QueryBuilder<'_, Postgres>, order: &[(SortKey, SortDir)]) {
    let terms: Vec<String> = order
        .iter()
        .map(|&(key, dir)| {
            let (col, _) = column(key);
            let dir = match dir {
                SortDir::Asc => "ASC NULLS FIRST",
                SortDir::Desc => "DESC NULLS LAST",
            };
            match key {
                SortKey::CreatedAt | SortKey::UpdatedAt => format!("{col} {dir}, {col}_ns {dir}"),
                _ => format!("{col} {dir}"),
            }
        })
        .collect();
    qb.push(" ORDER BY ").push(terms.join(", "));
}

/// Appends `lhs op value` for a non-NULL key value; a time compares as the row (column, column_ns).
fn push_compare(qb: &mut QueryBuilder<'_, Postgres>, col: &str, op: &str, value: &KeyValue) {
    match value {
        KeyValue::Text(v) => {
            qb.push(format!("{col} {op} ")).push_bind(v.clone());
        }
        KeyValue::Int(v) => {
            qb.push(format!("{col} {op} ")).push_bind(*v);
        }
        KeyValue::Id(v) => {
            qb.push(format!("{col} {op} ")).push_bind(*v);
        }
        KeyValue::Time(t) => {
            let (at, ns) = split_time(t);
            qb.push(format!("({col}, {col}_ns) {op} (")).push_bind(at).push(", ").push_bind(ns).push(")");
        }
    }
}

/// Appends "strictly after `marker` in `order`": for some key i, every earlier key equals the marker's
/// value and key i is past it (the OR-of-ANDs expansion of a row comparison, which mixed directions and
/// NULLs rule out).
fn push_after(qb: &mut QueryBuilder<'_, Postgres>, order: &[(SortKey, SortDir)], marker: &Image) {
    let values: Vec<KeyValue> = order.iter().map(|&(key, _)| key_value(key, marker)).collect();
    qb.push(" AND (");
    for i in 0..order.len() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(");
        for j in 0..i {
            let (col, _) = column(order[j].0);
            if values[j].is_null() {
                qb.push(format!("{col} IS NULL"));
            } else {
                push_compare(qb, col, "=", &values[j]);
            }
            qb.push(" AND ");
        }
        let (key, dir) = order[i];
        let (col, nullable) = column(key);
        match (dir, values[i].is_null()) {
            // Everything non-NULL is after NULL, the smallest value.
            (SortDir::Asc, true) => {
                qb.push(format!("{col} IS NOT NULL"));
            }
            (SortDir::Asc, false) => push_compare(qb, col, ">", &values[i]),
            // Nothing is below NULL.
            (SortDir::Desc, true) => {
                qb.push("FALSE");
            }
            (SortDir::Desc, false) => {
                qb.push("(");
                push_compare(qb, col, "<", &values[i]);
                if nullable {
                    qb.push(format!(" OR {col} IS NULL"));
                }
                qb.push(")");
            }
        }
        qb.push(")");
    }
    qb.push(")");
}
