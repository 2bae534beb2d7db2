//! [`ShareAutoAcceptRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::{begin_write, commit, db_err, fmt_time, insert_audit};
use crate::share_auto_accept::ShareAutoAcceptRepository;
use crate::{AuditEvent, CatalogError, Result};

/// The share auto-acceptance repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteShareAutoAccept {
    pool: SqlitePool,
}

impl SqliteShareAutoAccept {
    pub(super) fn new(pool: SqlitePool) -> SqliteShareAutoAccept {
        SqliteShareAutoAccept { pool }
    }
}

#[async_trait]
impl ShareAutoAcceptRepository for SqliteShareAutoAccept {
    async fn add(&self, project_id: &str, from_project: &str, at: DateTime<Utc>, event: &AuditEvent) -> Result<bool> {
        let mut tx = begin_write(&self.pool).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?)")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !exists {
            return Err(CatalogError::NotFound(format!("project {project_id}")));
        }
        let added = sqlx::query(
            "INSERT INTO share_auto_accept (project_id, from_project, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (project_id, from_project) DO NOTHING",
        )
        .bind(project_id)
        .bind(from_project)
        .bind(fmt_time(&at))
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
        let mut tx = begin_write(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM share_auto_accept WHERE project_id = ? AND from_project = ?")
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
        sqlx::query_scalar("SELECT from_project FROM share_auto_accept WHERE project_id = ? ORDER BY from_project")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn accepts(&self, project_id: &str, from_project: &str) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM share_auto_accept WHERE project_id = ? AND from_project = ?)",
        )
        .bind(project_id)
        .bind(from_project)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }
}
