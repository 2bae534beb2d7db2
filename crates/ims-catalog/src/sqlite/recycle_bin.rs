//! [`RecycleBinRepository`] and [`LineageRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::images::{attach_tags_and_properties, image_from_row, IMAGE_COLUMNS};
use super::{begin_write, commit, db_err, fmt_time, get, insert_audit, parse_stored, parse_time};
use crate::lineage::standing;
use crate::{
    AuditEvent, BinQuery, BinnedImage, CatalogError, Image, ImageStanding, ImageStatus, LineageRepository,
    RecycleBinRepository, Result,
};

/// The recycle bin and lineage reads of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteRecycleBin {
    pool: SqlitePool,
}

impl SqliteRecycleBin {
    pub(super) fn new(pool: SqlitePool) -> SqliteRecycleBin {
        SqliteRecycleBin { pool }
    }
}

fn not_in_bin(id: Uuid) -> CatalogError {
    CatalogError::NotFound(format!("image {id} in the recycle bin"))
}

/// Decodes a row selected with [`IMAGE_COLUMNS`], `binned_status`, `bin_purge_after` and `deleted_at`.
fn binned_from_row(row: &SqliteRow) -> Result<BinnedImage> {
    let mut image = image_from_row(row)?;
    image.status = parse_stored(&get::<String>(row, "binned_status")?)?;
    Ok(BinnedImage {
        image,
        binned_at: parse_time(&get::<String>(row, "deleted_at")?)?,
        purge_after: parse_time(&get::<String>(row, "bin_purge_after")?)?,
    })
}

/// The binned images selected by `qb` (a query over [`IMAGE_COLUMNS`] and the bin columns), with their
/// tags and properties.
async fn fetch_binned(conn: &mut SqliteConnection, mut qb: QueryBuilder<'_, Sqlite>) -> Result<Vec<BinnedImage>> {
    let rows = qb.build().fetch_all(&mut *conn).await.map_err(db_err)?;
    let mut binned = rows.iter().map(binned_from_row).collect::<Result<Vec<_>>>()?;
    let mut images: Vec<Image> = binned.iter().map(|b| b.image.clone()).collect();
    attach_tags_and_properties(conn, &mut images).await?;
    for (b, image) in binned.iter_mut().zip(images) {
        b.image = image;
    }
    Ok(binned)
}

fn select_binned() -> QueryBuilder<'static, Sqlite> {
    QueryBuilder::new(format!(
        "SELECT {IMAGE_COLUMNS}, binned_status, bin_purge_after, deleted_at FROM images \
         WHERE binned_status IS NOT NULL"
    ))
}

#[async_trait]
impl RecycleBinRepository for SqliteRecycleBin {
    async fn move_to_bin(
        &self,
        id: Uuid,
        expected: ImageStatus,
        at: DateTime<Utc>,
        purge_after: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let at = fmt_time(&at);
        let moved = sqlx::query(
            "UPDATE images SET status = 'deleted', binned_status = status, deleted_at = ?, updated_at = ?, \
             bin_purge_after = ? WHERE id = ? AND deleted_at IS NULL AND status = ? AND protected = 0",
        )
        .bind(&at)
        .bind(&at)
        .bind(fmt_time(&purge_after))
        .bind(id.to_string())
        .bind(expected.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if moved == 0 {
            let current: Option<(String, i64)> =
                sqlx::query_as("SELECT status, protected FROM images WHERE id = ? AND deleted_at IS NULL")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            return Err(match current {
                None => CatalogError::NotFound(format!("image {id}")),
                Some((_, protected)) if protected != 0 => CatalogError::Conflict(format!("image {id} is protected")),
                Some((status, _)) => CatalogError::Conflict(format!("image {id} is {status}, expected {expected}")),
            });
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, id: Uuid) -> Result<BinnedImage> {
        let mut conn = self.pool.begin().await.map_err(db_err)?;
        let mut qb = select_binned();
        qb.push(" AND id = ").push_bind(id.to_string());
        let found = fetch_binned(&mut conn, qb).await?.pop().ok_or_else(|| not_in_bin(id))?;
        conn.commit().await.map_err(db_err)?;
        Ok(found)
    }

    async fn list(&self, query: &BinQuery) -> Result<Vec<BinnedImage>> {
        let mut conn = self.pool.begin().await.map_err(db_err)?;
        let mut qb = select_binned();
        if let Some(owner) = &query.owner {
            qb.push(" AND owner = ").push_bind(owner.clone());
        }
        if let Some(due) = &query.purge_due_by {
            qb.push(" AND bin_purge_after <= ").push_bind(fmt_time(due));
        }
        if let Some(marker) = query.marker {
            let mut find = select_binned();
            find.push(" AND id = ").push_bind(marker.to_string());
            if let Some(owner) = &query.owner {
                find.push(" AND owner = ").push_bind(owner.clone());
            }
            let row = find.build().fetch_optional(&mut *conn).await.map_err(db_err)?.ok_or_else(|| {
                CatalogError::Invalid(format!("marker {marker} is not an image in the recycle bin"))
            })?;
            let binned_at: String = get(&row, "deleted_at")?;
            qb.push(" AND (deleted_at > ")
                .push_bind(binned_at.clone())
                .push(" OR (deleted_at = ")
                .push_bind(binned_at)
                .push(" AND id > ")
                .push_bind(marker.to_string())
                .push("))");
        }
        qb.push(" ORDER BY deleted_at, id LIMIT ").push_bind(i64::from(query.limit));
        let found = fetch_binned(&mut conn, qb).await?;
        conn.commit().await.map_err(db_err)?;
        Ok(found)
    }

    async fn restore(&self, id: Uuid, max_owned: Option<u64>, at: DateTime<Utc>, event: &AuditEvent) -> Result<Image> {
        // BEGIN IMMEDIATE: writers run one at a time, so the count below sees every creation before it.
        let mut tx = begin_write(&self.pool).await?;
        let owner: String = sqlx::query_scalar("SELECT owner FROM images WHERE id = ? AND binned_status IS NOT NULL")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_in_bin(id))?;
        if let Some(max) = max_owned {
            let owned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE owner = ? AND deleted_at IS NULL")
                .bind(&owner)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            if u64::try_from(owned).unwrap_or(0) >= max {
                return Err(CatalogError::LimitExceeded(format!(
                    "project {owner} owns {owned} image(s); its quota is {max}"
                )));
            }
        }
        sqlx::query(
            "UPDATE images SET status = binned_status, binned_status = NULL, bin_purge_after = NULL, \
             deleted_at = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(fmt_time(&at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(&format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?"))
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut images = vec![image_from_row(&row)?];
        attach_tags_and_properties(&mut tx, &mut images).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        images.pop().ok_or_else(|| not_in_bin(id))
    }

    async fn purge(&self, id: Uuid, due_by: Option<DateTime<Utc>>, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE images SET binned_status = NULL, bin_purge_after = NULL WHERE binned_status IS NOT NULL \
             AND protected = 0 AND id = ",
        );
        qb.push_bind(id.to_string());
        if let Some(due) = &due_by {
            qb.push(" AND bin_purge_after <= ").push_bind(fmt_time(due));
        }
        let purged = qb.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        if purged == 0 {
            let protected: Option<i64> =
                sqlx::query_scalar("SELECT protected FROM images WHERE id = ? AND binned_status IS NOT NULL")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            return Err(match protected {
                Some(p) if p != 0 => CatalogError::Conflict(format!("image {id} is protected")),
                Some(_) => CatalogError::NotFound(format!("image {id} in the recycle bin is not due for purging")),
                None => not_in_bin(id),
            });
        }
        // Deleted for good now: shared with no one any more.
        sqlx::query("DELETE FROM image_members WHERE image_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

#[async_trait]
impl LineageRepository for SqliteRecycleBin {
    async fn any_state(&self, id: Uuid) -> Result<Option<(Image, ImageStanding)>> {
        let mut conn = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(&format!("SELECT {IMAGE_COLUMNS}, binned_status FROM images WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut image = image_from_row(&row)?;
        let binned: Option<String> = get(&row, "binned_status")?;
        let standing = standing(image.status, binned.is_some());
        if let Some(status) = binned {
            image.status = parse_stored(&status)?;
        }
        let mut images = vec![image];
        attach_tags_and_properties(&mut conn, &mut images).await?;
        conn.commit().await.map_err(db_err)?;
        Ok(images.pop().map(|image| (image, standing)))
    }
}
