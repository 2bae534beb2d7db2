//! The SQLite side of a catalog migration (see [`crate::transfer`]): rows read page by page in `rowid`
//! order and converted to the PostgreSQL column types.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;

use super::{db_err, SqliteCatalog};
use crate::transfer::{split_stored_time, Bind, ColumnKind, Pass, Row, SourceActivity, Table};
use crate::{CatalogError, Result};

impl SqliteCatalog {
    /// Up to `limit` rows of `table` (those of `pass`) with a `rowid` above `after`, in `rowid` order, each
    /// with its `rowid` and converted to the target's columns ([`crate::transfer::target_columns`]).
    /// A value that does not convert (a malformed timestamp, ...) is `Invalid` naming the table and row.
    pub async fn export_page(&self, table: &Table, pass: Pass, after: i64, limit: u32) -> Result<Vec<(i64, Row)>> {
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let filter = match (pass, table.self_parent) {
            (Pass::Roots, Some(parent)) => format!(" AND {parent} IS NULL"),
            (Pass::Children, Some(parent)) => format!(" AND {parent} IS NOT NULL"),
            _ => String::new(),
        };
        let sql = format!(
            "SELECT rowid, {} FROM {} WHERE rowid > ?{filter} ORDER BY rowid LIMIT ?",
            columns.join(", "),
            table.name
        );
        let rows = sqlx::query(&sql).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let rowid: i64 = row.try_get(0).map_err(db_err)?;
                let converted = convert_row(table, row)
                    .map_err(|e| CatalogError::Invalid(format!("table {} row {rowid}: {e}", table.name)))?;
                Ok((rowid, converted))
            })
            .collect()
    }

    /// Jobs still waiting or running, and the latest node heartbeat: what says that `ims serve` may still
    /// be using this catalog. Reads only.
    pub async fn activity(&self) -> Result<SourceActivity> {
        let unfinished: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('INIT', 'RUNNING')")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        let heartbeat: Option<String> =
            sqlx::query_scalar("SELECT MAX(heartbeat_at) FROM nodes").fetch_one(&self.pool).await.map_err(db_err)?;
        let last_node_heartbeat = heartbeat
            .map(|text| DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)))
            .transpose()
            .map_err(|e| CatalogError::Database(format!("bad heartbeat time in database: {e}")))?;
        Ok(SourceActivity { unfinished_jobs: u64::try_from(unfinished).unwrap_or(0), last_node_heartbeat })
    }

    /// Every distinct (master key id, wrapped data key) that encrypted image or volume data was written
    /// under: what it takes to decrypt every encrypted chunk of the store. Reads only.
    pub async fn data_keys(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(
            "SELECT key_id, wrapped_data_key FROM image_encryption \
             UNION SELECT encryption_key_id, wrapped_data_key FROM volumes \
             WHERE encryption_key_id IS NOT NULL AND wrapped_data_key IS NOT NULL \
             UNION SELECT key_id, wrapped_data_key FROM encryption_domains",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

fn convert_row(table: &Table, row: &SqliteRow) -> std::result::Result<Row, String> {
    let mut out = Vec::with_capacity(table.columns.len() + 4);
    for (i, column) in table.columns.iter().enumerate() {
        let at = i + 1;
        let name = column.name;
        let text = || row.try_get::<Option<String>, _>(at).map_err(|e| format!("column {name}: {e}"));
        let int = || row.try_get::<Option<i64>, _>(at).map_err(|e| format!("column {name}: {e}"));
        match column.kind {
            ColumnKind::Text => out.push(Bind::Text(text()?)),
            ColumnKind::Uuid => {
                let value = text()?;
                if let Some(v) = &value {
                    uuid::Uuid::parse_str(v).map_err(|e| format!("column {name}: bad uuid {v:?}: {e}"))?;
                }
                out.push(Bind::Cast(value, "uuid"));
            }
            ColumnKind::Json => {
                let value = text()?;
                if let Some(v) = &value {
                    serde_json::from_str::<serde_json::Value>(v).map_err(|e| format!("column {name}: bad JSON: {e}"))?;
                }
                out.push(Bind::Cast(value, "jsonb"));
            }
            ColumnKind::Integer => out.push(Bind::Int(int()?)),
            ColumnKind::Boolean => {
                let value = match int()? {
                    None => None,
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    Some(other) => return Err(format!("column {name}: {other} is not a boolean")),
                };
                out.push(Bind::Bool(value));
            }
            ColumnKind::Real => {
                out.push(Bind::Real(row.try_get::<Option<f64>, _>(at).map_err(|e| format!("column {name}: {e}"))?))
            }
            ColumnKind::Time => match text()? {
                Some(v) => {
                    let (at, ns) = split_stored_time(&v).map_err(|e| e.to_string())?;
                    out.push(Bind::Time(Some(at)));
                    out.push(Bind::Small(Some(ns)));
                }
                None => {
                    out.push(Bind::Time(None));
                    out.push(Bind::Small(None));
                }
            },
            ColumnKind::PlainTime => {
                let value = text()?.map(|v| split_stored_time(&v).map(|(at, _)| at)).transpose();
                out.push(Bind::Time(value.map_err(|e| e.to_string())?));
            }
        }
    }
    Ok(out)
}
