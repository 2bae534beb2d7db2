//! [`RecycleBinRepository`] and [`LineageRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::images::{image_from_row, IMAGE_FIELDS};
use super::{begin, commit, db_err, get, get_time, insert_audit, lock_owner, parse_stored, split_time};
use crate::lineage::standing;
use crate::{
    AuditEvent, BinQuery, BinnedImage, CatalogError, Image, ImageStanding, ImageStatus, LineageRepository,
    RecycleBinRepository, Result,
};

/// The recycle bin and lineage reads of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresRecycleBin {
    pool: PgPool,
}

impl PostgresRecycleBin {
    pub(super) fn new(pool: PgPool) -> PostgresRecycleBin {
        PostgresRecycleBin { pool }
    }
}

fn not_in_bin(id: Uuid) -> CatalogError {
    CatalogError::NotFound(format!("image {id} in the recycle bin"))
}

/// Decodes a row selected with [`IMAGE_FIELDS`] and the bin columns.
fn binned_from_row(row: &PgRow) -> Result<BinnedImage> {
    let mut image = image_from_row(row)?;
    image.status = parse_stored(&get::<String>(row, "binned_status")?)?;
    Ok(BinnedImage {
        image,
        binned_at: get(row, "deleted_at")?,
        purge_after: get_time(row, "bin_purge_after")?,
    })
}

fn select_binned() -> QueryBuilder<'static, Postgres> {
    QueryBuilder::new(format!(
        "SELECT {IMAGE_FIELDS}, binned_status, bin_purge_after, bin_purge_after_ns, deleted_at FROM images \
         WHERE binned_status IS NOT NULL"
    ))
}

/// Appends "`bin_purge_after` is `due` or earlier".
fn push_due_by(qb: &mut QueryBuilder<'_, Postgres>, due: &DateTime<Utc>) {
    let (at, ns) = split_time(due);
    qb.push(" AND (bin_purge_after, bin_purge_after_ns) <= (").push_bind(at).push(", ").push_bind(ns).push(")");
}

#[async_trait]
impl RecycleBinRepository for PostgresRecycleBin {
    async fn move_to_bin(
        &self,
        id: Uuid,
        expected: ImageStatus,
        at: DateTime<Utc>,
        purge_after: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let (updated_at, updated_at_ns) = split_time(&at);
        let (purge_at, purge_ns) = split_time(&purge_after);
        // The row lock of the UPDATE is the compare-and-set, as in `save`.
        let moved = sqlx::query(
            "UPDATE images SET status = 'deleted', binned_status = status, deleted_at = $1, updated_at = $2, \
             updated_at_ns = $3, bin_purge_after = $4, bin_purge_after_ns = $5 \
             WHERE id = $6 AND deleted_at IS NULL AND status = $7 AND NOT protected",
        )
        .bind(at)
        .bind(updated_at)
        .bind(updated_at_ns)
        .bind(purge_at)
        .bind(purge_ns)
        .bind(id)
        .bind(expected.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if moved == 0 {
            let current: Option<(String, bool)> =
                sqlx::query_as("SELECT status, protected FROM images WHERE id = $1 AND deleted_at IS NULL")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            return Err(match current {
                None => CatalogError::NotFound(format!("image {id}")),
                Some((_, true)) => CatalogError::Conflict(format!("image {id} is protected")),
                Some((status, false)) => CatalogError::Conflict(format!("image {id} is {status}, expected {expected}")),
            });
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, id: Uuid) -> Result<BinnedImage> {
        let mut qb = select_binned();
        qb.push(" AND id = ").push_bind(id);
        let row = qb.build().fetch_optional(&self.pool).await.map_err(db_err)?.ok_or_else(|| not_in_bin(id))?;
        binned_from_row(&row)
    }

    async fn list(&self, query: &BinQuery) -> Result<Vec<BinnedImage>> {
        let mut qb = select_binned();
        if let Some(owner) = &query.owner {
            qb.push(" AND owner = ").push_bind(owner.clone());
        }
        if let Some(due) = &query.purge_due_by {
            push_due_by(&mut qb, due);
        }
        if let Some(marker) = query.marker {
            let binned_at: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT deleted_at FROM images WHERE id = $1 AND binned_status IS NOT NULL \
                 AND ($2::text IS NULL OR owner = $2)",
            )
            .bind(marker)
            .bind(query.owner.clone())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            let binned_at = binned_at.ok_or_else(|| {
                CatalogError::Invalid(format!("marker {marker} is not an image in the recycle bin"))
            })?;
            qb.push(" AND (deleted_at, id) > (").push_bind(binned_at).push(", ").push_bind(marker).push(")");
        }
        qb.push(" ORDER BY deleted_at, id LIMIT ").push_bind(i64::from(query.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(binned_from_row).collect()
    }

    async fn restore(&self, id: Uuid, max_owned: Option<u64>, at: DateTime<Utc>, event: &AuditEvent) -> Result<Image> {
        let mut tx = begin(&self.pool).await?;
        // The row lock keeps a concurrent restore or purge of this image waiting until this one commits.
        let owner: String =
            sqlx::query_scalar("SELECT owner FROM images WHERE id = $1 AND binned_status IS NOT NULL FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .ok_or_else(|| not_in_bin(id))?;
        if let Some(max) = max_owned {
            // Serialized with every quota-checked creation of this owner (see `lock_owner`).
            lock_owner(&mut tx, &owner).await?;
            let owned: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE owner = $1 AND deleted_at IS NULL")
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
        let (updated_at, updated_at_ns) = split_time(&at);
        sqlx::query(
            "UPDATE images SET status = binned_status, binned_status = NULL, bin_purge_after = NULL, \
             bin_purge_after_ns = NULL, deleted_at = NULL, updated_at = $1, updated_at_ns = $2 WHERE id = $3",
        )
        .bind(updated_at)
        .bind(updated_at_ns)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(&format!("SELECT {IMAGE_FIELDS} FROM images WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let image = image_from_row(&row)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(image)
    }

    async fn purge(&self, id: Uuid, due_by: Option<DateTime<Utc>>, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let mut qb = QueryBuilder::<Postgres>::new(
            "UPDATE images SET binned_status = NULL, bin_purge_after = NULL, bin_purge_after_ns = NULL \
             WHERE binned_status IS NOT NULL AND NOT protected AND id = ",
        );
        qb.push_bind(id);
        if let Some(due) = &due_by {
            push_due_by(&mut qb, due);
        }
        let purged = qb.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        if purged == 0 {
            let protected: Option<bool> =
                sqlx::query_scalar("SELECT protected FROM images WHERE id = $1 AND binned_status IS NOT NULL")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            return Err(match protected {
                Some(true) => CatalogError::Conflict(format!("image {id} is protected")),
                Some(false) => CatalogError::NotFound(format!("image {id} in the recycle bin is not due for purging")),
                None => not_in_bin(id),
            });
        }
        // Deleted for good now: shared with no one any more.
        sqlx::query("DELETE FROM image_members WHERE image_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

#[async_trait]
impl LineageRepository for PostgresRecycleBin {
    async fn any_state(&self, id: Uuid) -> Result<Option<(Image, ImageStanding)>> {
        let row = sqlx::query(&format!("SELECT {IMAGE_FIELDS}, binned_status FROM images WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut image = image_from_row(&row)?;
        let binned: Option<String> = get(&row, "binned_status")?;
        let standing = standing(image.status, binned.is_some());
        if let Some(status) = binned {
            image.status = parse_stored(&status)?;
        }
        Ok(Some((image, standing)))
    }
}
