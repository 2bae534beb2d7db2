//! `ims server create|list|show|delete`: servers of the built-in compute driver.

use clap::Subcommand;
use ims_client::{NewServerDataVolume, NewServerRequest, ServerInfo};

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Create a server from a system disk image or a capsule (its volumes are copy-on-write over the images).
    Create {
        name: String,
        /// The system disk (or whole-server) image.
        #[arg(long, required_unless_present = "capsule", conflicts_with = "capsule")]
        image: Option<String>,
        /// A capsule to deploy: its base image, application disks and a config drive with its user data.
        #[arg(long)]
        capsule: Option<String>,
        /// `ecs` (elastic server) or `bms` (bare-metal server).
        #[arg(long = "type", default_value = "ecs")]
        server_type: String,
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        #[arg(long, default_value_t = 1024)]
        ram_mb: u64,
        /// `x86_64` or `aarch64` [default: the image's].
        #[arg(long)]
        architecture: Option<String>,
        /// `bios` or `uefi` [default: the image's hw_firmware_type, else bios]; must match it when the image has one.
        #[arg(long)]
        firmware: Option<String>,
        /// System volume size in GiB [default: the image's min_disk or guest disk size].
        #[arg(long)]
        system_volume_size: Option<u64>,
        /// A data volume: `SIZE_GIB` (empty) or `image=ID[,size=GIB]`; repeatable, devices 1, 2, ...
        #[arg(long = "data-volume")]
        data_volumes: Vec<String>,
    },
    /// List your project's servers (every project's with --all-projects, admin).
    List {
        #[arg(long)]
        all_projects: bool,
    },
    /// Show a server with its volumes.
    Show { id: String },
    /// Delete a server with its volumes (or keep them, detached).
    Delete {
        id: String,
        #[arg(long)]
        keep_volumes: bool,
    },
}

/// Parses `--data-volume`: `SIZE_GIB`, or `image=ID[,size=GIB]`.
fn data_volume(text: &str) -> anyhow::Result<NewServerDataVolume> {
    if let Ok(size) = text.parse::<u64>() {
        return Ok(NewServerDataVolume { image_id: None, size: Some(size) });
    }
    let mut volume = NewServerDataVolume::default();
    for part in text.split(',') {
        match part.split_once('=') {
            Some(("image", id)) => volume.image_id = Some(id.to_string()),
            Some(("size", size)) => volume.size = Some(size.parse().map_err(|_| anyhow::anyhow!("bad size in {text:?}"))?),
            _ => anyhow::bail!("--data-volume is SIZE_GIB or image=ID[,size=GIB], not {text:?}"),
        }
    }
    Ok(volume)
}

fn print_server(ctx: &Ctx, server: &ServerInfo) -> anyhow::Result<()> {
    match ctx.output {
        OutputFormat::Json => ctx.print(&output::json(server)),
        OutputFormat::Table => {
            let mut text = output::fields([
                ("id", server.id.clone()),
                ("name", server.name.clone()),
                ("project_id", server.project_id.clone()),
                ("type", server.server_type.clone()),
                ("vcpus", server.vcpus.to_string()),
                ("ram_mb", server.ram_mb.to_string()),
                ("architecture", server.architecture.clone()),
                ("firmware", server.firmware.clone()),
                ("status", server.status.clone()),
                ("image_id", server.image_id.clone().unwrap_or_default()),
                ("created_at", server.created_at.clone()),
            ]);
            if let Some(volumes) = &server.volumes {
                let mut t = Table::new(["Device", "Volume", "Size (GiB)", "Source image"]);
                for v in volumes {
                    t.row([
                        v.device_index.map(|d| d.to_string()).unwrap_or_default(),
                        v.id.clone(),
                        v.size.to_string(),
                        v.source_image_id.clone().unwrap_or_default(),
                    ]);
                }
                text.push('\n');
                text.push_str(&t.render());
            }
            ctx.print(&text)
        }
    }
}

pub async fn run(ctx: &Ctx, command: ServerCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        ServerCommand::Create {
            name,
            image,
            capsule,
            server_type,
            vcpus,
            ram_mb,
            architecture,
            firmware,
            system_volume_size,
            data_volumes,
        } => {
            let request = NewServerRequest {
                name,
                server_type,
                vcpus,
                ram_mb,
                image_id: image.unwrap_or_default(),
                capsule_id: capsule,
                architecture,
                firmware,
                system_volume_size,
                data_volumes: data_volumes.iter().map(|d| data_volume(d)).collect::<anyhow::Result<_>>()?,
            };
            print_server(ctx, &c.create_server(&request).await?)?;
        }
        ServerCommand::List { all_projects } => {
            let servers = c.list_servers(all_projects).await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&servers))?,
                OutputFormat::Table => {
                    let mut t = Table::new(["ID", "Name", "Type", "Status", "vCPUs", "RAM (MiB)", "Image"]);
                    for s in &servers {
                        t.row([
                            s.id.clone(),
                            s.name.clone(),
                            s.server_type.clone(),
                            s.status.clone(),
                            s.vcpus.to_string(),
                            s.ram_mb.to_string(),
                            s.image_id.clone().unwrap_or_default(),
                        ]);
                    }
                    ctx.print(&t.render())?
                }
            }
        }
        ServerCommand::Show { id } => print_server(ctx, &c.get_server(&id).await?)?,
        ServerCommand::Delete { id, keep_volumes } => c.delete_server(&id, keep_volumes).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_volumes_parse() {
        assert_eq!(data_volume("10").unwrap(), NewServerDataVolume { image_id: None, size: Some(10) });
        assert_eq!(
            data_volume("image=abc,size=4").unwrap(),
            NewServerDataVolume { image_id: Some("abc".into()), size: Some(4) }
        );
        assert!(data_volume("disk=abc").is_err());
        assert!(data_volume("size=x").is_err());
    }
}
