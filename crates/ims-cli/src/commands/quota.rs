//! `ims admin quota show|set|reset`: per-project quotas.

use clap::Subcommand;
use ims_client::ProjectQuotas;

use super::Ctx;
use crate::output::{self, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Show a project's quotas and usage.
    Show {
        /// Project id or name.
        project: String,
    },
    /// Set a project's quotas (at least one of them).
    Set {
        /// Project id or name.
        project: String,
        /// Private images the project may own.
        #[arg(long, required_unless_present = "members_per_image")]
        private_images: Option<u64>,
        /// Projects each of the project's images may be shared with.
        #[arg(long)]
        members_per_image: Option<u64>,
    },
    /// Return a project's quotas to the service defaults.
    Reset {
        /// Project id or name.
        project: String,
    },
}

pub async fn run(ctx: &Ctx, command: QuotaCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let quotas = match command {
        QuotaCommand::Show { project } => c.project_quotas(&project).await?,
        QuotaCommand::Set { project, private_images, members_per_image } => {
            c.set_project_quotas(&project, private_images.map(Some), members_per_image.map(Some)).await?
        }
        QuotaCommand::Reset { project } => c.set_project_quotas(&project, Some(None), Some(None)).await?,
    };
    ctx.print(&render(&quotas, ctx.output))
}

fn render(q: &ProjectQuotas, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(q),
        OutputFormat::Table => {
            let source = |default: bool| if default { "default" } else { "project" };
            let (p, m) = (&q.private_images, &q.members_per_image);
            output::fields([
                ("private_images", format!("{} of {} used ({})", p.used, p.limit, source(p.default))),
                ("members_per_image", format!("{} ({})", m.limit, source(m.default))),
            ])
        }
    }
}
