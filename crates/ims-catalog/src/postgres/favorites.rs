//! [`FavoriteRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{begin, commit, db_err, get, get_time, insert_audit, split_time};
use crate::favorite::{Favorite, FavoriteRepository};
use crate::{AuditEvent, CatalogError, Result};

/// The favourites repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresFavorites {
    pool: PgPool,
}

impl PostgresFavorites {
    pub(super) fn new(pool: PgPool) -> PostgresFavorites {
        PostgresFavorites { pool }
    }
}

#[async_trait]
impl FavoriteRepository for PostgresFavorites {
    async fn add(
        &self,
        user_id: &str,
        image_id: Uuid,
        added_at: DateTime<Utc>,
        max_per_user: u64,
        event: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = begin(&self.pool).await?;
        // Additions for one user take turns on the user's row, so each count sees the ones before it.
        let user: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if user.is_none() {
            return Err(CatalogError::NotFound(format!("user {user_id}")));
        }
        let image: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM images WHERE id = $1 AND deleted_at IS NULL FOR SHARE")
                .bind(image_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if image.is_none() {
            return Err(CatalogError::NotFound(format!("image {image_id}")));
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS listed, COUNT(*) FILTER (WHERE image_id = $2) AS this_one \
             FROM image_favorites WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(image_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let (listed, this_one): (i64, i64) = (get(&row, "listed")?, get(&row, "this_one")?);
        if this_one > 0 {
            return Ok(false);
        }
        if u64::try_from(listed).unwrap_or(0) >= max_per_user {
            return Err(CatalogError::LimitExceeded(format!(
                "user {user_id} has {listed} favourite image(s); at most {max_per_user} are allowed"
            )));
        }
        let (at, at_ns) = split_time(&added_at);
        sqlx::query("INSERT INTO image_favorites (user_id, image_id, added_at, added_at_ns) VALUES ($1, $2, $3, $4)")
            .bind(user_id)
            .bind(image_id)
            .bind(at)
            .bind(at_ns)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn remove(&self, user_id: &str, image_id: Uuid, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM image_favorites WHERE user_id = $1 AND image_id = $2")
            .bind(user_id)
            .bind(image_id)
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
            "SELECT f.image_id, f.added_at, f.added_at_ns FROM image_favorites f JOIN images i ON i.id = f.image_id \
             WHERE f.user_id = $1 AND i.deleted_at IS NULL \
             ORDER BY f.added_at DESC, f.added_at_ns DESC, f.image_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| Ok(Favorite { image_id: get(row, "image_id")?, added_at: get_time(row, "added_at")? }))
            .collect()
    }
}
