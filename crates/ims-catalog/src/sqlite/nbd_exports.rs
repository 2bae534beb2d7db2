//! [`NbdExportRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{conflict_or_db, db_err, fmt_time, get, parse_time, parse_uuid};
use crate::nbd_export::{NbdExport, NbdExportRepository};
use crate::{CatalogError, Result};

/// The NBD export names of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteNbdExports {
    pool: SqlitePool,
}

impl SqliteNbdExports {
    pub(super) fn new(pool: SqlitePool) -> SqliteNbdExports {
        SqliteNbdExports { pool }
    }
}

#[async_trait]
impl NbdExportRepository for SqliteNbdExports {
    async fn create(&self, export: &NbdExport) -> Result<()> {
        // One statement: the row is inserted only while the image exists and is not deleted.
        let inserted = sqlx::query(
            "INSERT INTO nbd_exports (name_hash, image_id, created_by, created_at, expires_at) \
             SELECT ?, id, ?, ?, ? FROM images WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(&export.name_hash)
        .bind(&export.created_by)
        .bind(fmt_time(&export.created_at))
        .bind(fmt_time(&export.expires_at))
        .bind(export.image_id.to_string())
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
            "SELECT name_hash, image_id, created_by, created_at, expires_at FROM nbd_exports WHERE name_hash = ?",
        )
        .bind(name_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(NbdExport {
            name_hash: get(&row, "name_hash")?,
            image_id: parse_uuid(&get::<String>(&row, "image_id")?)?,
            created_by: get(&row, "created_by")?,
            created_at: parse_time(&get::<String>(&row, "created_at")?)?,
            expires_at: parse_time(&get::<String>(&row, "expires_at")?)?,
        }))
    }

    async fn revoke(&self, image_id: Uuid, name_hash: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM nbd_exports WHERE name_hash = ? AND image_id = ?")
            .bind(name_hash)
            .bind(image_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("NBD export of image {image_id}")));
        }
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        // Stored times have a fixed width, so text order is time order.
        let deleted = sqlx::query("DELETE FROM nbd_exports WHERE expires_at < ?")
            .bind(fmt_time(&now))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(deleted.rows_affected())
    }
}
