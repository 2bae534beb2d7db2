//! `ims audit list|export` and `ims admin audit verify`: the audit trail.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use ims_client::{AuditEventInfo, AuditFilter, AuditVerification};

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events (newest first; admins see every project, others their own).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Show events older than this position (the next page of an earlier listing).
        #[arg(long)]
        marker: Option<u64>,
    },
    /// Write every matching event to stdout as JSON lines, oldest first (for archiving or analysis).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminAuditCommand {
    /// Check the hash chain of the whole trail; fails if any event was modified, removed or inserted.
    Verify,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Events of this project (admins; others always see their own).
    #[arg(long)]
    project: Option<String>,
    /// Events of this user id.
    #[arg(long)]
    user: Option<String>,
    /// An action (`image.delete`) or all actions with a prefix (`image.*`).
    #[arg(long)]
    action: Option<String>,
    /// A resource (`image:<id>`).
    #[arg(long)]
    resource: Option<String>,
    /// Only successes or only failures.
    #[arg(long, value_parser = ["success", "failure"])]
    result: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> AuditFilter {
        AuditFilter {
            since: self.since,
            until: self.until,
            project_id: self.project,
            user_id: self.user,
            action: self.action,
            resource: self.resource,
            result: self.result,
            ..AuditFilter::default()
        }
    }
}

pub async fn run(ctx: &Ctx, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List { filter, limit, marker } => {
            let filter =
                AuditFilter { limit: Some(limit), marker, newest_first: true, ..filter.filter() };
            let page = ctx.client.audit_events(&filter).await?;
            ctx.print(&render(&page.events, ctx.output))
        }
        AuditCommand::Export { filter } => export(ctx, filter.filter()).await,
    }
}

pub async fn admin(ctx: &Ctx, command: AdminAuditCommand) -> anyhow::Result<()> {
    match command {
        AdminAuditCommand::Verify => {
            let v = ctx.client.verify_audit_trail().await?;
            ctx.print(&render_verification(&v, ctx.output))?;
            match &v.broken {
                None => Ok(()),
                Some(b) => anyhow::bail!("the audit trail is broken at event {}: {}", b.position, b.reason),
            }
        }
    }
}

/// Streams the export to stdout as it arrives.
async fn export(ctx: &Ctx, filter: AuditFilter) -> anyhow::Result<()> {
    let mut response = ctx.client.export_audit_events(&filter).await?;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await.context("reading the export")? {
        match out.write_all(&chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("writing the export")?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn render(events: &[AuditEventInfo], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(events),
        OutputFormat::Table => {
            let mut t = Table::new(["Position", "Time", "Project", "User", "Action", "Resource", "Result", "Error"]);
            for e in events {
                let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                t.row([
                    e.position.to_string(),
                    e.at.clone(),
                    opt(&e.project_id),
                    opt(&e.user_id),
                    e.action.clone(),
                    e.resource.clone(),
                    e.result.clone(),
                    opt(&e.error),
                ]);
            }
            t.render()
        }
    }
}

fn render_verification(v: &AuditVerification, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            let state = if v.intact { "intact".to_string() } else { "BROKEN".to_string() };
            let mut fields = vec![
                ("chain", state),
                ("events", v.events.to_string()),
                ("head_hash", v.head_hash.clone()),
            ];
            if let Some(b) = &v.broken {
                fields.push(("broken_at", b.position.to_string()));
                fields.push(("reason", b.reason.clone()));
            }
            output::fields(fields)
        }
    }
}
