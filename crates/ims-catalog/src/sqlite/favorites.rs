//! [`FavoriteRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{begin_write, commit, db_err, fmt_time, get, insert_audit, parse_time, parse_uuid};
use crate::favorite::{Favorite, FavoriteRepository};
use crate::{AuditEvent, CatalogError, Result};

/// The favourites repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteFavorites {
    pool: SqlitePool,
}

impl SqliteFavorites {
    pub(super) fn new(pool: SqlitePool) -> SqliteFavorites {
        SqliteFavorites { pool }
    }
}

#[async_trait]
impl FavoriteRepository for SqliteFavorites {
    async fn add(
        &self,
        user_id: &str,
        image_id: Uuid,
        added_at: DateTime<Utc>,
        max_per_user: u64,
        event: &AuditEvent,
    ) -> Result<bool> {
        let image = image_id.to_string();
        let mut tx = begin_write(&self.pool).await?;
        let user_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !user_exists {
            return Err(CatalogError::NotFound(format!("user {user_id}")));
        }
        let image_live: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM images WHERE id = ? AND deleted_at IS NULL)")
                .bind(&image)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if !image_live {
            return Err(CatalogError::NotFound(format!("image {image_id}")));
        }
        let listed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM image_favorites WHERE user_id = ? AND image_id = ?)")
                .bind(user_id)
                .bind(&image)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if listed {
            return Ok(false);
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM image_favorites WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if u64::try_from(count).unwrap_or(0) >= max_per_user {
            return Err(CatalogError::LimitExceeded(format!(
                "user {user_id} has {count} favourite image(s); at most {max_per_user} are allowed"
            )));
        }
        sqlx::query("INSERT INTO image_favorites (user_id, image_id, added_at) VALUES (?, ?, ?)")
            .bind(user_id)
            .bind(&image)
            .bind(fmt_time(&added_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn remove(&self, user_id: &str, image_id: Uuid, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM image_favorites WHERE user_id = ? AND image_id = ?")
            .bind(user_id)
            .bind(image_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if removed == 0 {
            return Err(CatalogError::NotFound(format!("image {image_id} in the favourites of user {user_id}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list(&self, user_id: &str) -> Result<Vec<Favorite>> {
        let rows = sqlx::query(
            "SELECT f.image_id, f.added_at FROM image_favorites f JOIN images i ON i.id = f.image_id \
             WHERE f.user_id = ? AND i.deleted_at IS NULL ORDER BY f.added_at DESC, f.image_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(Favorite {
                    image_id: parse_uuid(&get::<String>(row, "image_id")?)?,
                    added_at: parse_time(&get::<String>(row, "added_at")?)?,
                })
            })
            .collect()
    }
}
