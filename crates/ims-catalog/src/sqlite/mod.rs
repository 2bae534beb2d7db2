//! SQLite catalog: the embedded single-node backend.
//!
//! One [`SqliteCatalog`] owns a connection pool; [`SqliteCatalog::into_catalog`] hands out the three
//! repositories, which share that pool. Every write runs in one `BEGIN IMMEDIATE` transaction together with
//! the row of its audit event, so a write either applies with its audit row or not at all, and concurrent
//! writers (other tasks, other processes on the same file) wait on the busy timeout instead of failing.
//!
//! Storage conventions (mirrored by every dialect's migrations): ids are TEXT, timestamps are TEXT in
//! RFC 3339 UTC with a fixed nine-digit fraction (so string order is time order and values round-trip
//! exactly), booleans are INTEGER 0/1.

mod audit;
mod export;
mod compute;
mod encryption;
mod favorites;
mod share_auto_accept;
mod nbd_exports;
mod nodes;
mod identity;
mod images;
mod jobs;
mod market;
mod list;
mod members;
mod metadefs;
mod recycle_bin;
mod resource_tags;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::{AuditEvent, Catalog, CatalogError, Result};

pub use audit::SqliteAudit;
pub use encryption::SqliteEncryption;
pub use identity::SqliteIdentity;
pub use images::SqliteImages;
pub use jobs::SqliteJobs;
pub use members::SqliteMembers;
pub use resource_tags::SqliteResourceTags;

/// How long a statement waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of a file database's pool (an in-memory database always has exactly one).
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite catalog database.
///
/// Cloning is cheap: clones share the pool.
#[derive(Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

impl SqliteCatalog {
    /// Opens `url` and runs every pending migration before returning.
    ///
    /// `sqlite://PATH` opens the file at PATH (`sqlite:///abs/path` for an absolute one), creating it and
    /// its parent directory if missing, in WAL mode with foreign keys on and a 5 s busy timeout.
    /// `sqlite::memory:` opens a fresh private in-memory database held by a single connection that is never
    /// recycled, so every repository sees the same data for the life of the catalog.
    pub async fn connect(url: &str) -> Result<SqliteCatalog> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(|e| CatalogError::Invalid(format!("bad SQLite URL {url:?}: {e}")))?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool_options = if in_memory {
            SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| {
                        CatalogError::Database(format!("cannot create directory {}: {e}", dir.display()))
                    })?;
                }
            }
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|e| CatalogError::Database(format!("cannot open {url:?}: {e}")))?;
        MIGRATOR.run(&pool).await.map_err(|e| CatalogError::Database(format!("migrating {url:?}: {e}")))?;
        audit::seal_legacy(&pool).await?;
        Ok(SqliteCatalog { pool })
    }

    /// The repositories over this database.
    pub fn into_catalog(self) -> Catalog {
        Catalog {
            images: Arc::new(SqliteImages::new(self.pool.clone())),
            members: Arc::new(SqliteMembers::new(self.pool.clone())),
            identity: Arc::new(SqliteIdentity::new(self.pool.clone())),
            resource_tags: Arc::new(SqliteResourceTags::new(self.pool.clone())),
            encryption: Arc::new(SqliteEncryption::new(self.pool.clone())),
            audit: Arc::new(SqliteAudit::new(self.pool.clone())),
            favorites: Arc::new(favorites::SqliteFavorites::new(self.pool.clone())),
            share_auto_accept: Arc::new(share_auto_accept::SqliteShareAutoAccept::new(self.pool.clone())),
            nbd_exports: Arc::new(nbd_exports::SqliteNbdExports::new(self.pool.clone())),
            nodes: Arc::new(nodes::SqliteNodes::new(self.pool.clone())),
            recycle_bin: Arc::new(recycle_bin::SqliteRecycleBin::new(self.pool.clone())),
            lineage: Arc::new(recycle_bin::SqliteRecycleBin::new(self.pool.clone())),
            compute: Arc::new(compute::SqliteCompute::new(self.pool.clone())),
            market: Arc::new(market::SqliteMarket::new(self.pool.clone())),
            metadefs: Arc::new(metadefs::SqliteMetadefs::new(self.pool.clone())),
            jobs: Arc::new(SqliteJobs::new(self.pool)),
        }
    }

    /// Number of rows in the audit trail (inspection for tests and operators).
    pub async fn audit_count(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&self.pool).await.map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The `limit` most recent audit events, newest first.
    pub async fn recent_audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT seq, at, request_id, project_id, user_id, source_address, action, resource, result, error, \
             detail FROM audit_events ORDER BY seq DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit::event_from_row).collect()
    }
}

/// Starts a write transaction holding the database's write lock from its first statement, so that a
/// read-then-write inside it cannot fail on lock upgrade.
async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
}

/// Commits `tx`.
async fn commit(tx: Transaction<'static, Sqlite>) -> Result<()> {
    tx.commit().await.map_err(db_err)
}

/// Appends `event` to the audit trail inside `tx`, chained after the current head.
async fn insert_audit(tx: &mut Transaction<'static, Sqlite>, event: &AuditEvent) -> Result<()> {
    audit::append(tx, event).await.map(drop)
}

/// Maps a driver error: unique violations become `Conflict`, everything else `Database`.
fn db_err(e: sqlx::Error) -> CatalogError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return CatalogError::Conflict(d.message().to_string());
        }
    }
    CatalogError::Database(e.to_string())
}

/// Like [`db_err`] but with the caller's message for a unique violation.
fn conflict_or_db(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> CatalogError {
    move |e| match db_err(e) {
        CatalogError::Conflict(_) => CatalogError::Conflict(what()),
        other => other,
    }
}

/// The stored form of a timestamp: RFC 3339 UTC, nine fraction digits, `Z`.
fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a stored timestamp.
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| CatalogError::Database(format!("bad timestamp {s:?} in database: {e}")))
}

fn parse_opt_time(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

/// Reads column `col` of `row`, mapping a missing column or a type mismatch to `Database`.
fn get<'r, T>(row: &'r sqlx::sqlite::SqliteRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(col).map_err(|e| CatalogError::Database(format!("column {col}: {e}")))
}

/// Parses a stored enum value (status, visibility, role, ...), which only a corrupt row can get wrong.
fn parse_stored<T: FromStr<Err = CatalogError>>(s: &str) -> Result<T> {
    s.parse().map_err(|e: CatalogError| CatalogError::Database(format!("bad value in database: {e}")))
}

fn parse_uuid(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|e| CatalogError::Database(format!("bad id {s:?} in database: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_have_fixed_width_and_round_trip() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        assert_eq!(fmt_time(&t), "2024-01-02T03:04:05.000000000Z");
        let now = Utc::now();
        assert_eq!(parse_time(&fmt_time(&now)).unwrap(), now);
    }
}
