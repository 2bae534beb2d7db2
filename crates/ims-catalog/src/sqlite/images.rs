//! [`ImageRepository`] over SQLite.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{
    begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_opt_time, parse_stored, parse_time,
    parse_uuid,
};
use crate::repo::{ImageRepository, ImageUsage};
use crate::{AuditEvent, CatalogError, Image, ImageQuery, ImageStatus, Result};

/// Columns of `images` that make up an [`Image`] (tags and properties live in their own tables).
pub(super) const IMAGE_COLUMNS: &str = "id, name, status, visibility, protected, os_hidden, owner, disk_format, \
     container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, os_hash_value, manifest_id, \
     deprecate_at, created_at, updated_at, source_type, source_ref, parent_id, extra_stores, \
     in_default_store";

/// Most ids bound in one `IN (...)` list when loading tags and properties.
const IN_CHUNK: usize = 500;

/// The image repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteImages {
    pool: SqlitePool,
}

impl SqliteImages {
    pub(super) fn new(pool: SqlitePool) -> SqliteImages {
        SqliteImages { pool }
    }
}

#[async_trait]
impl ImageRepository for SqliteImages {
    async fn create(&self, image: &Image, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        insert_image(&mut tx, image).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_within_quota(&self, image: &Image, max_owned: u64, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let owned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE owner = ? AND deleted_at IS NULL")
            .bind(&image.owner)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if u64::try_from(owned).unwrap_or(0) >= max_owned {
            return Err(CatalogError::LimitExceeded(format!(
                "project {} owns {owned} image(s); its quota is {max_owned}",
                image.owner
            )));
        }
        insert_image(&mut tx, image).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, id: Uuid) -> Result<Image> {
        // One read transaction: the row, its tags and its properties come from one snapshot.
        let mut conn = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(&format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ? AND deleted_at IS NULL"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("image {id}")))?;
        let mut images = vec![image_from_row(&row)?];
        attach_tags_and_properties(&mut conn, &mut images).await?;
        conn.commit().await.map_err(db_err)?;
        images.pop().ok_or_else(|| CatalogError::NotFound(format!("image {id}")))
    }

    async fn save(&self, image: &Image, expected: &[ImageStatus], event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        save_image(&mut tx, image, expected).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn save_within_size_quota(
        &self,
        image: &Image,
        expected: &[ImageStatus],
        max_total_size: u64,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        // BEGIN IMMEDIATE: writers run one at a time, so the sum below sees every activation that went
        // before, and this image as just saved.
        save_image(&mut tx, image, expected).await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0) FROM images WHERE owner = ? AND deleted_at IS NULL",
        )
        .bind(&image.owner)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if u64::try_from(total).unwrap_or(0) > max_total_size {
            return Err(CatalogError::LimitExceeded(format!(
                "project {} would hold {total} bytes of images; its quota is {max_total_size}",
                image.owner
            )));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list(&self, query: &ImageQuery) -> Result<Vec<Image>> {
        super::list::list(&self.pool, query).await
    }

    async fn usage(&self, project: &str) -> Result<ImageUsage> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS image_count, COALESCE(SUM(size), 0) AS total_size, \
             COALESCE(SUM(CASE WHEN status IN ('saving', 'uploading', 'importing') THEN 1 ELSE 0 END), 0) \
             AS uploading_count \
             FROM images WHERE owner = ? AND deleted_at IS NULL",
        )
        .bind(project)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let count = |col: &str| -> Result<u64> {
            let n: i64 = get(&row, col)?;
            u64::try_from(n).map_err(|_| CatalogError::Database(format!("negative {col} {n}")))
        };
        Ok(ImageUsage {
            image_count: count("image_count")?,
            total_size: count("total_size")?,
            uploading_count: count("uploading_count")?,
        })
    }

    async fn live_manifests(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT manifest_id FROM images \
             WHERE manifest_id IS NOT NULL AND (deleted_at IS NULL OR binned_status IS NOT NULL) \
             AND in_default_store = 1 \
             ORDER BY manifest_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn live_manifests_in_store(&self, store: &str) -> Result<Vec<String>> {
        // `extra_stores` is a comma-separated list: match whole items only.
        sqlx::query_scalar(
            "SELECT DISTINCT manifest_id FROM images \
             WHERE manifest_id IS NOT NULL AND (deleted_at IS NULL OR binned_status IS NOT NULL) \
             AND instr(',' || extra_stores || ',', ',' || ? || ',') > 0 \
             ORDER BY manifest_id",
        )
        .bind(store)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

/// The compare-and-set of [`ImageRepository::save`] inside the caller's write transaction (no audit row).
pub(super) async fn save_image(tx: &mut SqliteConnection, image: &Image, expected: &[ImageStatus]) -> Result<()> {
    let id = image.id.to_string();
    let mut updated = 0;
    if !expected.is_empty() {
        let deleted_at = (image.status == ImageStatus::Deleted).then(|| fmt_time(&image.updated_at));
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE images SET name = ");
        qb.push_bind(image.name.clone())
            .push(", status = ")
            .push_bind(image.status.as_str())
            .push(", visibility = ")
            .push_bind(image.visibility.as_str())
            .push(", protected = ")
            .push_bind(i64::from(image.protected))
            .push(", os_hidden = ")
            .push_bind(i64::from(image.os_hidden))
            .push(", owner = ")
            .push_bind(image.owner.clone())
            .push(", disk_format = ")
            .push_bind(image.disk_format.clone())
            .push(", container_format = ")
            .push_bind(image.container_format.clone())
            .push(", min_disk = ")
            .push_bind(image.min_disk)
            .push(", min_ram = ")
            .push_bind(image.min_ram)
            .push(", size = ")
            .push_bind(image.size)
            .push(", virtual_size = ")
            .push_bind(image.virtual_size)
            .push(", checksum = ")
            .push_bind(image.checksum.clone())
            .push(", os_hash_algo = ")
            .push_bind(image.os_hash_algo.clone())
            .push(", os_hash_value = ")
            .push_bind(image.os_hash_value.clone())
            .push(", manifest_id = ")
            .push_bind(image.manifest_id.clone())
            .push(", deprecate_at = ")
            .push_bind(image.deprecate_at.as_ref().map(fmt_time))
            .push(", created_at = ")
            .push_bind(fmt_time(&image.created_at))
            .push(", updated_at = ")
            .push_bind(fmt_time(&image.updated_at))
            .push(", deleted_at = ")
            .push_bind(deleted_at)
            .push(", source_type = ")
            .push_bind(image.lineage.source_type.map(|t| t.as_str()))
            .push(", source_ref = ")
            .push_bind(image.lineage.source_ref.clone())
            .push(", parent_id = ")
            .push_bind(image.lineage.parent_id.map(|id| id.to_string()))
            .push(", extra_stores = ")
            .push_bind(image.extra_stores.join(","))
            .push(", in_default_store = ")
            .push_bind(i64::from(image.in_default_store))
            .push(" WHERE id = ")
            .push_bind(id.clone())
            .push(" AND deleted_at IS NULL AND status IN (");
        let mut statuses = qb.separated(", ");
        for status in expected {
            statuses.push_bind(status.as_str());
        }
        qb.push(")");
        updated = qb.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
    }
    if updated == 0 {
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM images WHERE id = ? AND deleted_at IS NULL")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        return Err(match current {
            None => CatalogError::NotFound(format!("image {id}")),
            Some(status) => CatalogError::Conflict(format!(
                "image {id} is {status}, expected {}",
                expected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
            )),
        });
    }
    // An image deleted for good (saves never bin) is shared with no one any more.
    let member_rows = image.status == ImageStatus::Deleted;
    for table in ["image_tags", "image_properties"].into_iter().chain(member_rows.then_some("image_members")) {
        sqlx::query(&format!("DELETE FROM {table} WHERE image_id = ?"))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    insert_tags_and_properties(&mut *tx, image).await?;
    Ok(())
}

/// Inserts the row of `image` with its tags and properties.
pub(super) async fn insert_image(conn: &mut SqliteConnection, image: &Image) -> Result<()> {
        let deleted_at = (image.status == ImageStatus::Deleted).then(|| fmt_time(&image.updated_at));
        sqlx::query(
            "INSERT INTO images (id, name, status, visibility, protected, os_hidden, owner, disk_format, \
             container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, os_hash_value, \
             manifest_id, deprecate_at, created_at, updated_at, deleted_at, source_type, source_ref, parent_id, \
             extra_stores, in_default_store) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(image.id.to_string())
        .bind(&image.name)
        .bind(image.status.as_str())
        .bind(image.visibility.as_str())
        .bind(i64::from(image.protected))
        .bind(i64::from(image.os_hidden))
        .bind(&image.owner)
        .bind(&image.disk_format)
        .bind(&image.container_format)
        .bind(image.min_disk)
        .bind(image.min_ram)
        .bind(image.size)
        .bind(image.virtual_size)
        .bind(&image.checksum)
        .bind(&image.os_hash_algo)
        .bind(&image.os_hash_value)
        .bind(&image.manifest_id)
        .bind(image.deprecate_at.as_ref().map(fmt_time))
        .bind(fmt_time(&image.created_at))
        .bind(fmt_time(&image.updated_at))
        .bind(deleted_at)
        .bind(image.lineage.source_type.map(|t| t.as_str()))
        .bind(&image.lineage.source_ref)
        .bind(image.lineage.parent_id.map(|id| id.to_string()))
        .bind(image.extra_stores.join(","))
        .bind(i64::from(image.in_default_store))
        .execute(&mut *conn)
        .await
        .map_err(conflict_or_db(|| format!("image {} already exists", image.id)))?;
        insert_tags_and_properties(conn, image).await
}

/// Inserts the tags and properties of `image` (whose rows must not exist yet).
async fn insert_tags_and_properties(conn: &mut SqliteConnection, image: &Image) -> Result<()> {
    let id = image.id.to_string();
    if !image.tags.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO image_tags (image_id, tag) ");
        qb.push_values(&image.tags, |mut row, tag| {
            row.push_bind(id.clone()).push_bind(tag.clone());
        });
        qb.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    if !image.properties.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO image_properties (image_id, key, value) ");
        qb.push_values(&image.properties, |mut row, (key, value)| {
            row.push_bind(id.clone()).push_bind(key.clone()).push_bind(value.clone());
        });
        qb.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

/// Decodes a row selected with [`IMAGE_COLUMNS`]; tags and properties are left empty.
pub(super) fn image_from_row(row: &SqliteRow) -> Result<Image> {
    Ok(Image {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        name: get(row, "name")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        visibility: parse_stored(&get::<String>(row, "visibility")?)?,
        protected: get::<i64>(row, "protected")? != 0,
        os_hidden: get::<i64>(row, "os_hidden")? != 0,
        owner: get(row, "owner")?,
        disk_format: get(row, "disk_format")?,
        container_format: get(row, "container_format")?,
        min_disk: get(row, "min_disk")?,
        min_ram: get(row, "min_ram")?,
        size: get(row, "size")?,
        virtual_size: get(row, "virtual_size")?,
        checksum: get(row, "checksum")?,
        os_hash_algo: get(row, "os_hash_algo")?,
        os_hash_value: get(row, "os_hash_value")?,
        manifest_id: get(row, "manifest_id")?,
        tags: BTreeSet::new(),
        properties: BTreeMap::new(),
        deprecate_at: parse_opt_time(get(row, "deprecate_at")?)?,
        lineage: crate::Lineage {
            source_type: get::<Option<String>>(row, "source_type")?.as_deref().map(parse_stored).transpose()?,
            source_ref: get(row, "source_ref")?,
            parent_id: get::<Option<String>>(row, "parent_id")?.as_deref().map(parse_uuid).transpose()?,
        },
        extra_stores: crate::image::parse_store_list(&get::<String>(row, "extra_stores")?),
        in_default_store: get::<i64>(row, "in_default_store")? != 0,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

/// Fills the tags and properties of `images` with two queries per [`IN_CHUNK`] images.
pub(super) async fn attach_tags_and_properties(conn: &mut SqliteConnection, images: &mut [Image]) -> Result<()> {
    let index: HashMap<String, usize> = images.iter().enumerate().map(|(i, image)| (image.id.to_string(), i)).collect();
    let ids: Vec<&String> = index.keys().collect();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT image_id, tag FROM image_tags WHERE image_id IN (");
        push_id_list(&mut qb, chunk);
        for row in qb.build().fetch_all(&mut *conn).await.map_err(db_err)? {
            let image_id: String = get(&row, "image_id")?;
            if let Some(&i) = index.get(&image_id) {
                images[i].tags.insert(get(&row, "tag")?);
            }
        }
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT image_id, key, value FROM image_properties WHERE image_id IN (");
        push_id_list(&mut qb, chunk);
        for row in qb.build().fetch_all(&mut *conn).await.map_err(db_err)? {
            let image_id: String = get(&row, "image_id")?;
            if let Some(&i) = index.get(&image_id) {
                images[i].properties.insert(get(&row, "key")?, get(&row, "value")?);
            }
        }
    }
    Ok(())
}

/// Pushes `?, ?, ...)` binding `ids`.
fn push_id_list(qb: &mut QueryBuilder<'_, Sqlite>, ids: &[&String]) {
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind((*id).clone());
    }
    list.push_unseparated(")");
}
