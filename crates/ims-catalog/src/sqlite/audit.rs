//! The audit trail on SQLite. Every write transaction holds the database's write lock from its first
//! statement (`BEGIN IMMEDIATE`), so chaining an event right after inserting it, inside that transaction,
//! is already serialized against every other writer on every process.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};

use super::{begin_write, commit, db_err, fmt_time, get, parse_time};
use crate::audit_chain::GENESIS_HASH;
use crate::{AuditEvent, AuditQuery, AuditRecord, AuditRepository, CatalogError, Result};

const EVENT_COLUMNS: &str =
    "seq, at, request_id, project_id, user_id, source_address, action, resource, result, error, detail";

pub struct SqliteAudit {
    pool: SqlitePool,
}

impl SqliteAudit {
    pub fn new(pool: SqlitePool) -> SqliteAudit {
        SqliteAudit { pool }
    }
}

#[async_trait]
impl AuditRepository for SqliteAudit {
    async fn record(&self, event: &AuditEvent) -> Result<AuditRecord> {
        let mut tx = begin_write(&self.pool).await?;
        let record = append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(record)
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS}, chain_position, prev_hash, hash FROM audit_events WHERE chain_position IS NOT NULL"
        ));
        if let Some(since) = &query.since {
            sql.push(" AND at >= ").push_bind(fmt_time(since));
        }
        if let Some(until) = &query.until {
            sql.push(" AND at < ").push_bind(fmt_time(until));
        }
        for (column, value) in [
            ("project_id", &query.project_id),
            ("user_id", &query.user_id),
            ("resource", &query.resource),
            ("result", &query.result),
        ] {
            if let Some(value) = value {
                sql.push(format!(" AND {column} = ")).push_bind(value.clone());
            }
        }
        match query.action_match() {
            (Some(exact), _) => {
                sql.push(" AND action = ").push_bind(exact.to_string());
            }
            (None, Some(prefix)) => {
                sql.push(" AND substr(action, 1, length(").push_bind(prefix.to_string());
                sql.push(")) = ").push_bind(prefix.to_string());
            }
            (None, None) => {}
        }
        let position = |p: u64| i64::try_from(p).unwrap_or(i64::MAX);
        if let Some(marker) = query.marker {
            let op = if query.newest_first { " AND chain_position < " } else { " AND chain_position > " };
            sql.push(op).push_bind(position(marker));
        }
        sql.push(if query.newest_first { " ORDER BY chain_position DESC" } else { " ORDER BY chain_position" });
        sql.push(" LIMIT ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(record_from_row).collect()
    }
}

/// Inserts `event` and chains it, inside the caller's write transaction.
pub(super) async fn append(tx: &mut Transaction<'static, Sqlite>, event: &AuditEvent) -> Result<AuditRecord> {
    sqlx::query(
        "INSERT INTO audit_events (at, request_id, project_id, user_id, source_address, action, resource, result, \
         error, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(fmt_time(&event.at))
    .bind(&event.request_id)
    .bind(&event.project_id)
    .bind(&event.user_id)
    .bind(&event.source_address)
    .bind(&event.action)
    .bind(&event.resource)
    .bind(&event.result)
    .bind(&event.error)
    .bind(&event.detail)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    seal_pending(tx).await?.pop().ok_or_else(|| CatalogError::Database("audit event vanished".into()))
}

/// Chains every unchained event (in `seq` order) after the current head, inside the caller's write
/// transaction, and returns them as chained. Rows from before the chain existed are chained this way
/// when the catalog is opened.
pub(super) async fn seal_pending(tx: &mut Transaction<'static, Sqlite>) -> Result<Vec<AuditRecord>> {
    let pending = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain_position IS NULL ORDER BY seq"
    ))
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let head = sqlx::query(
        "SELECT chain_position, hash FROM audit_events WHERE chain_position IS NOT NULL \
         ORDER BY chain_position DESC LIMIT 1",
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    let (mut position, mut prev_hash) = match head {
        Some(row) => (get::<i64>(&row, "chain_position")?, get::<String>(&row, "hash")?),
        None => (0, GENESIS_HASH.to_string()),
    };
    let mut sealed = Vec::with_capacity(pending.len());
    for row in &pending {
        let seq: i64 = get(row, "seq")?;
        position += 1;
        let record = AuditRecord::chain(stored_position(position)?, &prev_hash, event_from_row(row)?);
        sqlx::query("UPDATE audit_events SET chain_position = ?, prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(position)
            .bind(&record.prev_hash)
            .bind(&record.hash)
            .bind(seq)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        prev_hash = record.hash.clone();
        sealed.push(record);
    }
    Ok(sealed)
}

/// Chains the rows written before the chain existed (a no-op on a chained trail).
pub(super) async fn seal_legacy(pool: &SqlitePool) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    seal_pending(&mut tx).await?;
    commit(tx).await
}

fn stored_position(p: i64) -> Result<u64> {
    u64::try_from(p).map_err(|_| CatalogError::Database(format!("bad audit position {p} in database")))
}

/// The event of a row selected with [`EVENT_COLUMNS`].
pub(super) fn event_from_row(row: &SqliteRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        at: parse_time(&get::<String>(row, "at")?)?,
        request_id: get(row, "request_id")?,
        project_id: get(row, "project_id")?,
        user_id: get(row, "user_id")?,
        source_address: get(row, "source_address")?,
        action: get(row, "action")?,
        resource: get(row, "resource")?,
        result: get(row, "result")?,
        error: get(row, "error")?,
        detail: get(row, "detail")?,
    })
}

fn record_from_row(row: &SqliteRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        position: stored_position(get(row, "chain_position")?)?,
        event: event_from_row(row)?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}
