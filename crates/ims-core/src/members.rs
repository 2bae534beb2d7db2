//! Sharing images between projects.

use ims_catalog::{CatalogError, Member, MemberStatus};
use uuid::Uuid;

use crate::images::ImageService;
use crate::{CoreError, Policy, RequestContext, Result};

/// Share use cases, over the same membership rows every API uses.
#[derive(Clone)]
pub struct ShareService {
    images: ImageService,
}

impl ShareService {
    pub fn new(images: ImageService) -> ShareService {
        ShareService { images }
    }

    /// Shares a `shared` image with `project` (an id, or a project name that resolves to one), pending
    /// the member's answer. `Conflict` if already a member; `TooLarge` past the member limit.
    pub async fn add(&self, ctx: &RequestContext, image_id: Uuid, project: &str) -> Result<Member> {
        let image = self.images.get(ctx, image_id).await?;
        Policy::check_manage_members(ctx, &image)?;
        let member = self.resolve_project(project).await?;
        let existing = self.images.catalog.members.list(image_id).await?;
        if existing.iter().any(|m| m.member == member) {
            return Err(CoreError::Conflict(format!("Member {member} already exists for image {image_id}")));
        }
        let max = self.images.limits.max_members;
        if existing.len() >= max {
            return Err(CoreError::TooLarge(format!(
                "Maximum number of members exceeded: an image may have at most {max}"
            )));
        }
        let now = crate::now();
        let m = Member { image_id, member, status: MemberStatus::Pending, created_at: now, updated_at: now };
        let event = ctx.event("member.create", format!("image:{image_id}/member:{}", m.member));
        self.images.catalog.members.add(&m, &event).await.map_err(|e| match e {
            CatalogError::Conflict(_) => {
                CoreError::Conflict(format!("Member {} already exists for image {image_id}", m.member))
            }
            other => other.into(),
        })?;
        Ok(m)
    }

    /// Members the caller may see: all of them for the owner and admins, only its own for a member.
    pub async fn list(&self, ctx: &RequestContext, image_id: Uuid) -> Result<Vec<Member>> {
        let image = self.images.get(ctx, image_id).await?;
        let members = self.images.catalog.members.list(image_id).await?;
        Ok(members.into_iter().filter(|m| Policy::can_see_member(ctx, &image, &m.member)).collect())
    }

    /// One membership, if the caller may see it.
    pub async fn get(&self, ctx: &RequestContext, image_id: Uuid, member: &str) -> Result<Member> {
        let image = self.images.get(ctx, image_id).await?;
        if !Policy::can_see_member(ctx, &image, member) {
            return Err(member_not_found(image_id, member));
        }
        self.images.catalog.members.get(image_id, member).await.map_err(|e| match e {
            CatalogError::NotFound(_) => member_not_found(image_id, member),
            other => other.into(),
        })
    }

    /// The member project answers the share.
    pub async fn set_status(
        &self,
        ctx: &RequestContext,
        image_id: Uuid,
        member: &str,
        status: MemberStatus,
    ) -> Result<Member> {
        let current = self.get(ctx, image_id, member).await?;
        Policy::check_member_status(ctx, &current.member, status)?;
        let event = ctx.event("member.update", format!("image:{image_id}/member:{member}"));
        Ok(self.images.catalog.members.set_status(image_id, member, status, &event).await?)
    }

    /// The owner withdraws a share.
    pub async fn remove(&self, ctx: &RequestContext, image_id: Uuid, member: &str) -> Result<()> {
        let image = self.images.get(ctx, image_id).await?;
        Policy::check_modify(ctx, &image)?;
        let event = ctx.event("member.delete", format!("image:{image_id}/member:{member}"));
        self.images.catalog.members.remove(image_id, member, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => member_not_found(image_id, member),
            other => other.into(),
        })
    }

    /// A project id for `project`: a known id, else a known project name, else the value as given
    /// (members may name projects of an external identity service).
    async fn resolve_project(&self, project: &str) -> Result<String> {
        if project.is_empty() || project.chars().count() > 255 {
            return Err(CoreError::Invalid("member must be a project id of 1 to 255 characters".into()));
        }
        let identity = &self.images.catalog.identity;
        match identity.get_project(project).await {
            Ok(p) => return Ok(p.id),
            Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match identity.find_project(project).await {
            Ok(p) => Ok(p.id),
            Err(CatalogError::NotFound(_)) => Ok(project.to_string()),
            Err(e) => Err(e.into()),
        }
    }
}

fn member_not_found(image_id: Uuid, member: &str) -> CoreError {
    CoreError::NotFound(format!("Member {member} not found for image {image_id}"))
}
