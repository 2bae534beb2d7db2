//! [`ComputeRepository`] over PostgreSQL.
//!
//! Writes that depend on a server's attachments (attach, delete server, create volume attached) lock the
//! server row first, so concurrent changes to one server's devices take turns.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{begin, commit, conflict_or_db, db_err, get, get_time, insert_audit, parse_stored, split_time};
use crate::compute::{Attachment, ComputeRepository, Server, Volume, VolumeEncryption, VolumeExport};
use crate::{AuditEvent, CatalogError, Result};

const VOLUME_COLUMNS: &str = "id, project, name, size, manifest_id, source_image_id, bootable, encryption_key_id, \
     wrapped_data_key, server_id, device_index, created_at, created_at_ns, updated_at, updated_at_ns";
const SERVER_COLUMNS: &str = "id, project, name, server_type, vcpus, ram_mb, architecture, status, image_id, \
     created_at, created_at_ns, updated_at, updated_at_ns, firmware";

/// The compute records of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresCompute {
    pool: PgPool,
}

impl PostgresCompute {
    pub(super) fn new(pool: PgPool) -> PostgresCompute {
        PostgresCompute { pool }
    }
}

fn stored_int<T: TryFrom<i64>>(value: i64, col: &str) -> Result<T> {
    T::try_from(value).map_err(|_| CatalogError::Database(format!("bad {col} {value} in database")))
}

fn too_big(what: &str) -> CatalogError {
    CatalogError::Invalid(format!("{what} is too large"))
}

fn server_from_row(row: &PgRow) -> Result<Server> {
    Ok(Server {
        id: get(row, "id")?,
        project: get(row, "project")?,
        name: get(row, "name")?,
        server_type: parse_stored(&get::<String>(row, "server_type")?)?,
        vcpus: stored_int(get(row, "vcpus")?, "vcpus")?,
        ram_mb: stored_int(get(row, "ram_mb")?, "ram_mb")?,
        architecture: get(row, "architecture")?,
        firmware: get(row, "firmware")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        image_id: get(row, "image_id")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn volume_from_row(row: &PgRow) -> Result<Volume> {
    let encryption = match (get::<Option<String>>(row, "encryption_key_id")?, get::<Option<String>>(row, "wrapped_data_key")?) {
        (Some(key_id), Some(wrapped_data_key)) => Some(VolumeEncryption { key_id, wrapped_data_key }),
        _ => None,
    };
    let attachment = match (get::<Option<Uuid>>(row, "server_id")?, get::<Option<i64>>(row, "device_index")?) {
        (Some(server_id), Some(index)) => Some(Attachment { server_id, device_index: stored_int(index, "device_index")? }),
        _ => None,
    };
    Ok(Volume {
        id: get(row, "id")?,
        project: get(row, "project")?,
        name: get(row, "name")?,
        size: stored_int(get(row, "size")?, "size")?,
        manifest_id: get(row, "manifest_id")?,
        source_image_id: get(row, "source_image_id")?,
        bootable: get(row, "bootable")?,
        encryption,
        attachment,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

async fn fetch_volume(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Volume> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE id = $1{suffix}"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(volume_from_row).transpose()?.ok_or_else(|| CatalogError::NotFound(format!("volume {id}")))
}

async fn fetch_server(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Server> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("SELECT {SERVER_COLUMNS} FROM servers WHERE id = $1{suffix}"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(server_from_row).transpose()?.ok_or_else(|| CatalogError::NotFound(format!("server {id}")))
}

async fn insert_volume(conn: &mut PgConnection, v: &Volume) -> Result<()> {
    let (created_at, created_at_ns) = split_time(&v.created_at);
    let (updated_at, updated_at_ns) = split_time(&v.updated_at);
    sqlx::query(&format!(
        "INSERT INTO volumes ({VOLUME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(v.id)
    .bind(&v.project)
    .bind(&v.name)
    .bind(i64::try_from(v.size).map_err(|_| too_big("volume size"))?)
    .bind(&v.manifest_id)
    .bind(v.source_image_id)
    .bind(v.bootable)
    .bind(v.encryption.as_ref().map(|e| e.key_id.clone()))
    .bind(v.encryption.as_ref().map(|e| e.wrapped_data_key.clone()))
    .bind(v.attachment.map(|a| a.server_id))
    .bind(v.attachment.map(|a| i64::from(a.device_index)))
    .bind(created_at)
    .bind(created_at_ns)
    .bind(updated_at)
    .bind(updated_at_ns)
    .execute(&mut *conn)
    .await
    .map_err(conflict_or_db(|| format!("volume {} or its device is taken", v.id)))?;
    Ok(())
}

#[async_trait]
impl ComputeRepository for PostgresCompute {
    async fn create_server(&self, server: &Server, volumes: &[Volume], event: &AuditEvent) -> Result<()> {
        crate::compute::check_firmware(&server.firmware)?;
        let mut tx = begin(&self.pool).await?;
        let (created_at, created_at_ns) = split_time(&server.created_at);
        let (updated_at, updated_at_ns) = split_time(&server.updated_at);
        sqlx::query(&format!(
            "INSERT INTO servers ({SERVER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(server.id)
        .bind(&server.project)
        .bind(&server.name)
        .bind(server.server_type.as_str())
        .bind(i64::from(server.vcpus))
        .bind(i64::try_from(server.ram_mb).map_err(|_| too_big("ram_mb"))?)
        .bind(&server.architecture)
        .bind(server.status.as_str())
        .bind(server.image_id)
        .bind(created_at)
        .bind(created_at_ns)
        .bind(updated_at)
        .bind(updated_at_ns)
        .bind(&server.firmware)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_db(|| format!("server {} exists", server.id)))?;
        for volume in volumes {
            if volume.attachment.is_some_and(|a| a.server_id != server.id) {
                return Err(CatalogError::Invalid(format!("volume {} is attached to another server", volume.id)));
            }
            insert_volume(&mut tx, volume).await?;
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_server(&self, id: Uuid) -> Result<Server> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        fetch_server(&mut conn, id, false).await
    }

    async fn list_servers(&self, project: Option<&str>) -> Result<Vec<Server>> {
        let rows = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE ($1::text IS NULL OR project = $1) \
             ORDER BY created_at, created_at_ns, id"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(server_from_row).collect()
    }

    async fn delete_server(&self, id: Uuid, keep_volumes: bool, at: DateTime<Utc>, event: &AuditEvent)
        -> Result<Vec<Volume>> {
        let mut tx = begin(&self.pool).await?;
        fetch_server(&mut tx, id, true).await?;
        let rows = sqlx::query(&format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes WHERE server_id = $1 ORDER BY device_index FOR UPDATE"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let attached = rows.iter().map(volume_from_row).collect::<Result<Vec<_>>>()?;
        let deleted = if keep_volumes {
            let (at, at_ns) = split_time(&at);
            sqlx::query(
                "UPDATE volumes SET server_id = NULL, device_index = NULL, updated_at = $1, updated_at_ns = $2 \
                 WHERE server_id = $3",
            )
            .bind(at)
            .bind(at_ns)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Vec::new()
        } else {
            sqlx::query("DELETE FROM volumes WHERE server_id = $1").bind(id).execute(&mut *tx).await.map_err(db_err)?;
            attached
        };
        sqlx::query("DELETE FROM servers WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(deleted)
    }

    async fn create_volume(&self, volume: &Volume, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        if let Some(a) = volume.attachment {
            fetch_server(&mut tx, a.server_id, true).await?;
        }
        insert_volume(&mut tx, volume).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_volume(&self, id: Uuid) -> Result<Volume> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        fetch_volume(&mut conn, id, false).await
    }

    async fn list_volumes(&self, project: Option<&str>, server: Option<Uuid>) -> Result<Vec<Volume>> {
        let order = if server.is_some() { "device_index" } else { "created_at, created_at_ns, id" };
        let rows = sqlx::query(&format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes WHERE ($1::text IS NULL OR project = $1) \
             AND ($2::uuid IS NULL OR server_id = $2) ORDER BY {order}"
        ))
        .bind(project)
        .bind(server)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(volume_from_row).collect()
    }

    async fn attach_volume(
        &self,
        id: Uuid,
        server_id: Uuid,
        device_index: Option<u32>,
        at: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<Volume> {
        let mut tx = begin(&self.pool).await?;
        let server = fetch_server(&mut tx, server_id, true).await?;
        let volume = fetch_volume(&mut tx, id, true).await?;
        if volume.project != server.project {
            return Err(CatalogError::Invalid(format!("volume {id} and server {server_id} belong to different projects")));
        }
        if volume.attachment.is_some() {
            return Err(CatalogError::Conflict(format!("volume {id} is attached already")));
        }
        let index = match device_index {
            Some(index) => i64::from(index),
            None => {
                let taken: Vec<i64> = sqlx::query_scalar("SELECT device_index FROM volumes WHERE server_id = $1")
                    .bind(server_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                crate::compute::lowest_free_data_device(&taken)
            }
        };
        let (at, at_ns) = split_time(&at);
        sqlx::query(
            "UPDATE volumes SET server_id = $1, device_index = $2, updated_at = $3, updated_at_ns = $4 WHERE id = $5",
        )
        .bind(server_id)
        .bind(index)
        .bind(at)
        .bind(at_ns)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_db(|| format!("device {index} of server {server_id} is taken")))?;
        let volume = fetch_volume(&mut tx, id, false).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(volume)
    }

    async fn detach_volume(&self, id: Uuid, at: DateTime<Utc>, event: &AuditEvent) -> Result<Volume> {
        let mut tx = begin(&self.pool).await?;
        if fetch_volume(&mut tx, id, true).await?.attachment.is_none() {
            return Err(CatalogError::Conflict(format!("volume {id} is not attached")));
        }
        let (at, at_ns) = split_time(&at);
        sqlx::query(
            "UPDATE volumes SET server_id = NULL, device_index = NULL, updated_at = $1, updated_at_ns = $2 WHERE id = $3",
        )
        .bind(at)
        .bind(at_ns)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let volume = fetch_volume(&mut tx, id, false).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(volume)
    }

    async fn set_volume_manifest(&self, id: Uuid, manifest_id: &str, at: DateTime<Utc>) -> Result<Volume> {
        let (at, at_ns) = split_time(&at);
        let row = sqlx::query(&format!(
            "UPDATE volumes SET manifest_id = $1, updated_at = $2, updated_at_ns = $3 WHERE id = $4 \
             RETURNING {VOLUME_COLUMNS}"
        ))
        .bind(manifest_id)
        .bind(at)
        .bind(at_ns)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(volume_from_row).transpose()?.ok_or_else(|| CatalogError::NotFound(format!("volume {id}")))
    }

    async fn delete_volume(&self, id: Uuid, event: &AuditEvent) -> Result<Volume> {
        let mut tx = begin(&self.pool).await?;
        let volume = fetch_volume(&mut tx, id, true).await?;
        if volume.attachment.is_some() {
            return Err(CatalogError::Conflict(format!("volume {id} is attached to a server")));
        }
        sqlx::query("DELETE FROM volumes WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(volume)
    }

    async fn live_manifests(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT manifest_id FROM volumes ORDER BY manifest_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn create_export(&self, export: &VolumeExport) -> Result<()> {
        let (created_at, created_at_ns) = split_time(&export.created_at);
        let (expires_at, expires_at_ns) = split_time(&export.expires_at);
        let inserted = sqlx::query(
            "INSERT INTO volume_exports (name_hash, volume_id, created_by, created_at, created_at_ns, expires_at, \
             expires_at_ns) SELECT $1, id, $2, $3, $4, $5, $6 FROM volumes WHERE id = $7",
        )
        .bind(&export.name_hash)
        .bind(&export.created_by)
        .bind(created_at)
        .bind(created_at_ns)
        .bind(expires_at)
        .bind(expires_at_ns)
        .bind(export.volume_id)
        .execute(&self.pool)
        .await
        .map_err(conflict_or_db(|| "an export with this name already exists".to_string()))?;
        if inserted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("volume {}", export.volume_id)));
        }
        Ok(())
    }

    async fn find_export(&self, name_hash: &str) -> Result<Option<VolumeExport>> {
        let row = sqlx::query(
            "SELECT name_hash, volume_id, created_by, created_at, created_at_ns, expires_at, expires_at_ns \
             FROM volume_exports WHERE name_hash = $1",
        )
        .bind(name_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(VolumeExport {
            name_hash: get(&row, "name_hash")?,
            volume_id: get(&row, "volume_id")?,
            created_by: get(&row, "created_by")?,
            created_at: get_time(&row, "created_at")?,
            expires_at: get_time(&row, "expires_at")?,
        }))
    }

    async fn revoke_export(&self, volume_id: Uuid, name_hash: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM volume_exports WHERE name_hash = $1 AND volume_id = $2")
            .bind(name_hash)
            .bind(volume_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("NBD export of volume {volume_id}")));
        }
        Ok(())
    }

    async fn purge_expired_exports(&self, now: DateTime<Utc>) -> Result<u64> {
        let (now, now_ns) = split_time(&now);
        let deleted = sqlx::query("DELETE FROM volume_exports WHERE (expires_at, expires_at_ns) < ($1, $2)")
            .bind(now)
            .bind(now_ns)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(deleted.rows_affected())
    }
}
