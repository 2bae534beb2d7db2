//! `ims image member auto-accept add|remove|list`: the projects whose shares your project accepts
//! without answering.

use clap::Subcommand;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum AutoAcceptCommand {
    /// Accept every later share from a project (id or name) without answering it.
    Add {
        /// Project id or name.
        project: String,
    },
    /// Answer shares from a project again.
    Remove {
        /// Project id or name.
        project: String,
    },
    /// List the projects whose shares are accepted without answering.
    List,
}

pub async fn run(ctx: &Ctx, command: AutoAcceptCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let projects = match command {
        AutoAcceptCommand::Add { project } => vec![c.add_auto_accept_source(&project).await?],
        AutoAcceptCommand::Remove { project } => {
            c.remove_auto_accept_source(&project).await?;
            return Ok(());
        }
        AutoAcceptCommand::List => c.auto_accept_sources().await?,
    };
    ctx.print(&render(&projects, ctx.output))
}

fn render(projects: &[String], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(projects),
        OutputFormat::Table => {
            let mut t = Table::new(["Project"]);
            for p in projects {
                t.row([p.clone()]);
            }
            t.render()
        }
    }
}
