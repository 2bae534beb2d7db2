//! `ims image member ...`: sharing images between projects.

use clap::Args;
use ims_client::MemberStatus;

use super::image::IdArg;
use super::Ctx;
use crate::output;

#[derive(Debug, Args)]
pub struct MemberArgs {
    /// Image id.
    pub id: String,
    /// The member project's id.
    pub project: String,
}

#[derive(Debug, Args)]
pub struct MemberOptionalArgs {
    /// Image id.
    pub id: String,
    /// The member project's id (default: the caller's project).
    pub project: Option<String>,
}

pub async fn add(ctx: &Ctx, args: MemberArgs) -> anyhow::Result<()> {
    let member = ctx.client.add_member(&args.id, &args.project).await?;
    ctx.print(&output::member(&member, ctx.output))
}

pub async fn remove(ctx: &Ctx, args: MemberArgs) -> anyhow::Result<()> {
    Ok(ctx.client.remove_member(&args.id, &args.project).await?)
}

pub async fn list(ctx: &Ctx, args: IdArg) -> anyhow::Result<()> {
    let members = ctx.client.list_members(&args.id).await?;
    ctx.print(&output::members(&members, ctx.output))
}

pub async fn show(ctx: &Ctx, args: MemberOptionalArgs) -> anyhow::Result<()> {
    let project = project_or_own(ctx, args.project).await?;
    let member = ctx.client.get_member(&args.id, &project).await?;
    ctx.print(&output::member(&member, ctx.output))
}

/// `accept` / `reject`: answer a share for the caller's project (or the one given).
pub async fn answer(ctx: &Ctx, args: MemberOptionalArgs, status: MemberStatus) -> anyhow::Result<()> {
    let project = project_or_own(ctx, args.project).await?;
    let member = ctx.client.update_member_status(&args.id, &project, status).await?;
    ctx.print(&output::member(&member, ctx.output))
}

async fn project_or_own(ctx: &Ctx, project: Option<String>) -> anyhow::Result<String> {
    match project {
        Some(p) => Ok(p),
        None => Ok(ctx.client.whoami().await?.project.id),
    }
}
