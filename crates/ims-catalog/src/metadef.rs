//! The metadata definitions catalog (Glance's "metadefs"): namespaces of property definitions, objects
//! (named groups of properties), tags, and the resource types (images, volumes, flavors, ...) each
//! namespace applies to. Dashboards read them to offer the metadata keys a cloud understands.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{AuditEvent, CatalogError, Result};

/// Who may read a namespace besides admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceVisibility {
    /// Every signed-in caller.
    Public,
    /// The owning project only.
    Private,
}

impl NamespaceVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceVisibility::Public => "public",
            NamespaceVisibility::Private => "private",
        }
    }
}

impl fmt::Display for NamespaceVisibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NamespaceVisibility {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "public" => Ok(NamespaceVisibility::Public),
            "private" => Ok(NamespaceVisibility::Private),
            other => Err(CatalogError::Invalid(format!("unknown namespace visibility {other:?}"))),
        }
    }
}

/// A namespace's own fields, without its contents.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadefNamespace {
    /// The unique name, e.g. `OS::Compute::CPUPinning`.
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: NamespaceVisibility,
    /// A protected namespace cannot be deleted.
    pub protected: bool,
    /// The owning project.
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The three kinds of named entries a namespace holds. Each kind has its own name space: an object and a
/// property may share a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadefItemKind {
    /// A named group of property definitions; its body holds `description`, `required` and `properties`.
    Object,
    /// One property definition; its body is the definition (`type`, `title`, `enum`, ...) without the name.
    Property,
    /// A tag; its body is an empty object.
    Tag,
}

impl MetadefItemKind {
    /// The word used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            MetadefItemKind::Object => "object",
            MetadefItemKind::Property => "property",
            MetadefItemKind::Tag => "tag",
        }
    }
}

/// One object, property or tag of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadefItem {
    pub name: String,
    /// The definition, stored and returned as given (a JSON object).
    pub body: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A namespace's association with a resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceTypeAssociation {
    /// The resource type, e.g. `OS::Glance::Image`.
    pub name: String,
    /// Prepended to the namespace's property names when they are applied to this resource type.
    pub prefix: Option<String>,
    /// Which of the resource's key/value sets the properties go to (e.g. `image` for Cinder volumes).
    pub properties_target: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A resource type namespaces can be associated with.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadefResourceType {
    pub name: String,
    pub protected: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A namespace with everything in it, as created in one step.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceContents {
    pub namespace: MetadefNamespace,
    pub objects: Vec<MetadefItem>,
    pub properties: Vec<MetadefItem>,
    pub tags: Vec<MetadefItem>,
    pub associations: Vec<ResourceTypeAssociation>,
}

/// Which namespaces [`MetadefRepository::list_namespaces`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceFilter {
    /// Only public namespaces and those owned by this project; `None` for every namespace (admins).
    pub visible_to: Option<String>,
    /// Only namespaces of this visibility.
    pub visibility: Option<NamespaceVisibility>,
    /// Only namespaces associated with at least one of these resource types (no restriction when empty).
    pub resource_types: Vec<String>,
}

/// The metadata definitions catalog. Who may read or change what is the caller's business. Every write
/// happens in one transaction together with its audit event: it applies entirely or not at all.
#[async_trait]
pub trait MetadefRepository: Send + Sync {
    /// Creates a namespace with its objects, properties, tags and resource type associations; resource
    /// types named by an association that do not exist yet are created (unprotected). `Conflict` if the
    /// namespace exists or two entries of one kind (or two associations) share a name; nothing is stored then.
    async fn create_namespace(&self, contents: &NamespaceContents, event: &AuditEvent) -> Result<()>;

    /// The namespace named `namespace`, or `None`.
    async fn namespace(&self, namespace: &str) -> Result<Option<MetadefNamespace>>;

    /// The namespaces passing `filter`, ordered by name.
    async fn list_namespaces(&self, filter: &NamespaceFilter) -> Result<Vec<MetadefNamespace>>;

    /// Replaces the fields of namespace `old_name` with `new` (which may rename it: its contents follow),
    /// keeping its `created_at`. `NotFound` if it is missing; `Conflict` if renamed onto an existing name.
    async fn update_namespace(&self, old_name: &str, new: &MetadefNamespace, event: &AuditEvent) -> Result<()>;

    /// Deletes the namespace and everything in it (associations included; resource types stay).
    /// `NotFound` if it is missing.
    async fn delete_namespace(&self, namespace: &str, event: &AuditEvent) -> Result<()>;

    /// The entries of `kind` in `namespace`, ordered by name. Empty for a missing namespace.
    async fn items(&self, namespace: &str, kind: MetadefItemKind) -> Result<Vec<MetadefItem>>;

    /// One entry, or `None` (also for a missing namespace).
    async fn item(&self, namespace: &str, kind: MetadefItemKind, name: &str) -> Result<Option<MetadefItem>>;

    /// Adds `items` of `kind` to `namespace`; with `replace`, the entries of that kind already there are
    /// deleted first. `NotFound` if the namespace is missing; `Conflict` if a name is taken (or repeated in
    /// `items`): then nothing changes.
    async fn create_items(
        &self,
        namespace: &str,
        kind: MetadefItemKind,
        items: &[MetadefItem],
        replace: bool,
        event: &AuditEvent,
    ) -> Result<()>;

    /// Replaces entry `old_name` with `item` (which may rename it), keeping its `created_at`. `NotFound` if
    /// the entry is missing; `Conflict` if renamed onto an existing name.
    async fn update_item(
        &self,
        namespace: &str,
        kind: MetadefItemKind,
        old_name: &str,
        item: &MetadefItem,
        event: &AuditEvent,
    ) -> Result<()>;

    /// Deletes one entry. `NotFound` if it is missing.
    async fn delete_item(&self, namespace: &str, kind: MetadefItemKind, name: &str, event: &AuditEvent) -> Result<()>;

    /// Deletes every entry of `kind` in `namespace`; returns how many there were. `NotFound` if the
    /// namespace is missing.
    async fn delete_items(&self, namespace: &str, kind: MetadefItemKind, event: &AuditEvent) -> Result<u64>;

    /// Every resource type, ordered by name.
    async fn resource_types(&self) -> Result<Vec<MetadefResourceType>>;

    /// The resource types `namespace` is associated with, ordered by name. Empty for a missing namespace.
    async fn associations(&self, namespace: &str) -> Result<Vec<ResourceTypeAssociation>>;

    /// Associates `namespace` with a resource type, creating the resource type (unprotected) if it is new.
    /// `NotFound` if the namespace is missing; `Conflict` if the association exists.
    async fn create_association(
        &self,
        namespace: &str,
        association: &ResourceTypeAssociation,
        event: &AuditEvent,
    ) -> Result<()>;

    /// Removes an association (the resource type stays). `NotFound` if it is missing.
    async fn delete_association(&self, namespace: &str, resource_type: &str, event: &AuditEvent) -> Result<()>;
}
