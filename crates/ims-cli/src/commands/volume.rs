//! `ims volume create|list|show|delete|attach|detach|export-nbd`: volumes of the built-in compute driver.

use clap::Subcommand;
use ims_client::VolumeInfo;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume from an image (copy-on-write, no data copied for RAW images) or empty.
    Create {
        name: String,
        /// Size in GiB (required for an empty volume).
        #[arg(long)]
        size: Option<u64>,
        /// The image whose guest disk the volume starts as.
        #[arg(long)]
        image: Option<String>,
    },
    /// List your project's volumes.
    List {
        #[arg(long)]
        all_projects: bool,
        /// Only the volumes attached to this server.
        #[arg(long)]
        server: Option<String>,
    },
    /// Show a volume.
    Show { id: String },
    /// Delete a volume that is not attached.
    Delete { id: String },
    /// Attach a volume to a server as a data disk.
    Attach {
        id: String,
        #[arg(long)]
        server: String,
        /// Device index (1 and up) [default: the lowest free one].
        #[arg(long)]
        device: Option<u32>,
    },
    /// Detach a data volume from its server.
    Detach {
        id: String,
        #[arg(long)]
        server: String,
    },
    /// Mint a read-write NBD URL of the volume (or revoke one with --revoke URL).
    ExportNbd {
        id: String,
        /// Validity in seconds [default: 3600].
        #[arg(long)]
        ttl: Option<u64>,
        /// Revoke this NBD URL instead of minting one.
        #[arg(long)]
        revoke: Option<String>,
    },
}

fn print_volume(ctx: &Ctx, v: &VolumeInfo) -> anyhow::Result<()> {
    match ctx.output {
        OutputFormat::Json => ctx.print(&output::json(v)),
        OutputFormat::Table => ctx.print(&output::fields([
            ("id", v.id.clone()),
            ("name", v.name.clone()),
            ("project_id", v.project_id.clone()),
            ("size", format!("{} GiB ({} bytes)", v.size, v.size_bytes)),
            ("status", v.status.clone()),
            ("bootable", v.bootable.to_string()),
            ("source_image_id", v.source_image_id.clone().unwrap_or_default()),
            ("encrypted", v.encrypted.to_string()),
            ("server_id", v.server_id.clone().unwrap_or_default()),
            ("device_index", v.device_index.map(|d| d.to_string()).unwrap_or_default()),
            ("created_at", v.created_at.clone()),
        ])),
    }
}

pub async fn run(ctx: &Ctx, command: VolumeCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        VolumeCommand::Create { name, size, image } => print_volume(ctx, &c.create_volume(&name, size, image.as_deref()).await?)?,
        VolumeCommand::List { all_projects, server } => {
            let volumes = c.list_volumes(all_projects, server.as_deref()).await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&volumes))?,
                OutputFormat::Table => {
                    let mut t = Table::new(["ID", "Name", "Size (GiB)", "Status", "Server", "Device"]);
                    for v in &volumes {
                        t.row([
                            v.id.clone(),
                            v.name.clone(),
                            v.size.to_string(),
                            v.status.clone(),
                            v.server_id.clone().unwrap_or_default(),
                            v.device_index.map(|d| d.to_string()).unwrap_or_default(),
                        ]);
                    }
                    ctx.print(&t.render())?
                }
            }
        }
        VolumeCommand::Show { id } => print_volume(ctx, &c.get_volume(&id).await?)?,
        VolumeCommand::Delete { id } => c.delete_volume(&id).await?,
        VolumeCommand::Attach { id, server, device } => print_volume(ctx, &c.attach_volume(&server, &id, device).await?)?,
        VolumeCommand::Detach { id, server } => c.detach_volume(&server, &id).await?,
        VolumeCommand::ExportNbd { id, revoke: Some(url), .. } => c.revoke_volume_nbd(&id, &url).await?,
        VolumeCommand::ExportNbd { id, ttl, revoke: None } => {
            let attachment = c.export_volume_nbd(&id, ttl).await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&attachment))?,
                OutputFormat::Table => {
                    ctx.print(&output::fields([
                        ("nbd_url", attachment.nbd_url),
                        ("tls", attachment.tls.to_string()),
                        ("expires_at", attachment.expires_at),
                    ]))?
                }
            }
        }
    }
    Ok(())
}
