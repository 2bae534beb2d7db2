//! `ims image restore ID`, `ims image lineage ID` and `ims bin list|show|purge`: the recycle bin of
//! deleted images and the lineage of images.

use clap::{Args, Subcommand};
use ims_client::{Ancestry, BinnedImage};

use super::image::IdArg;
use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum BinCommand {
    /// List your project's deleted images that can still be restored, oldest first.
    List(BinListArgs),
    /// Show one image of the recycle bin.
    Show(IdArg),
    /// Delete images of the recycle bin for good now (their data is reclaimed by garbage collection).
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct BinListArgs {
    /// Every project's binned images (admin).
    #[arg(long)]
    pub all_projects: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Image ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

pub async fn run(ctx: &Ctx, command: BinCommand) -> anyhow::Result<()> {
    match command {
        BinCommand::List(a) => ctx.print(&render_bin(&ctx.client.recycle_bin(a.all_projects).await?, ctx.output)),
        BinCommand::Show(a) => {
            let binned = ctx.client.binned_image(&a.id).await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&binned)),
                OutputFormat::Table => ctx.print(&render_bin(&[binned], ctx.output)),
            }
        }
        BinCommand::Purge(a) => {
            let mut failed = 0;
            for id in &a.ids {
                if let Err(e) = ctx.client.purge_image(id).await {
                    eprintln!("error: cannot purge image {id}: {e}");
                    failed += 1;
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} image(s) not purged", a.ids.len());
            }
            Ok(())
        }
    }
}

/// `ims image restore ID`: brings a deleted image back from the recycle bin and shows it.
pub async fn restore(ctx: &Ctx, args: IdArg) -> anyhow::Result<()> {
    let image = ctx.client.restore_image(&args.id).await?;
    ctx.print(&output::image(&image, ctx.output))
}

/// `ims image lineage ID`: the image and each image it was derived from, up to the root.
pub async fn lineage(ctx: &Ctx, args: IdArg) -> anyhow::Result<()> {
    let ancestry = ctx.client.image_ancestry(&args.id).await?;
    ctx.print(&render_lineage(&ancestry, ctx.output))
}

fn render_bin(images: &[BinnedImage], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(images),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Name", "Status", "Owner", "Checksum", "Deleted At", "Purge After"]);
            for b in images {
                let image = &b.image;
                t.row([
                    image.id.clone(),
                    image.name.clone().unwrap_or_default(),
                    image.status.clone(),
                    image.owner.clone().unwrap_or_default(),
                    image.checksum.clone().unwrap_or_default(),
                    b.binned_at().unwrap_or_default().to_string(),
                    b.purge_after().unwrap_or_default().to_string(),
                ]);
            }
            t.render()
        }
    }
}

fn render_lineage(ancestry: &Ancestry, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(ancestry),
        OutputFormat::Table => {
            let mut t = Table::new(["Depth", "ID", "Name", "State", "Source Type", "Source", "Parent"]);
            for (depth, link) in ancestry.ancestry.iter().enumerate() {
                let state = match (&link.state, link.visible) {
                    (Some(state), _) => state.clone(),
                    (None, false) => "not visible".to_string(),
                    (None, true) => String::new(),
                };
                t.row([
                    depth.to_string(),
                    link.id.clone(),
                    link.name.clone().unwrap_or_default(),
                    state,
                    link.source_type.clone().unwrap_or_default(),
                    link.source_ref.clone().unwrap_or_default(),
                    link.parent_id.clone().unwrap_or_default(),
                ]);
            }
            let mut out = t.render();
            if let Some(why) = &ancestry.stopped {
                out.push_str(&format!("(lineage incomplete: {why})\n"));
            }
            out
        }
    }
}
