//! Who may do what. Every use case asks `Policy` before it acts; handlers never decide access.
//!
//! The rules are Glance's default policy: owners and admins change images; readers only look;
//! visibility and membership decide who sees an image; publishing public images is admin-only;
//! deactivating and reactivating are for the image's project members and admins (Glance's `deactivate`
//! and `reactivate` rules).

use ims_catalog::{Image, ImageStatus, Member, MemberStatus, Visibility};

use crate::{CoreError, RequestContext, Result};

pub struct Policy;

impl Policy {
    /// Whether the caller may see `image`. `membership` is the caller project's membership, if any.
    /// Images the caller may not see must be reported as not found, never as forbidden.
    pub fn can_see(ctx: &RequestContext, image: &Image, membership: Option<&Member>) -> bool {
        if ctx.is_admin() || matches!(image.visibility, Visibility::Public | Visibility::Community) {
            return true;
        }
        match ctx.project_id() {
            Some(project) if project == image.owner => true,
            Some(_) => image.visibility == Visibility::Shared && membership.is_some(),
            None => false,
        }
    }

    /// The caller must be signed in.
    pub fn require_caller(ctx: &RequestContext) -> Result<&crate::Caller> {
        ctx.caller.as_ref().ok_or_else(|| CoreError::Unauthenticated("authentication required".into()))
    }

    /// Changing an image's metadata, data, tags or members: its owner (member or admin role) or an admin.
    pub fn check_modify(ctx: &RequestContext, image: &Image) -> Result<()> {
        let caller = Self::require_caller(ctx)?;
        if caller.is_admin() {
            return Ok(());
        }
        if caller.project_id != image.owner {
            return Err(CoreError::Forbidden(format!(
                "You are not permitted to modify image {}.",
                image.id
            )));
        }
        if !caller.can_write() {
            return Err(CoreError::Forbidden("The reader role cannot modify images.".into()));
        }
        Ok(())
    }

    /// Creating an image in the caller's project (readers may not).
    pub fn check_create(ctx: &RequestContext) -> Result<()> {
        let caller = Self::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("The reader role cannot create images.".into()));
        }
        Ok(())
    }

    /// Setting `visibility`: `public` is for admins only.
    pub fn check_visibility(ctx: &RequestContext, visibility: Visibility) -> Result<()> {
        if visibility == Visibility::Public && !ctx.is_admin() {
            return Err(CoreError::Forbidden(
                "You are not authorized to set image visibility to public.".into(),
            ));
        }
        Ok(())
    }

    /// Creating an image owned by a project other than the caller's: admins only.
    pub fn check_owner(ctx: &RequestContext, owner: &str) -> Result<()> {
        let caller = Self::require_caller(ctx)?;
        if owner != caller.project_id && !caller.is_admin() {
            return Err(CoreError::Forbidden("You are not permitted to set the owner of an image.".into()));
        }
        Ok(())
    }

    /// Deleting: modify rights, and never a protected image.
    pub fn check_delete(ctx: &RequestContext, image: &Image) -> Result<()> {
        Self::check_modify(ctx, image)?;
        if image.protected {
            return Err(CoreError::Forbidden(format!("Image {} is protected and cannot be deleted.", image.id)));
        }
        Ok(())
    }

    /// Deactivating and reactivating: the image's project with a writing role, or an admin, as for any
    /// change (Glance's default rule: admin, or member of the owning project).
    pub fn check_deactivate(ctx: &RequestContext, image: &Image) -> Result<()> {
        Self::check_modify(ctx, image)
    }

    /// Downloading: a deactivated image's data is for admins only.
    pub fn check_download(ctx: &RequestContext, image: &Image) -> Result<()> {
        if image.status == ImageStatus::Deactivated && !ctx.is_admin() {
            return Err(CoreError::Forbidden("The requested image has been deactivated. Image data download is forbidden.".into()));
        }
        Ok(())
    }

    /// Adding or removing members: the owner (or an admin), and only on `shared` images.
    pub fn check_manage_members(ctx: &RequestContext, image: &Image) -> Result<()> {
        Self::check_modify(ctx, image)?;
        if image.visibility != Visibility::Shared {
            return Err(CoreError::Forbidden(format!(
                "Only shared images have members. Image {} is {}.",
                image.id, image.visibility
            )));
        }
        Ok(())
    }

    /// Answering a share: only the member project itself.
    pub fn check_member_status(ctx: &RequestContext, member: &str, _status: MemberStatus) -> Result<()> {
        let caller = Self::require_caller(ctx)?;
        if caller.project_id != member {
            return Err(CoreError::Forbidden("Only the member can change its own status.".into()));
        }
        if !caller.can_write() {
            return Err(CoreError::Forbidden("The reader role cannot change member status.".into()));
        }
        Ok(())
    }

    /// Whether the caller may see a given membership row: the image owner, an admin, or the member.
    pub fn can_see_member(ctx: &RequestContext, image: &Image, member: &str) -> bool {
        ctx.is_admin() || ctx.project_id().is_some_and(|p| p == image.owner || p == member)
    }

    /// Administrative identity actions.
    pub fn check_admin(ctx: &RequestContext) -> Result<()> {
        Self::require_caller(ctx)?;
        if !ctx.is_admin() {
            return Err(CoreError::Forbidden("Admin role required.".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ims_catalog::Role;
    use uuid::Uuid;

    use super::*;
    use crate::Caller;

    fn ctx(project: &str, role: Role) -> RequestContext {
        RequestContext::new(
            "req-1".into(),
            Some(Caller {
                user_id: format!("u-{project}"),
                user_name: "u".into(),
                project_id: project.into(),
                project_name: project.into(),
                role,
            }),
        )
    }

    fn image(owner: &str, visibility: Visibility) -> Image {
        let mut i = Image::new(Uuid::new_v4(), owner, Utc::now());
        i.visibility = visibility;
        i
    }

    fn member(image: &Image, project: &str, status: MemberStatus) -> Member {
        Member { image_id: image.id, member: project.into(), status, created_at: Utc::now(), updated_at: Utc::now() }
    }

    #[test]
    fn visibility_decides_who_sees() {
        let other = ctx("b", Role::Member);
        let anon = RequestContext::new("req".into(), None);
        let private = image("a", Visibility::Private);
        let shared = image("a", Visibility::Shared);
        assert!(Policy::can_see(&ctx("a", Role::Reader), &private, None));
        assert!(!Policy::can_see(&other, &private, None));
        assert!(Policy::can_see(&ctx("x", Role::Admin), &private, None));
        assert!(!Policy::can_see(&other, &shared, None));
        assert!(Policy::can_see(&other, &shared, Some(&member(&shared, "b", MemberStatus::Pending))));
        assert!(Policy::can_see(&other, &image("a", Visibility::Community), None));
        assert!(Policy::can_see(&anon, &image("a", Visibility::Public), None));
        assert!(!Policy::can_see(&anon, &shared, None));
        // A membership of a private image does not reveal it.
        assert!(!Policy::can_see(&other, &private, Some(&member(&private, "b", MemberStatus::Accepted))));
    }

    #[test]
    fn only_owners_and_admins_modify_and_readers_never() {
        let img = image("a", Visibility::Private);
        assert!(Policy::check_modify(&ctx("a", Role::Member), &img).is_ok());
        assert!(matches!(Policy::check_modify(&ctx("a", Role::Reader), &img), Err(CoreError::Forbidden(_))));
        assert!(matches!(Policy::check_modify(&ctx("b", Role::Member), &img), Err(CoreError::Forbidden(_))));
        assert!(Policy::check_modify(&ctx("b", Role::Admin), &img).is_ok());
        let anon = RequestContext::new("req".into(), None);
        assert!(matches!(Policy::check_modify(&anon, &img), Err(CoreError::Unauthenticated(_))));
    }

    #[test]
    fn protected_images_cannot_be_deleted_even_by_admins() {
        let mut img = image("a", Visibility::Private);
        img.protected = true;
        assert!(matches!(Policy::check_delete(&ctx("a", Role::Admin), &img), Err(CoreError::Forbidden(_))));
        img.protected = false;
        assert!(Policy::check_delete(&ctx("a", Role::Member), &img).is_ok());
    }

    #[test]
    fn public_is_admin_only_and_deactivation_is_for_the_owner_project() {
        assert!(Policy::check_visibility(&ctx("a", Role::Member), Visibility::Public).is_err());
        assert!(Policy::check_visibility(&ctx("a", Role::Member), Visibility::Community).is_ok());
        assert!(Policy::check_visibility(&ctx("a", Role::Admin), Visibility::Public).is_ok());
        let own = image("a", Visibility::Public);
        assert!(Policy::check_deactivate(&ctx("a", Role::Member), &own).is_ok());
        assert!(Policy::check_deactivate(&ctx("a", Role::Reader), &own).is_err());
        assert!(Policy::check_deactivate(&ctx("b", Role::Member), &own).is_err());
        assert!(Policy::check_deactivate(&ctx("b", Role::Admin), &own).is_ok());
        let mut img = image("a", Visibility::Private);
        img.status = ImageStatus::Deactivated;
        assert!(Policy::check_download(&ctx("a", Role::Member), &img).is_err());
        assert!(Policy::check_download(&ctx("z", Role::Admin), &img).is_ok());
    }

    #[test]
    fn members_only_on_shared_images_and_status_only_by_the_member() {
        let owner = ctx("a", Role::Member);
        assert!(Policy::check_manage_members(&owner, &image("a", Visibility::Private)).is_err());
        assert!(Policy::check_manage_members(&owner, &image("a", Visibility::Shared)).is_ok());
        assert!(Policy::check_manage_members(&ctx("b", Role::Member), &image("a", Visibility::Shared)).is_err());
        assert!(Policy::check_member_status(&ctx("b", Role::Member), "b", MemberStatus::Accepted).is_ok());
        assert!(Policy::check_member_status(&owner, "b", MemberStatus::Accepted).is_err());
        assert!(Policy::check_member_status(&ctx("b", Role::Reader), "b", MemberStatus::Accepted).is_err());
    }
}
