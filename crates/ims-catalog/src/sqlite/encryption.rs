//! [`EncryptionRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_stored, parse_time};
use crate::encryption::{ImageEncryption, KeyState, StoredKmsKey};
use crate::repo::EncryptionRepository;
use crate::{AuditEvent, CatalogError, Result};

/// The encryption repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteEncryption {
    pool: SqlitePool,
}

impl SqliteEncryption {
    pub(super) fn new(pool: SqlitePool) -> SqliteEncryption {
        SqliteEncryption { pool }
    }
}

const KEY_COLUMNS: &str = "id, alias, description, state, shareable, sealed_material, created_at, updated_at";

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredKmsKey> {
    Ok(StoredKmsKey {
        id: get(row, "id")?,
        alias: get(row, "alias")?,
        description: get(row, "description")?,
        state: parse_stored(&get::<String>(row, "state")?)?,
        shareable: get::<i64>(row, "shareable")? != 0,
        sealed_material: get(row, "sealed_material")?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

#[async_trait]
impl EncryptionRepository for SqliteEncryption {
    async fn create_key(&self, key: &StoredKmsKey, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!("INSERT INTO kms_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(&key.id)
            .bind(&key.alias)
            .bind(&key.description)
            .bind(key.state.as_str())
            .bind(i64::from(key.shareable))
            .bind(&key.sealed_material)
            .bind(fmt_time(&key.created_at))
            .bind(fmt_time(&key.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("a key with id {} or alias {:?} exists", key.id, key.alias)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_key(&self, id: &str) -> Result<StoredKmsKey> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM kms_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("key {id}")))?;
        key_from_row(&row)
    }

    async fn list_keys(&self) -> Result<Vec<StoredKmsKey>> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM kms_keys ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn set_key_state(
        &self,
        id: &str,
        state: KeyState,
        at: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<StoredKmsKey> {
        let mut tx = begin_write(&self.pool).await?;
        let changed = sqlx::query("UPDATE kms_keys SET state = ?, updated_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(fmt_time(&at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("key {id}")));
        }
        insert_audit(&mut tx, event).await?;
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM kms_keys WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let key = key_from_row(&row)?;
        commit(tx).await?;
        Ok(key)
    }

    async fn set_key_shareable(
        &self,
        id: &str,
        shareable: bool,
        at: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<StoredKmsKey> {
        let mut tx = begin_write(&self.pool).await?;
        let changed = sqlx::query("UPDATE kms_keys SET shareable = ?, updated_at = ? WHERE id = ?")
            .bind(i64::from(shareable))
            .bind(fmt_time(&at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if changed == 0 {
            return Err(CatalogError::NotFound(format!("key {id}")));
        }
        insert_audit(&mut tx, event).await?;
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM kms_keys WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let key = key_from_row(&row)?;
        commit(tx).await?;
        Ok(key)
    }

    async fn domain_key(&self, project_id: &str, key_id: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT wrapped_data_key FROM encryption_domains WHERE project_id = ? AND key_id = ?")
            .bind(project_id)
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn add_domain_key(&self, project_id: &str, key_id: &str, wrapped: &str, at: DateTime<Utc>) -> Result<String> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO encryption_domains (project_id, key_id, wrapped_data_key, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (project_id, key_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(key_id)
        .bind(wrapped)
        .bind(fmt_time(&at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let stored: String =
            sqlx::query_scalar("SELECT wrapped_data_key FROM encryption_domains WHERE project_id = ? AND key_id = ?")
                .bind(project_id)
                .bind(key_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn set_image_encryption(&self, record: &ImageEncryption) -> Result<()> {
        sqlx::query(
            "INSERT INTO image_encryption (image_id, key_id, wrapped_data_key) VALUES (?, ?, ?) \
             ON CONFLICT (image_id) DO UPDATE SET key_id = excluded.key_id, wrapped_data_key = excluded.wrapped_data_key",
        )
        .bind(record.image_id.to_string())
        .bind(&record.key_id)
        .bind(&record.wrapped_data_key)
        .execute(&self.pool)
        .await
        .map_err(|e| match db_err(e) {
            CatalogError::Database(m) if m.contains("FOREIGN KEY") => {
                CatalogError::NotFound(format!("image {}", record.image_id))
            }
            other => other,
        })?;
        Ok(())
    }

    async fn image_encryption(&self, image_id: Uuid) -> Result<Option<ImageEncryption>> {
        let row = sqlx::query("SELECT key_id, wrapped_data_key FROM image_encryption WHERE image_id = ?")
            .bind(image_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(ImageEncryption { image_id, key_id: get(&row, "key_id")?, wrapped_data_key: get(&row, "wrapped_data_key")? })
        })
        .transpose()
    }
}
