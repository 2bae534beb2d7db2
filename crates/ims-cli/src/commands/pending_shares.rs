//! `ims image member pending`: the images other projects shared with the caller's project that wait for
//! its answer (Glance's `visibility=shared&member_status=pending` list).

use ims_client::ListParams;

use super::Ctx;
use crate::output;

pub async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let params = ListParams {
        visibility: Some("shared".into()),
        member_status: Some("pending".into()),
        ..Default::default()
    };
    // The shared list also holds the project's own shared images that wait for other projects' answers.
    let project = ctx.client.whoami().await?.project.id;
    let mut images = ctx.client.list_all_images(&params).await?;
    images.retain(|i| i.owner.as_deref() != Some(project.as_str()));
    ctx.print(&output::images(&images, ctx.output))
}
