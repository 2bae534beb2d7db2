//! Servers and volumes of the built-in compute driver (`/compute/v1/...`).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Client, Result};

/// A volume as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// Size in GiB (rounded up).
    pub size: u64,
    pub size_bytes: u64,
    /// `available` or `in-use`.
    pub status: String,
    pub bootable: bool,
    pub source_image_id: Option<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub server_id: Option<String>,
    pub device_index: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

/// A server as the API shows it; `volumes` is present when shown alone or just created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// `ecs` or `bms`.
    #[serde(rename = "type")]
    pub server_type: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub architecture: String,
    /// `bios` or `uefi`.
    pub firmware: String,
    pub status: String,
    pub image_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<VolumeInfo>>,
}

/// A data volume created with a server: from an image or empty, `size` in GiB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewServerDataVolume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What `POST /compute/v1/servers` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewServerRequest {
    pub name: String,
    /// `ecs` or `bms`.
    #[serde(rename = "type")]
    pub server_type: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    /// The system disk (or whole-server) image; empty when `capsule_id` is given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// The capsule to deploy instead of an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capsule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `bios` or `uefi` (default: the image's `hw_firmware_type`, else `bios`); must be the image's when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// System volume size in GiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_volume_size: Option<u64>,
    #[serde(default)]
    pub data_volumes: Vec<NewServerDataVolume>,
}

/// A minted NBD export name of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// `nbd://host:port/<secret name>`.
    pub nbd_url: String,
    /// Whether the NBD server requires TLS with a pre-shared key.
    #[serde(default)]
    pub tls: bool,
    pub expires_at: String,
}

#[derive(Deserialize)]
struct OneServer {
    server: ServerInfo,
}

#[derive(Deserialize)]
struct Servers {
    servers: Vec<ServerInfo>,
}

#[derive(Deserialize)]
struct OneVolume {
    volume: VolumeInfo,
}

#[derive(Deserialize)]
struct Volumes {
    volumes: Vec<VolumeInfo>,
}

impl Client {
    /// `POST /compute/v1/servers`: creates a server with its volumes.
    pub async fn create_server(&self, request: &NewServerRequest) -> Result<ServerInfo> {
        let url = self.url(&["compute", "v1", "servers"]);
        let body: OneServer = self.execute_json(self.request(Method::POST, url).json(&json!({"server": request}))).await?;
        Ok(body.server)
    }

    /// `GET /compute/v1/servers`: the project's servers (every project's for an admin with `all_projects`).
    pub async fn list_servers(&self, all_projects: bool) -> Result<Vec<ServerInfo>> {
        let mut url = self.url(&["compute", "v1", "servers"]);
        if all_projects {
            url.query_pairs_mut().append_pair("all_projects", "true");
        }
        let body: Servers = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.servers)
    }

    /// `GET /compute/v1/servers/{id}`: the server with its volumes.
    pub async fn get_server(&self, id: &str) -> Result<ServerInfo> {
        let url = self.url(&["compute", "v1", "servers", id]);
        let body: OneServer = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.server)
    }

    /// `DELETE /compute/v1/servers/{id}`: deletes the server, and its volumes unless `keep_volumes`.
    pub async fn delete_server(&self, id: &str, keep_volumes: bool) -> Result<()> {
        let mut url = self.url(&["compute", "v1", "servers", id]);
        if keep_volumes {
            url.query_pairs_mut().append_pair("keep_volumes", "true");
        }
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `POST /compute/v1/volumes`: creates a volume from an image or empty; `size` in GiB.
    pub async fn create_volume(&self, name: &str, size: Option<u64>, image_id: Option<&str>) -> Result<VolumeInfo> {
        let url = self.url(&["compute", "v1", "volumes"]);
        let mut volume = json!({"name": name});
        if let Some(size) = size {
            volume["size"] = json!(size);
        }
        if let Some(id) = image_id {
            volume["image_id"] = json!(id);
        }
        let body: OneVolume = self.execute_json(self.request(Method::POST, url).json(&json!({"volume": volume}))).await?;
        Ok(body.volume)
    }

    /// `GET /compute/v1/volumes`: the project's volumes, only those of `server_id` when given.
    pub async fn list_volumes(&self, all_projects: bool, server_id: Option<&str>) -> Result<Vec<VolumeInfo>> {
        let mut url = self.url(&["compute", "v1", "volumes"]);
        if all_projects {
            url.query_pairs_mut().append_pair("all_projects", "true");
        }
        if let Some(id) = server_id {
            url.query_pairs_mut().append_pair("server_id", id);
        }
        let body: Volumes = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.volumes)
    }

    /// `GET /compute/v1/volumes/{id}`.
    pub async fn get_volume(&self, id: &str) -> Result<VolumeInfo> {
        let url = self.url(&["compute", "v1", "volumes", id]);
        let body: OneVolume = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.volume)
    }

    /// `DELETE /compute/v1/volumes/{id}` (409 while attached).
    pub async fn delete_volume(&self, id: &str) -> Result<()> {
        let url = self.url(&["compute", "v1", "volumes", id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `POST /compute/v1/servers/{server_id}/volumes`: attaches a volume (at the lowest free data device
    /// when `device_index` is `None`).
    pub async fn attach_volume(&self, server_id: &str, volume_id: &str, device_index: Option<u32>) -> Result<VolumeInfo> {
        let url = self.url(&["compute", "v1", "servers", server_id, "volumes"]);
        let mut body = json!({"volume_id": volume_id});
        if let Some(index) = device_index {
            body["device_index"] = json!(index);
        }
        let body: OneVolume = self.execute_json(self.request(Method::POST, url).json(&body)).await?;
        Ok(body.volume)
    }

    /// `DELETE /compute/v1/servers/{server_id}/volumes/{volume_id}`: detaches a data volume.
    pub async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<()> {
        let url = self.url(&["compute", "v1", "servers", server_id, "volumes", volume_id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `POST /compute/v1/volumes/{id}/attachments`: mints a read-write NBD export name of the volume.
    pub async fn export_volume_nbd(&self, id: &str, ttl_seconds: Option<u64>) -> Result<VolumeAttachment> {
        let url = self.url(&["compute", "v1", "volumes", id, "attachments"]);
        let body = ttl_seconds.map_or_else(|| json!({}), |ttl| json!({"ttl_seconds": ttl}));
        self.execute_json(self.request(Method::POST, url).json(&body)).await
    }

    /// `DELETE /compute/v1/volumes/{id}/attachments`: revokes an NBD export name of the volume.
    pub async fn revoke_volume_nbd(&self, id: &str, nbd_url: &str) -> Result<()> {
        let url = self.url(&["compute", "v1", "volumes", id, "attachments"]);
        let body: Value = json!({"nbd_url": nbd_url});
        self.execute_empty(self.request(Method::DELETE, url).json(&body)).await
    }
}
