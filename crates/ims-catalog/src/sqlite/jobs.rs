//! [`JobRepository`] over SQLite.
//!
//! Claims are one `UPDATE ... WHERE id = (SELECT ...) RETURNING` inside a `BEGIN IMMEDIATE` transaction,
//! which holds the database's write lock: two workers (tasks or processes) never claim the same job.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::images::{insert_image, save_image};
use super::{begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_opt_time, parse_stored, parse_time};
use crate::repo::JobRepository;
use crate::{AuditEvent, CatalogError, ImageChange, Job, JobFilter, JobOutcome, JobStatus, Result};

const JOB_COLUMNS: &str = "id, job_type, project_id, status, progress, entities, params, error_code, fail_reason, \
     attempts, created_at, updated_at, begin_time, end_time, claimed_by, heartbeat_at, run_after, parent_id, \
     result, cancel_requested";

/// The job repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteJobs {
    pool: SqlitePool,
}

impl SqliteJobs {
    pub(super) fn new(pool: SqlitePool) -> SqliteJobs {
        SqliteJobs { pool }
    }
}

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

async fn insert_job(conn: &mut SqliteConnection, job: &Job) -> Result<()> {
    if let Some(parent) = &job.parent_id {
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = ?")
            .bind(parent)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(CatalogError::NotFound(format!("parent job {parent}")));
        }
    }
    sqlx::query(&format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&job.id)
    .bind(&job.job_type)
    .bind(&job.project_id)
    .bind(job.status.as_str())
    .bind(job.progress)
    .bind(json_text(&job.entities))
    .bind(json_text(&job.params))
    .bind(&job.error_code)
    .bind(&job.fail_reason)
    .bind(job.attempts)
    .bind(fmt_time(&job.created_at))
    .bind(fmt_time(&job.updated_at))
    .bind(job.begin_time.as_ref().map(fmt_time))
    .bind(job.end_time.as_ref().map(fmt_time))
    .bind(&job.claimed_by)
    .bind(job.heartbeat_at.as_ref().map(fmt_time))
    .bind(job.run_after.as_ref().map(fmt_time))
    .bind(&job.parent_id)
    .bind(job.result.as_ref().map(json_text))
    .bind(i64::from(job.cancel_requested))
    .execute(&mut *conn)
    .await
    .map_err(conflict_or_db(|| format!("job {} exists", job.id)))?;
    Ok(())
}

async fn fetch_job(conn: &mut SqliteConnection, id: &str) -> Result<Job> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| CatalogError::NotFound(format!("job {id}")))?;
    job_from_row(&row)
}

/// The error for a worker's write that matched no row: `NotFound`, or `Conflict` naming who holds it now.
async fn not_held(conn: &mut SqliteConnection, id: &str, worker: &str) -> CatalogError {
    match fetch_job(conn, id).await {
        Ok(job) => CatalogError::Conflict(format!(
            "job {id} is {} held by {}, not by {worker}",
            job.status,
            job.claimed_by.as_deref().unwrap_or("nobody")
        )),
        Err(e) => e,
    }
}

#[async_trait]
impl JobRepository for SqliteJobs {
    async fn create(&self, job: &Job, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        insert_job(&mut tx, job).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_with_image(&self, job: &Job, change: ImageChange<'_>, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        match change {
            ImageChange::Create(image) => insert_image(&mut tx, image).await?,
            ImageChange::Save { image, expected } => save_image(&mut tx, image, expected).await?,
        }
        insert_job(&mut tx, job).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, id: &str) -> Result<Job> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        fetch_job(&mut conn, id).await
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
        if let Some(project) = &filter.project_id {
            qb.push(" AND project_id = ").push_bind(project.clone());
        }
        if let Some(parent) = &filter.parent_id {
            qb.push(" AND parent_id = ").push_bind(parent.clone());
        }
        if !filter.statuses.is_empty() {
            qb.push(" AND status IN (");
            let mut list = qb.separated(", ");
            for status in &filter.statuses {
                list.push_bind(status.as_str());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn update(&self, job: &Job) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = ?")
            .bind(&job.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let current: JobStatus = match current {
            None => return Err(CatalogError::NotFound(format!("job {}", job.id))),
            Some(s) => parse_stored(&s)?,
        };
        if current.is_final() {
            return Err(CatalogError::Conflict(format!("job {} is already {current}", job.id)));
        }
        sqlx::query(
            "UPDATE jobs SET status = ?, progress = ?, entities = ?, error_code = ?, fail_reason = ?, attempts = ?, \
             updated_at = ?, begin_time = ?, end_time = ? WHERE id = ?",
        )
        .bind(job.status.as_str())
        .bind(job.progress)
        .bind(json_text(&job.entities))
        .bind(&job.error_code)
        .bind(&job.fail_reason)
        .bind(job.attempts)
        .bind(fmt_time(&job.updated_at))
        .bind(job.begin_time.as_ref().map(fmt_time))
        .bind(job.end_time.as_ref().map(fmt_time))
        .bind(&job.id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await
    }

    async fn claim_next(&self, worker: &str, job_types: &[&str], now: DateTime<Utc>) -> Result<Option<Job>> {
        if job_types.is_empty() {
            return Ok(None);
        }
        let now = fmt_time(&now);
        let mut tx = begin_write(&self.pool).await?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE jobs SET status = 'RUNNING', claimed_by = ");
        qb.push_bind(worker.to_string())
            .push(", heartbeat_at = ")
            .push_bind(now.clone())
            .push(", attempts = attempts + 1, begin_time = COALESCE(begin_time, ")
            .push_bind(now.clone())
            .push("), updated_at = ")
            .push_bind(now.clone())
            .push(", run_after = NULL WHERE id = (SELECT id FROM jobs WHERE status = 'INIT' AND (run_after IS NULL OR run_after <= ")
            .push_bind(now.clone())
            .push(") AND job_type IN (");
        let mut types = qb.separated(", ");
        for t in job_types {
            types.push_bind(t.to_string());
        }
        qb.push(") ORDER BY created_at, id LIMIT 1) RETURNING ").push(JOB_COLUMNS);
        let row = qb.build().fetch_optional(&mut *tx).await.map_err(db_err)?;
        commit(tx).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        progress: Option<f64>,
        entities: Option<&serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if let Some(p) = progress {
            if !(0.0..=100.0).contains(&p) {
                return Err(CatalogError::Invalid(format!("progress {p} is not a percentage")));
            }
        }
        let now = fmt_time(&now);
        let mut tx = begin_write(&self.pool).await?;
        let cancel: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET heartbeat_at = ?, updated_at = ?, progress = COALESCE(?, progress), \
             entities = COALESCE(?, entities) WHERE id = ? AND status = 'RUNNING' AND claimed_by = ? \
             RETURNING cancel_requested",
        )
        .bind(&now)
        .bind(&now)
        .bind(progress)
        .bind(entities.map(json_text))
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        match cancel {
            Some(flag) => {
                commit(tx).await?;
                Ok(flag != 0)
            }
            None => Err(not_held(&mut tx, id, worker).await),
        }
    }

    async fn finish(&self, id: &str, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<Job> {
        let now = fmt_time(&now);
        let mut tx = begin_write(&self.pool).await?;
        let set = match outcome {
            JobOutcome::Success { .. } => {
                "status = 'SUCCESS', progress = 100, result = ?, error_code = NULL, fail_reason = NULL, \
                 claimed_by = NULL, end_time = ?, updated_at = ?"
            }
            JobOutcome::Fail { .. } => {
                "status = 'FAIL', error_code = ?, fail_reason = ?, claimed_by = NULL, end_time = ?, updated_at = ?"
            }
            JobOutcome::Retry { .. } => {
                "status = 'INIT', error_code = ?, fail_reason = ?, claimed_by = NULL, heartbeat_at = NULL, \
                 run_after = ?, updated_at = ?"
            }
            JobOutcome::Release => {
                "status = 'INIT', claimed_by = NULL, heartbeat_at = NULL, run_after = NULL, updated_at = ?"
            }
        };
        let sql = format!("UPDATE jobs SET {set} WHERE id = ? AND status = 'RUNNING' AND claimed_by = ?");
        let query = match outcome {
            JobOutcome::Success { result } => sqlx::query(&sql).bind(json_text(result)).bind(now.clone()).bind(now),
            JobOutcome::Fail { code, reason } => sqlx::query(&sql).bind(code).bind(reason).bind(now.clone()).bind(now),
            JobOutcome::Retry { run_after, code, reason } => {
                sqlx::query(&sql).bind(code).bind(reason).bind(fmt_time(run_after)).bind(now)
            }
            JobOutcome::Release => sqlx::query(&sql).bind(now),
        };
        let done = query.bind(id).bind(worker).execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        if done == 0 {
            return Err(not_held(&mut tx, id, worker).await);
        }
        let job = fetch_job(&mut tx, id).await?;
        commit(tx).await?;
        Ok(job)
    }

    async fn request_cancel(&self, id: &str, code: &str, reason: &str, now: DateTime<Utc>) -> Result<Job> {
        let now = fmt_time(&now);
        let mut tx = begin_write(&self.pool).await?;
        let job = fetch_job(&mut tx, id).await?;
        if job.status.is_final() {
            return Err(CatalogError::Conflict(format!("job {id} is already {}", job.status)));
        }
        // The job and its unfinished sub-jobs (one level: sub-jobs of sub-jobs are not made).
        let scope = "(id = ? OR parent_id = ?)";
        sqlx::query(&format!(
            "UPDATE jobs SET status = 'FAIL', error_code = ?, fail_reason = ?, end_time = ?, updated_at = ? \
             WHERE {scope} AND status = 'INIT'"
        ))
        .bind(code)
        .bind(reason)
        .bind(&now)
        .bind(&now)
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(&format!(
            "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE {scope} AND status = 'RUNNING'"
        ))
        .bind(&now)
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let job = fetch_job(&mut tx, id).await?;
        commit(tx).await?;
        Ok(job)
    }

    async fn take_over_stale(&self, stale_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>> {
        let mut tx = begin_write(&self.pool).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'INIT', claimed_by = NULL, heartbeat_at = NULL, run_after = NULL, \
             updated_at = ? WHERE status = 'RUNNING' AND claimed_by IS NOT NULL \
             AND (heartbeat_at IS NULL OR heartbeat_at < ?) RETURNING id",
        )
        .bind(fmt_time(&now))
        .bind(fmt_time(&stale_before))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(ids)
    }
}

fn parse_json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| CatalogError::Database(format!("bad JSON in jobs row: {e}")))
}

fn job_from_row(row: &SqliteRow) -> Result<Job> {
    Ok(Job {
        id: get(row, "id")?,
        job_type: get(row, "job_type")?,
        project_id: get(row, "project_id")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        progress: get(row, "progress")?,
        entities: parse_json(&get::<String>(row, "entities")?)?,
        params: parse_json(&get::<String>(row, "params")?)?,
        error_code: get(row, "error_code")?,
        fail_reason: get(row, "fail_reason")?,
        attempts: get(row, "attempts")?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
        begin_time: parse_opt_time(get(row, "begin_time")?)?,
        end_time: parse_opt_time(get(row, "end_time")?)?,
        claimed_by: get(row, "claimed_by")?,
        heartbeat_at: parse_opt_time(get(row, "heartbeat_at")?)?,
        run_after: parse_opt_time(get(row, "run_after")?)?,
        parent_id: get(row, "parent_id")?,
        result: get::<Option<String>>(row, "result")?.as_deref().map(parse_json).transpose()?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
    })
}
