//! `ims quota show`: the quotas of the caller's own project and how much of them it uses.

use clap::Subcommand;
use ims_client::ImageQuota;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum OwnQuotaCommand {
    /// Show your project's quotas and usage (admins set them with `ims admin quota set`).
    Show,
}

pub async fn run(ctx: &Ctx, command: OwnQuotaCommand) -> anyhow::Result<()> {
    match command {
        OwnQuotaCommand::Show => ctx.print(&render(&ctx.client.own_quotas().await?, ctx.output)),
    }
}

fn render(quotas: &[ImageQuota], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(quotas),
        OutputFormat::Table => {
            let mut t = Table::new(["Resource", "Used", "Quota"]);
            for q in quotas {
                let name = if q.resource == "image" { "private_images" } else { q.resource.as_str() };
                let quota = if q.quota < 0 { "no limit".to_string() } else { q.quota.to_string() };
                t.row([name.to_string(), q.used.to_string(), quota]);
            }
            t.render()
        }
    }
}
