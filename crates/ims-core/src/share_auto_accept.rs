//! Share auto-acceptance: a project names the projects whose shares it accepts without answering them.
//! A share made afterwards by a named project (through either API) starts `accepted` instead of
//! `pending`; shares made before are left as they are.

use ims_catalog::{CatalogError, MemberStatus};

use crate::{CoreError, ImageService, Policy, RequestContext, Result};

impl ImageService {
    /// The projects (ids) the caller's project accepts shares from, ordered by id.
    pub async fn auto_accept_sources(&self, ctx: &RequestContext) -> Result<Vec<String>> {
        let caller = Policy::require_caller(ctx)?;
        Ok(self.catalog.share_auto_accept.list(&caller.project_id).await?)
    }

    /// Makes the caller's project accept shares from `from` (a project id or name) and returns its id.
    /// Idempotent. `Forbidden` for readers; `NotFound` if no project has that id or name; `Invalid` for
    /// the caller's own project.
    pub async fn add_auto_accept_source(&self, ctx: &RequestContext, from: &str) -> Result<String> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("readers cannot change which shares their project accepts".into()));
        }
        let from = self.project_id_of(from).await?;
        if from == caller.project_id {
            return Err(CoreError::Invalid("a project does not share with itself".into()));
        }
        let event = ctx.event("share.auto_accept.add", format!("project:{}/from:{from}", caller.project_id));
        self.catalog.share_auto_accept.add(&caller.project_id, &from, chrono::Utc::now(), &event).await?;
        Ok(from)
    }

    /// Stops the caller's project accepting shares from `from` (a project id or name) without answering.
    /// `Forbidden` for readers; `NotFound` if it is not on the list.
    pub async fn remove_auto_accept_source(&self, ctx: &RequestContext, from: &str) -> Result<()> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("readers cannot change which shares their project accepts".into()));
        }
        let from = match self.project_id_of(from).await {
            Ok(id) => id,
            Err(CoreError::NotFound(_)) => from.to_string(),
            Err(e) => return Err(e),
        };
        let event = ctx.event("share.auto_accept.remove", format!("project:{}/from:{from}", caller.project_id));
        self.catalog.share_auto_accept.remove(&caller.project_id, &from, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("Shares from {from} are not auto-accepted")),
            other => other.into(),
        })
    }

    /// The status a new share of an image owned by `owner` with `member` starts in.
    pub(crate) async fn initial_member_status(&self, member: &str, owner: &str) -> Result<MemberStatus> {
        Ok(if self.catalog.share_auto_accept.accepts(member, owner).await? {
            MemberStatus::Accepted
        } else {
            MemberStatus::Pending
        })
    }

    /// The id of the project with id or name `project`; `NotFound` if there is none.
    async fn project_id_of(&self, project: &str) -> Result<String> {
        let identity = &self.catalog.identity;
        match identity.get_project(project).await {
            Ok(p) => return Ok(p.id),
            Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match identity.find_project(project).await {
            Ok(p) => Ok(p.id),
            Err(CatalogError::NotFound(_)) => Err(CoreError::NotFound(format!("No project found with ID or name {project}"))),
            Err(e) => Err(e.into()),
        }
    }
}
