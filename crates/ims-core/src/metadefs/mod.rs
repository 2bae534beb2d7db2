//! The metadata definitions catalog (Glance's metadefs): namespaces of property definitions, objects and
//! tags, and the resource types they apply to. Every use case is authorized by [`MetadefPolicy`].

mod policy;

use std::cmp::Ordering;

use ims_catalog::metadef::{
    MetadefItem, MetadefItemKind, MetadefNamespace, MetadefResourceType, NamespaceContents, NamespaceFilter,
    NamespaceVisibility, ResourceTypeAssociation,
};
use ims_catalog::{Catalog, CatalogError};
use serde_json::Value;

pub use policy::MetadefPolicy;

use crate::{CoreError, RequestContext, Result};

/// Longest namespace, object, property, tag and resource type name, prefix and properties target.
pub const MAX_NAME_LEN: usize = 80;
/// Longest namespace description.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Longest owner.
pub const MAX_OWNER_LEN: usize = 255;
/// Namespaces per page when the client names no limit, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: usize = 25;
pub const MAX_PAGE_SIZE: usize = 1000;

/// A namespace as a client creates or replaces it. Unset fields take Glance's defaults: `private`,
/// unprotected, owned by the caller's project.
#[derive(Debug, Clone, Default)]
pub struct NamespaceDraft {
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<NamespaceVisibility>,
    pub protected: Option<bool>,
    pub owner: Option<String>,
    /// Contents created with the namespace (ignored by updates).
    pub objects: Vec<ItemDraft>,
    pub properties: Vec<ItemDraft>,
    pub tags: Vec<String>,
    pub associations: Vec<AssociationDraft>,
}

/// An object or property as a client sends it: its name and its definition (without the name).
#[derive(Debug, Clone)]
pub struct ItemDraft {
    pub name: String,
    pub body: Value,
}

/// An association with a resource type as a client sends it.
#[derive(Debug, Clone)]
pub struct AssociationDraft {
    pub name: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
}

/// The attribute namespaces are listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceSortKey {
    Namespace,
    DisplayName,
    CreatedAt,
    UpdatedAt,
}

impl std::str::FromStr for NamespaceSortKey {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "namespace" => Ok(NamespaceSortKey::Namespace),
            "display_name" => Ok(NamespaceSortKey::DisplayName),
            "created_at" => Ok(NamespaceSortKey::CreatedAt),
            "updated_at" => Ok(NamespaceSortKey::UpdatedAt),
            other => Err(CoreError::Invalid(format!("Invalid sort key: {other}"))),
        }
    }
}

/// One page request of `GET /v2/metadefs/namespaces`.
#[derive(Debug, Clone)]
pub struct NamespaceListQuery {
    /// The last namespace of the previous page.
    pub marker: Option<String>,
    pub limit: usize,
    pub sort_key: NamespaceSortKey,
    pub descending: bool,
    pub visibility: Option<NamespaceVisibility>,
    /// Only namespaces associated with one of these resource types.
    pub resource_types: Vec<String>,
}

impl Default for NamespaceListQuery {
    fn default() -> Self {
        NamespaceListQuery {
            marker: None,
            limit: DEFAULT_PAGE_SIZE,
            sort_key: NamespaceSortKey::CreatedAt,
            descending: true,
            visibility: None,
            resource_types: Vec::new(),
        }
    }
}

/// One page of namespaces, each with its resource type associations.
#[derive(Debug, Clone)]
pub struct NamespacePage {
    pub namespaces: Vec<(MetadefNamespace, Vec<ResourceTypeAssociation>)>,
    /// The marker of the next page, when this page is full.
    pub next: Option<String>,
}

/// The use cases of the metadata definitions catalog.
#[derive(Clone)]
pub struct MetadefService {
    catalog: Catalog,
}

fn check_len(what: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(CoreError::Invalid(format!("{what} is longer than {max} characters")));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(CoreError::Invalid(format!("{what} must not be empty")));
    }
    check_len(what, name, MAX_NAME_LEN)
}

fn check_association(draft: &AssociationDraft) -> Result<()> {
    check_name("Resource type name", &draft.name)?;
    for value in [&draft.prefix, &draft.properties_target].into_iter().flatten() {
        check_len("Resource type prefix and properties target", value, MAX_NAME_LEN)?;
    }
    Ok(())
}

fn not_found(what: String) -> impl FnOnce(CatalogError) -> CoreError {
    move |e| match e {
        CatalogError::NotFound(_) => CoreError::NotFound(what),
        other => other.into(),
    }
}

impl MetadefService {
    pub fn new(catalog: Catalog) -> MetadefService {
        MetadefService { catalog }
    }

    /// The namespace if the caller may see it, else `NotFound` (also for invisible ones).
    async fn visible(&self, ctx: &RequestContext, name: &str) -> Result<MetadefNamespace> {
        MetadefPolicy::check_read(ctx)?;
        match self.catalog.metadefs.namespace(name).await? {
            Some(ns) if MetadefPolicy::can_see(ctx, &ns) => Ok(ns),
            _ => Err(CoreError::NotFound(format!("Metadata definition namespace={name} was not found."))),
        }
    }

    /// A namespace the caller may change: `NotFound` if it cannot see it, `Forbidden` if not an admin.
    async fn writable(&self, ctx: &RequestContext, name: &str) -> Result<MetadefNamespace> {
        let ns = self.visible(ctx, name).await?;
        MetadefPolicy::check_write(ctx)?;
        Ok(ns)
    }

    /// The namespace fields of `draft`, validated, with Glance's defaults filled in.
    fn namespace_fields(ctx: &RequestContext, draft: &NamespaceDraft, now: chrono::DateTime<chrono::Utc>) -> Result<MetadefNamespace> {
        check_name("Namespace", &draft.namespace)?;
        if let Some(display_name) = &draft.display_name {
            check_len("Display name", display_name, MAX_NAME_LEN)?;
        }
        if let Some(description) = &draft.description {
            check_len("Description", description, MAX_DESCRIPTION_LEN)?;
        }
        let owner = match &draft.owner {
            Some(owner) => {
                check_name("Owner", owner)?;
                check_len("Owner", owner, MAX_OWNER_LEN)?;
                owner.clone()
            }
            None => ctx.project_id().unwrap_or_default().to_string(),
        };
        Ok(MetadefNamespace {
            namespace: draft.namespace.clone(),
            display_name: draft.display_name.clone(),
            description: draft.description.clone(),
            visibility: draft.visibility.unwrap_or(NamespaceVisibility::Private),
            protected: draft.protected.unwrap_or(false),
            owner,
            created_at: now,
            updated_at: now,
        })
    }

    fn build_item(kind: MetadefItemKind, draft: &ItemDraft, now: chrono::DateTime<chrono::Utc>) -> Result<MetadefItem> {
        let noun = kind.noun();
        check_name(&format!("The {noun} name"), &draft.name)?;
        if !draft.body.is_object() {
            return Err(CoreError::Invalid(format!("The definition of {noun} {} must be a JSON object", draft.name)));
        }
        Ok(MetadefItem { name: draft.name.clone(), body: draft.body.clone(), created_at: now, updated_at: now })
    }

    fn association(draft: &AssociationDraft, now: chrono::DateTime<chrono::Utc>) -> Result<ResourceTypeAssociation> {
        check_association(draft)?;
        Ok(ResourceTypeAssociation {
            name: draft.name.clone(),
            prefix: draft.prefix.clone(),
            properties_target: draft.properties_target.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Creates a namespace with its contents in one step (admins). `Conflict` if it exists or two entries
    /// of one kind share a name; `Invalid` for bad names; nothing is stored on failure.
    pub async fn create_namespace(&self, ctx: &RequestContext, draft: &NamespaceDraft) -> Result<NamespaceContents> {
        MetadefPolicy::check_write(ctx)?;
        let now = crate::now();
        let namespace = Self::namespace_fields(ctx, draft, now)?;
        let items = |kind, drafts: &[ItemDraft]| -> Result<Vec<MetadefItem>> {
            drafts.iter().map(|d| Self::build_item(kind, d, now)).collect()
        };
        let tags: Vec<ItemDraft> =
            draft.tags.iter().map(|name| ItemDraft { name: name.clone(), body: Value::Object(Default::default()) }).collect();
        let contents = NamespaceContents {
            objects: items(MetadefItemKind::Object, &draft.objects)?,
            properties: items(MetadefItemKind::Property, &draft.properties)?,
            tags: items(MetadefItemKind::Tag, &tags)?,
            associations: draft.associations.iter().map(|a| Self::association(a, now)).collect::<Result<_>>()?,
            namespace,
        };
        let event = ctx.event("metadef.namespace.create", format!("metadef-namespace:{}", draft.namespace));
        self.catalog.metadefs.create_namespace(&contents, &event).await?;
        Ok(contents)
    }

    /// A namespace with everything in it. With `resource_type` naming one of its associations that has a
    /// prefix, property names (also inside objects and their `required` lists) carry that prefix.
    pub async fn namespace(
        &self,
        ctx: &RequestContext,
        name: &str,
        resource_type: Option<&str>,
    ) -> Result<NamespaceContents> {
        let namespace = self.visible(ctx, name).await?;
        let m = &self.catalog.metadefs;
        let mut contents = NamespaceContents {
            objects: m.items(name, MetadefItemKind::Object).await?,
            properties: m.items(name, MetadefItemKind::Property).await?,
            tags: m.items(name, MetadefItemKind::Tag).await?,
            associations: m.associations(name).await?,
            namespace,
        };
        let prefix = resource_type
            .and_then(|rt| contents.associations.iter().find(|a| a.name == rt))
            .and_then(|a| a.prefix.clone());
        if let Some(prefix) = prefix {
            for property in &mut contents.properties {
                property.name = format!("{prefix}{}", property.name);
            }
            for object in &mut contents.objects {
                prefix_object(&mut object.body, &prefix);
            }
        }
        Ok(contents)
    }

    /// One page of the namespaces the caller may see, each with its associations.
    pub async fn list_namespaces(&self, ctx: &RequestContext, query: &NamespaceListQuery) -> Result<NamespacePage> {
        MetadefPolicy::check_read(ctx)?;
        let filter = NamespaceFilter {
            visible_to: if ctx.is_admin() { None } else { Some(ctx.project_id().unwrap_or_default().to_string()) },
            visibility: query.visibility,
            resource_types: query.resource_types.clone(),
        };
        let mut all = self.catalog.metadefs.list_namespaces(&filter).await?;
        all.sort_by(|a, b| {
            let order = match query.sort_key {
                NamespaceSortKey::Namespace => Ordering::Equal,
                NamespaceSortKey::DisplayName => a.display_name.cmp(&b.display_name),
                NamespaceSortKey::CreatedAt => a.created_at.cmp(&b.created_at),
                NamespaceSortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            }
            .then_with(|| a.namespace.cmp(&b.namespace));
            if query.descending { order.reverse() } else { order }
        });
        let start = match &query.marker {
            Some(marker) => {
                let at = all.iter().position(|ns| &ns.namespace == marker).ok_or_else(|| {
                    CoreError::NotFound(format!("Metadata definition namespace={marker} was not found."))
                })?;
                at + 1
            }
            None => 0,
        };
        let limit = query.limit.min(MAX_PAGE_SIZE);
        let page: Vec<MetadefNamespace> = all.into_iter().skip(start).take(limit).collect();
        let next = (limit > 0 && page.len() == limit).then(|| page[page.len() - 1].namespace.clone());
        let mut namespaces = Vec::with_capacity(page.len());
        for ns in page {
            let associations = self.catalog.metadefs.associations(&ns.namespace).await?;
            namespaces.push((ns, associations));
        }
        Ok(NamespacePage { namespaces, next })
    }

    /// Replaces a namespace's fields (admins), Glance's way: unset fields take the creation defaults.
    /// A new name renames it with its contents. `Conflict` if that name is taken.
    pub async fn update_namespace(&self, ctx: &RequestContext, name: &str, draft: &NamespaceDraft) -> Result<MetadefNamespace> {
        let current = self.writable(ctx, name).await?;
        let mut updated = Self::namespace_fields(ctx, draft, crate::now())?;
        updated.created_at = current.created_at;
        let event = ctx.event("metadef.namespace.update", format!("metadef-namespace:{name}"));
        self.catalog.metadefs.update_namespace(name, &updated, &event).await.map_err(|e| match e {
            CatalogError::Conflict(_) => CoreError::Conflict(format!("Namespace {} already exists", updated.namespace)),
            other => other.into(),
        })?;
        Ok(updated)
    }

    /// Deletes a namespace and its contents (admins). `Forbidden` if it is protected.
    pub async fn delete_namespace(&self, ctx: &RequestContext, name: &str) -> Result<()> {
        let ns = self.visible(ctx, name).await?;
        MetadefPolicy::check_delete(ctx, &ns)?;
        let event = ctx.event("metadef.namespace.delete", format!("metadef-namespace:{name}"));
        self.catalog.metadefs.delete_namespace(name, &event).await?;
        Ok(())
    }

    /// Every entry of `kind` in the namespace, by name.
    pub async fn items(&self, ctx: &RequestContext, namespace: &str, kind: MetadefItemKind) -> Result<Vec<MetadefItem>> {
        self.visible(ctx, namespace).await?;
        Ok(self.catalog.metadefs.items(namespace, kind).await?)
    }

    /// One entry. With `resource_type`, `name` carries the prefix of the namespace's association with that
    /// resource type: it is looked up without it and returned with it (`NotFound` if the association is
    /// missing, has no prefix, or the name does not start with it).
    pub async fn item(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: MetadefItemKind,
        name: &str,
        resource_type: Option<&str>,
    ) -> Result<MetadefItem> {
        self.visible(ctx, namespace).await?;
        let missing = || CoreError::NotFound(format!("Metadata definition {} {name} was not found in namespace {namespace}.", kind.noun()));
        let mut lookup = name.to_string();
        let mut prefix = None;
        if let Some(rt) = resource_type {
            // As in Glance: the association must exist and have a prefix that the name starts with.
            let associations = self.catalog.metadefs.associations(namespace).await?;
            let p = associations.into_iter().find(|a| a.name == rt).and_then(|a| a.prefix).ok_or_else(missing)?;
            lookup = name.strip_prefix(p.as_str()).ok_or_else(missing)?.to_string();
            prefix = Some(p);
        }
        let mut item = self.catalog.metadefs.item(namespace, kind, &lookup).await?.ok_or_else(missing)?;
        if let Some(p) = prefix {
            item.name = format!("{p}{}", item.name);
        }
        Ok(item)
    }

    /// Adds one object, property or tag (admins). `Conflict` if the name is taken.
    pub async fn create_item(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: MetadefItemKind,
        draft: &ItemDraft,
    ) -> Result<MetadefItem> {
        self.writable(ctx, namespace).await?;
        let item = Self::build_item(kind, draft, crate::now())?;
        let event = ctx.event(&format!("metadef.{}.create", kind.noun()), format!("metadef-namespace:{namespace}"));
        self.catalog.metadefs.create_items(namespace, kind, std::slice::from_ref(&item), false, &event).await?;
        Ok(item)
    }

    /// Adds several tags at once (admins): with `append`, to those there; without, in their place.
    /// `Conflict` (and nothing changes) if a name repeats or, when appending, is taken.
    pub async fn create_tags(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        names: &[String],
        append: bool,
    ) -> Result<Vec<MetadefItem>> {
        self.writable(ctx, namespace).await?;
        let now = crate::now();
        let tags = names
            .iter()
            .map(|name| Self::build_item(MetadefItemKind::Tag, &ItemDraft { name: name.clone(), body: Value::Object(Default::default()) }, now))
            .collect::<Result<Vec<_>>>()?;
        let event = ctx.event("metadef.tags.create", format!("metadef-namespace:{namespace}"));
        self.catalog.metadefs.create_items(namespace, MetadefItemKind::Tag, &tags, !append, &event).await?;
        Ok(tags)
    }

    /// Replaces one entry (admins); a new name renames it. `Conflict` if that name is taken.
    pub async fn update_item(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: MetadefItemKind,
        name: &str,
        draft: &ItemDraft,
    ) -> Result<MetadefItem> {
        self.writable(ctx, namespace).await?;
        let mut item = Self::build_item(kind, draft, crate::now())?;
        let current = self.catalog.metadefs.item(namespace, kind, name).await?.ok_or_else(|| {
            CoreError::NotFound(format!("Metadata definition {} {name} was not found in namespace {namespace}.", kind.noun()))
        })?;
        item.created_at = current.created_at;
        let event = ctx.event(&format!("metadef.{}.update", kind.noun()), format!("metadef-namespace:{namespace}"));
        self.catalog
            .metadefs
            .update_item(namespace, kind, name, &item, &event)
            .await
            .map_err(not_found(format!("Metadata definition {} {name} was not found in namespace {namespace}.", kind.noun())))?;
        Ok(item)
    }

    /// Deletes one entry (admins).
    pub async fn delete_item(&self, ctx: &RequestContext, namespace: &str, kind: MetadefItemKind, name: &str) -> Result<()> {
        self.writable(ctx, namespace).await?;
        let event = ctx.event(&format!("metadef.{}.delete", kind.noun()), format!("metadef-namespace:{namespace}"));
        self.catalog
            .metadefs
            .delete_item(namespace, kind, name, &event)
            .await
            .map_err(not_found(format!("Metadata definition {} {name} was not found in namespace {namespace}.", kind.noun())))
    }

    /// Deletes every entry of `kind` in the namespace (admins). A protected namespace's contents cannot
    /// be deleted either.
    pub async fn delete_items(&self, ctx: &RequestContext, namespace: &str, kind: MetadefItemKind) -> Result<u64> {
        let ns = self.visible(ctx, namespace).await?;
        MetadefPolicy::check_delete(ctx, &ns)?;
        let event = ctx.event(&format!("metadef.{}.delete_all", kind.noun()), format!("metadef-namespace:{namespace}"));
        Ok(self.catalog.metadefs.delete_items(namespace, kind, &event).await?)
    }

    /// Every resource type, for any signed-in caller.
    pub async fn resource_types(&self, ctx: &RequestContext) -> Result<Vec<MetadefResourceType>> {
        MetadefPolicy::check_read(ctx)?;
        Ok(self.catalog.metadefs.resource_types().await?)
    }

    /// The namespace's resource type associations.
    pub async fn associations(&self, ctx: &RequestContext, namespace: &str) -> Result<Vec<ResourceTypeAssociation>> {
        self.visible(ctx, namespace).await?;
        Ok(self.catalog.metadefs.associations(namespace).await?)
    }

    /// Associates the namespace with a resource type, created if new (admins). `Conflict` if associated.
    pub async fn create_association(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        draft: &AssociationDraft,
    ) -> Result<ResourceTypeAssociation> {
        self.writable(ctx, namespace).await?;
        let association = Self::association(draft, crate::now())?;
        let event = ctx.event("metadef.resource_type.associate", format!("metadef-namespace:{namespace}"));
        self.catalog.metadefs.create_association(namespace, &association, &event).await?;
        Ok(association)
    }

    /// Removes an association (admins).
    pub async fn delete_association(&self, ctx: &RequestContext, namespace: &str, resource_type: &str) -> Result<()> {
        self.writable(ctx, namespace).await?;
        let event = ctx.event("metadef.resource_type.dissociate", format!("metadef-namespace:{namespace}"));
        self.catalog.metadefs.delete_association(namespace, resource_type, &event).await.map_err(not_found(format!(
            "Namespace {namespace} is not associated with resource type {resource_type}."
        )))
    }
}

/// Prepends `prefix` to the property names of an object's definition and to its `required` list.
fn prefix_object(body: &mut Value, prefix: &str) {
    if let Some(properties) = body.get_mut("properties").and_then(Value::as_object_mut) {
        let renamed = std::mem::take(properties).into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)).collect();
        *properties = renamed;
    }
    if let Some(required) = body.get_mut("required").and_then(Value::as_array_mut) {
        for name in required.iter_mut() {
            if let Some(s) = name.as_str() {
                *name = Value::String(format!("{prefix}{s}"));
            }
        }
    }
}
