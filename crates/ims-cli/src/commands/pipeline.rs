//! `ims image import|export|copy`: the IMS pipelines, run as jobs; `--wait` follows the job with a progress bar.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ims_client::ImportImage;

use super::Ctx;
use crate::output::{self, OutputFormat};

/// Follow-up options shared by the pipeline commands.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait for the job to end (progress bar on stderr); fail if it fails.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 86_400)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The bucket file: `BUCKET:KEY` (its extension tells its format).
    pub image_url: String,
    /// Name of the new image.
    #[arg(long)]
    pub name: String,
    /// Smallest disk in GiB.
    #[arg(long, default_value_t = 1)]
    pub min_disk: u64,
    /// Make a data disk image.
    #[arg(long)]
    pub data: bool,
    /// Quick import: a RAW or ZVHD2 file stored as it is.
    #[arg(long)]
    pub quick: bool,
    #[arg(long)]
    pub os_version: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Image id.
    pub id: String,
    /// Where to write: `BUCKET:KEY`.
    pub bucket_url: String,
    /// qcow2, vmdk, vhd, zvhd, zvhd2 or raw.
    #[arg(long = "format", short = 'O')]
    pub file_format: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// Image id.
    pub id: String,
    /// Name of the copy.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn import(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<()> {
    let request = ImportImage {
        name: a.name,
        image_url: a.image_url,
        min_disk: a.min_disk,
        data_image: a.data,
        quick: a.quick,
        os_version: a.os_version,
        description: a.description,
    };
    let job_id = ctx.client.create_image_from_file(&request).await?;
    follow(ctx, &job_id, &a.wait).await
}

pub async fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<()> {
    let job_id = ctx.client.export_image(&a.id, &a.bucket_url, &a.file_format).await?;
    follow(ctx, &job_id, &a.wait).await
}

pub async fn copy(ctx: &Ctx, a: CopyArgs) -> anyhow::Result<()> {
    let job_id = ctx.client.copy_image(&a.id, &a.name, a.description.as_deref()).await?;
    follow(ctx, &job_id, &a.wait).await
}

/// Prints the job id, or with `--wait` the ended job (an error if it failed).
async fn follow(ctx: &Ctx, job_id: &str, wait: &WaitArgs) -> anyhow::Result<()> {
    if !wait.wait {
        return match ctx.output {
            OutputFormat::Json => ctx.print(&output::json(&serde_json::json!({"job_id": job_id}))),
            OutputFormat::Table => ctx.print(job_id),
        };
    }
    let job = super::job::wait(ctx, job_id, Duration::from_secs(wait.timeout)).await?;
    match job.status.as_str() {
        "SUCCESS" => match ctx.output {
            OutputFormat::Json => ctx.print(&output::json(&job)),
            OutputFormat::Table => ctx.print(&format!(
                "job {} {}: {}",
                job.id,
                job.status,
                job.result.as_ref().map(|r| r.to_string()).unwrap_or_default()
            )),
        },
        "FAIL" => bail!(
            "job {job_id} failed: {} {}",
            job.error_code.as_deref().unwrap_or(""),
            job.fail_reason.as_deref().unwrap_or("")
        ),
        other => bail!("job {job_id} is still {other}"),
    }
}
