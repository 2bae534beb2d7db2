//! Capsule images: an application packaged on a base image, deployable in one step.
//!
//! A capsule is an ordinary image record (listed, shared, exported and deleted like any image)
//! marked by properties the service owns:
//!
//! - `__image_kind=capsule`;
//! - `__capsule_base_image`: the id of the base system disk image;
//! - `__capsule_app_images`: the ids of the application data disk images, comma-separated, in the
//!   order they are attached;
//! - the cloud-init user data is the capsule record's own data (at most [`MAX_USER_DATA`] bytes,
//!   `disk_format=raw`, `container_format=bare`), so it is stored, checksummed and shared like any
//!   image data; every other property of the capsule is its metadata.
//!
//! Parts are resolved with the rights of the capsule's owner project: whoever may see the capsule
//! (its owner, its accepted members, everyone for a public one) may deploy it, and a record that
//! merely claims to be a capsule cannot reach images its owner could not see. Deleting a part is
//! not refused (its owner may not know of the capsule); the capsule then no longer resolves and
//! says which part is gone.

use std::collections::{BTreeMap, HashSet};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use ims_catalog::{Image, ImageQuery, ImageStatus, Role, Visibility};
use uuid::Uuid;

use crate::images::check_string;
use crate::{Caller, CoreError, ImageService, NewImage, RequestContext, Result};

/// Property naming the kind of a record that is not a plain disk image.
pub const KIND_PROPERTY: &str = "__image_kind";
/// Value of [`KIND_PROPERTY`] for capsules.
pub const KIND_CAPSULE: &str = "capsule";
/// Property holding the base system disk image id.
pub const BASE_PROPERTY: &str = "__capsule_base_image";
/// Property holding the application data disk image ids, comma-separated.
pub const APPS_PROPERTY: &str = "__capsule_app_images";
/// Largest user data accepted (Nova's limit on `user_data`).
pub const MAX_USER_DATA: usize = 65_535;
/// Most application images one capsule may reference.
pub const MAX_APP_IMAGES: usize = 16;

/// Properties copied from the base image to the capsule unless the caller gives them, so that
/// lists and filters show what the capsule boots.
const INHERITED: &[&str] =
    &["__os_type", "__platform", "__os_version", "__os_bit", "hw_firmware_type", "architecture"];

/// What a caller gives to create a capsule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCapsule {
    pub name: String,
    /// The base system disk image (active, visible to the caller).
    pub base_image: Uuid,
    /// The application data disk images (one or more, active, visible to the caller), in order.
    pub app_images: Vec<Uuid>,
    /// cloud-init user data (may be empty).
    pub user_data: Bytes,
    /// Metadata properties of the capsule.
    pub properties: BTreeMap<String, String>,
    /// Default: `shared` (like any image: private to the owner until members are added).
    pub visibility: Option<Visibility>,
}

/// A capsule with its parts: everything a deployment needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CapsuleParts {
    /// The capsule record itself.
    pub capsule: Image,
    /// The base system disk image (boot disk).
    pub base_image: Image,
    /// The application data disk images, in attachment order.
    pub app_images: Vec<Image>,
    /// cloud-init user data for first boot.
    pub user_data: Bytes,
}

/// True when `image` is a capsule record.
pub fn is_capsule(image: &Image) -> bool {
    image.properties.get(KIND_PROPERTY).map(String::as_str) == Some(KIND_CAPSULE)
}

/// True when `image` is a data disk image (`virtual_env_type=DataImage`).
pub fn is_data_image(image: &Image) -> bool {
    image.properties.get("virtual_env_type").map(String::as_str) == Some("DataImage")
}

/// The base and application image ids a capsule record references; `Corrupt` when the properties
/// are missing or malformed.
pub fn capsule_refs(capsule: &Image) -> Result<(Uuid, Vec<Uuid>)> {
    let corrupt = |what: &str| CoreError::Corrupt(format!("capsule {}: {what}", capsule.id));
    let base = capsule
        .properties
        .get(BASE_PROPERTY)
        .and_then(|v| Uuid::parse_str(v).ok())
        .ok_or_else(|| corrupt("no valid base image id"))?;
    let apps = capsule
        .properties
        .get(APPS_PROPERTY)
        .ok_or_else(|| corrupt("no application image ids"))?
        .split(',')
        .map(|v| Uuid::parse_str(v.trim()).map_err(|_| corrupt("an invalid application image id")))
        .collect::<Result<Vec<_>>>()?;
    Ok((base, apps))
}

impl ImageService {
    /// Creates a capsule owned by the caller's project and returns it resolved.
    ///
    /// Checks first, changing nothing when any fails: the caller may create images; the name is
    /// valid; there are 1 to [`MAX_APP_IMAGES`] distinct application images; the user data is at
    /// most [`MAX_USER_DATA`] bytes; the properties do not set the capsule's own keys; the caller
    /// can see every referenced image (`Invalid` naming it otherwise, never revealing whether it
    /// exists), every one is active, the base is a system disk image (not a data disk, capsule or
    /// whole-server image) and every application image is a data disk image. Then the record is
    /// created (within the private image quota) and the user data stored as its data; if storing
    /// fails the record is deleted again (for good, not into the recycle bin).
    pub async fn create_capsule(&self, ctx: &RequestContext, new: NewCapsule) -> Result<CapsuleParts> {
        crate::Policy::check_create(ctx)?;
        check_string("name", &new.name)?;
        if new.app_images.is_empty() || new.app_images.len() > MAX_APP_IMAGES {
            return Err(CoreError::Invalid(format!(
                "a capsule needs 1 to {MAX_APP_IMAGES} application images, not {}",
                new.app_images.len()
            )));
        }
        let mut distinct = HashSet::from([new.base_image]);
        if let Some(dup) = new.app_images.iter().find(|id| !distinct.insert(**id)) {
            return Err(CoreError::Invalid(format!("image {dup} is referenced twice by the capsule")));
        }
        if new.user_data.len() > MAX_USER_DATA {
            return Err(CoreError::TooLarge(format!(
                "user data is {} bytes; at most {MAX_USER_DATA} are accepted",
                new.user_data.len()
            )));
        }
        if let Some(key) = new.properties.keys().find(|k| is_capsule_key(k)) {
            return Err(CoreError::Forbidden(format!("Attribute '{key}' is reserved for capsules.")));
        }
        let base = self.referenced(ctx, new.base_image, "base").await?;
        if is_data_image(&base) || is_capsule(&base) || base.properties.get("__whole_image").is_some_and(|v| v == "true")
        {
            return Err(CoreError::Invalid(format!("base image {} is not a system disk image", base.id)));
        }
        let mut apps = Vec::with_capacity(new.app_images.len());
        for id in &new.app_images {
            let app = self.referenced(ctx, *id, "application").await?;
            if !is_data_image(&app) || is_capsule(&app) {
                return Err(CoreError::Invalid(format!(
                    "application image {id} is not a data disk image (virtual_env_type=DataImage)"
                )));
            }
            apps.push(app);
        }

        let mut properties = new.properties;
        for key in INHERITED {
            if let Some(value) = base.properties.get(*key) {
                properties.entry((*key).to_string()).or_insert_with(|| value.clone());
            }
        }
        properties.insert(KIND_PROPERTY.into(), KIND_CAPSULE.into());
        properties.insert(BASE_PROPERTY.into(), base.id.to_string());
        let app_list = new.app_images.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
        properties.insert(APPS_PROPERTY.into(), app_list);
        let record = self
            .create(
                ctx,
                NewImage {
                    name: Some(new.name),
                    visibility: new.visibility,
                    disk_format: Some("raw".into()),
                    container_format: Some("bare".into()),
                    min_disk: base.min_disk,
                    min_ram: base.min_ram,
                    properties,
                    ..NewImage::default()
                },
            )
            .await?;
        let len = new.user_data.len() as u64;
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(new.user_data.clone())]);
        let capsule = match self.upload(ctx, record.id, Some(len), body).await {
            Ok(capsule) => capsule,
            Err(e) => {
                if let Err(cleanup) = self.delete_now(ctx, record.id).await {
                    tracing::warn!(capsule = %record.id, error = %cleanup, "capsule record left behind");
                }
                return Err(e);
            }
        };
        Ok(CapsuleParts { capsule, base_image: base, app_images: apps, user_data: new.user_data })
    }

    /// The capsule `id` with its parts, for display and deployment.
    ///
    /// `NotFound` when the caller cannot see the capsule or the image is not a capsule. Parts are
    /// looked up with the rights of the capsule's owner project; `Conflict` naming the part when one
    /// has been deleted or is no longer visible to that owner; `Corrupt` when the record's capsule
    /// properties or its user data are damaged. Reads nothing but the catalog and the user data.
    pub async fn resolve_capsule(&self, ctx: &RequestContext, id: Uuid) -> Result<CapsuleParts> {
        let capsule = self.get(ctx, id).await?;
        if !is_capsule(&capsule) || capsule.status == ImageStatus::Deleted {
            return Err(CoreError::NotFound(format!("No capsule found with ID {id}")));
        }
        let (base_id, app_ids) = capsule_refs(&capsule)?;
        let owner = owner_context(ctx, &capsule.owner);
        let base_image = self.part(&owner, &capsule, base_id, "base").await?;
        let mut app_images = Vec::with_capacity(app_ids.len());
        for app in app_ids {
            app_images.push(self.part(&owner, &capsule, app, "application").await?);
        }
        let user_data = self.user_data(ctx, &capsule).await?;
        Ok(CapsuleParts { capsule, base_image, app_images, user_data })
    }

    /// Capsules visible to the caller, newest first, `limit` at most, after `marker` (an id from
    /// the previous page).
    pub async fn list_capsules(&self, ctx: &RequestContext, limit: u32, marker: Option<Uuid>) -> Result<Vec<Image>> {
        let mut query = ImageQuery::new(ctx.viewer(), limit);
        query.marker = marker;
        query.properties.push((KIND_PROPERTY.into(), KIND_CAPSULE.into()));
        self.list(ctx, query).await
    }

    /// A referenced image at creation: visible to the caller and active.
    async fn referenced(&self, ctx: &RequestContext, id: Uuid, role: &str) -> Result<Image> {
        let image = self.get(ctx, id).await.map_err(|e| match e {
            CoreError::NotFound(_) => CoreError::Invalid(format!("{role} image {id} does not exist or is not visible to you")),
            other => other,
        })?;
        if image.status != ImageStatus::Active {
            return Err(CoreError::Invalid(format!("{role} image {id} is {}, not active", image.status)));
        }
        Ok(image)
    }

    async fn part(&self, owner: &RequestContext, capsule: &Image, id: Uuid, role: &str) -> Result<Image> {
        let gone = || {
            CoreError::Conflict(format!(
                "capsule {}: its {role} image {id} no longer exists or is no longer visible to the capsule's owner",
                capsule.id
            ))
        };
        match self.get(owner, id).await {
            Ok(image) if image.status == ImageStatus::Deleted => Err(gone()),
            Ok(image) => Ok(image),
            Err(CoreError::NotFound(_)) => Err(gone()),
            Err(e) => Err(e),
        }
    }

    async fn user_data(&self, ctx: &RequestContext, capsule: &Image) -> Result<Bytes> {
        let Some(data) = self.open_data(ctx, capsule.id).await? else { return Ok(Bytes::new()) };
        if data.size() > MAX_USER_DATA as u64 {
            return Err(CoreError::Corrupt(format!("capsule {}: user data of {} bytes", capsule.id, data.size())));
        }
        let mut out = BytesMut::with_capacity(data.size() as usize);
        let mut stream = self.read(&data, 0, data.size());
        while let Some(piece) = stream.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out.freeze())
    }
}

/// Keys only the capsule use case sets.
pub fn is_capsule_key(key: &str) -> bool {
    key == KIND_PROPERTY || key.starts_with("__capsule_")
}

/// A context acting as a member of `project`: the rights parts are resolved with.
fn owner_context(ctx: &RequestContext, project: &str) -> RequestContext {
    let caller = Caller {
        user_id: String::new(),
        user_name: String::new(),
        project_id: project.to_string(),
        project_name: String::new(),
        role: Role::Member,
    };
    RequestContext::new(ctx.request_id.clone(), Some(caller))
}
