//! [`MemberRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{begin, commit, conflict_or_db, db_err, get, get_time, insert_audit, parse_stored, split_time};
use crate::repo::MemberRepository;
use crate::{AuditEvent, CatalogError, Member, MemberStatus, Result};

const MEMBER_COLUMNS: &str = "image_id, member, status, created_at, created_at_ns, updated_at, updated_at_ns";

/// The membership repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresMembers {
    pool: PgPool,
}

impl PostgresMembers {
    pub(super) fn new(pool: PgPool) -> PostgresMembers {
        PostgresMembers { pool }
    }
}

fn not_found(image_id: Uuid, member: &str) -> CatalogError {
    CatalogError::NotFound(format!("member {member} of image {image_id}"))
}

#[async_trait]
impl MemberRepository for PostgresMembers {
    async fn add(&self, member: &Member, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        // FOR SHARE keeps the image from being deleted (or otherwise saved) until this membership commits.
        lock_live_image(&mut tx, member.image_id, "FOR SHARE").await?;
        insert_member(&mut tx, member).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn add_within_limit(&self, member: &Member, max_members: u64, event: &AuditEvent) -> Result<()> {
        let image_id = member.image_id;
        let mut tx = begin(&self.pool).await?;
        // FOR NO KEY UPDATE conflicts with itself and with the FOR SHARE of `add`: additions to one image
        // take turns, so each one's count sees every member added before it.
        lock_live_image(&mut tx, image_id, "FOR NO KEY UPDATE").await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM image_members WHERE image_id = $1")
            .bind(image_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if u64::try_from(count).unwrap_or(0) >= max_members {
            return Err(CatalogError::LimitExceeded(format!(
                "image {image_id} has {count} member(s); at most {max_members} are allowed"
            )));
        }
        insert_member(&mut tx, member).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, image_id: Uuid, member: &str) -> Result<Member> {
        let row =
            sqlx::query(&format!("SELECT {MEMBER_COLUMNS} FROM image_members WHERE image_id = $1 AND member = $2"))
                .bind(image_id)
                .bind(member)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .ok_or_else(|| not_found(image_id, member))?;
        member_from_row(&row)
    }

    async fn list(&self, image_id: Uuid) -> Result<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM image_members WHERE image_id = $1 \
             ORDER BY created_at, created_at_ns, member"
        ))
        .bind(image_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(member_from_row).collect()
    }

    async fn set_status(
        &self,
        image_id: Uuid,
        member: &str,
        status: MemberStatus,
        event: &AuditEvent,
    ) -> Result<Member> {
        let (now, now_ns) = split_time(&Utc::now());
        let mut tx = begin(&self.pool).await?;
        let row = sqlx::query(&format!(
            "UPDATE image_members SET status = $1, updated_at = $2, updated_at_ns = $3 \
             WHERE image_id = $4 AND member = $5 RETURNING {MEMBER_COLUMNS}"
        ))
        .bind(status.as_str())
        .bind(now)
        .bind(now_ns)
        .bind(image_id)
        .bind(member)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| not_found(image_id, member))?;
        let updated = member_from_row(&row)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(updated)
    }

    async fn remove(&self, image_id: Uuid, member: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM image_members WHERE image_id = $1 AND member = $2")
            .bind(image_id)
            .bind(member)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if removed == 0 {
            return Err(not_found(image_id, member));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

/// Locks the row of the live image `image_id` with `lock` (`FOR SHARE`, ...) until the transaction ends;
/// `NotFound` if it is missing or deleted.
async fn lock_live_image(conn: &mut PgConnection, image_id: Uuid, lock: &str) -> Result<()> {
    let live: Option<i32> =
        sqlx::query_scalar(&format!("SELECT 1 FROM images WHERE id = $1 AND deleted_at IS NULL {lock}"))
            .bind(image_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    match live {
        Some(_) => Ok(()),
        None => Err(CatalogError::NotFound(format!("image {image_id}"))),
    }
}

/// Inserts the membership row; `Conflict` if the project is already a member.
async fn insert_member(conn: &mut PgConnection, member: &Member) -> Result<()> {
    let (created_at, created_at_ns) = split_time(&member.created_at);
    let (updated_at, updated_at_ns) = split_time(&member.updated_at);
    sqlx::query(&format!("INSERT INTO image_members ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(member.image_id)
        .bind(&member.member)
        .bind(member.status.as_str())
        .bind(created_at)
        .bind(created_at_ns)
        .bind(updated_at)
        .bind(updated_at_ns)
        .execute(&mut *conn)
        .await
        .map_err(conflict_or_db(|| format!("{} is already a member of image {}", member.member, member.image_id)))?;
    Ok(())
}

fn member_from_row(row: &PgRow) -> Result<Member> {
    Ok(Member {
        image_id: get(row, "image_id")?,
        member: get(row, "member")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}
