//! Project quotas: what a project may own, read by its members and set by admins.

use ims_catalog::{AuditEvent, CatalogError, Image, ImageStatus};

use crate::limits::{
    IMAGE_BYTES, MAX_IMAGE_BYTES_QUOTA, MAX_MEMBERS_PER_IMAGE_QUOTA, MAX_PRIVATE_IMAGE_QUOTA, MEMBERS_PER_IMAGE,
    PRIVATE_IMAGES,
};
use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// One quota of one project as admins see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectQuota {
    /// How much of it the project uses now.
    pub used: u64,
    /// The limit in force: the project's own, else the service default.
    pub limit: u64,
    /// True when no admin set a limit for this project, so the service default applies.
    pub is_default: bool,
}

/// A limit of one project that has no usage of its own (a per-image limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectLimit {
    /// The limit in force: the project's own, else the service default.
    pub limit: u64,
    /// True when no admin set a limit for this project, so the service default applies.
    pub is_default: bool,
}

/// `limit` as stored, if it is in `0..=max`; else `Invalid` naming `resource`.
fn checked_limit(resource: &str, limit: Option<u64>, max: i64) -> Result<Option<i64>> {
    match limit {
        None => Ok(None),
        Some(n) => i64::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .map(Some)
            .ok_or_else(|| CoreError::Invalid(format!("quota {n} for {resource} is out of range 0..={max}"))),
    }
}

impl ImageService {
    /// How many members each image owned by `project` may have: the project's `members_per_image`
    /// quota, else the service default (Glance's `image_member_quota`).
    pub async fn members_per_image(&self, project: &str) -> Result<usize> {
        let own = self.catalog.identity.project_quota(project, MEMBERS_PER_IMAGE).await?;
        Ok(own.map_or(self.limits.max_members, |q| usize::try_from(q).unwrap_or(0)))
    }

    /// How many members `image` may have through the IMS batch API: the owner's `members_per_image`
    /// quota when an admin set one, else IMS's default; whole-server images never more than
    /// `max_whole_image_members`.
    pub(crate) async fn ims_member_limit(&self, image: &Image) -> Result<usize> {
        let own = self.catalog.identity.project_quota(&image.owner, MEMBERS_PER_IMAGE).await?;
        let own = own.map(|q| usize::try_from(q).unwrap_or(0));
        if image.properties.get("__whole_image").is_some_and(|v| v == "true") {
            let whole = self.limits.max_whole_image_members;
            Ok(own.map_or(whole, |q| q.min(whole)))
        } else {
            Ok(own.unwrap_or(self.limits.max_ims_members))
        }
    }

    /// The members-per-image quota of the project with id `project` (admins only). `NotFound` if there
    /// is no such project.
    pub async fn project_member_quota(&self, ctx: &RequestContext, project: &str) -> Result<ProjectLimit> {
        Policy::check_admin(ctx)?;
        self.catalog.identity.get_project(project).await?;
        let own = self.catalog.identity.project_quota(project, MEMBERS_PER_IMAGE).await?;
        Ok(ProjectLimit { limit: self.members_per_image(project).await? as u64, is_default: own.is_none() })
    }

    /// Sets (`Some`) or clears (`None`) the members-per-image quota of the project with id `project`.
    /// Admins only; the limit must be in `0..=MAX_MEMBERS_PER_IMAGE_QUOTA`. Existing members stay when
    /// the limit drops below their number; new ones are refused until it is respected again. Audited.
    /// `NotFound` if the project does not exist.
    pub async fn set_project_member_quota(
        &self,
        ctx: &RequestContext,
        project: &str,
        limit: Option<u64>,
    ) -> Result<ProjectLimit> {
        Policy::check_admin(ctx)?;
        let limit = checked_limit(MEMBERS_PER_IMAGE, limit, MAX_MEMBERS_PER_IMAGE_QUOTA)?;
        self.catalog.identity.get_project(project).await?;
        let event = ctx.event("quota.update", format!("project:{project}"));
        self.catalog.identity.set_project_quota(project, MEMBERS_PER_IMAGE, limit, &event).await?;
        self.project_member_quota(ctx, project).await
    }

    /// The private image quota of the project with id `project` (admins only). `NotFound` if there is none.
    pub async fn project_image_quota(&self, ctx: &RequestContext, project: &str) -> Result<ProjectQuota> {
        Policy::check_admin(ctx)?;
        self.catalog.identity.get_project(project).await?;
        let own = self.catalog.identity.project_quota(project, PRIVATE_IMAGES).await?;
        let used = self.catalog.images.usage(project).await?.image_count;
        Ok(ProjectQuota {
            used,
            limit: self.private_image_quota(project).await?,
            is_default: own.is_none(),
        })
    }

    /// Sets (`Some`) or clears (`None`, back to the service default) the private image quota of the project
    /// with id `project`.
    /// Admins only; the limit must be in `0..=MAX_PRIVATE_IMAGE_QUOTA`. A limit below what the project
    /// already owns is accepted: existing images stay, new ones are refused until the count drops below it.
    /// Recorded in the audit trail. `NotFound` if the project does not exist.
    pub async fn set_project_image_quota(
        &self,
        ctx: &RequestContext,
        project: &str,
        limit: Option<u64>,
    ) -> Result<ProjectQuota> {
        Policy::check_admin(ctx)?;
        let limit = checked_limit(PRIVATE_IMAGES, limit, MAX_PRIVATE_IMAGE_QUOTA)?;
        self.catalog.identity.get_project(project).await?;
        let event = ctx.event("quota.update", format!("project:{project}"));
        self.catalog.identity.set_project_quota(project, PRIVATE_IMAGES, limit, &event).await?;
        self.project_image_quota(ctx, project).await
    }
}

/// The byte quota of one project: what its images hold and what they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectByteQuota {
    /// Logical bytes (the sum of `size`) of the project's non-deleted images now.
    pub used: u64,
    /// The limit in force; `None` when the project's images may hold any amount.
    pub limit: Option<u64>,
    /// True when no admin set a limit for this project (then there is none).
    pub is_default: bool,
}

impl ImageService {
    /// The byte quota in force for `project`: its own if an admin set one, else none (`None`).
    pub async fn image_bytes_quota(&self, project: &str) -> Result<Option<u64>> {
        let own = self.catalog.identity.project_quota(project, IMAGE_BYTES).await?;
        Ok(own.map(|q| u64::try_from(q).unwrap_or(0)))
    }

    /// The byte quota of the caller's project and how much of it its images use.
    pub async fn own_byte_quota(&self, ctx: &RequestContext) -> Result<ProjectByteQuota> {
        let caller = Policy::require_caller(ctx)?;
        self.byte_quota_of(&caller.project_id).await
    }

    /// The byte quota of the project with id `project` (admins only). `NotFound` if there is none.
    pub async fn project_byte_quota(&self, ctx: &RequestContext, project: &str) -> Result<ProjectByteQuota> {
        Policy::check_admin(ctx)?;
        self.catalog.identity.get_project(project).await?;
        self.byte_quota_of(project).await
    }

    /// Sets (`Some`) or clears (`None`: no limit) the byte quota of the project with id `project`.
    /// Admins only; the limit must be in `0..=MAX_IMAGE_BYTES_QUOTA`. A limit below what the project's
    /// images already hold is accepted: they stay, and no image is activated until the total fits again.
    /// Audited. `NotFound` if the project does not exist.
    pub async fn set_project_byte_quota(
        &self,
        ctx: &RequestContext,
        project: &str,
        limit: Option<u64>,
    ) -> Result<ProjectByteQuota> {
        Policy::check_admin(ctx)?;
        let limit = checked_limit(IMAGE_BYTES, limit, MAX_IMAGE_BYTES_QUOTA)?;
        self.catalog.identity.get_project(project).await?;
        let event = ctx.event("quota.update", format!("project:{project}"));
        self.catalog.identity.set_project_quota(project, IMAGE_BYTES, limit, &event).await?;
        self.byte_quota_of(project).await
    }

    async fn byte_quota_of(&self, project: &str) -> Result<ProjectByteQuota> {
        let limit = self.image_bytes_quota(project).await?;
        let used = self.catalog.images.usage(project).await?.total_size;
        Ok(ProjectByteQuota { used, limit, is_default: limit.is_none() })
    }

    /// How many more bytes of data `image` may receive within its owner's byte quota (`None`: any
    /// amount), counting what the owner's other images hold now. An early answer for streaming
    /// uploads: the activation checks the quota again, atomically.
    pub(crate) async fn byte_room(&self, image: &Image) -> Result<Option<u64>> {
        let Some(limit) = self.image_bytes_quota(&image.owner).await? else { return Ok(None) };
        let held = self.catalog.images.usage(&image.owner).await?.total_size;
        let own = image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        Ok(Some(limit.saturating_sub(held.saturating_sub(own))))
    }

    /// Stores the activation of `image` (whose data fields are filled in) if its status is one of
    /// `expected`, within its owner's byte quota: the total and the write in one catalog transaction,
    /// so concurrent activations never pass the quota together. Past it: `LimitExceeded` with a message
    /// for the user (see [`bytes_exceeded`]), and nothing changes. Other errors as
    /// [`ims_catalog::ImageRepository::save`].
    pub(crate) async fn save_activation(
        &self,
        image: &Image,
        expected: &[ImageStatus],
        event: &AuditEvent,
    ) -> std::result::Result<(), CatalogError> {
        let own = self.catalog.identity.project_quota(&image.owner, IMAGE_BYTES).await?;
        let limit = own.map(|q| u64::try_from(q).unwrap_or(0));
        let images = &self.catalog.images;
        match limit {
            None => images.save(image, expected, event).await,
            Some(limit) => images.save_within_size_quota(image, expected, limit, event).await.map_err(|e| match e {
                CatalogError::LimitExceeded(_) => CatalogError::LimitExceeded(bytes_exceeded(&image.owner, limit)),
                other => other,
            }),
        }
    }
}

impl ImageService {
    /// The refusal of data for an image of `project` past its byte quota.
    pub(crate) async fn bytes_refusal(&self, project: &str) -> Result<CoreError> {
        let limit = self.image_bytes_quota(project).await?.unwrap_or(0);
        Ok(CoreError::QuotaExceeded(bytes_exceeded(project, limit)))
    }
}

/// The refusal of data past a project's byte quota.
pub(crate) fn bytes_exceeded(project: &str, limit: u64) -> String {
    format!(
        "Image storage quota exceeded: the images of project {project} may hold at most {limit} bytes in all \
         (quota {IMAGE_BYTES}); delete images or ask an admin to raise it"
    )
}
