//! [`ShareAutoAcceptRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{begin, commit, db_err, insert_audit, split_time};
use crate::share_auto_accept::ShareAutoAcceptRepository;
use crate::{AuditEvent, CatalogError, Result};

/// The share auto-acceptance repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresShareAutoAccept {
    pool: PgPool,
}

impl PostgresShareAutoAccept {
    pub(super) fn new(pool: PgPool) -> PostgresShareAutoAccept {
        PostgresShareAutoAccept { pool }
    }
}

#[async_trait]
impl ShareAutoAcceptRepository for PostgresShareAutoAccept {
    async fn add(&self, project_id: &str, from_project: &str, at: DateTime<Utc>, event: &AuditEvent) -> Result<bool> {
        let mut tx = begin(&self.pool).await?;
        // FOR SHARE keeps the project from being deleted until this entry commits.
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = $1 FOR SHARE")
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(CatalogError::NotFound(format!("project {project_id}")));
        }
        let (created_at, created_at_ns) = split_time(&at);
        let added = sqlx::query(
            "INSERT INTO share_auto_accept (project_id, from_project, created_at, created_at_ns) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, from_project) DO NOTHING",
        )
        .bind(project_id)
        .bind(from_project)
        .bind(created_at)
        .bind(created_at_ns)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if added == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn remove(&self, project_id: &str, from_project: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM share_auto_accept WHERE project_id = $1 AND from_project = $2")
            .bind(project_id)
            .bind(from_project)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if removed == 0 {
            return Err(CatalogError::NotFound(format!("{from_project} in the auto-accept list of {project_id}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list(&self, project_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT from_project FROM share_auto_accept WHERE project_id = $1 ORDER BY from_project")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn accepts(&self, project_id: &str, from_project: &str) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM share_auto_accept WHERE project_id = $1 AND from_project = $2)",
        )
        .bind(project_id)
        .bind(from_project)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }
}
