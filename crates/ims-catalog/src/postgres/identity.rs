//! [`IdentityRepository`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};

use super::{
    begin, commit, conflict_or_db, db_err, get, get_opt_time, get_time, insert_audit, is_foreign_key_violation,
    lock_owner, parse_stored, split_opt_time, split_time,
};
use crate::repo::IdentityRepository;
use crate::{AccessKey, AuditEvent, CatalogError, OsVersion, Project, Result, Role, Token, User};

const TOKEN_COLUMNS: &str =
    "id, secret_hash, user_id, project_id, created_at, created_at_ns, expires_at, expires_at_ns, revoked";
const ACCESS_KEY_COLUMNS: &str =
    "id, user_id, project_id, sealed_secret, description, created_at, created_at_ns, revoked";

/// The identity repository (projects, users, roles, tokens, access keys, quotas, OS versions) of a
/// [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresIdentity {
    pool: PgPool,
}

/// The columns projects and users share.
struct Named {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
}

impl PostgresIdentity {
    pub(super) fn new(pool: PgPool) -> PostgresIdentity {
        PostgresIdentity { pool }
    }

    /// The project or user (`table`) whose `column` is `value`.
    async fn named_one(&self, table: &str, column: &str, value: &str) -> Result<Option<Named>> {
        let row =
            sqlx::query(&format!("SELECT id, name, created_at, created_at_ns FROM {table} WHERE {column} = $1"))
                .bind(value)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(named_from_row).transpose()
    }

    async fn named_all(&self, table: &str) -> Result<Vec<Named>> {
        let rows = sqlx::query(&format!("SELECT id, name, created_at, created_at_ns FROM {table} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(named_from_row).collect()
    }

    /// Inserts a project or user into `table` with its audit event.
    async fn insert_named(&self, table: &str, kind: &str, named: Named, event: &AuditEvent) -> Result<()> {
        let (created_at, created_at_ns) = split_time(&named.created_at);
        let mut tx = begin(&self.pool).await?;
        sqlx::query(&format!("INSERT INTO {table} (id, name, created_at, created_at_ns) VALUES ($1, $2, $3, $4)"))
            .bind(&named.id)
            .bind(&named.name)
            .bind(created_at)
            .bind(created_at_ns)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("a {kind} with id {:?} or name {:?} exists", named.id, named.name)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

fn named_from_row(row: &PgRow) -> Result<Named> {
    Ok(Named { id: get(row, "id")?, name: get(row, "name")?, created_at: get_time(row, "created_at")? })
}

fn project(n: Named) -> Project {
    Project { id: n.id, name: n.name, created_at: n.created_at }
}

fn user(n: Named) -> User {
    User { id: n.id, name: n.name, created_at: n.created_at }
}

/// Locks the row of `id` in `table` (`projects` or `users`) `FOR SHARE` until the transaction ends, so it
/// cannot be deleted meanwhile; `NotFound` if it does not exist.
async fn lock_existing(conn: &mut PgConnection, table: &str, id: &str) -> Result<()> {
    let found: Option<i32> = sqlx::query_scalar(&format!("SELECT 1 FROM {table} WHERE id = $1 FOR SHARE"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::NotFound(format!("{} {id}", table.trim_end_matches('s')))),
    }
}

#[async_trait]
impl IdentityRepository for PostgresIdentity {
    async fn create_project(&self, p: &Project, event: &AuditEvent) -> Result<()> {
        let named = Named { id: p.id.clone(), name: p.name.clone(), created_at: p.created_at };
        self.insert_named("projects", "project", named, event).await
    }

    async fn get_project(&self, id: &str) -> Result<Project> {
        let found = self.named_one("projects", "id", id).await?;
        found.map(project).ok_or_else(|| CatalogError::NotFound(format!("project {id}")))
    }

    async fn find_project(&self, name: &str) -> Result<Project> {
        let found = self.named_one("projects", "name", name).await?;
        found.map(project).ok_or_else(|| CatalogError::NotFound(format!("project named {name:?}")))
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        Ok(self.named_all("projects").await?.into_iter().map(project).collect())
    }

    async fn delete_project(&self, id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        // No image of this project can be created between the count and the delete.
        lock_owner(&mut tx, id).await?;
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if found.is_none() {
            return Err(CatalogError::NotFound(format!("project {id}")));
        }
        let images: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE owner = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if images > 0 {
            return Err(CatalogError::Conflict(format!("project {id} still owns {images} image(s)")));
        }
        // Role assignments, tokens, access keys and quotas of the project go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_user(&self, u: &User, event: &AuditEvent) -> Result<()> {
        let named = Named { id: u.id.clone(), name: u.name.clone(), created_at: u.created_at };
        self.insert_named("users", "user", named, event).await
    }

    async fn get_user(&self, id: &str) -> Result<User> {
        let found = self.named_one("users", "id", id).await?;
        found.map(user).ok_or_else(|| CatalogError::NotFound(format!("user {id}")))
    }

    async fn find_user(&self, name: &str) -> Result<User> {
        let found = self.named_one("users", "name", name).await?;
        found.map(user).ok_or_else(|| CatalogError::NotFound(format!("user named {name:?}")))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.named_all("users").await?.into_iter().map(user).collect())
    }

    async fn assign_role(&self, user_id: &str, project_id: &str, role: Role, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        lock_existing(&mut tx, "users", user_id).await?;
        lock_existing(&mut tx, "projects", project_id).await?;
        sqlx::query(
            "INSERT INTO role_assignments (user_id, project_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id)
        .bind(project_id)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn role_of(&self, user_id: &str, project_id: &str) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM role_assignments WHERE user_id = $1 AND project_id = $2")
                .bind(user_id)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        role.as_deref().map(parse_stored).transpose()
    }

    async fn roles_of_user(&self, user_id: &str) -> Result<Vec<(String, Role)>> {
        let rows =
            sqlx::query("SELECT project_id, role FROM role_assignments WHERE user_id = $1 ORDER BY project_id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(|row| Ok((get(row, "project_id")?, parse_stored(&get::<String>(row, "role")?)?))).collect()
    }

    async fn create_token(&self, token: &Token, event: &AuditEvent) -> Result<()> {
        let (created_at, created_at_ns) = split_time(&token.created_at);
        let (expires_at, expires_at_ns) = split_opt_time(token.expires_at.as_ref());
        let mut tx = begin(&self.pool).await?;
        let result =
            sqlx::query(&format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                .bind(&token.id)
                .bind(&token.secret_hash)
                .bind(&token.user_id)
                .bind(&token.project_id)
                .bind(created_at)
                .bind(created_at_ns)
                .bind(expires_at)
                .bind(expires_at_ns)
                .bind(token.revoked)
                .execute(&mut *tx)
                .await;
        if let Err(e) = &result {
            if is_foreign_key_violation(e) {
                return Err(CatalogError::NotFound(format!("user {} or project {}", token.user_id, token.project_id)));
            }
        }
        result.map_err(conflict_or_db(|| format!("token {} or its secret exists", token.id)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn find_token(&self, secret_hash: &str) -> Result<Token> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = $1"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound("token".to_string()))?;
        token_from_row(&row)
    }

    async fn revoke_token(&self, id: &str, event: &AuditEvent) -> Result<()> {
        self.revoke("tokens", "token", id, event).await
    }

    async fn is_empty(&self) -> Result<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects)")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(!any)
    }

    async fn create_access_key(&self, key: &AccessKey, event: &AuditEvent) -> Result<()> {
        let (created_at, created_at_ns) = split_time(&key.created_at);
        let mut tx = begin(&self.pool).await?;
        let result = sqlx::query(&format!(
            "INSERT INTO access_keys ({ACCESS_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.project_id)
        .bind(&key.sealed_secret)
        .bind(&key.description)
        .bind(created_at)
        .bind(created_at_ns)
        .bind(key.revoked)
        .execute(&mut *tx)
        .await;
        if let Err(e) = &result {
            if is_foreign_key_violation(e) {
                return Err(CatalogError::NotFound(format!(
                    "user {} or project {}",
                    key.user_id,
                    key.project_id.as_deref().unwrap_or("-")
                )));
            }
        }
        result.map_err(conflict_or_db(|| format!("access key {} exists", key.id)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_access_key(&self, id: &str) -> Result<AccessKey> {
        let row = sqlx::query(&format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("access key {id}")))?;
        access_key_from_row(&row)
    }

    async fn list_access_keys(&self, user_id: Option<&str>) -> Result<Vec<AccessKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE ($1::text IS NULL OR user_id = $1) \
             ORDER BY created_at, created_at_ns, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(access_key_from_row).collect()
    }

    async fn revoke_access_key(&self, id: &str, event: &AuditEvent) -> Result<()> {
        self.revoke("access_keys", "access key", id, event).await
    }

    async fn project_quota(&self, project_id: &str, resource: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT quota FROM project_quotas WHERE project_id = $1 AND resource = $2")
            .bind(project_id)
            .bind(resource)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn set_project_quota(
        &self,
        project_id: &str,
        resource: &str,
        quota: Option<i64>,
        event: &AuditEvent,
    ) -> Result<()> {
        if let Some(q) = quota.filter(|q| *q < 0) {
            return Err(CatalogError::Invalid(format!("quota {q} is negative")));
        }
        let mut tx = begin(&self.pool).await?;
        lock_existing(&mut tx, "projects", project_id).await?;
        match quota {
            Some(q) => {
                sqlx::query(
                    "INSERT INTO project_quotas (project_id, resource, quota) VALUES ($1, $2, $3) \
                     ON CONFLICT (project_id, resource) DO UPDATE SET quota = excluded.quota",
                )
                .bind(project_id)
                .bind(resource)
                .bind(q)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            None => {
                sqlx::query("DELETE FROM project_quotas WHERE project_id = $1 AND resource = $2")
                    .bind(project_id)
                    .bind(resource)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_os_versions(&self) -> Result<Vec<OsVersion>> {
        let rows = sqlx::query(
            "SELECT os_version_key, platform, os_version, os_bit, os_type FROM os_versions \
             ORDER BY platform, os_version_key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(OsVersion {
                    os_version_key: get(row, "os_version_key")?,
                    platform: get(row, "platform")?,
                    os_version: get(row, "os_version")?,
                    os_bit: get(row, "os_bit")?,
                    os_type: get(row, "os_type")?,
                })
            })
            .collect()
    }

    async fn put_os_version(&self, v: &OsVersion, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let result = sqlx::query(
            "INSERT INTO os_versions (os_version_key, platform, os_version, os_bit, os_type, created_at) \
             VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (os_version_key) DO UPDATE SET \
             platform = excluded.platform, os_version = excluded.os_version, os_bit = excluded.os_bit, \
             os_type = excluded.os_type",
        )
        .bind(&v.os_version_key)
        .bind(&v.platform)
        .bind(&v.os_version)
        .bind(v.os_bit)
        .bind(&v.os_type)
        .execute(&mut *tx)
        .await;
        if let Err(sqlx::Error::Database(e)) = &result {
            if e.is_check_violation() {
                return Err(CatalogError::Invalid(format!(
                    "invalid OS version {:?}: os_bit must be 32 or 64, os_type Linux, Windows or Other",
                    v.os_version_key
                )));
            }
        }
        result.map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

impl PostgresIdentity {
    /// Sets `revoked` on the row `id` of `table` (idempotent) with its audit event; `NotFound` if missing.
    async fn revoke(&self, table: &str, kind: &str, id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let updated = sqlx::query(&format!("UPDATE {table} SET revoked = TRUE WHERE id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated == 0 {
            return Err(CatalogError::NotFound(format!("{kind} {id}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

fn token_from_row(row: &PgRow) -> Result<Token> {
    Ok(Token {
        id: get(row, "id")?,
        secret_hash: get(row, "secret_hash")?,
        user_id: get(row, "user_id")?,
        project_id: get(row, "project_id")?,
        created_at: get_time(row, "created_at")?,
        expires_at: get_opt_time(row, "expires_at")?,
        revoked: get(row, "revoked")?,
    })
}

fn access_key_from_row(row: &PgRow) -> Result<AccessKey> {
    Ok(AccessKey {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        project_id: get(row, "project_id")?,
        sealed_secret: get(row, "sealed_secret")?,
        description: get(row, "description")?,
        created_at: get_time(row, "created_at")?,
        revoked: get(row, "revoked")?,
    })
}
