//! [`ResourceTagRepository`] over PostgreSQL.

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::images::{image_from_row, IMAGE_FIELDS};
use super::{begin, commit, db_err, get, insert_audit};
use crate::repo::ResourceTagRepository;
use crate::{AuditEvent, CatalogError, Image, ResourceTag, Result};

/// The resource tag repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresResourceTags {
    pool: PgPool,
}

impl PostgresResourceTags {
    pub(super) fn new(pool: PgPool) -> PostgresResourceTags {
        PostgresResourceTags { pool }
    }
}

async fn tags_of(conn: &mut PgConnection, image_id: Uuid) -> Result<Vec<ResourceTag>> {
    let rows = sqlx::query("SELECT key, value FROM image_resource_tags WHERE image_id = $1 ORDER BY key")
        .bind(image_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(|row| Ok(ResourceTag { key: get(row, "key")?, value: get(row, "value")? })).collect()
}

/// Pairs the keys and values of one image's tags, read as two arrays ordered by key.
fn pair(keys: Vec<String>, values: Vec<String>) -> Result<Vec<ResourceTag>> {
    if keys.len() != values.len() {
        return Err(CatalogError::Database("resource tag keys and values differ in number".to_string()));
    }
    Ok(keys.into_iter().zip(values).map(|(key, value)| ResourceTag { key, value }).collect())
}

#[async_trait]
impl ResourceTagRepository for PostgresResourceTags {
    async fn list(&self, image_id: Uuid) -> Result<Vec<ResourceTag>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        tags_of(&mut conn, image_id).await
    }

    async fn change(
        &self,
        image_id: Uuid,
        put: &[ResourceTag],
        remove: &[String],
        event: &AuditEvent,
    ) -> Result<Vec<ResourceTag>> {
        let mut tx = begin(&self.pool).await?;
        // FOR SHARE keeps the image from being deleted until the tags commit.
        let live: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM images WHERE id = $1 AND deleted_at IS NULL FOR SHARE")
                .bind(image_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if live.is_none() {
            return Err(CatalogError::NotFound(format!("image {image_id}")));
        }
        if !remove.is_empty() {
            sqlx::query("DELETE FROM image_resource_tags WHERE image_id = $1 AND key = ANY($2)")
                .bind(image_id)
                .bind(remove)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for tag in put {
            sqlx::query(
                "INSERT INTO image_resource_tags (image_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (image_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(image_id)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let tags = tags_of(&mut tx, image_id).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(tags)
    }

    async fn of_project(&self, project: &str) -> Result<Vec<(Image, Vec<ResourceTag>)>> {
        // One statement: each image with its own tags, from one snapshot.
        let sql = format!(
            "SELECT {IMAGE_FIELDS}, \
             ARRAY(SELECT key FROM image_resource_tags r WHERE r.image_id = images.id ORDER BY key) \
             AS resource_tag_keys, \
             ARRAY(SELECT value FROM image_resource_tags r WHERE r.image_id = images.id ORDER BY key) \
             AS resource_tag_values \
             FROM images WHERE owner = $1 AND deleted_at IS NULL ORDER BY created_at, created_at_ns, id"
        );
        let rows = sqlx::query(&sql).bind(project).fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let tags = pair(get(row, "resource_tag_keys")?, get(row, "resource_tag_values")?)?;
                Ok((image_from_row(row)?, tags))
            })
            .collect()
    }
}
