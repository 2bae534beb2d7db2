//! [`NodeRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgPool;

use super::{conflict_or_db, db_err, get, get_time, parse_stored, split_time};
use crate::node::{Node, NodeRepository, NodeState};
use crate::{CatalogError, Result};

const COLUMNS: &str = "id, address, started_at, started_at_ns, heartbeat_at, heartbeat_at_ns, state";

/// The registered nodes of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresNodes {
    pool: PgPool,
}

impl PostgresNodes {
    pub(super) fn new(pool: PgPool) -> PostgresNodes {
        PostgresNodes { pool }
    }
}

fn node_of(row: &PgRow) -> Result<Node> {
    Ok(Node {
        id: get(row, "id")?,
        address: get(row, "address")?,
        started_at: get_time(row, "started_at")?,
        heartbeat_at: get_time(row, "heartbeat_at")?,
        state: parse_stored(&get::<String>(row, "state")?)?,
    })
}

fn not_found(id: &str) -> CatalogError {
    CatalogError::NotFound(format!("node {id}"))
}

#[async_trait]
impl NodeRepository for PostgresNodes {
    async fn register(&self, node: &Node) -> Result<()> {
        let (started_at, started_at_ns) = split_time(&node.started_at);
        let (heartbeat_at, heartbeat_at_ns) = split_time(&node.heartbeat_at);
        sqlx::query(&format!("INSERT INTO nodes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&node.id)
            .bind(&node.address)
            .bind(started_at)
            .bind(started_at_ns)
            .bind(heartbeat_at)
            .bind(heartbeat_at_ns)
            .bind(node.state.as_str())
            .execute(&self.pool)
            .await
            .map_err(conflict_or_db(|| format!("node {} is already registered", node.id)))?;
        Ok(())
    }

    async fn heartbeat(&self, id: &str, now: DateTime<Utc>, idle: bool) -> Result<NodeState> {
        let (at, at_ns) = split_time(&now);
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE nodes SET heartbeat_at = $1, heartbeat_at_ns = $2, \
             state = CASE WHEN state = 'draining' AND $3 THEN 'drained' ELSE state END \
             WHERE id = $4 RETURNING state",
        )
        .bind(at)
        .bind(at_ns)
        .bind(idle)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        parse_stored(&state.ok_or_else(|| not_found(id))?)
    }

    async fn get(&self, id: &str) -> Result<Node> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        node_of(&row.ok_or_else(|| not_found(id))?)
    }

    async fn list(&self) -> Result<Vec<Node>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM nodes ORDER BY started_at, started_at_ns, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(node_of).collect()
    }

    async fn drain(&self, id: &str) -> Result<Node> {
        let row = sqlx::query(&format!(
            "UPDATE nodes SET state = CASE WHEN state = 'active' THEN 'draining' ELSE state END \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        node_of(&row.ok_or_else(|| not_found(id))?)
    }

    async fn deregister(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1").bind(id).execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    async fn forget_silent(&self, before: DateTime<Utc>) -> Result<Vec<String>> {
        let (at, at_ns) = split_time(&before);
        sqlx::query_scalar(
            "DELETE FROM nodes WHERE heartbeat_at < $1 OR (heartbeat_at = $1 AND heartbeat_at_ns < $2) RETURNING id",
        )
        .bind(at)
        .bind(at_ns)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}
