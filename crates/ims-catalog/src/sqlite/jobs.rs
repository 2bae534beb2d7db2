//! [`JobRepository`] over SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use super::{begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_opt_time, parse_stored, parse_time};
use crate::repo::JobRepository;
use crate::{AuditEvent, CatalogError, Job, JobStatus, Result};

const JOB_COLUMNS: &str = "id, job_type, project_id, status, progress, entities, params, error_code, fail_reason, \
     attempts, created_at, updated_at, begin_time, end_time";

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

#[async_trait]
impl JobRepository for SqliteJobs {
    async fn create(&self, job: &Job, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_db(|| format!("job {} exists", job.id)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, id: &str) -> Result<Job> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("job {id}")))?;
        job_from_row(&row)
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
    })
}
