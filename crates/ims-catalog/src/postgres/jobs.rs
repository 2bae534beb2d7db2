//! [`JobRepository`] over PostgreSQL.
//!
//! A claim is one `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)`: workers on any node claim
//! different jobs without waiting for each other, and a job locked by one claimer is skipped by the others
//! (or, if that claimer committed first, re-checked and no longer `INIT`). The writes a worker makes for
//! a job it holds (`heartbeat`, `finish`) carry `status = 'RUNNING' AND claimed_by = worker` in their
//! `WHERE`, so they apply only while it still holds the job.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::images::{create_image, save_image};
use super::{
    begin, commit, conflict_or_db, db_err, get, get_opt_time, get_time, insert_audit, is_foreign_key_violation,
    parse_stored, split_opt_time, split_time,
};
use crate::repo::JobRepository;
use crate::{AuditEvent, CatalogError, ImageChange, Job, JobFilter, JobOutcome, JobStatus, Result};

/// The columns a [`Job`] is read from (JSON columns as text).
const JOB_FIELDS: &str = "id, job_type, project_id, status, progress, entities::text AS entities, \
     params::text AS params, error_code, fail_reason, attempts, created_at, created_at_ns, updated_at, updated_at_ns, \
     begin_time, begin_time_ns, end_time, end_time_ns, claimed_by, heartbeat_at, heartbeat_at_ns, run_after, \
     run_after_ns, parent_id, result::text AS result, cancel_requested";

/// The job repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresJobs {
    pool: PgPool,
}

impl PostgresJobs {
    pub(super) fn new(pool: PgPool) -> PostgresJobs {
        PostgresJobs { pool }
    }
}

async fn insert_job(conn: &mut PgConnection, job: &Job) -> Result<()> {
    let (created_at, created_at_ns) = split_time(&job.created_at);
    let (updated_at, updated_at_ns) = split_time(&job.updated_at);
    let (begin_time, begin_time_ns) = split_opt_time(job.begin_time.as_ref());
    let (end_time, end_time_ns) = split_opt_time(job.end_time.as_ref());
    let (heartbeat_at, heartbeat_at_ns) = split_opt_time(job.heartbeat_at.as_ref());
    let (run_after, run_after_ns) = split_opt_time(job.run_after.as_ref());
    let result = sqlx::query(
        "INSERT INTO jobs (id, job_type, project_id, status, progress, entities, params, error_code, fail_reason, \
         attempts, created_at, created_at_ns, updated_at, updated_at_ns, begin_time, begin_time_ns, end_time, \
         end_time_ns, claimed_by, heartbeat_at, heartbeat_at_ns, run_after, run_after_ns, parent_id, result, \
         cancel_requested) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22, $23, $24, $25::jsonb, $26)",
    )
    .bind(&job.id)
    .bind(&job.job_type)
    .bind(&job.project_id)
    .bind(job.status.as_str())
    .bind(job.progress)
    .bind(job.entities.to_string())
    .bind(job.params.to_string())
    .bind(&job.error_code)
    .bind(&job.fail_reason)
    .bind(job.attempts)
    .bind(created_at)
    .bind(created_at_ns)
    .bind(updated_at)
    .bind(updated_at_ns)
    .bind(begin_time)
    .bind(begin_time_ns)
    .bind(end_time)
    .bind(end_time_ns)
    .bind(&job.claimed_by)
    .bind(heartbeat_at)
    .bind(heartbeat_at_ns)
    .bind(run_after)
    .bind(run_after_ns)
    .bind(&job.parent_id)
    .bind(job.result.as_ref().map(|r| r.to_string()))
    .bind(job.cancel_requested)
    .execute(&mut *conn)
    .await;
    if let Err(e) = &result {
        if is_foreign_key_violation(e) {
            return Err(CatalogError::NotFound(format!("parent job {}", job.parent_id.as_deref().unwrap_or("-"))));
        }
    }
    result.map_err(conflict_or_db(|| format!("job {} exists", job.id)))?;
    Ok(())
}

async fn fetch_job(conn: &mut PgConnection, id: &str) -> Result<Job> {
    let row = sqlx::query(&format!("SELECT {JOB_FIELDS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| CatalogError::NotFound(format!("job {id}")))?;
    job_from_row(&row)
}

/// The error for a worker's write that matched no row: `NotFound`, or `Conflict` naming who holds it now.
async fn not_held(conn: &mut PgConnection, id: &str, worker: &str) -> CatalogError {
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
impl JobRepository for PostgresJobs {
    async fn create(&self, job: &Job, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        insert_job(&mut tx, job).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_with_image(&self, job: &Job, change: ImageChange<'_>, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        match change {
            ImageChange::Create(image) => create_image(&mut tx, image).await?,
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
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_FIELDS} FROM jobs WHERE TRUE"));
        if let Some(project) = &filter.project_id {
            qb.push(" AND project_id = ").push_bind(project.clone());
        }
        if let Some(parent) = &filter.parent_id {
            qb.push(" AND parent_id = ").push_bind(parent.clone());
        }
        if !filter.statuses.is_empty() {
            let statuses: Vec<&'static str> = filter.statuses.iter().map(|s| s.as_str()).collect();
            qb.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
        qb.push(" ORDER BY created_at DESC, created_at_ns DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn update(&self, job: &Job) -> Result<()> {
        let (updated_at, updated_at_ns) = split_time(&job.updated_at);
        let (begin_time, begin_time_ns) = split_opt_time(job.begin_time.as_ref());
        let (end_time, end_time_ns) = split_opt_time(job.end_time.as_ref());
        let mut tx = begin(&self.pool).await?;
        // The row lock makes "not final yet" and the update one step against concurrent writers.
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 FOR UPDATE")
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
            "UPDATE jobs SET status = $1, progress = $2, entities = $3::jsonb, error_code = $4, fail_reason = $5, \
             attempts = $6, updated_at = $7, updated_at_ns = $8, begin_time = $9, begin_time_ns = $10, \
             end_time = $11, end_time_ns = $12 WHERE id = $13",
        )
        .bind(job.status.as_str())
        .bind(job.progress)
        .bind(job.entities.to_string())
        .bind(&job.error_code)
        .bind(&job.fail_reason)
        .bind(job.attempts)
        .bind(updated_at)
        .bind(updated_at_ns)
        .bind(begin_time)
        .bind(begin_time_ns)
        .bind(end_time)
        .bind(end_time_ns)
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
        let (now, now_ns) = split_time(&now);
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'RUNNING', claimed_by = $1, heartbeat_at = $2, heartbeat_at_ns = $3, \
             attempts = attempts + 1, begin_time = COALESCE(begin_time, $2), \
             begin_time_ns = COALESCE(begin_time_ns, $3), updated_at = $2, updated_at_ns = $3, \
             run_after = NULL, run_after_ns = NULL \
             WHERE status = 'INIT' AND id = (SELECT id FROM jobs WHERE status = 'INIT' AND job_type = ANY($4) \
             AND (run_after IS NULL OR (run_after, run_after_ns) <= ($2, $3)) \
             ORDER BY created_at, created_at_ns, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_FIELDS}"
        ))
        .bind(worker)
        .bind(now)
        .bind(now_ns)
        .bind(job_types)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
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
        let (now, now_ns) = split_time(&now);
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET heartbeat_at = $1, heartbeat_at_ns = $2, updated_at = $1, updated_at_ns = $2, \
             progress = COALESCE($3, progress), entities = COALESCE($4::jsonb, entities) \
             WHERE id = $5 AND status = 'RUNNING' AND claimed_by = $6 RETURNING cancel_requested",
        )
        .bind(now)
        .bind(now_ns)
        .bind(progress)
        .bind(entities.map(|e| e.to_string()))
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        match cancel {
            Some(flag) => Ok(flag),
            None => Err(not_held(&mut conn, id, worker).await),
        }
    }

    async fn finish(&self, id: &str, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<Job> {
        let (now, now_ns) = split_time(&now);
        // $1 id, $2 worker, $3/$4 now; the outcome's own values from $5.
        let held = "WHERE id = $1 AND status = 'RUNNING' AND claimed_by = $2";
        let set = match outcome {
            JobOutcome::Success { .. } => {
                "status = 'SUCCESS', progress = 100, result = $5::jsonb, error_code = NULL, fail_reason = NULL, \
                 claimed_by = NULL, end_time = $3, end_time_ns = $4"
            }
            JobOutcome::Fail { .. } => {
                "status = 'FAIL', error_code = $5, fail_reason = $6, claimed_by = NULL, end_time = $3, \
                 end_time_ns = $4"
            }
            JobOutcome::Retry { .. } => {
                "status = 'INIT', error_code = $5, fail_reason = $6, claimed_by = NULL, heartbeat_at = NULL, \
                 heartbeat_at_ns = NULL, run_after = $7, run_after_ns = $8"
            }
            JobOutcome::Release => {
                "status = 'INIT', claimed_by = NULL, heartbeat_at = NULL, heartbeat_at_ns = NULL, \
                 run_after = NULL, run_after_ns = NULL"
            }
        };
        let sql = format!("UPDATE jobs SET {set}, updated_at = $3, updated_at_ns = $4 {held} RETURNING {JOB_FIELDS}");
        let mut query = sqlx::query(&sql).bind(id).bind(worker).bind(now).bind(now_ns);
        query = match outcome {
            JobOutcome::Success { result } => query.bind(result.to_string()),
            JobOutcome::Fail { code, reason } => query.bind(code).bind(reason),
            JobOutcome::Retry { run_after, code, reason } => {
                let (run_after, run_after_ns) = split_time(run_after);
                query.bind(code).bind(reason).bind(run_after).bind(run_after_ns)
            }
            JobOutcome::Release => query,
        };
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        match query.fetch_optional(&mut *conn).await.map_err(db_err)? {
            Some(row) => job_from_row(&row),
            None => Err(not_held(&mut conn, id, worker).await),
        }
    }

    async fn request_cancel(&self, id: &str, code: &str, reason: &str, now: DateTime<Utc>) -> Result<Job> {
        let (now, now_ns) = split_time(&now);
        let mut tx = begin(&self.pool).await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let status: JobStatus = match status {
            None => return Err(CatalogError::NotFound(format!("job {id}"))),
            Some(s) => parse_stored(&s)?,
        };
        if status.is_final() {
            return Err(CatalogError::Conflict(format!("job {id} is already {status}")));
        }
        // The job and its unfinished sub-jobs (one level: sub-jobs of sub-jobs are not made).
        sqlx::query(
            "UPDATE jobs SET status = 'FAIL', error_code = $1, fail_reason = $2, end_time = $3, end_time_ns = $4, \
             updated_at = $3, updated_at_ns = $4 WHERE (id = $5 OR parent_id = $5) AND status = 'INIT'",
        )
        .bind(code)
        .bind(reason)
        .bind(now)
        .bind(now_ns)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE jobs SET cancel_requested = TRUE, updated_at = $1, updated_at_ns = $2 \
             WHERE (id = $3 OR parent_id = $3) AND status = 'RUNNING'",
        )
        .bind(now)
        .bind(now_ns)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let job = fetch_job(&mut tx, id).await?;
        commit(tx).await?;
        Ok(job)
    }

    async fn take_over_stale(&self, stale_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>> {
        let (now, now_ns) = split_time(&now);
        let (stale_before, stale_before_ns) = split_time(&stale_before);
        sqlx::query_scalar(
            "UPDATE jobs SET status = 'INIT', claimed_by = NULL, heartbeat_at = NULL, heartbeat_at_ns = NULL, \
             run_after = NULL, run_after_ns = NULL, updated_at = $1, updated_at_ns = $2 \
             WHERE status = 'RUNNING' AND claimed_by IS NOT NULL \
             AND (heartbeat_at IS NULL OR (heartbeat_at, heartbeat_at_ns) < ($3, $4)) RETURNING id",
        )
        .bind(now)
        .bind(now_ns)
        .bind(stale_before)
        .bind(stale_before_ns)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

fn parse_json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| CatalogError::Database(format!("bad JSON in jobs row: {e}")))
}

fn job_from_row(row: &PgRow) -> Result<Job> {
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
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        begin_time: get_opt_time(row, "begin_time")?,
        end_time: get_opt_time(row, "end_time")?,
        claimed_by: get(row, "claimed_by")?,
        heartbeat_at: get_opt_time(row, "heartbeat_at")?,
        run_after: get_opt_time(row, "run_after")?,
        parent_id: get(row, "parent_id")?,
        result: get::<Option<String>>(row, "result")?.as_deref().map(parse_json).transpose()?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}
