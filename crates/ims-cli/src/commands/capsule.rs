//! `ims capsule create|list|show|delete|export`: capsule images, an application packaged on a base
//! image. `create` writes the application directory as an ISO 9660 file system, streamed straight
//! into the upload of a new data disk image (never staged on disk), then registers the capsule.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use clap::{Args, Subcommand};
use ims_client::{Capsule, CreateCapsule, CreateImage, Image};
use ims_formats::iso::{IsoLayout, IsoOptions, IsoTree};

use super::image::IdArg;
use super::pipeline::WaitArgs;
use super::{parse_key_value, Ctx};
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum CapsuleCommand {
    /// Package a directory as an application disk on a base image and register the capsule.
    Create(CreateArgs),
    /// List the capsules you can see, newest first.
    List(ListArgs),
    /// Show a capsule with its base image, application images and user data.
    Show(IdArg),
    /// Delete a capsule (and, with --with-app-images, its application images).
    Delete(DeleteArgs),
    /// Export a capsule to a bucket: its application disks, user data and a description.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the capsule.
    pub name: String,
    /// The base system disk image.
    #[arg(long = "base")]
    pub base: String,
    /// Directory written as the application data disk (an ISO 9660 file system with Joliet names).
    #[arg(long)]
    pub app_dir: PathBuf,
    /// More application data disk images (existing ones), attached after the one made from --app-dir.
    #[arg(long = "app-image")]
    pub app_images: Vec<String>,
    /// cloud-init user data for first boot.
    #[arg(long)]
    pub user_data: Option<PathBuf>,
    /// Capsule metadata property KEY=VALUE (repeatable).
    #[arg(long = "property", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// Volume label of the application disk.
    #[arg(long, default_value = "capsule-app")]
    pub label: String,
    /// private, shared (default), community or public (admins).
    #[arg(long)]
    pub visibility: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// At most this many capsules (default: all).
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Capsule id.
    pub id: String,
    /// Also delete the capsule's application images.
    #[arg(long)]
    pub with_app_images: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Capsule id.
    pub id: String,
    /// Where to write: `BUCKET:PREFIX` (the bucket is created for your project if missing).
    /// Application disk N goes to `PREFIX/app-N.FORMAT`, the user data to `PREFIX/user-data`, the
    /// description to `PREFIX/capsule.json`.
    pub bucket_url: String,
    /// File format of the application disks: raw, qcow2, vmdk, vhd, zvhd or zvhd2.
    #[arg(long = "format", short = 'O', default_value = "raw")]
    pub file_format: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(ctx: &Ctx, command: CapsuleCommand) -> anyhow::Result<()> {
    match command {
        CapsuleCommand::Create(a) => create(ctx, a).await,
        CapsuleCommand::List(a) => list(ctx, a).await,
        CapsuleCommand::Show(a) => ctx.print(&render(&ctx.client.get_capsule(&a.id).await?, ctx.output)),
        CapsuleCommand::Delete(a) => delete(ctx, a).await,
        CapsuleCommand::Export(a) => export(ctx, a).await,
    }
}

async fn create(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<()> {
    let user_data = match &a.user_data {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    let tree = IsoTree::from_directory(&a.app_dir).with_context(|| format!("reading {}", a.app_dir.display()))?;
    let layout = IsoLayout::new(tree, &IsoOptions::new(a.label.clone()))?;
    let mut request = CreateImage::named(format!("{}-app", a.name));
    request.disk_format = Some("iso".into());
    request.container_format = Some("bare".into());
    request.visibility = a.visibility.clone();
    request.properties.insert("virtual_env_type".into(), "DataImage".into());
    let app = ctx.client.create_image(&request).await?;
    let made = async {
        upload_iso(ctx, &app.id, layout).await?;
        let mut app_image_ids = vec![app.id.clone()];
        app_image_ids.extend(a.app_images.iter().cloned());
        let capsule = CreateCapsule {
            name: a.name.clone(),
            base_image_id: a.base.clone(),
            app_image_ids,
            user_data,
            properties: a.properties.iter().cloned().collect::<BTreeMap<_, _>>(),
            visibility: a.visibility.clone(),
        };
        Ok::<_, anyhow::Error>(ctx.client.create_capsule(&capsule).await?)
    }
    .await;
    match made {
        Ok(capsule) => ctx.print(&render(&capsule, ctx.output)),
        Err(e) => {
            // The application image was made for this capsule only: do not leave it behind.
            if let Err(cleanup) = ctx.client.delete_image(&app.id).await {
                eprintln!("warning: application image {} was left behind: {cleanup}", app.id);
            }
            Err(e)
        }
    }
}

/// Uploads the ISO image of `layout` as it is produced: a blocking thread reads the stream in 1 MiB
/// pieces into a small channel that feeds the request body.
async fn upload_iso(ctx: &Ctx, image_id: &str, layout: IsoLayout) -> anyhow::Result<()> {
    let size = layout.size();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let producer = tokio::task::spawn_blocking(move || {
        let mut stream = layout.into_stream();
        loop {
            let mut piece = vec![0u8; 1 << 20];
            let mut filled = 0;
            let outcome = loop {
                match stream.read(&mut piece[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == piece.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            piece.truncate(filled);
            let done = filled == 0 || outcome.is_err();
            if filled > 0 && tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                return;
            }
            if let Err(e) = outcome {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if done {
                return;
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let uploaded = ctx.client.upload_stream(image_id, body, Some(size)).await;
    producer.await.context("the ISO writer thread failed")?;
    uploaded.context("uploading the application disk")?;
    Ok(())
}

async fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<()> {
    let mut capsules: Vec<Image> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let want = a.limit.map(|l| l.saturating_sub(capsules.len() as u32).min(1000)).unwrap_or(1000);
        if want == 0 {
            break;
        }
        let page = ctx.client.list_capsules(Some(want), marker.as_deref()).await?;
        capsules.extend(page.capsules);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    match ctx.output {
        OutputFormat::Json => ctx.print(&output::json(&capsules)),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Name", "Status", "Visibility", "Base Image", "App Images"]);
            for c in &capsules {
                let apps = c.properties.get("app_image_ids").and_then(|v| v.as_array()).map(|ids| {
                    ids.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(",")
                });
                t.row([
                    c.id.clone(),
                    c.name.clone().unwrap_or_default(),
                    c.status.clone(),
                    c.visibility.clone(),
                    c.property("base_image_id").unwrap_or_default().to_string(),
                    apps.unwrap_or_default(),
                ]);
            }
            ctx.print(&t.render())
        }
    }
}

async fn delete(ctx: &Ctx, a: DeleteArgs) -> anyhow::Result<()> {
    let apps = if a.with_app_images {
        ctx.client.get_capsule(&a.id).await?.app_images.into_iter().map(|i| i.id).collect()
    } else {
        Vec::new()
    };
    ctx.client.delete_capsule(&a.id).await?;
    for app in apps {
        ctx.client.delete_image(&app).await.with_context(|| format!("deleting application image {app}"))?;
    }
    Ok(())
}

async fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<()> {
    let Some((bucket, prefix)) = a.bucket_url.split_once(':') else {
        bail!("expected BUCKET:PREFIX, got {:?}", a.bucket_url);
    };
    let prefix = prefix.trim_end_matches('/');
    let key = |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
    let capsule = ctx.client.get_capsule(&a.id).await?;
    // Written first: storing an object creates the bucket for the caller's project if missing.
    ctx.client.put_object_bytes(bucket, &key("user-data"), capsule.user_data.clone()).await?;
    let mut jobs = Vec::new();
    let mut files = Vec::new();
    for (n, app) in capsule.app_images.iter().enumerate() {
        let file = key(&format!("app-{}.{}", n + 1, a.file_format));
        let job = ctx.client.export_image(&app.id, &format!("{bucket}:{file}"), &a.file_format).await?;
        files.push(serde_json::json!({"image_id": app.id, "name": app.name, "file": file, "job_id": job}));
        jobs.push(job);
    }
    let description = serde_json::json!({
        "capsule_id": capsule.image.id,
        "name": capsule.image.name,
        "base_image_id": capsule.base_image.id,
        "base_image_name": capsule.base_image.name,
        "app_images": files,
        "user_data": key("user-data"),
        "properties": capsule.image.properties,
    });
    ctx.client.put_object_bytes(bucket, &key("capsule.json"), output::json(&description).into_bytes()).await?;
    if a.wait.wait {
        for job in &jobs {
            let ended = super::job::wait(ctx, job, Duration::from_secs(a.wait.timeout)).await?;
            if ended.status != "SUCCESS" {
                bail!(
                    "export job {job} {}: {} {}",
                    ended.status,
                    ended.error_code.as_deref().unwrap_or(""),
                    ended.fail_reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    match ctx.output {
        OutputFormat::Json => ctx.print(&output::json(&description)),
        OutputFormat::Table => {
            let mut t = Table::new(["Application Image", "File", "Job"]);
            for f in &files {
                t.row(["image_id", "file", "job_id"].map(|k| f[k].as_str().unwrap_or_default().to_string()));
            }
            ctx.print(&t.render())
        }
    }
}

fn render(capsule: &Capsule, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(&serde_json::json!({
            "image": capsule.image,
            "base_image": capsule.base_image,
            "app_images": capsule.app_images,
            "user_data": base64::engine::general_purpose::STANDARD.encode(&capsule.user_data),
        })),
        OutputFormat::Table => {
            let mut rows = vec![
                ("id".to_string(), capsule.image.id.clone()),
                ("name".into(), capsule.image.name.clone().unwrap_or_default()),
                ("status".into(), capsule.image.status.clone()),
                ("visibility".into(), capsule.image.visibility.clone()),
                ("owner".into(), capsule.image.owner.clone().unwrap_or_default()),
                ("base_image".into(), describe(&capsule.base_image)),
            ];
            for (n, app) in capsule.app_images.iter().enumerate() {
                rows.push((format!("app_image_{}", n + 1), describe(app)));
            }
            rows.push(("user_data_bytes".into(), capsule.user_data.len().to_string()));
            for (k, v) in &capsule.image.properties {
                if !k.starts_with("__capsule_") && k != "base_image_id" && k != "app_image_ids" {
                    rows.push((k.clone(), output::cell(v)));
                }
            }
            output::fields(rows)
        }
    }
}

fn describe(image: &Image) -> String {
    format!("{} ({})", image.id, image.name.as_deref().unwrap_or(""))
}
