//! `ImageRepository::list`: the visibility rule, filters, sort order and keyset paging as SQL.
//!
//! Sort order: the query's keys (default `created_at desc`), then `id` in the direction of the last key
//! unless `id` is already a key, which makes the order total. NULL sorts as the smallest value (first when
//! ascending, last when descending). Paging is keyset paging: the page after a marker is the rows strictly
//! after the marker's key values in that total order, so a page never repeats or skips a row that existed
//! through the whole walk, whatever the keys and directions.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::images::{attach_tags_and_properties, image_from_row, IMAGE_COLUMNS};
use super::{db_err, fmt_time};
use crate::query::{MemberStatusFilter, VisibilityFilter};
use crate::{
    CatalogError, Image, ImageQuery, MemberStatus, Result, SortDir, SortKey, TimeFilter, TimeOp, Viewer, Visibility,
};

/// Runs `query` inside one read transaction, so the marker, the page and its tags and properties come from
/// one snapshot.
pub(super) async fn list(pool: &SqlitePool, query: &ImageQuery) -> Result<Vec<Image>> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let order = query.total_order();

    let marker = match query.marker {
        None => None,
        Some(marker) => {
            // The marker must be an image the viewer can see at all (Glance's `is_image_visible`): the
            // viewer rule with every visibility and every membership answer allowed, no other filter.
            let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = "));
            qb.push_bind(marker.to_string()).push(" AND deleted_at IS NULL");
            if query.market_on_shelf {
                push_on_shelf(&mut qb);
            } else {
                push_visibility(&mut qb, &query.viewer, Some(VisibilityFilter::All), Some(MemberStatusFilter::All));
            }
            let row = qb
                .build()
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .ok_or_else(|| CatalogError::Invalid("marker not found".to_string()))?;
            Some(image_from_row(&row)?)
        }
    };

    let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {IMAGE_COLUMNS} FROM images WHERE deleted_at IS NULL"));
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

    let rows = qb.build().fetch_all(&mut *tx).await.map_err(db_err)?;
    let mut images = rows.iter().map(image_from_row).collect::<Result<Vec<_>>>()?;
    attach_tags_and_properties(&mut tx, &mut images).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(images)
}

/// Appends "has a marketplace listing that is on shelf" (see [`ImageQuery::market_on_shelf`]).
fn push_on_shelf(qb: &mut QueryBuilder<'_, Sqlite>) {
    qb.push(" AND EXISTS (SELECT 1 FROM market_listings l WHERE l.image_id = images.id AND l.offshelved = 0)");
}

/// Appends the visibility rule of [`ImageQuery`] for `viewer` as `AND ...` conditions.
fn push_visibility(
    qb: &mut QueryBuilder<'_, Sqlite>,
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
fn push_filters(qb: &mut QueryBuilder<'_, Sqlite>, query: &ImageQuery) {
    push_in(qb, "name", query.names.iter().cloned());
    push_in(qb, "id", query.ids.iter().map(|id| id.to_string()));
    if let Some(owner) = &query.owner {
        qb.push(" AND owner = ").push_bind(owner.clone());
    }
    push_in(qb, "status", query.statuses.iter().map(|s| s.as_str().to_string()));
    push_in(qb, "disk_format", query.disk_formats.iter().cloned());
    push_in(qb, "container_format", query.container_formats.iter().cloned());
    if let Some(protected) = query.protected {
        qb.push(" AND protected = ").push_bind(i64::from(protected));
    }
    qb.push(" AND os_hidden = ").push_bind(i64::from(query.os_hidden.unwrap_or(false)));
    let as_of = fmt_time(&query.deprecated_as_of);
    if query.deprecated == Some(true) {
        qb.push(" AND deprecate_at IS NOT NULL AND deprecate_at <= ").push_bind(as_of);
    } else {
        qb.push(" AND (deprecate_at IS NULL OR deprecate_at > ").push_bind(as_of).push(")");
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

/// Appends `AND column IN (values)` unless `values` is empty.
fn push_in(qb: &mut QueryBuilder<'_, Sqlite>, column: &str, values: impl Iterator<Item = String>) {
    let mut values = values.peekable();
    if values.peek().is_none() {
        return;
    }
    qb.push(format!(" AND {column} IN ("));
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    list.push_unseparated(")");
}

/// Appends one comparison per time filter; stored timestamps compare as strings in time order.
fn push_times(qb: &mut QueryBuilder<'_, Sqlite>, column: &str, filters: &[TimeFilter]) {
    for filter in filters {
        let op = match filter.op {
            TimeOp::Gt => ">",
            TimeOp::Gte => ">=",
            TimeOp::Eq => "=",
            TimeOp::Neq => "<>",
            TimeOp::Lt => "<",
            TimeOp::Lte => "<=",
        };
        qb.push(format!(" AND {column} {op} ")).push_bind(fmt_time(&filter.at));
    }
}

/// A sort key's value in one row.
#[derive(Debug, Clone)]
enum KeyValue {
    Text(Option<String>),
    Int(Option<i64>),
}

impl KeyValue {
    fn is_null(&self) -> bool {
        matches!(self, KeyValue::Text(None) | KeyValue::Int(None))
    }

    fn push_bind(&self, qb: &mut QueryBuilder<'_, Sqlite>) {
        match self {
            KeyValue::Text(v) => qb.push_bind(v.clone()),
            KeyValue::Int(v) => qb.push_bind(*v),
        };
    }
}

/// The column of a sort key and whether it can be NULL.
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
        SortKey::Id => KeyValue::Text(Some(image.id.to_string())),
        SortKey::CreatedAt => KeyValue::Text(Some(fmt_time(&image.created_at))),
        SortKey::UpdatedAt => KeyValue::Text(Some(fmt_time(&image.updated_at))),
    }
}

/// Appends `ORDER BY` for `order`, NULL smallest.
fn push_order_by(qb: &mut QueryBuilder<'_, Sqlite>, order: &[(SortKey, SortDir)]) {
    let terms: Vec<String> = order
        .iter()
        .map(|&(key, dir)| {
            let (col, nullable) = column(key);
            match (dir, nullable) {
                (SortDir::Asc, false) => format!("{col} ASC"),
                (SortDir::Desc, false) => format!("{col} DESC"),
                (SortDir::Asc, true) => format!("({col} IS NULL) DESC, {col} ASC"),
                (SortDir::Desc, true) => format!("({col} IS NULL) ASC, {col} DESC"),
            }
        })
        .collect();
    qb.push(" ORDER BY ").push(terms.join(", "));
}

/// Appends "strictly after `marker` in `order`": for some key i, every earlier key equals the marker's
/// value and key i is past it (the OR-of-ANDs expansion of a row comparison, which mixed directions and
/// NULLs rule out).
fn push_after(qb: &mut QueryBuilder<'_, Sqlite>, order: &[(SortKey, SortDir)], marker: &Image) {
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
                qb.push(format!("{col} IS NULL AND "));
            } else {
                qb.push(format!("{col} = "));
                values[j].push_bind(qb);
                qb.push(" AND ");
            }
        }
        let (key, dir) = order[i];
        let (col, nullable) = column(key);
        match (dir, values[i].is_null()) {
            // Everything non-NULL is after NULL, the smallest value.
            (SortDir::Asc, true) => {
                qb.push(format!("{col} IS NOT NULL"));
            }
            (SortDir::Asc, false) => {
                qb.push(format!("{col} > "));
                values[i].push_bind(qb);
            }
            // Nothing is below NULL.
            (SortDir::Desc, true) => {
                qb.push("1 = 0");
            }
            (SortDir::Desc, false) => {
                qb.push(format!("({col} < "));
                values[i].push_bind(qb);
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
