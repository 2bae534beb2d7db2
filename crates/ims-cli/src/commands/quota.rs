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
        #[arg(long, required_unless_present_any = ["members_per_image", "image_bytes"])]
        private_images: Option<u64>,
        /// Projects each of the project's images may be shared with.
        #[arg(long)]
        members_per_image: Option<u64>,
        /// Total logical bytes the project's images may hold (`none`: no limit).
        #[arg(long, value_parser = parse_bytes_limit, value_name = "BYTES|none")]
        image_bytes: Option<ByteLimit>,
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
        QuotaCommand::Set { project, private_images, members_per_image, image_bytes } => {
            let mut quotas = None;
            if private_images.is_some() || members_per_image.is_some() {
                quotas = Some(c.set_project_quotas(&project, private_images.map(Some), members_per_image.map(Some)).await?);
            }
            match image_bytes {
                Some(ByteLimit(limit)) => c.set_image_bytes_quota(&project, limit).await?,
                None => quotas.expect("clap requires at least one quota"),
            }
        }
        QuotaCommand::Reset { project } => {
            c.set_project_quotas(&project, Some(None), Some(None)).await?;
            c.set_image_bytes_quota(&project, None).await?
        }
    };
    ctx.print(&render(&quotas, ctx.output))
}

fn render(q: &ProjectQuotas, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(q),
        OutputFormat::Table => {
            let source = |default: bool| if default { "default" } else { "project" };
            let (p, m, b) = (&q.private_images, &q.members_per_image, &q.image_bytes);
            let bytes_limit = b.limit.map_or("no limit".to_string(), |l| l.to_string());
            output::fields([
                ("private_images", format!("{} of {} used ({})", p.used, p.limit, source(p.default))),
                ("members_per_image", format!("{} ({})", m.limit, source(m.default))),
                ("image_bytes", format!("{} of {} used ({})", b.used, bytes_limit, source(b.default))),
            ])
        }
    }
}

/// A byte quota given on the command line: a number of bytes, or no limit (`None`).
#[derive(Debug, Clone, Copy)]
pub struct ByteLimit(Option<u64>);

/// `BYTES` (a plain number) or `none`.
fn parse_bytes_limit(s: &str) -> Result<ByteLimit, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(ByteLimit(None));
    }
    s.parse::<u64>().map(|n| ByteLimit(Some(n))).map_err(|_| format!("{s:?} is not a number of bytes or \"none\""))
}
