//! The audit trail on PostgreSQL. A write inserts its event unchained ([`insert`]); just before the
//! transaction commits, [`seal_pending`] takes a transaction-scoped advisory lock on the chain, held until
//! the commit, and chains the event after the current head. The head is then the last committed event,
//! whichever node wrote it, and no two writers chain after the same head (the unique indexes on
//! `chain_position` and `prev_hash` would refuse a fork anyway). The lock is held only for the sealing
//! and the commit.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::{begin, commit, db_err, get, get_time, split_time};
use crate::audit_chain::GENESIS_HASH;
use crate::{AuditEvent, AuditQuery, AuditRecord, AuditRepository, CatalogError, Result};

/// The columns an [`AuditEvent`] is read from.
pub(super) const EVENT_COLUMNS: &str =
    "seq, at, at_ns, request_id, project_id, user_id, source_address, action, resource, result, error, detail";

/// Key of the advisory lock that serializes appends to the chain.
const CHAIN_LOCK: &str = "ims.audit_events.chain";

/// The audit repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresAudit {
    pool: PgPool,
}

impl PostgresAudit {
    pub(super) fn new(pool: PgPool) -> PostgresAudit {
        PostgresAudit { pool }
    }
}

#[async_trait]
impl AuditRepository for PostgresAudit {
    async fn record(&self, event: &AuditEvent) -> Result<AuditRecord> {
        let mut tx = begin(&self.pool).await?;
        insert(&mut tx, event).await?;
        let record = seal_pending(&mut tx).await?.pop();
        tx.commit().await.map_err(db_err)?;
        record.ok_or_else(|| CatalogError::Database("audit event vanished".into()))
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = QueryBuilder::<Postgres>::new(format!(
            "SELECT {EVENT_COLUMNS}, chain_position, prev_hash, hash FROM audit_events \
             WHERE chain_position IS NOT NULL"
        ));
        if let Some(since) = &query.since {
            let (at, ns) = split_time(since);
            sql.push(" AND (at, at_ns) >= (").push_bind(at).push(", ").push_bind(ns).push(")");
        }
        if let Some(until) = &query.until {
            let (at, ns) = split_time(until);
            sql.push(" AND (at, at_ns) < (").push_bind(at).push(", ").push_bind(ns).push(")");
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
                sql.push(" AND starts_with(action, ").push_bind(prefix.to_string()).push(")");
            }
            (None, None) => {}
        }
        if let Some(marker) = query.marker {
            let op = if query.newest_first { " AND chain_position < " } else { " AND chain_position > " };
            sql.push(op).push_bind(i64::try_from(marker).unwrap_or(i64::MAX));
        }
        sql.push(if query.newest_first { " ORDER BY chain_position DESC" } else { " ORDER BY chain_position" });
        sql.push(" LIMIT ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(record_from_row).collect()
    }
}

/// Inserts `event`, not chained yet, inside the caller's transaction; [`seal_pending`] chains it.
pub(super) async fn insert(conn: &mut PgConnection, event: &AuditEvent) -> Result<()> {
    let (at, at_ns) = split_time(&event.at);
    sqlx::query(
        "INSERT INTO audit_events (at, at_ns, request_id, project_id, user_id, source_address, action, resource, \
         result, error, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(at)
    .bind(at_ns)
    .bind(&event.request_id)
    .bind(&event.project_id)
    .bind(&event.user_id)
    .bind(&event.source_address)
    .bind(&event.action)
    .bind(&event.resource)
    .bind(&event.result)
    .bind(&event.error)
    .bind(&event.detail)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Chains every unchained event visible to the caller's transaction (its own, and rows written before the
/// chain existed), in `seq` order, after the current head, and returns them as chained. Takes the chain
/// lock (until the transaction ends) only when there is something to chain.
pub(super) async fn seal_pending(conn: &mut PgConnection) -> Result<Vec<AuditRecord>> {
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_events WHERE chain_position IS NULL)")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if !any {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(CHAIN_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    // Statements after the lock see every event chained before it (READ COMMITTED: a new snapshot each).
    let pending =
        sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain_position IS NULL ORDER BY seq"))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    let head = sqlx::query(
        "SELECT chain_position, hash FROM audit_events WHERE chain_position IS NOT NULL \
         ORDER BY chain_position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
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
        sqlx::query("UPDATE audit_events SET chain_position = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(position)
            .bind(&record.prev_hash)
            .bind(&record.hash)
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        prev_hash = record.hash.clone();
        sealed.push(record);
    }
    Ok(sealed)
}

/// Chains the rows written before the chain existed (a no-op on a chained trail).
pub(super) async fn seal_legacy(pool: &PgPool) -> Result<()> {
    commit(begin(pool).await?).await
}

fn stored_position(p: i64) -> Result<u64> {
    u64::try_from(p).map_err(|_| CatalogError::Database(format!("bad audit position {p} in database")))
}

/// The event of a row selected with [`EVENT_COLUMNS`].
pub(super) fn event_from_row(row: &PgRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        at: get_time(row, "at")?,
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

fn record_from_row(row: &PgRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        position: stored_position(get(row, "chain_position")?)?,
        event: event_from_row(row)?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}
