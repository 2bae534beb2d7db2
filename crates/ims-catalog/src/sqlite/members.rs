//! [`MemberRepository`] over SQLite.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{
    begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_stored, parse_time, parse_uuid,
};
use crate::repo::MemberRepository;
use crate::{AuditEvent, CatalogError, Member, MemberStatus, Result};

const MEMBER_COLUMNS: &str = "image_id, member, status, created_at, updated_at";

/// The membership repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteMembers {
    pool: SqlitePool,
}

impl SqliteMembers {
    pub(super) fn new(pool: SqlitePool) -> SqliteMembers {
        SqliteMembers { pool }
    }
}

fn not_found(image_id: Uuid, member: &str) -> CatalogError {
    CatalogError::NotFound(format!("member {member} of image {image_id}"))
}

#[async_trait]
impl MemberRepository for SqliteMembers {
    async fn add(&self, member: &Member, event: &AuditEvent) -> Result<()> {
        let image_id = member.image_id.to_string();
        let mut tx = begin_write(&self.pool).await?;
        let image_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM images WHERE id = ? AND deleted_at IS NULL)")
                .bind(&image_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if !image_exists {
            return Err(CatalogError::NotFound(format!("image {image_id}")));
        }
        sqlx::query(&format!("INSERT INTO image_members ({MEMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"))
            .bind(&image_id)
            .bind(&member.member)
            .bind(member.status.as_str())
            .bind(fmt_time(&member.created_at))
            .bind(fmt_time(&member.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("{} is already a member of image {image_id}", member.member)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn add_within_limit(&self, member: &Member, max_members: u64, event: &AuditEvent) -> Result<()> {
        let image_id = member.image_id.to_string();
        let mut tx = begin_write(&self.pool).await?;
        let image_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM images WHERE id = ? AND deleted_at IS NULL)")
                .bind(&image_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if !image_exists {
            return Err(CatalogError::NotFound(format!("image {image_id}")));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM image_members WHERE image_id = ?")
            .bind(&image_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if u64::try_from(count).unwrap_or(0) >= max_members {
            return Err(CatalogError::LimitExceeded(format!(
                "image {image_id} has {count} member(s); at most {max_members} are allowed"
            )));
        }
        sqlx::query(&format!("INSERT INTO image_members ({MEMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"))
            .bind(&image_id)
            .bind(&member.member)
            .bind(member.status.as_str())
            .bind(fmt_time(&member.created_at))
            .bind(fmt_time(&member.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("{} is already a member of image {image_id}", member.member)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get(&self, image_id: Uuid, member: &str) -> Result<Member> {
        let row = sqlx::query(&format!("SELECT {MEMBER_COLUMNS} FROM image_members WHERE image_id = ? AND member = ?"))
            .bind(image_id.to_string())
            .bind(member)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found(image_id, member))?;
        member_from_row(&row)
    }

    async fn list(&self, image_id: Uuid) -> Result<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM image_members WHERE image_id = ? ORDER BY created_at, member"
        ))
        .bind(image_id.to_string())
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
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(&format!(
            "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member = ? \
             RETURNING {MEMBER_COLUMNS}"
        ))
        .bind(status.as_str())
        .bind(fmt_time(&Utc::now()))
        .bind(image_id.to_string())
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
        let mut tx = begin_write(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM image_members WHERE image_id = ? AND member = ?")
            .bind(image_id.to_string())
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

fn member_from_row(row: &SqliteRow) -> Result<Member> {
    Ok(Member {
        image_id: parse_uuid(&get::<String>(row, "image_id")?)?,
        member: get(row, "member")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}
