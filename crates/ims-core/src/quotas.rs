//! Project quotas: what a project may own, read by its members and set by admins.

use ims_catalog::Image;

use crate::limits::{MAX_MEMBERS_PER_IMAGE_QUOTA, MAX_PRIVATE_IMAGE_QUOTA, MEMBERS_PER_IMAGE, PRIVATE_IMAGES};
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
