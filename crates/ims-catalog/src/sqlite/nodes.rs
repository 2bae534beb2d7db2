//! [`NodeRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use super::{conflict_or_db, db_err, fmt_time, get, parse_stored, parse_time};
use crate::node::{Node, NodeRepository, NodeState};
use crate::{CatalogError, Result};

const COLUMNS: &str = "id, address, started_at, heartbeat_at, state";

/// The registered nodes of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteNodes {
    pool: SqlitePool,
}

impl SqliteNodes {
    pub(super) fn new(pool: SqlitePool) -> SqliteNodes {
        SqliteNodes { pool }
    }
}

fn node_of(row: &SqliteRow) -> Result<Node> {
    Ok(Node {
        id: get(row, "id")?,
        address: get(row, "address")?,
        started_at: parse_time(&get::<String>(row, "started_at")?)?,
        heartbeat_at: parse_time(&get::<String>(row, "heartbeat_at")?)?,
        state: parse_stored(&get::<String>(row, "state")?)?,
    })
}

fn not_found(id: &str) -> CatalogError {
    CatalogError::NotFound(format!("node {id}"))
}

#[async_trait]
impl NodeRepository for SqliteNodes {
    async fn register(&self, node: &Node) -> Result<()> {
        sqlx::query("INSERT INTO nodes (id, address, started_at, heartbeat_at, state) VALUES (?, ?, ?, ?, ?)")
            .bind(&node.id)
            .bind(&node.address)
            .bind(fmt_time(&node.started_at))
            .bind(fmt_time(&node.heartbeat_at))
            .bind(node.state.as_str())
            .execute(&self.pool)
            .await
            .map_err(conflict_or_db(|| format!("node {} is already registered", node.id)))?;
        Ok(())
    }

    async fn heartbeat(&self, id: &str, now: DateTime<Utc>, idle: bool) -> Result<NodeState> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE nodes SET heartbeat_at = ?, \
             state = CASE WHEN state = 'draining' AND ? THEN 'drained' ELSE state END \
             WHERE id = ? RETURNING state",
        )
        .bind(fmt_time(&now))
        .bind(idle)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        parse_stored(&state.ok_or_else(|| not_found(id))?)
    }

    async fn get(&self, id: &str) -> Result<Node> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM nodes WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        node_of(&row.ok_or_else(|| not_found(id))?)
    }

    async fn list(&self) -> Result<Vec<Node>> {
        // Stored times have a fixed width, so text order is time order.
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM nodes ORDER BY started_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(node_of).collect()
    }

    async fn drain(&self, id: &str) -> Result<Node> {
        let row = sqlx::query(&format!(
            "UPDATE nodes SET state = CASE WHEN state = 'active' THEN 'draining' ELSE state END \
             WHERE id = ? RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        node_of(&row.ok_or_else(|| not_found(id))?)
    }

    async fn deregister(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = ?").bind(id).execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    async fn forget_silent(&self, before: DateTime<Utc>) -> Result<Vec<String>> {
        sqlx::query_scalar("DELETE FROM nodes WHERE heartbeat_at < ? RETURNING id")
            .bind(fmt_time(&before))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }
}
