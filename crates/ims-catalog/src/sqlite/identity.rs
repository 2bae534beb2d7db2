//! [`IdentityRepository`] over SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use super::{
    begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_opt_time, parse_stored, parse_time,
};
use crate::repo::IdentityRepository;
use crate::{AccessKey, AuditEvent, CatalogError, OsVersion, Project, Result, Role, Token, User};

const TOKEN_COLUMNS: &str = "id, secret_hash, user_id, project_id, created_at, expires_at, revoked";
const ACCESS_KEY_COLUMNS: &str = "id, user_id, project_id, sealed_secret, description, created_at, revoked";

/// The identity repository (projects, users, roles, tokens) of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteIdentity {
    pool: SqlitePool,
}

impl SqliteIdentity {
    pub(super) fn new(pool: SqlitePool) -> SqliteIdentity {
        SqliteIdentity { pool }
    }

    /// Runs a `SELECT id, name, created_at FROM {table} WHERE {column} = ?` returning one project or user.
    async fn named_one(&self, table: &str, column: &str, value: &str) -> Result<Option<(String, String, String)>> {
        let row = sqlx::query(&format!("SELECT id, name, created_at FROM {table} WHERE {column} = ?"))
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|row| Ok((get(&row, "id")?, get(&row, "name")?, get(&row, "created_at")?))).transpose()
    }

    async fn named_all(&self, table: &str) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(&format!("SELECT id, name, created_at FROM {table} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(|row| Ok((get(row, "id")?, get(row, "name")?, get(row, "created_at")?))).collect()
    }

    /// Inserts `(id, name, created_at)` into `table` with its audit event.
    async fn insert_named(
        &self,
        table: &str,
        kind: &str,
        (id, name, created_at): (&str, &str, String),
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!("INSERT INTO {table} (id, name, created_at) VALUES (?, ?, ?)"))
            .bind(id)
            .bind(name)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("a {kind} with id {id:?} or name {name:?} exists")))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}

fn project((id, name, created_at): (String, String, String)) -> Result<Project> {
    Ok(Project { id, name, created_at: parse_time(&created_at)? })
}

fn user((id, name, created_at): (String, String, String)) -> Result<User> {
    Ok(User { id, name, created_at: parse_time(&created_at)? })
}

#[async_trait]
impl IdentityRepository for SqliteIdentity {
    async fn create_project(&self, p: &Project, event: &AuditEvent) -> Result<()> {
        self.insert_named("projects", "project", (&p.id, &p.name, fmt_time(&p.created_at)), event).await
    }

    async fn get_project(&self, id: &str) -> Result<Project> {
        let found = self.named_one("projects", "id", id).await?;
        project(found.ok_or_else(|| CatalogError::NotFound(format!("project {id}")))?)
    }

    async fn find_project(&self, name: &str) -> Result<Project> {
        let found = self.named_one("projects", "name", name).await?;
        project(found.ok_or_else(|| CatalogError::NotFound(format!("project named {name:?}")))?)
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        self.named_all("projects").await?.into_iter().map(project).collect()
    }

    async fn delete_project(&self, id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !exists {
            return Err(CatalogError::NotFound(format!("project {id}")));
        }
        let images: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE owner = ? AND deleted_at IS NULL")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if images > 0 {
            return Err(CatalogError::Conflict(format!("project {id} still owns {images} image(s)")));
        }
        for sql in [
            "DELETE FROM role_assignments WHERE project_id = ?",
            "DELETE FROM tokens WHERE project_id = ?",
            "DELETE FROM projects WHERE id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await.map_err(db_err)?;
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_user(&self, u: &User, event: &AuditEvent) -> Result<()> {
        self.insert_named("users", "user", (&u.id, &u.name, fmt_time(&u.created_at)), event).await
    }

    async fn get_user(&self, id: &str) -> Result<User> {
        let found = self.named_one("users", "id", id).await?;
        user(found.ok_or_else(|| CatalogError::NotFound(format!("user {id}")))?)
    }

    async fn find_user(&self, name: &str) -> Result<User> {
        let found = self.named_one("users", "name", name).await?;
        user(found.ok_or_else(|| CatalogError::NotFound(format!("user named {name:?}")))?)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.named_all("users").await?.into_iter().map(user).collect()
    }

    async fn assign_role(&self, user_id: &str, project_id: &str, role: Role, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        for (table, id) in [("users", user_id), ("projects", project_id)] {
            let exists: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?)"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            if !exists {
                return Err(CatalogError::NotFound(format!("{} {id}", table.trim_end_matches('s'))));
            }
        }
        sqlx::query(
            "INSERT INTO role_assignments (user_id, project_id, role) VALUES (?, ?, ?) \
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
            sqlx::query_scalar("SELECT role FROM role_assignments WHERE user_id = ? AND project_id = ?")
                .bind(user_id)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        role.as_deref().map(parse_stored).transpose()
    }

    async fn roles_of_user(&self, user_id: &str) -> Result<Vec<(String, Role)>> {
        let rows = sqlx::query("SELECT project_id, role FROM role_assignments WHERE user_id = ? ORDER BY project_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(|row| Ok((get(row, "project_id")?, parse_stored(&get::<String>(row, "role")?)?))).collect()
    }

    async fn create_token(&self, token: &Token, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let result = sqlx::query(&format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"))
            .bind(&token.id)
            .bind(&token.secret_hash)
            .bind(&token.user_id)
            .bind(&token.project_id)
            .bind(fmt_time(&token.created_at))
            .bind(token.expires_at.as_ref().map(fmt_time))
            .bind(i64::from(token.revoked))
            .execute(&mut *tx)
            .await;
        if let Err(sqlx::Error::Database(e)) = &result {
            if e.is_foreign_key_violation() {
                return Err(CatalogError::NotFound(format!("user {} or project {}", token.user_id, token.project_id)));
            }
        }
        result.map_err(conflict_or_db(|| format!("token {} or its secret exists", token.id)))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn find_token(&self, secret_hash: &str) -> Result<Token> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound("token".to_string()))?;
        token_from_row(&row)
    }

    async fn revoke_token(&self, id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated == 0 {
            return Err(CatalogError::NotFound(format!("token {id}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn is_empty(&self) -> Result<bool> {
        let any: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects)").fetch_one(&self.pool).await.map_err(db_err)?;
        Ok(!any)
    }

    async fn create_access_key(&self, key: &AccessKey, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let result =
            sqlx::query(&format!("INSERT INTO access_keys ({ACCESS_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"))
                .bind(&key.id)
                .bind(&key.user_id)
                .bind(&key.project_id)
                .bind(&key.sealed_secret)
                .bind(&key.description)
                .bind(fmt_time(&key.created_at))
                .bind(i64::from(key.revoked))
                .execute(&mut *tx)
                .await;
        if let Err(sqlx::Error::Database(e)) = &result {
            if e.is_foreign_key_violation() {
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
        let row = sqlx::query(&format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CatalogError::NotFound(format!("access key {id}")))?;
        access_key_from_row(&row)
    }

    async fn list_access_keys(&self, user_id: Option<&str>) -> Result<Vec<AccessKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE (? IS NULL OR user_id = ?) ORDER BY created_at, id"
        ))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(access_key_from_row).collect()
    }

    async fn revoke_access_key(&self, id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query("UPDATE access_keys SET revoked = 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated == 0 {
            return Err(CatalogError::NotFound(format!("access key {id}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn project_quota(&self, project_id: &str, resource: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT quota FROM project_quotas WHERE project_id = ? AND resource = ?")
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
        let mut tx = begin_write(&self.pool).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?)")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !exists {
            return Err(CatalogError::NotFound(format!("project {project_id}")));
        }
        match quota {
            Some(q) => {
                if q < 0 {
                    return Err(CatalogError::Invalid(format!("quota {q} is negative")));
                }
                sqlx::query(
                    "INSERT INTO project_quotas (project_id, resource, quota) VALUES (?, ?, ?) \
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
                sqlx::query("DELETE FROM project_quotas WHERE project_id = ? AND resource = ?")
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
        let mut tx = begin_write(&self.pool).await?;
        let result = sqlx::query(
            "INSERT INTO os_versions (os_version_key, platform, os_version, os_bit, os_type, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (os_version_key) DO UPDATE SET platform = excluded.platform, \
             os_version = excluded.os_version, os_bit = excluded.os_bit, os_type = excluded.os_type",
        )
        .bind(&v.os_version_key)
        .bind(&v.platform)
        .bind(&v.os_version)
        .bind(v.os_bit)
        .bind(&v.os_type)
        .bind(fmt_time(&chrono::Utc::now()))
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

fn token_from_row(row: &SqliteRow) -> Result<Token> {
    Ok(Token {
        id: get(row, "id")?,
        secret_hash: get(row, "secret_hash")?,
        user_id: get(row, "user_id")?,
        project_id: get(row, "project_id")?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        expires_at: parse_opt_time(get(row, "expires_at")?)?,
        revoked: get::<i64>(row, "revoked")? != 0,
    })
}

fn access_key_from_row(row: &SqliteRow) -> Result<AccessKey> {
    Ok(AccessKey {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        project_id: get(row, "project_id")?,
        sealed_secret: get(row, "sealed_secret")?,
        description: get(row, "description")?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        revoked: get::<i64>(row, "revoked")? != 0,
    })
}
