//! The records the APIs return and the requests they take.
//!
//! The client does not share types with the server: these mirror the wire format, leniently (missing
//! fields default, unknown fields are kept in `properties` / `extra`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `null` → `T::default()`; a missing field defaults through `#[serde(default)]`.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An image record of the OpenStack Images API v2, every Glance field plus the free-form properties.
///
/// Serializing it back gives the same JSON object the server sent (nullable fields as `null`,
/// properties flat at the top level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub visibility: String,
    #[serde(default, deserialize_with = "null_default")]
    pub protected: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub os_hidden: bool,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub virtual_size: Option<u64>,
    #[serde(default)]
    pub container_format: Option<String>,
    #[serde(default)]
    pub disk_format: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub min_disk: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub min_ram: u64,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// RFC 3339 time from which the image is deprecated (left out of default lists, still usable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecate_at: Option<String>,
    /// The image's own path (`/v2/images/{id}`); `self` on the wire.
    #[serde(rename = "self", default)]
    pub self_link: String,
    /// The image data's path (`/v2/images/{id}/file`).
    #[serde(default)]
    pub file: String,
    /// `/v2/schemas/image`.
    #[serde(default)]
    pub schema: String,
    /// Every other key of the record: the free-form properties (strings in Glance) and any field this
    /// client does not know.
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Image {
    /// A property's value as a string (`None` when absent or not a string).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(|v| v.as_str())
    }
}

/// One page of `GET /v2/images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<Image>,
    /// The path and query of the next page (`/v2/images?marker=...`), absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub first: Option<String>,
    #[serde(default)]
    pub schema: Option<String>,
}

/// The body of `POST /v2/images`. Unset fields are left out so that the server applies its defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateImage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_hidden: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_disk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<String>,
    /// RFC 3339 time from which the image is deprecated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecate_at: Option<String>,
    /// Extra properties, sent flat at the top level of the body.
    #[serde(flatten)]
    pub properties: BTreeMap<String, String>,
}

impl CreateImage {
    /// A request with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        CreateImage { name: Some(name.into()), ..Default::default() }
    }
}

/// Query of `GET /v2/images`. Every set field becomes one query pair (tags and sort keys one per
/// value); `extra` is appended as is (e.g. `("size_min", "10")`, `("created_at", "gt:2024-01-01T00:00:00Z")`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub name: Option<String>,
    pub status: Option<String>,
    /// `public`, `private`, `shared`, `community` or `all`.
    pub visibility: Option<String>,
    pub owner: Option<String>,
    pub member_status: Option<String>,
    pub protected: Option<bool>,
    pub os_hidden: Option<bool>,
    /// `Some(true)`: only deprecated images (`deprecate_at` passed), which lists leave out by default.
    pub deprecated: Option<bool>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// Repeated `tag=` pairs: an image must carry all of them.
    pub tags: Vec<String>,
    /// Property filters `key=value` (any other query key filters on a property).
    pub properties: Vec<(String, String)>,
    /// `sort=name:asc,status:desc` form.
    pub sort: Option<String>,
    /// Repeated `sort_key=` (the other form; do not mix with `sort`).
    pub sort_keys: Vec<String>,
    /// Repeated `sort_dir=`.
    pub sort_dirs: Vec<String>,
    pub limit: Option<u32>,
    pub marker: Option<String>,
    pub extra: Vec<(String, String)>,
}

impl ListParams {
    /// The query pairs, in a stable order.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k.to_string(), v));
            }
        };
        push("name", self.name.clone());
        push("status", self.status.clone());
        push("visibility", self.visibility.clone());
        push("owner", self.owner.clone());
        push("member_status", self.member_status.clone());
        push("protected", self.protected.map(|b| b.to_string()));
        push("os_hidden", self.os_hidden.map(|b| b.to_string()));
        push("deprecated", self.deprecated.map(|b| b.to_string()));
        push("disk_format", self.disk_format.clone());
        push("container_format", self.container_format.clone());
        for t in &self.tags {
            q.push(("tag".into(), t.clone()));
        }
        for (k, v) in &self.properties {
            q.push((k.clone(), v.clone()));
        }
        if let Some(s) = &self.sort {
            q.push(("sort".into(), s.clone()));
        }
        for k in &self.sort_keys {
            q.push(("sort_key".into(), k.clone()));
        }
        for d in &self.sort_dirs {
            q.push(("sort_dir".into(), d.clone()));
        }
        if let Some(l) = self.limit {
            q.push(("limit".into(), l.to_string()));
        }
        if let Some(m) = &self.marker {
            q.push(("marker".into(), m.clone()));
        }
        q.extend(self.extra.iter().cloned());
        q
    }
}

/// One operation of an `application/openstack-images-v2.1-json-patch` body (RFC 6902 subset Glance takes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
}

impl PatchOp {
    /// `add` on the attribute or property `name` (given without the leading `/`; escaped as a JSON pointer).
    pub fn add(name: &str, value: impl Into<Value>) -> Self {
        PatchOp::Add { path: pointer(name), value: value.into() }
    }
    /// `replace` on the attribute or property `name`.
    pub fn replace(name: &str, value: impl Into<Value>) -> Self {
        PatchOp::Replace { path: pointer(name), value: value.into() }
    }
    /// `remove` of the attribute or property `name`.
    pub fn remove(name: &str) -> Self {
        PatchOp::Remove { path: pointer(name) }
    }
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. } | PatchOp::Remove { path } | PatchOp::Replace { path, .. } => path,
        }
    }
}

/// `name` → `/name`, escaping `~` and `/` as RFC 6901 says.
pub fn pointer(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// A project an image is shared with (`GET /v2/images/{id}/members/{member}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// A member's answer to a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MemberStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(MemberStatus::Pending),
            "accepted" => Ok(MemberStatus::Accepted),
            "rejected" => Ok(MemberStatus::Rejected),
            _ => Err(format!("invalid member status {s:?}: expected pending, accepted or rejected")),
        }
    }
}

/// A project (tenant) of the identity admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub created_at: String,
}

/// A role held by a user in one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub project_id: String,
    pub role: String,
}

/// A user of the identity admin API. `project_id`/`role` are set in the answer to user creation,
/// `roles` in listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub roles: Vec<RoleAssignment>,
}

/// A bearer token. `token` (the secret) is only present in the answer that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub user_id: String,
    pub project_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// An access key (AK/SK) of `/identity/v1/access-keys`. `secret` is only present in the answer that
/// created the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The access key id (AK).
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub user_id: String,
    /// The only project the key is valid in; `None`: every project where the user has a role.
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_at: String,
    /// `active` or `revoked`.
    #[serde(default)]
    pub status: String,
}

/// The answer to `POST /identity/v1/users`: the user and its first token (secret shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    pub user: User,
    pub token: Token,
}

/// Roles a user can hold in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Reader => "reader",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "reader" => Ok(Role::Reader),
            _ => Err(format!("invalid role {s:?}: expected admin, member or reader")),
        }
    }
}

/// `{"id","name"}` of the caller's user or project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRef {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The answer to `GET /identity/v1/auth`: who the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    pub user: NamedRef,
    pub project: NamedRef,
    pub role: String,
    #[serde(default)]
    pub is_admin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn glance_image() -> Value {
        json!({
            "id": "1bea47ed-f6a9-463b-b423-14b9cca9ad27",
            "name": "cirros",
            "status": "active",
            "visibility": "public",
            "protected": false,
            "os_hidden": false,
            "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
            "os_hash_algo": "sha512",
            "os_hash_value": "abc",
            "owner": "5ef70662f8b34079a6eddb8da9d75fe8",
            "size": 13167616,
            "virtual_size": null,
            "container_format": "bare",
            "disk_format": "qcow2",
            "min_disk": 0,
            "min_ram": 0,
            "created_at": "2016-06-13T12:44:50Z",
            "updated_at": "2016-06-13T12:44:51Z",
            "tags": ["a"],
            "self": "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27",
            "file": "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27/file",
            "schema": "/v2/schemas/image",
            "hw_disk_bus": "scsi",
            "__os_type": "Linux"
        })
    }

    #[test]
    fn image_round_trips() {
        let v = glance_image();
        let img: Image = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(img.name.as_deref(), Some("cirros"));
        assert_eq!(img.size, Some(13167616));
        assert_eq!(img.self_link, "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27");
        assert_eq!(img.property("hw_disk_bus"), Some("scsi"));
        assert_eq!(img.properties.len(), 2);
        assert_eq!(serde_json::to_value(&img).unwrap(), v);
    }

    #[test]
    fn image_tolerates_nulls() {
        let img: Image = serde_json::from_value(json!({"id": "x", "min_disk": null, "tags": null, "protected": null})).unwrap();
        assert_eq!(img.min_disk, 0);
        assert!(img.tags.is_empty());
        assert!(!img.protected);
    }

    #[test]
    fn create_image_body_is_flat_and_sparse() {
        let mut c = CreateImage::named("x");
        c.disk_format = Some("raw".into());
        c.properties.insert("os_distro".into(), "ubuntu".into());
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"name": "x", "disk_format": "raw", "os_distro": "ubuntu"})
        );
    }

    #[test]
    fn list_params_query() {
        let p = ListParams {
            name: Some("n".into()),
            tags: vec!["a".into(), "b".into()],
            properties: vec![("os_distro".into(), "ubuntu".into())],
            sort: Some("name:asc".into()),
            limit: Some(5),
            ..Default::default()
        };
        let q = p.to_query();
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            vec![("name", "n"), ("tag", "a"), ("tag", "b"), ("os_distro", "ubuntu"), ("sort", "name:asc"), ("limit", "5")]
        );
    }

    #[test]
    fn patch_ops_serialize_as_rfc6902() {
        let ops = vec![
            PatchOp::replace("name", "new"),
            PatchOp::add("a/b~c", "v"),
            PatchOp::remove("old"),
        ];
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"op": "replace", "path": "/name", "value": "new"},
                {"op": "add", "path": "/a~1b~0c", "value": "v"},
                {"op": "remove", "path": "/old"}
            ])
        );
    }

    #[test]
    fn identity_records() {
        let created: CreatedUser = serde_json::from_value(json!({
            "user": {"id": "u1", "name": "alice", "created_at": "t", "project_id": "p1", "role": "member"},
            "token": {"id": "t1", "token": "secret", "user_id": "u1", "project_id": "p1", "created_at": "t", "expires_at": null}
        }))
        .unwrap();
        assert_eq!(created.token.token.as_deref(), Some("secret"));
        assert_eq!(created.user.role.as_deref(), Some("member"));
        let listed: User = serde_json::from_value(json!({
            "id": "u1", "name": "alice", "created_at": "t", "roles": [{"project_id": "p1", "role": "member"}]
        }))
        .unwrap();
        assert_eq!(listed.roles[0].role, "member");
    }
}
