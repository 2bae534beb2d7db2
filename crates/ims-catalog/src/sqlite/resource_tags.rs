//! [`ResourceTagRepository`] over SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::images::{attach_tags_and_properties, image_from_row, IMAGE_COLUMNS};
use super::{begin_write, commit, db_err, get, insert_audit};
use crate::repo::ResourceTagRepository;
use crate::{AuditEvent, CatalogError, Image, ResourceTag, Result};

/// The resource tag repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteResourceTags {
    pool: SqlitePool,
}

impl SqliteResourceTags {
    pub(super) fn new(pool: SqlitePool) -> SqliteResourceTags {
        SqliteResourceTags { pool }
    }
}

async fn tags_of(conn: &mut SqliteConnection, image_id: &str) -> Result<Vec<ResourceTag>> {
    let rows = sqlx::query("SELECT key, value FROM image_resource_tags WHERE image_id = ? ORDER BY key")
        .bind(image_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(|row| Ok(ResourceTag { key: get(row, "key")?, value: get(row, "value")? })).collect()
}

#[async_trait]
impl ResourceTagRepository for SqliteResourceTags {
    async fn list(&self, image_id: Uuid) -> Result<Vec<ResourceTag>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        tags_of(&mut conn, &image_id.to_string()).await
    }

    async fn change(
        &self,
        image_id: Uuid,
        put: &[ResourceTag],
        remove: &[String],
        event: &AuditEvent,
    ) -> Result<Vec<ResourceTag>> {
        let id = image_id.to_string();
        let mut tx = begin_write(&self.pool).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM images WHERE id = ? AND deleted_at IS NULL)")
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if !exists {
            return Err(CatalogError::NotFound(format!("image {image_id}")));
        }
        for key in remove {
            sqlx::query("DELETE FROM image_resource_tags WHERE image_id = ? AND key = ?")
                .bind(&id)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for tag in put {
            sqlx::query(
                "INSERT INTO image_resource_tags (image_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (image_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(&id)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let tags = tags_of(&mut tx, &id).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(tags)
    }

    async fn of_project(&self, project: &str) -> Result<Vec<(Image, Vec<ResourceTag>)>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let rows = sqlx::query(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images WHERE owner = ? AND deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(project)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut images = rows.iter().map(image_from_row).collect::<Result<Vec<_>>>()?;
        attach_tags_and_properties(&mut tx, &mut images).await?;
        let rows = sqlx::query(
            "SELECT t.image_id, t.key, t.value FROM image_resource_tags t JOIN images i ON i.id = t.image_id \
             WHERE i.owner = ? AND i.deleted_at IS NULL ORDER BY t.key",
        )
        .bind(project)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut by_image: HashMap<String, Vec<ResourceTag>> = HashMap::new();
        for row in &rows {
            by_image
                .entry(get(row, "image_id")?)
                .or_default()
                .push(ResourceTag { key: get(row, "key")?, value: get(row, "value")? });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(images
            .into_iter()
            .map(|image| {
                let tags = by_image.remove(&image.id.to_string()).unwrap_or_default();
                (image, tags)
            })
            .collect())
    }
}
