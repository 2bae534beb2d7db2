//! [`EncryptionRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use uuid::Uuid;

use super::{begin, commit, conflict_or_db, db_err, get, get_time, insert_audit, is_foreign_key_violation, parse_stored, split_time};
use crate::encryption::{ImageEncryption, KeyState, StoredKmsKey};
use crate::repo::EncryptionRepository;
use crate::{AuditEvent, CatalogError, Result};

const KEY_COLUMNS: &str =
    "id, alias, description, state, shareable, sealed_material, created_at, created_at_ns, updated_at, updated_at_ns";

/// The encryption repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresEncryption {
    pool: PgPool,
}

impl PostgresEncryption {
    pub(super) fn new(pool: PgPool) -> PostgresEncryption {
        PostgresEncryption { pool }
    }
}

fn key_from_row(row: &PgRow) -> Result<StoredKmsKey> {
    Ok(StoredKmsKey {
        id: get(row, "id")?,
        alias: get(row, "alias")?,
        description: get(row, "description")?,
        state: parse_stored(&get::<String>(row, "state")?)?,
        shareable: get(row, "shareable")?,
        sealed_material: get(row, "sealed_material")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

#[async_trait]
impl EncryptionRepository for PostgresEncryption {
    async fn create_key(&self, key: &StoredKmsKey, event: &AuditEvent) -> Result<()> {
        let (created_at, created_at_ns) = split_time(&key.created_at);
        let (updated_at, updated_at_ns) = split_time(&key.updated_at);
        let mut tx = begin(&self.pool).await?;
        sqlx::query(&format!("INSERT INTO kms_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(&key.id)
            .bind(&key.alias)
            .bind(&key.description)
            .bind(key.state.as_str())
            .bind(key.shareable)
            .bind(&key.sealed_material)
            .bind(created_at)
            .bind(created_at_ns)
            .bind(updated_at)
            .bind(updated_at_ns)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("a key with id {} or alias {:?} exists", key.id, key.alias)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_key(&self, id: &str) -> Result<StoredKmsKey> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM kms_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("key {id}")))?;
        key_from_row(&row)
    }

    async fn list_keys(&self) -> Result<Vec<StoredKmsKey>> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM kms_keys ORDER BY created_at, created_at_ns, id"))
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
        let (at, at_ns) = split_time(&at);
        let mut tx = begin(&self.pool).await?;
        let row = sqlx::query(&format!(
            "UPDATE kms_keys SET state = $1, updated_at = $2, updated_at_ns = $3 WHERE id = $4 RETURNING {KEY_COLUMNS}"
        ))
        .bind(state.as_str())
        .bind(at)
        .bind(at_ns)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| CatalogError::NotFound(format!("key {id}")))?;
        let key = key_from_row(&row)?;
        insert_audit(&mut tx, event).await?;
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
        let (at, at_ns) = split_time(&at);
        let mut tx = begin(&self.pool).await?;
        let row = sqlx::query(&format!(
            "UPDATE kms_keys SET shareable = $1, updated_at = $2, updated_at_ns = $3 WHERE id = $4 \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(shareable)
        .bind(at)
        .bind(at_ns)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| CatalogError::NotFound(format!("key {id}")))?;
        let key = key_from_row(&row)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(key)
    }

    async fn domain_key(&self, project_id: &str, key_id: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT wrapped_data_key FROM encryption_domains WHERE project_id = $1 AND key_id = $2")
            .bind(project_id)
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn add_domain_key(&self, project_id: &str, key_id: &str, wrapped: &str, at: DateTime<Utc>) -> Result<String> {
        // A concurrent insert of the same domain makes this one wait for it to commit and then do nothing;
        // the SELECT that follows (a new snapshot) reads whichever key was stored first.
        let mut tx = begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO encryption_domains (project_id, key_id, wrapped_data_key, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, key_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(key_id)
        .bind(wrapped)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let stored: String =
            sqlx::query_scalar("SELECT wrapped_data_key FROM encryption_domains WHERE project_id = $1 AND key_id = $2")
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
            "INSERT INTO image_encryption (image_id, key_id, wrapped_data_key) VALUES ($1, $2, $3) \
             ON CONFLICT (image_id) DO UPDATE SET key_id = excluded.key_id, \
             wrapped_data_key = excluded.wrapped_data_key",
        )
        .bind(record.image_id)
        .bind(&record.key_id)
        .bind(&record.wrapped_data_key)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                CatalogError::NotFound(format!("image {}", record.image_id))
            } else {
                db_err(e)
            }
        })?;
        Ok(())
    }

    async fn image_encryption(&self, image_id: Uuid) -> Result<Option<ImageEncryption>> {
        let row = sqlx::query("SELECT key_id, wrapped_data_key FROM image_encryption WHERE image_id = $1")
            .bind(image_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(ImageEncryption {
                image_id,
                key_id: get(&row, "key_id")?,
                wrapped_data_key: get(&row, "wrapped_data_key")?,
            })
        })
        .transpose()
    }
}
