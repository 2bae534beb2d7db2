//! PostgreSQL catalog: the backend of a deployment whose stateless nodes share one database.
//!
//! One [`PostgresCatalog`] owns a connection pool; [`PostgresCatalog::into_catalog`] hands out the
//! repositories, which share that pool. Every write runs in one transaction (READ COMMITTED) together with
//! the row of its audit event, chained into the audit hash chain at commit (see [`audit`]). What keeps
//! nodes from racing each other:
//! - state transitions are a single `UPDATE ... WHERE status = ANY(expected)`: a concurrent writer of the
//!   same row waits for the row lock and re-checks the condition against the committed row, so exactly one
//!   of N concurrent compare-and-set transitions applies;
//! - everything that counts a project's images and then writes (quota checks, project deletion) first takes
//!   a transaction-scoped advisory lock on the owner ([`lock_owner`]), which every image creation takes too;
//! - writes that need a parent row to stay as it is (a member or tag of a live image, a role in an existing
//!   project) lock that row `FOR SHARE` / `FOR UPDATE` before writing;
//! - unique constraints decide duplicates (`Conflict`).
//!
//! Storage conventions (see `migrations/postgres/0001_catalog.sql`): image ids are `uuid`, other ids
//! `text`; a timestamp is a `timestamptz` (microseconds) plus a `<column>_ns` `smallint` with the
//! nanoseconds below the microsecond, so times round-trip exactly; ordered text uses the "C" collation.
//!
//! Errors: a lost or refused connection, an exhausted pool or a server shutting down is
//! [`CatalogError::Unavailable`]; a value PostgreSQL cannot store (a NUL character in text, ...) is
//! `Invalid`; a unique violation is `Conflict`.

mod audit;
mod import;
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

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::{AuditEvent, Catalog, CatalogError, Result};

pub use audit::PostgresAudit;
pub use encryption::PostgresEncryption;
pub use identity::PostgresIdentity;
pub use images::PostgresImages;
pub use jobs::PostgresJobs;
pub use members::PostgresMembers;
pub use resource_tags::PostgresResourceTags;

/// Connections of one node's pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a free connection (or for a new one to open) before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL catalog database.
///
/// Cloning is cheap: clones share the pool.
#[derive(Clone)]
pub struct PostgresCatalog {
    pool: PgPool,
}

impl PostgresCatalog {
    /// Opens `url` (`postgres://user:password@host:port/database?options`, or `postgresql://...`) and runs
    /// every pending migration before returning. The database must exist; its schema is created on first
    /// use. Migrations hold PostgreSQL's advisory migration lock, so nodes starting together apply them once.
    ///
    /// `Invalid` for a URL that does not parse, `Unavailable` when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<PostgresCatalog> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| CatalogError::Invalid(format!("bad PostgreSQL URL: {e}")))?
            .application_name("ims");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| match db_err(e) {
                CatalogError::Unavailable(m) => CatalogError::Unavailable(format!("cannot connect: {m}")),
                other => other,
            })?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => db_err(e),
            other => CatalogError::Database(format!("migrating the catalog: {other}")),
        })?;
        audit::seal_legacy(&pool).await?;
        Ok(PostgresCatalog { pool })
    }

    /// The repositories over this database.
    pub fn into_catalog(self) -> Catalog {
        Catalog {
            images: Arc::new(PostgresImages::new(self.pool.clone())),
            members: Arc::new(PostgresMembers::new(self.pool.clone())),
            identity: Arc::new(PostgresIdentity::new(self.pool.clone())),
            resource_tags: Arc::new(PostgresResourceTags::new(self.pool.clone())),
            encryption: Arc::new(PostgresEncryption::new(self.pool.clone())),
            audit: Arc::new(PostgresAudit::new(self.pool.clone())),
            favorites: Arc::new(favorites::PostgresFavorites::new(self.pool.clone())),
            share_auto_accept: Arc::new(share_auto_accept::PostgresShareAutoAccept::new(self.pool.clone())),
            nbd_exports: Arc::new(nbd_exports::PostgresNbdExports::new(self.pool.clone())),
            nodes: Arc::new(nodes::PostgresNodes::new(self.pool.clone())),
            recycle_bin: Arc::new(recycle_bin::PostgresRecycleBin::new(self.pool.clone())),
            lineage: Arc::new(recycle_bin::PostgresRecycleBin::new(self.pool.clone())),
            compute: Arc::new(compute::PostgresCompute::new(self.pool.clone())),
            market: Arc::new(market::PostgresMarket::new(self.pool.clone())),
            metadefs: Arc::new(metadefs::PostgresMetadefs::new(self.pool.clone())),
            jobs: Arc::new(PostgresJobs::new(self.pool)),
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
            "SELECT seq, at, at_ns, request_id, project_id, user_id, source_address, action, resource, result, \
             error, detail FROM audit_events ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(audit::event_from_row).collect()
    }
}

/// Starts a read-write transaction (READ COMMITTED).
async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    pool.begin().await.map_err(db_err)
}

/// Chains the audit events `tx` wrote (see [`audit`]), then commits it.
async fn commit(mut tx: Transaction<'static, Postgres>) -> Result<()> {
    audit::seal_pending(&mut tx).await?;
    tx.commit().await.map_err(db_err)
}

/// Takes the transaction-scoped advisory lock of the images owned by `owner`, held until commit or rollback.
/// Every transaction that creates an image or counts a project's images takes it first, so a count and
/// the write that depends on it see every other such transaction either entirely or not at all.
async fn lock_owner(conn: &mut PgConnection, owner: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('ims.images.owner:' || $1, 0))")
        .bind(owner)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Appends `event` to the audit trail inside the caller's transaction; [`commit`] chains it.
async fn insert_audit(conn: &mut PgConnection, event: &AuditEvent) -> Result<()> {
    audit::insert(conn, event).await.map(drop)
}

/// Maps a driver error to the catalog's kinds (see the module documentation).
fn db_err(e: sqlx::Error) -> CatalogError {
    match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if d.is_unique_violation() {
                CatalogError::Conflict(d.message().to_string())
            } else if code.starts_with("22") {
                // Data exception: a value the column cannot hold.
                CatalogError::Invalid(d.message().to_string())
            } else if ["08", "40", "53", "57P"].iter().any(|class| code.starts_with(class)) {
                // Connection exception, transaction rolled back (deadlock, serialization), insufficient
                // resources, server shutting down or not accepting connections yet: retrying may succeed.
                CatalogError::Unavailable(format!("{} (SQLSTATE {code})", d.message()))
            } else {
                CatalogError::Database(format!("{} (SQLSTATE {code})", d.message()))
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => CatalogError::Unavailable(e.to_string()),
        _ => CatalogError::Database(e.to_string()),
    }
}

/// Like [`db_err`] but with the caller's message for a unique violation.
fn conflict_or_db(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> CatalogError {
    move |e| match db_err(e) {
        CatalogError::Conflict(_) => CatalogError::Conflict(what()),
        other => other,
    }
}

/// Whether `e` is a foreign key violation (a referenced row is missing).
fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// The stored form of a timestamp: the instant truncated to the microsecond (what `timestamptz` holds
/// exactly) and the nanoseconds below it, 0 to 999.
fn split_time(t: &DateTime<Utc>) -> (DateTime<Utc>, i16) {
    let below_micro = t.timestamp_subsec_nanos() % 1000;
    (*t - chrono::Duration::nanoseconds(i64::from(below_micro)), below_micro as i16)
}

fn split_opt_time(t: Option<&DateTime<Utc>>) -> (Option<DateTime<Utc>>, Option<i16>) {
    match t.map(split_time) {
        Some((at, ns)) => (Some(at), Some(ns)),
        None => (None, None),
    }
}

/// Joins what [`split_time`] stored.
fn join_time(at: DateTime<Utc>, ns: i16) -> Result<DateTime<Utc>> {
    if !(0..1000).contains(&ns) {
        return Err(CatalogError::Database(format!("bad sub-microsecond part {ns} in database")));
    }
    Ok(at + chrono::Duration::nanoseconds(i64::from(ns)))
}

/// Reads the timestamp stored in columns `col` and `{col}_ns` of `row`.
fn get_time(row: &PgRow, col: &str) -> Result<DateTime<Utc>> {
    join_time(get(row, col)?, get(row, &format!("{col}_ns"))?)
}

/// Reads the optional timestamp stored in columns `col` and `{col}_ns` of `row`.
fn get_opt_time(row: &PgRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    match (get::<Option<DateTime<Utc>>>(row, col)?, get::<Option<i16>>(row, &format!("{col}_ns"))?) {
        (Some(at), Some(ns)) => join_time(at, ns).map(Some),
        (None, None) => Ok(None),
        _ => Err(CatalogError::Database(format!("{col} and {col}_ns disagree in database"))),
    }
}

/// Reads column `col` of `row`, mapping a missing column or a type mismatch to `Database`.
fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(col).map_err(|e| CatalogError::Database(format!("column {col}: {e}")))
}

/// Parses a stored enum value (status, visibility, role, ...), which only a corrupt row can get wrong.
fn parse_stored<T: FromStr<Err = CatalogError>>(s: &str) -> Result<T> {
    s.parse().map_err(|e: CatalogError| CatalogError::Database(format!("bad value in database: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_split_at_the_microsecond_and_join_back() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z").unwrap().with_timezone(&Utc);
        let (at, ns) = split_time(&t);
        assert_eq!(at, DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456Z").unwrap());
        assert_eq!(ns, 789);
        assert_eq!(join_time(at, ns).unwrap(), t);
        let before_epoch = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.000000001Z").unwrap().with_timezone(&Utc);
        let (at, ns) = split_time(&before_epoch);
        assert_eq!((at.timestamp_subsec_nanos(), ns), (0, 1));
        assert_eq!(join_time(at, ns).unwrap(), before_epoch);
        assert!(join_time(at, 1000).is_err());
    }
}
