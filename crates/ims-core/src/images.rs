//! The image use cases: create, show, list, update, delete, tag, deactivate.

use std::collections::BTreeMap;

use ims_catalog::{Catalog, Image, ImageQuery, ImageStatus, Member, Visibility};
use ims_store::ChunkStore;
use uuid::Uuid;

use crate::limits::{ImageLimits, CONTAINER_FORMATS, DISK_FORMATS, MAX_STRING, RESERVED_PREFIX};
use crate::patch::{apply_patch, PatchOp};
use crate::{CoreError, Policy, RequestContext, Result};

/// What a caller may give when creating an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewImage {
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub visibility: Option<Visibility>,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
    /// When the image becomes deprecated (see [`ims_catalog::Image::deprecate_at`]).
    pub deprecate_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Image use cases, each authorized by [`Policy`].
#[derive(Clone)]
pub struct ImageService {
    pub(crate) catalog: Catalog,
    pub(crate) store: ChunkStore,
    pub(crate) limits: ImageLimits,
    /// Key management for encrypted images (unset: images cannot ask for encryption). Shared by every
    /// clone, so the services holding one see the provider once it is configured.
    pub(crate) kms: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn crate::kms::Kms>>>,
    /// How long deleted images stay in the recycle bin (shared by every clone).
    pub(crate) retention: crate::recycle_bin::Retention,
    /// The node's extra Glance stores, which hold copies of images (shared by every clone).
    pub(crate) extra_stores: crate::glance_import::stores::ExtraStores,
    /// The node recorded on the transfers this service runs (shared by every clone).
    pub(crate) transfer_node: crate::transfers::TransferNode,
}

impl ImageService {
    pub fn new(catalog: Catalog, store: ChunkStore, limits: ImageLimits) -> ImageService {
        ImageService {
            catalog,
            store,
            limits,
            kms: Default::default(),
            retention: Default::default(),
            extra_stores: Default::default(),
            transfer_node: Default::default(),
        }
    }

    pub fn limits(&self) -> &ImageLimits {
        &self.limits
    }

    /// Creates a queued image owned by the caller's project (or `new.owner`, for admins).
    pub async fn create(&self, ctx: &RequestContext, new: NewImage) -> Result<Image> {
        Policy::check_create(ctx)?;
        let caller = Policy::require_caller(ctx)?;
        let owner = new.owner.clone().unwrap_or_else(|| caller.project_id.clone());
        Policy::check_owner(ctx, &owner)?;
        if let Some(key) = new.properties.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
            return Err(reserved(key));
        }
        let visibility = new.visibility.unwrap_or(Visibility::Shared);
        Policy::check_visibility(ctx, visibility)?;

        let mut image = Image::new(new.id.unwrap_or_else(Uuid::new_v4), &owner, crate::now());
        image.name = new.name;
        image.visibility = visibility;
        image.protected = new.protected;
        image.os_hidden = new.os_hidden;
        image.disk_format = new.disk_format;
        image.container_format = new.container_format;
        image.min_disk = new.min_disk;
        image.min_ram = new.min_ram;
        image.tags = new.tags.into_iter().collect();
        image.properties = new.properties;
        image.deprecate_at = new.deprecate_at;
        self.validate(&image)?;
        self.check_encryption_request(&image).await?;
        let event = ctx.event("image.create", format!("image:{}", image.id));
        // Admins are not limited (they publish public images and act for projects); everyone else
        // creates within the owner project's quota, counted and inserted in one transaction.
        let quota = if caller.is_admin() { None } else { Some(self.private_image_quota(&owner).await?) };
        let created = match quota {
            None => self.catalog.images.create(&image, &event).await,
            Some(q) => self.catalog.images.create_within_quota(&image, q, &event).await,
        };
        created.map_err(|e| match e {
                ims_catalog::CatalogError::LimitExceeded(_) => CoreError::QuotaExceeded(format!(
                    "Quota exceeded: project {owner} may own at most {} images",
                    quota.unwrap_or_default()
                )),
                ims_catalog::CatalogError::Conflict(_) => {
                    CoreError::Conflict(format!("Image with identifier {} already exists!", image.id))
                }
                other => other.into(),
            })?;
        Ok(image)
    }

    /// The private image quota of `project`: its own, else the service default.
    pub async fn private_image_quota(&self, project: &str) -> Result<u64> {
        let own = self.catalog.identity.project_quota(project, crate::limits::PRIVATE_IMAGES).await?;
        Ok(own.map_or(self.limits.private_image_quota, |q| u64::try_from(q).unwrap_or(0)))
    }

    /// `(used, quota)` of private images for the caller's project.
    pub async fn image_quota(&self, ctx: &RequestContext) -> Result<(u64, u64)> {
        let caller = Policy::require_caller(ctx)?;
        let used = self.catalog.images.usage(&caller.project_id).await?.image_count;
        Ok((used, self.private_image_quota(&caller.project_id).await?))
    }

    /// The image, if the caller may see it (by [`Policy::can_see`], or as a subscriber of its marketplace
    /// listing); otherwise `NotFound` (never revealing that it exists).
    pub async fn get(&self, ctx: &RequestContext, id: Uuid) -> Result<Image> {
        let not_found = || CoreError::NotFound(format!("No image found with ID {id}"));
        let image = self.catalog.images.get(id).await.map_err(|e| match e {
            ims_catalog::CatalogError::NotFound(_) => not_found(),
            other => other.into(),
        })?;
        let membership = self.membership(ctx, &image).await?;
        if Policy::can_see(ctx, &image, membership.as_ref()) || self.market_subscribed(ctx, &image).await? {
            Ok(image)
        } else {
            Err(not_found())
        }
    }

    /// The caller project's membership of a shared image it does not own, if any.
    pub(crate) async fn membership(&self, ctx: &RequestContext, image: &Image) -> Result<Option<Member>> {
        let Some(project) = ctx.project_id() else { return Ok(None) };
        if image.visibility != Visibility::Shared || project == image.owner {
            return Ok(None);
        }
        match self.catalog.members.get(image.id, project).await {
            Ok(m) => Ok(Some(m)),
            Err(ims_catalog::CatalogError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists images visible to the caller; `query.viewer` is replaced by the caller's.
    pub async fn list(&self, ctx: &RequestContext, mut query: ImageQuery) -> Result<Vec<Image>> {
        query.viewer = ctx.viewer();
        self.catalog.images.list(&query).await.map_err(|e| match e {
            ims_catalog::CatalogError::Invalid(m) if m.contains("marker") => {
                CoreError::Invalid(format!("Invalid marker. Image {} could not be found.",
                    query.marker.map(|m| m.to_string()).unwrap_or_default()))
            }
            other => other.into(),
        })
    }

    /// Applies JSON-patch style operations atomically: all apply or none.
    pub async fn update(&self, ctx: &RequestContext, id: Uuid, ops: &[PatchOp]) -> Result<Image> {
        let current = self.get(ctx, id).await?;
        Policy::check_modify(ctx, &current)?;
        let mut image = current.clone();
        apply_patch(ctx, &mut image, ops)?;
        crate::kms::domains::check_unchanged(&current, &image)?;
        if image.visibility != current.visibility {
            Policy::check_visibility(ctx, image.visibility)?;
        }
        if image.owner != current.owner {
            Policy::check_owner(ctx, &image.owner)?;
        }
        self.validate(&image)?;
        image.updated_at = crate::now();
        self.catalog
            .images
            .save(&image, &[current.status], &ctx.event("image.update", format!("image:{id}")))
            .await?;
        Ok(image)
    }

    /// Deletes the image as the service is configured: into the recycle bin when it is on (see
    /// [`ImageService::delete_image`]), else for good.
    pub async fn delete(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        self.delete_image(ctx, id, false).await.map(drop)
    }

    /// Deletes the image for good: its record becomes `deleted` and its manifests are dropped, in the
    /// default store and in every extra store holding a copy (chunks are reclaimed by the garbage
    /// collector).
    pub async fn delete_now(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        let mut image = self.get(ctx, id).await?;
        Policy::check_delete(ctx, &image)?;
        let from = image.status;
        if from == ImageStatus::Deleted {
            return Err(CoreError::NotFound(format!("No image found with ID {id}")));
        }
        image.status = ImageStatus::Deleted;
        image.updated_at = crate::now();
        self.catalog.images.save(&image, &[from], &ctx.event("image.delete", format!("image:{id}"))).await?;
        if let Some(manifest) = &image.manifest_id {
            if let Err(e) = self.store.delete_manifest(manifest).await {
                tracing::warn!(image = %id, error = %e, "manifest left for garbage collection");
            }
        }
        self.drop_store_copies(&image).await;
        Ok(())
    }

    /// Adds a tag (idempotent).
    pub async fn add_tag(&self, ctx: &RequestContext, id: Uuid, tag: &str) -> Result<()> {
        let mut image = self.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        check_string("tag", tag)?;
        if image.tags.contains(tag) {
            return Ok(());
        }
        image.tags.insert(tag.to_string());
        self.validate(&image)?;
        self.save_metadata(ctx, image, "image.tag.add").await
    }

    /// Removes a tag; `NotFound` if the image does not have it.
    pub async fn remove_tag(&self, ctx: &RequestContext, id: Uuid, tag: &str) -> Result<()> {
        let mut image = self.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        if !image.tags.remove(tag) {
            return Err(CoreError::NotFound(format!("Tag {tag} not found")));
        }
        self.save_metadata(ctx, image, "image.tag.remove").await
    }

    /// active → deactivated (the image's project members, admins). Deactivating a deactivated image is a no-op.
    pub async fn deactivate(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        self.set_activation(ctx, id, ImageStatus::Deactivated, "image.deactivate").await
    }

    /// deactivated → active (the image's project members, admins). Reactivating an active image is a no-op.
    pub async fn reactivate(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        self.set_activation(ctx, id, ImageStatus::Active, "image.reactivate").await
    }

    async fn set_activation(&self, ctx: &RequestContext, id: Uuid, to: ImageStatus, action: &str) -> Result<()> {
        let mut image = self.get(ctx, id).await?;
        Policy::check_deactivate(ctx, &image)?;
        let from = image.status;
        if from == to {
            return Ok(());
        }
        if !matches!(from, ImageStatus::Active | ImageStatus::Deactivated) {
            return Err(CoreError::Conflict(format!(
                "Not allowed to {} image in status '{from}'",
                if to == ImageStatus::Active { "reactivate" } else { "deactivate" }
            )));
        }
        image.status = to;
        image.updated_at = crate::now();
        self.catalog.images.save(&image, &[from], &ctx.event(action, format!("image:{id}"))).await?;
        Ok(())
    }

    async fn save_metadata(&self, ctx: &RequestContext, mut image: Image, action: &str) -> Result<()> {
        image.updated_at = crate::now();
        let status = image.status;
        self.catalog.images.save(&image, &[status], &ctx.event(action, format!("image:{}", image.id))).await?;
        Ok(())
    }

    /// Checks every value and limit of an image record about to be stored.
    fn validate(&self, image: &Image) -> Result<()> {
        if let Some(name) = &image.name {
            if name.chars().count() > MAX_STRING {
                return Err(CoreError::Invalid(format!("name is longer than {MAX_STRING} characters")));
            }
        }
        if let Some(f) = &image.disk_format {
            if !DISK_FORMATS.contains(&f.as_str()) {
                return Err(CoreError::Invalid(format!(
                    "Invalid disk format '{f}' for image. Valid formats: {}",
                    DISK_FORMATS.join(", ")
                )));
            }
        }
        if let Some(f) = &image.container_format {
            if !CONTAINER_FORMATS.contains(&f.as_str()) {
                return Err(CoreError::Invalid(format!(
                    "Invalid container format '{f}' for image. Valid formats: {}",
                    CONTAINER_FORMATS.join(", ")
                )));
            }
        }
        if image.min_disk < 0 || image.min_ram < 0 {
            return Err(CoreError::Invalid("min_disk and min_ram must be non-negative integers".into()));
        }
        for tag in &image.tags {
            check_string("tag", tag)?;
        }
        if image.tags.len() > self.limits.max_tags {
            return Err(CoreError::TooLarge(format!(
                "Maximum number of tags exceeded: an image may have at most {}",
                self.limits.max_tags
            )));
        }
        for (key, value) in &image.properties {
            check_string("property name", key)?;
            check_string("property value", value)?;
        }
        crate::os_versions::check_os_metadata(&image.properties)?;
        if image.properties.len() > self.limits.max_properties {
            return Err(CoreError::TooLarge(format!(
                "Maximum number of properties exceeded: an image may have at most {}",
                self.limits.max_properties
            )));
        }
        Ok(())
    }
}

/// The refusal for a property key in the service's reserved namespace.
pub(crate) fn reserved(key: &str) -> CoreError {
    CoreError::Forbidden(format!(
        "Attribute '{key}' is reserved: properties starting with {RESERVED_PREFIX} belong to the service."
    ))
}

pub(crate) fn check_string(what: &str, s: &str) -> Result<()> {
    if s.is_empty() && what != "property value" {
        return Err(CoreError::Invalid(format!("{what} must not be empty")));
    }
    if s.chars().count() > MAX_STRING {
        return Err(CoreError::Invalid(format!("{what} is longer than {MAX_STRING} characters")));
    }
    Ok(())
}
