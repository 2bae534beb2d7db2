//! `ims job list|show|wait|cancel`: long work (imports, exports, copies) and its progress.

use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use ims_client::JobInfo;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List your project's jobs, newest first.
    List {
        /// Only jobs in these statuses (comma-separated: INIT, RUNNING, SUCCESS, FAIL).
        #[arg(long)]
        status: Option<String>,
        /// Every project's jobs (admin).
        #[arg(long)]
        all_projects: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one job.
    Show { job_id: String },
    /// Wait for a job to end, with a progress bar; fails if the job fails.
    Wait {
        job_id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 86_400)]
        timeout: u64,
    },
    /// Cancel a waiting or running job.
    Cancel { job_id: String },
}

pub async fn run(ctx: &Ctx, command: JobCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        JobCommand::List { status, all_projects, limit } => {
            let jobs = c.list_jobs(status.as_deref(), all_projects, Some(limit)).await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&jobs)),
                OutputFormat::Table => {
                    let mut t = Table::new(["ID", "Type", "Status", "Progress", "Created", "Error"]);
                    for j in &jobs {
                        t.row([
                            j.id.clone(),
                            j.job_type.clone(),
                            j.status.clone(),
                            format!("{:.0}%", j.progress),
                            j.created_at.clone(),
                            j.error_code.clone().unwrap_or_default(),
                        ]);
                    }
                    ctx.print(&t.render())
                }
            }
        }
        JobCommand::Show { job_id } => ctx.print(&render(&c.get_job(&job_id).await?, ctx.output)),
        JobCommand::Cancel { job_id } => ctx.print(&render(&c.cancel_job(&job_id).await?, ctx.output)),
        JobCommand::Wait { job_id, timeout } => {
            let job = wait(ctx, &job_id, Duration::from_secs(timeout)).await?;
            match job.status.as_str() {
                "SUCCESS" => ctx.print(&render(&job, ctx.output)),
                "FAIL" => bail!(
                    "job {job_id} failed: {} {}",
                    job.error_code.as_deref().unwrap_or(""),
                    job.fail_reason.as_deref().unwrap_or("")
                ),
                other => bail!("job {job_id} is still {other} after {timeout} s"),
            }
        }
    }
}

/// Polls the job until it ends, drawing a percent bar on stderr when progress bars are on.
pub async fn wait(ctx: &Ctx, job_id: &str, timeout: Duration) -> anyhow::Result<JobInfo> {
    let bar = if ctx.progress_enabled() {
        let bar = indicatif::ProgressBar::new(100).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30.cyan/blue}] {pos}% ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let job = ctx
        .client
        .wait_job(job_id, Duration::from_millis(500), timeout, |j| {
            bar.set_message(format!("{} {}", j.job_type, j.status));
            bar.set_position(j.progress.clamp(0.0, 100.0) as u64);
        })
        .await;
    bar.finish_and_clear();
    Ok(job?)
}

fn render(job: &JobInfo, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(job),
        OutputFormat::Table => output::fields([
            ("id", job.id.clone()),
            ("job_type", job.job_type.clone()),
            ("project_id", job.project_id.clone()),
            ("status", job.status.clone()),
            ("progress", format!("{:.0}%", job.progress)),
            ("entities", job.entities.to_string()),
            ("result", job.result.as_ref().map(|r| r.to_string()).unwrap_or_default()),
            ("error_code", job.error_code.clone().unwrap_or_default()),
            ("fail_reason", job.fail_reason.clone().unwrap_or_default()),
            ("attempts", job.attempts.to_string()),
            ("worker", job.worker.clone().unwrap_or_default()),
            ("created_at", job.created_at.clone()),
            ("begin_time", job.begin_time.clone().unwrap_or_default()),
            ("end_time", job.end_time.clone().unwrap_or_default()),
        ]),
    }
}
