//! [`ComputeRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_stored, parse_time, parse_uuid};
use crate::compute::{Attachment, ComputeRepository, Server, Volume, VolumeEncryption, VolumeExport};
use crate::{AuditEvent, CatalogError, Result};

const VOLUME_COLUMNS: &str = "id, project, name, size, manifest_id, source_image_id, bootable, encryption_key_id, \
     wrapped_data_key, server_id, device_index, created_at, updated_at";
const SERVER_COLUMNS: &str =
    "id, project, name, server_type, vcpus, ram_mb, architecture, status, image_id, created_at, updated_at, firmware";

/// The compute records of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteCompute {
    pool: SqlitePool,
}

impl SqliteCompute {
    pub(super) fn new(pool: SqlitePool) -> SqliteCompute {
        SqliteCompute { pool }
    }
}

fn server_from_row(row: &SqliteRow) -> Result<Server> {
    Ok(Server {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        project: get(row, "project")?,
        name: get(row, "name")?,
        server_type: parse_stored(&get::<String>(row, "server_type")?)?,
        vcpus: u32::try_from(get::<i64>(row, "vcpus")?).map_err(|e| CatalogError::Database(e.to_string()))?,
        ram_mb: u64::try_from(get::<i64>(row, "ram_mb")?).map_err(|e| CatalogError::Database(e.to_string()))?,
        architecture: get(row, "architecture")?,
        firmware: get(row, "firmware")?,
        status: parse_stored(&get::<String>(row, "status")?)?,
        image_id: get::<Option<String>>(row, "image_id")?.as_deref().map(parse_uuid).transpose()?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

fn volume_from_row(row: &SqliteRow) -> Result<Volume> {
    let encryption = match (get::<Option<String>>(row, "encryption_key_id")?, get::<Option<String>>(row, "wrapped_data_key")?) {
        (Some(key_id), Some(wrapped_data_key)) => Some(VolumeEncryption { key_id, wrapped_data_key }),
        _ => None,
    };
    let attachment = match (get::<Option<String>>(row, "server_id")?, get::<Option<i64>>(row, "device_index")?) {
        (Some(server), Some(index)) => Some(Attachment {
            server_id: parse_uuid(&server)?,
            device_index: u32::try_from(index).map_err(|e| CatalogError::Database(e.to_string()))?,
        }),
        _ => None,
    };
    Ok(Volume {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        project: get(row, "project")?,
        name: get(row, "name")?,
        size: u64::try_from(get::<i64>(row, "size")?).map_err(|e| CatalogError::Database(e.to_string()))?,
        manifest_id: get(row, "manifest_id")?,
        source_image_id: get::<Option<String>>(row, "source_image_id")?.as_deref().map(parse_uuid).transpose()?,
        bootable: get::<i64>(row, "bootable")? != 0,
        encryption,
        attachment,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

fn too_big(what: &str) -> CatalogError {
    CatalogError::Invalid(format!("{what} is too large"))
}

async fn fetch_volume(conn: &mut SqliteConnection, id: Uuid) -> Result<Volume> {
    let row = sqlx::query(&format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(volume_from_row).transpose()?.ok_or_else(|| CatalogError::NotFound(format!("volume {id}")))
}

async fn fetch_server(conn: &mut SqliteConnection, id: Uuid) -> Result<Server> {
    let row = sqlx::query(&format!("SELECT {SERVER_COLUMNS} FROM servers WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(server_from_row).transpose()?.ok_or_else(|| CatalogError::NotFound(format!("server {id}")))
}

async fn insert_volume(conn: &mut SqliteConnection, v: &Volume) -> Result<()> {
    sqlx::query(&format!("INSERT INTO volumes ({VOLUME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
        .bind(v.id.to_string())
        .bind(&v.project)
        .bind(&v.name)
        .bind(i64::try_from(v.size).map_err(|_| too_big("volume size"))?)
        .bind(&v.manifest_id)
        .bind(v.source_image_id.map(|id| id.to_string()))
        .bind(i64::from(v.bootable))
        .bind(v.encryption.as_ref().map(|e| e.key_id.clone()))
        .bind(v.encryption.as_ref().map(|e| e.wrapped_data_key.clone()))
        .bind(v.attachment.map(|a| a.server_id.to_string()))
        .bind(v.attachment.map(|a| i64::from(a.device_index)))
        .bind(fmt_time(&v.created_at))
        .bind(fmt_time(&v.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(conflict_or_db(|| format!("volume {} or its device is taken", v.id)))?;
    Ok(())
}

#[async_trait]
impl ComputeRepository for SqliteCompute {
    async fn create_server(&self, server: &Server, volumes: &[Volume], event: &AuditEvent) -> Result<()> {
        crate::compute::check_firmware(&server.firmware)?;
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!("INSERT INTO servers ({SERVER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(server.id.to_string())
            .bind(&server.project)
            .bind(&server.name)
            .bind(server.server_type.as_str())
            .bind(i64::from(server.vcpus))
            .bind(i64::try_from(server.ram_mb).map_err(|_| too_big("ram_mb"))?)
            .bind(&server.architecture)
            .bind(server.status.as_str())
            .bind(server.image_id.map(|id| id.to_string()))
            .bind(fmt_time(&server.created_at))
            .bind(fmt_time(&server.updated_at))
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
        fetch_server(&mut conn, id).await
    }

    async fn list_servers(&self, project: Option<&str>) -> Result<Vec<Server>> {
        let rows = sqlx::query(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE (?1 IS NULL OR project = ?1) ORDER BY created_at, id"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(server_from_row).collect()
    }

    async fn delete_server(&self, id: Uuid, keep_volumes: bool, at: DateTime<Utc>, event: &AuditEvent)
        -> Result<Vec<Volume>> {
        let mut tx = begin_write(&self.pool).await?;
        fetch_server(&mut tx, id).await?;
        let rows = sqlx::query(&format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE server_id = ? ORDER BY device_index"))
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let attached = rows.iter().map(volume_from_row).collect::<Result<Vec<_>>>()?;
        let deleted = if keep_volumes {
            sqlx::query("UPDATE volumes SET server_id = NULL, device_index = NULL, updated_at = ? WHERE server_id = ?")
                .bind(fmt_time(&at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            Vec::new()
        } else {
            sqlx::query("DELETE FROM volumes WHERE server_id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            attached
        };
        sqlx::query("DELETE FROM servers WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await.map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(deleted)
    }

    async fn create_volume(&self, volume: &Volume, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        if let Some(a) = volume.attachment {
            fetch_server(&mut tx, a.server_id).await?;
        }
        insert_volume(&mut tx, volume).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_volume(&self, id: Uuid) -> Result<Volume> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        fetch_volume(&mut conn, id).await
    }

    async fn list_volumes(&self, project: Option<&str>, server: Option<Uuid>) -> Result<Vec<Volume>> {
        let order = if server.is_some() { "device_index" } else { "created_at, id" };
        let rows = sqlx::query(&format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes WHERE (?1 IS NULL OR project = ?1) \
             AND (?2 IS NULL OR server_id = ?2) ORDER BY {order}"
        ))
        .bind(project)
        .bind(server.map(|id| id.to_string()))
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
        let mut tx = begin_write(&self.pool).await?;
        let volume = fetch_volume(&mut tx, id).await?;
        let server = fetch_server(&mut tx, server_id).await?;
        if volume.project != server.project {
            return Err(CatalogError::Invalid(format!("volume {id} and server {server_id} belong to different projects")));
        }
        if volume.attachment.is_some() {
            return Err(CatalogError::Conflict(format!("volume {id} is attached already")));
        }
        let index = match device_index {
            Some(index) => i64::from(index),
            None => {
                let taken: Vec<i64> = sqlx::query_scalar("SELECT device_index FROM volumes WHERE server_id = ?")
                    .bind(server_id.to_string())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                crate::compute::lowest_free_data_device(&taken)
            }
        };
        sqlx::query("UPDATE volumes SET server_id = ?, device_index = ?, updated_at = ? WHERE id = ?")
            .bind(server_id.to_string())
            .bind(index)
            .bind(fmt_time(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("device {index} of server {server_id} is taken")))?;
        let volume = fetch_volume(&mut tx, id).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(volume)
    }

    async fn detach_volume(&self, id: Uuid, at: DateTime<Utc>, event: &AuditEvent) -> Result<Volume> {
        let mut tx = begin_write(&self.pool).await?;
        if fetch_volume(&mut tx, id).await?.attachment.is_none() {
            return Err(CatalogError::Conflict(format!("volume {id} is not attached")));
        }
        sqlx::query("UPDATE volumes SET server_id = NULL, device_index = NULL, updated_at = ? WHERE id = ?")
            .bind(fmt_time(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let volume = fetch_volume(&mut tx, id).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(volume)
    }

    async fn set_volume_manifest(&self, id: Uuid, manifest_id: &str, at: DateTime<Utc>) -> Result<Volume> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query("UPDATE volumes SET manifest_id = ?, updated_at = ? WHERE id = ?")
            .bind(manifest_id)
            .bind(fmt_time(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("volume {id}")));
        }
        let volume = fetch_volume(&mut tx, id).await?;
        commit(tx).await?;
        Ok(volume)
    }

    async fn delete_volume(&self, id: Uuid, event: &AuditEvent) -> Result<Volume> {
        let mut tx = begin_write(&self.pool).await?;
        let volume = fetch_volume(&mut tx, id).await?;
        if volume.attachment.is_some() {
            return Err(CatalogError::Conflict(format!("volume {id} is attached to a server")));
        }
        sqlx::query("DELETE FROM volumes WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await.map_err(db_err)?;
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
        let inserted = sqlx::query(
            "INSERT INTO volume_exports (name_hash, volume_id, created_by, created_at, expires_at) \
             SELECT ?, id, ?, ?, ? FROM volumes WHERE id = ?",
        )
        .bind(&export.name_hash)
        .bind(&export.created_by)
        .bind(fmt_time(&export.created_at))
        .bind(fmt_time(&export.expires_at))
        .bind(export.volume_id.to_string())
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
            "SELECT name_hash, volume_id, created_by, created_at, expires_at FROM volume_exports WHERE name_hash = ?",
        )
        .bind(name_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(VolumeExport {
            name_hash: get(&row, "name_hash")?,
            volume_id: parse_uuid(&get::<String>(&row, "volume_id")?)?,
            created_by: get(&row, "created_by")?,
            created_at: parse_time(&get::<String>(&row, "created_at")?)?,
            expires_at: parse_time(&get::<String>(&row, "expires_at")?)?,
        }))
    }

    async fn revoke_export(&self, volume_id: Uuid, name_hash: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM volume_exports WHERE name_hash = ? AND volume_id = ?")
            .bind(name_hash)
            .bind(volume_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("NBD export of volume {volume_id}")));
        }
        Ok(())
    }

    async fn purge_expired_exports(&self, now: DateTime<Utc>) -> Result<u64> {
        // Stored times have a fixed width, so text order is time order.
        let deleted = sqlx::query("DELETE FROM volume_exports WHERE expires_at < ?")
            .bind(fmt_time(&now))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(deleted.rows_affected())
    }
}
