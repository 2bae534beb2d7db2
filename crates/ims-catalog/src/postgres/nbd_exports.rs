//! [`NbdExportRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{conflict_or_db, db_err, get, get_time, split_time};
use crate::nbd_export::{NbdExport, NbdExportRepository};
use crate::{CatalogError, Result};

/// The NBD export names of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresNbdExports {
    pool: PgPool,
}

impl PostgresNbdExports {
    pub(super) fn new(pool: PgPool) -> PostgresNbdExports {
        PostgresNbdExports { pool }
    }
}

#[async_trait]
impl NbdExportRepository for PostgresNbdExports {
    async fn create(&self, export: &NbdExport) -> Result<()> {
        let (created_at, created_at_ns) = split_time(&export.created_at);
        let (expires_at, expires_at_ns) = split_time(&export.expires_at);
        // One statement: the row is inserted only while the image exists and is not deleted.
        let inserted = sqlx::query(
            "INSERT INTO nbd_exports (name_hash, image_id, created_by, created_at, created_at_ns, expires_at, \
             expires_at_ns) SELECT $1, id, $2, $3, $4, $5, $6 FROM images WHERE id = $7 AND deleted_at IS NULL",
        )
        .bind(&export.name_hash)
        .bind(&export.created_by)
        .bind(created_at)
        .bind(created_at_ns)
        .bind(expires_at)
        .bind(expires_at_ns)
        .bind(export.image_id)
        .execute(&self.pool)
        .await
        .map_err(conflict_or_db(|| "an export with this name already exists".to_string()))?;
        if inserted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("image {}", export.image_id)));
        }
        Ok(())
    }

    async fn find(&self, name_hash: &str) -> Result<Option<NbdExport>> {
        let row = sqlx::query(
            "SELECT name_hash, image_id, created_by, created_at, created_at_ns, expires_at, expires_at_ns \
             FROM nbd_exports WHERE name_hash = $1",
        )
        .bind(name_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(NbdExport {
            name_hash: get(&row, "name_hash")?,
            image_id: get(&row, "image_id")?,
            created_by: get(&row, "created_by")?,
            created_at: get_time(&row, "created_at")?,
            expires_at: get_time(&row, "expires_at")?,
        }))
    }

    async fn revoke(&self, image_id: Uuid, name_hash: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM nbd_exports WHERE name_hash = $1 AND image_id = $2")
            .bind(name_hash)
            .bind(image_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("NBD export of image {image_id}")));
        }
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let (now, now_ns) = split_time(&now);
        let deleted = sqlx::query("DELETE FROM nbd_exports WHERE (expires_at, expires_at_ns) < ($1, $2)")
            .bind(now)
            .bind(now_ns)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(deleted.rows_affected())
    }
}
