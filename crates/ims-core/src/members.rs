//! Sharing images between projects.

use ims_catalog::{CatalogError, Image, Job, Member, MemberStatus, Visibility};
use serde_json::json;
use uuid::Uuid;

use crate::images::ImageService;
use crate::jobs::JobService;
use crate::{CoreError, Policy, RequestContext, Result};

/// Share use cases, over the same membership rows every API uses.
#[derive(Clone)]
pub struct ShareService {
    images: ImageService,
    jobs: JobService,
}

/// Most images or projects named in one IMS batch.
pub const MAX_BATCH: usize = 100;

/// What an IMS member batch does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Batch {
    Add { projects: Vec<String> },
    Update { project: String, status: MemberStatus },
    Delete { projects: Vec<String> },
}

impl ShareService {
    pub fn new(images: ImageService, jobs: JobService) -> ShareService {
        ShareService { images, jobs }
    }

    /// IMS `BatchAddMembers`: shares every image with every project, in a job. Checked before the job
    /// starts: the caller may manage each image's members, and no image would pass its member limit
    /// (the owner's `members_per_image` quota, else 256 for system and data disk images; 10 at most for
    /// whole-server images), and no image is encrypted under a key that is not shareable (`Forbidden`);
    /// the job adds each member within that limit atomically. A private image becomes
    /// `shared` (members only see shared images). Projects already members are left as they are.
    pub async fn batch_add(&self, ctx: &RequestContext, images: &[String], projects: &[String]) -> Result<Job> {
        let images = self.batch_images(ctx, images, true).await?;
        let mut resolved = Vec::new();
        for p in batch_list("projects", projects)? {
            let id = self.resolve_project(p).await?;
            if !resolved.contains(&id) {
                resolved.push(id);
            }
        }
        for image in &images {
            self.images.check_shareable(image).await?;
            let existing = self.images.catalog.members.list(image.id).await?;
            let new = resolved.iter().filter(|p| !existing.iter().any(|m| &&m.member == p) && **p != image.owner).count();
            let max = self.images.ims_member_limit(image).await?;
            if existing.len() + new > max {
                return Err(CoreError::TooLarge(format!(
                    "Image {} would have {} members; it may have at most {max}",
                    image.id,
                    existing.len() + new
                )));
            }
        }
        self.start_batch(ctx, "batchAddMembers", images, Batch::Add { projects: resolved }).await
    }

    /// IMS `BatchUpdateMembers`: the member project (`project` must be the caller's) accepts or
    /// rejects shares of several images, in a job. Each image must have the project as a member.
    pub async fn batch_update(
        &self,
        ctx: &RequestContext,
        images: &[String],
        project: &str,
        status: MemberStatus,
    ) -> Result<Job> {
        Policy::check_member_status(ctx, project, status)?;
        let images = self.batch_images(ctx, images, false).await?;
        for image in &images {
            self.get(ctx, image.id, project).await?;
        }
        self.start_batch(ctx, "batchUpdateMembers", images, Batch::Update { project: project.to_string(), status }).await
    }

    /// IMS `BatchDeleteMembers`: withdraws the shares of every image with every project, in a job.
    /// Projects that are not members are ignored.
    pub async fn batch_delete(&self, ctx: &RequestContext, images: &[String], projects: &[String]) -> Result<Job> {
        let images = self.batch_images(ctx, images, true).await?;
        let mut resolved = Vec::new();
        for p in batch_list("projects", projects)? {
            resolved.push(self.resolve_project(p).await?);
        }
        self.start_batch(ctx, "batchDeleteMembers", images, Batch::Delete { projects: resolved }).await
    }

    /// The images of a batch, each visible to the caller (else `NotFound`) and, with `manage`, each
    /// one whose members the caller may change.
    async fn batch_images(&self, ctx: &RequestContext, ids: &[String], manage: bool) -> Result<Vec<Image>> {
        let mut images: Vec<Image> = Vec::new();
        for raw in batch_list("images", ids)? {
            let id = Uuid::parse_str(raw).map_err(|_| CoreError::NotFound(format!("No image found with ID {raw}")))?;
            if images.iter().any(|i| i.id == id) {
                continue;
            }
            let image = self.images.get(ctx, id).await?;
            if manage {
                Policy::check_modify(ctx, &image)?;
            }
            images.push(image);
        }
        Ok(images)
    }

    async fn start_batch(&self, ctx: &RequestContext, job_type: &str, images: Vec<Image>, batch: Batch) -> Result<Job> {
        let params = json!({
            "images": images.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(),
            "batch": format!("{batch:?}"),
        });
        let mut job = self.jobs.create(ctx, job_type, params).await?;
        job.entities = json!({"image_id": images.first().map(|i| i.id.to_string())});
        let returned = job.clone();
        let this = self.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_batch(&ctx, &mut job, &images, &batch).await {
                tracing::warn!(job = %job.id, error = %e, "member batch failed");
                let code = match &e {
                    CoreError::NotFound(_) => "IMG.0004",
                    CoreError::Forbidden(_) => "IMG.0003",
                    CoreError::TooLarge(_) => "IMG.0006",
                    _ => "IMG.0500",
                };
                if let Err(e) = this.jobs.finish(&mut job, Some((code.into(), e.to_string()))).await {
                    tracing::error!(job = %job.id, error = %e, "cannot record the end of a job");
                }
            }
        });
        Ok(returned)
    }

    async fn run_batch(&self, ctx: &RequestContext, job: &mut Job, images: &[Image], batch: &Batch) -> Result<()> {
        self.jobs.start(job).await?;
        let members = &self.images.catalog.members;
        for (done, image) in images.iter().enumerate() {
            let image_id = image.id;
            match batch {
                Batch::Add { projects } => {
                    let current = self.images.get(ctx, image_id).await?;
                    self.images.check_shareable(&current).await?;
                    if current.visibility == Visibility::Private {
                        let op = crate::PatchOp {
                            kind: crate::PatchKind::Replace,
                            path: "visibility".into(),
                            value: Some(json!("shared")),
                        };
                        self.images.update(ctx, image_id, &[op]).await?;
                    }
                    let max = self.images.ims_member_limit(&current).await? as u64;
                    for project in projects.iter().filter(|p| **p != current.owner) {
                        let now = crate::now();
                        let m = Member {
                            image_id,
                            member: project.clone(),
                            status: self.images.initial_member_status(project, &current.owner).await?,
                            created_at: now,
                            updated_at: now,
                        };
                        let event = ctx.event("member.create", format!("image:{image_id}/member:{project}"));
                        match members.add_within_limit(&m, max, &event).await {
                            Ok(()) | Err(CatalogError::Conflict(_)) => {}
                            Err(CatalogError::LimitExceeded(_)) => {
                                return Err(CoreError::TooLarge(format!(
                                    "Image {image_id} may have at most {max} members"
                                )))
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Batch::Update { project, status } => {
                    let event = ctx.event("member.update", format!("image:{image_id}/member:{project}"));
                    members.set_status(image_id, project, *status, &event).await?;
                }
                Batch::Delete { projects } => {
                    for project in projects {
                        let event = ctx.event("member.delete", format!("image:{image_id}/member:{project}"));
                        match members.remove(image_id, project, &event).await {
                            Ok(()) | Err(CatalogError::NotFound(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            job.progress = 100.0 * (done + 1) as f64 / images.len() as f64;
        }
        self.jobs.finish(job, None).await
    }

    /// Shares a `shared` image with `project` (an id, or a project name that resolves to one), pending
    /// the member's answer (accepted at once if the member auto-accepts the owner's shares). `Conflict`
    /// if already a member; `TooLarge` past the owner's `members_per_image` limit (checked atomically);
    /// `Forbidden` for an image encrypted under a key that is not shareable.
    pub async fn add(&self, ctx: &RequestContext, image_id: Uuid, project: &str) -> Result<Member> {
        let image = self.images.get(ctx, image_id).await?;
        Policy::check_manage_members(ctx, &image)?;
        let member = self.resolve_project(project).await?;
        self.images.check_shareable(&image).await?;
        let existing = self.images.catalog.members.list(image_id).await?;
        if existing.iter().any(|m| m.member == member) {
            return Err(CoreError::Conflict(format!("Member {member} already exists for image {image_id}")));
        }
        let max = self.images.members_per_image(&image.owner).await?;
        let too_many =
            || CoreError::TooLarge(format!("Maximum number of members exceeded: an image may have at most {max}"));
        if existing.len() >= max {
            return Err(too_many());
        }
        let now = crate::now();
        let status = self.images.initial_member_status(&member, &image.owner).await?;
        let m = Member { image_id, member, status, created_at: now, updated_at: now };
        let event = ctx.event("member.create", format!("image:{image_id}/member:{}", m.member));
        self.images.catalog.members.add_within_limit(&m, max as u64, &event).await.map_err(|e| match e {
            CatalogError::Conflict(_) => {
                CoreError::Conflict(format!("Member {} already exists for image {image_id}", m.member))
            }
            CatalogError::LimitExceeded(_) => too_many(),
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

/// A batch list: 1 to [`MAX_BATCH`] entries.
fn batch_list<'a>(what: &str, list: &'a [String]) -> Result<&'a [String]> {
    if list.is_empty() || list.len() > MAX_BATCH {
        return Err(CoreError::Invalid(format!("{what} must list 1 to {MAX_BATCH} entries")));
    }
    Ok(list)
}

fn member_not_found(image_id: Uuid, member: &str) -> CoreError {
    CoreError::NotFound(format!("Member {member} not found for image {image_id}"))
}
