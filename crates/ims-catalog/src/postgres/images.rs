//! [`ImageRepository`] over PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{begin, commit, conflict_or_db, db_err, get, get_opt_time, get_time, insert_audit, lock_owner, parse_stored,
    split_opt_time, split_time,
};
use crate::repo::{ImageRepository, ImageUsage};
use crate::{AuditEvent, CatalogError, Image, ImageQuery, ImageStatus, Result};

/// The select list of every column that makes up an [`Image`] from `images`, its tags and properties
/// included (as arrays ordered by tag and by key). One statement, so one snapshot: the row, its tags and
/// its properties always belong together.
pub(super) const IMAGE_FIELDS: &str = "id, name, status, visibility, protected, os_hidden, owner, \
     disk_format, container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, os_hash_value, \
     manifest_id, deprecate_at, deprecate_at_ns, created_at, created_at_ns, updated_at, updated_at_ns, \
     source_type, source_ref, parent_id, extra_stores, in_default_store, \
     ARRAY(SELECT tag FROM image_tags WHERE image_tags.image_id = images.id ORDER BY tag) AS tags, \
     ARRAY(SELECT key FROM image_properties WHERE image_properties.image_id = images.id ORDER BY key) \
     AS property_keys, \
     ARRAY(SELECT value FROM image_properties WHERE image_properties.image_id = images.id ORDER BY key) \
     AS property_values";

/// The image repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresImages {
    pool: PgPool,
}

impl PostgresImages {
    pub(super) fn new(pool: PgPool) -> PostgresImages {
        PostgresImages { pool }
    }
}

#[async_trait]
impl ImageRepository for PostgresImages {
    async fn create(&self, image: &Image, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        create_image(&mut tx, image).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_within_quota(&self, image: &Image, max_owned: u64, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        // Every creation for this owner waits here; the count below (a new snapshot under READ COMMITTED)
        // sees every creation that went before.
        lock_owner(&mut tx, &image.owner).await?;
        let owned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE owner = $1 AND deleted_at IS NULL")
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
        let row = sqlx::query(&format!("SELECT {IMAGE_FIELDS} FROM images WHERE id = $1 AND deleted_at IS NULL"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("image {id}")))?;
        image_from_row(&row)
    }

    async fn save(&self, image: &Image, expected: &[ImageStatus], event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
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
        let mut tx = begin(&self.pool).await?;
        // Every quota-checked activation of this owner waits here; the sum below (a new snapshot under
        // READ COMMITTED) sees every one that went before, and this image as just saved.
        lock_owner(&mut tx, &image.owner).await?;
        save_image(&mut tx, image, expected).await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0)::bigint FROM images WHERE owner = $1 AND deleted_at IS NULL",
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
            "SELECT COUNT(*) AS image_count, COALESCE(SUM(size), 0)::bigint AS total_size, \
             COUNT(*) FILTER (WHERE status IN ('saving', 'uploading', 'importing')) AS uploading_count \
             FROM images WHERE owner = $1 AND deleted_at IS NULL",
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
             AND in_default_store \
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
             AND strpos(',' || extra_stores || ',', ',' || $1 || ',') > 0 \
             ORDER BY manifest_id",
        )
        .bind(store)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

/// When a row with this status was deleted: set exactly for `deleted`.
fn deleted_at(image: &Image) -> Option<chrono::DateTime<chrono::Utc>> {
    (image.status == ImageStatus::Deleted).then_some(image.updated_at)
}

/// The insert of [`ImageRepository::create`] inside the caller's transaction (no audit row), owner lock
/// included.
pub(super) async fn create_image(conn: &mut PgConnection, image: &Image) -> Result<()> {
    lock_owner(conn, &image.owner).await?;
    insert_image(conn, image).await
}

/// The compare-and-set of [`ImageRepository::save`] inside the caller's transaction (no audit row).
pub(super) async fn save_image(conn: &mut PgConnection, image: &Image, expected: &[ImageStatus]) -> Result<()> {
    // The row lock of the UPDATE is the compare-and-set: a concurrent save of this image waits for it
    // and then re-checks `status` against what this one committed.
    let updated = if expected.is_empty() { 0 } else { update_image(conn, image, expected).await? };
    if updated == 0 {
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM images WHERE id = $1 AND deleted_at IS NULL")
                .bind(image.id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
        return Err(match current {
            None => CatalogError::NotFound(format!("image {}", image.id)),
            Some(status) => CatalogError::Conflict(format!(
                "image {} is {status}, expected {}",
                image.id,
                expected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
            )),
        });
    }
    // An image deleted for good (saves never bin) is shared with no one any more.
    let member_rows = image.status == ImageStatus::Deleted;
    for table in ["image_tags", "image_properties"].into_iter().chain(member_rows.then_some("image_members")) {
        sqlx::query(&format!("DELETE FROM {table} WHERE image_id = $1"))
            .bind(image.id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    insert_tags_and_properties(conn, image).await
}

/// Inserts the row of `image` with its tags and properties.
async fn insert_image(conn: &mut PgConnection, image: &Image) -> Result<()> {
    let (created_at, created_at_ns) = split_time(&image.created_at);
    let (updated_at, updated_at_ns) = split_time(&image.updated_at);
    let (deprecate_at, deprecate_at_ns) = split_opt_time(image.deprecate_at.as_ref());
    sqlx::query(
        "INSERT INTO images (id, name, status, visibility, protected, os_hidden, owner, disk_format, \
         container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, os_hash_value, \
         manifest_id, created_at, created_at_ns, updated_at, updated_at_ns, deleted_at, deprecate_at, \
         deprecate_at_ns, source_type, source_ref, parent_id, extra_stores, in_default_store) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
         $23, $24, $25, $26, $27, $28, $29)",
    )
    .bind(image.id)
    .bind(&image.name)
    .bind(image.status.as_str())
    .bind(image.visibility.as_str())
    .bind(image.protected)
    .bind(image.os_hidden)
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
    .bind(created_at)
    .bind(created_at_ns)
    .bind(updated_at)
    .bind(updated_at_ns)
    .bind(deleted_at(image))
    .bind(deprecate_at)
    .bind(deprecate_at_ns)
    .bind(image.lineage.source_type.map(|t| t.as_str()))
    .bind(&image.lineage.source_ref)
    .bind(image.lineage.parent_id)
    .bind(image.extra_stores.join(","))
    .bind(image.in_default_store)
    .execute(&mut *conn)
    .await
    .map_err(conflict_or_db(|| format!("image {} already exists", image.id)))?;
    insert_tags_and_properties(conn, image).await
}

/// Overwrites every column of the live row of `image` if its status is one of `expected` (not empty);
/// returns the number of rows changed (0 or 1).
async fn update_image(conn: &mut PgConnection, image: &Image, expected: &[ImageStatus]) -> Result<u64> {
    let (created_at, created_at_ns) = split_time(&image.created_at);
    let (updated_at, updated_at_ns) = split_time(&image.updated_at);
    let (deprecate_at, deprecate_at_ns) = split_opt_time(image.deprecate_at.as_ref());
    let expected: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
    let mut qb = QueryBuilder::<Postgres>::new("UPDATE images SET name = ");
    qb.push_bind(image.name.clone())
        .push(", status = ")
        .push_bind(image.status.as_str())
        .push(", visibility = ")
        .push_bind(image.visibility.as_str())
        .push(", protected = ")
        .push_bind(image.protected)
        .push(", os_hidden = ")
        .push_bind(image.os_hidden)
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
        .push_bind(deprecate_at)
        .push(", deprecate_at_ns = ")
        .push_bind(deprecate_at_ns)
        .push(", created_at = ")
        .push_bind(created_at)
        .push(", created_at_ns = ")
        .push_bind(created_at_ns)
        .push(", updated_at = ")
        .push_bind(updated_at)
        .push(", updated_at_ns = ")
        .push_bind(updated_at_ns)
        .push(", deleted_at = ")
        .push_bind(deleted_at(image))
        .push(", source_type = ")
        .push_bind(image.lineage.source_type.map(|t| t.as_str()))
        .push(", source_ref = ")
        .push_bind(image.lineage.source_ref.clone())
        .push(", parent_id = ")
        .push_bind(image.lineage.parent_id)
        .push(", extra_stores = ")
        .push_bind(image.extra_stores.join(","))
        .push(", in_default_store = ")
        .push_bind(image.in_default_store)
        .push(" WHERE id = ")
        .push_bind(image.id)
        .push(" AND deleted_at IS NULL AND status = ANY(")
        .push_bind(expected)
        .push(")");
    Ok(qb.build().execute(&mut *conn).await.map_err(db_err)?.rows_affected())
}

/// Inserts the tags and properties of `image` (whose rows must not exist yet).
async fn insert_tags_and_properties(conn: &mut PgConnection, image: &Image) -> Result<()> {
    if !image.tags.is_empty() {
        let tags: Vec<&str> = image.tags.iter().map(String::as_str).collect();
        sqlx::query("INSERT INTO image_tags (image_id, tag) SELECT $1, unnest($2::text[])")
            .bind(image.id)
            .bind(tags)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    if !image.properties.is_empty() {
        let keys: Vec<&str> = image.properties.keys().map(String::as_str).collect();
        let values: Vec<&str> = image.properties.values().map(String::as_str).collect();
        sqlx::query(
            "INSERT INTO image_properties (image_id, key, value) \
             SELECT $1, key, value FROM unnest($2::text[], $3::text[]) AS property (key, value)",
        )
        .bind(image.id)
        .bind(keys)
        .bind(values)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Decodes a row selected with [`IMAGE_FIELDS`].
pub(super) fn image_from_row(row: &PgRow) -> Result<Image> {
    let keys: Vec<String> = get(row, "property_keys")?;
    let values: Vec<String> = get(row, "property_values")?;
    if keys.len() != values.len() {
        return Err(CatalogError::Database("image property keys and values differ in number".to_string()));
    }
    Ok(Image {
        id: get(row, "id")?,
        name: get(row, "name")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        visibility: parse_stored(&get::<String>(row, "visibility")?)?,
        protected: get(row, "protected")?,
        os_hidden: get(row, "os_hidden")?,
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
        tags: get::<Vec<String>>(row, "tags")?.into_iter().collect(),
        properties: keys.into_iter().zip(values).collect(),
        deprecate_at: get_opt_time(row, "deprecate_at")?,
        lineage: crate::Lineage {
            source_type: get::<Option<String>>(row, "source_type")?.as_deref().map(parse_stored).transpose()?,
            source_ref: get(row, "source_ref")?,
            parent_id: get(row, "parent_id")?,
        },
        extra_stores: crate::image::parse_store_list(&get::<String>(row, "extra_stores")?),
        in_default_store: get::<bool>(row, "in_default_store")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}
