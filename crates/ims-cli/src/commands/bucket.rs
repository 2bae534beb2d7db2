//! `ims bucket ls|put|get|rm`: user object storage (where images are imported from and exported to).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};
use crate::progress::bytes_bar;

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// List the buckets you may use, or the objects of BUCKET (`BUCKET[:PREFIX]`).
    Ls {
        /// `BUCKET` or `BUCKET:PREFIX`; none lists buckets.
        target: Option<String>,
    },
    /// Upload a local file as `BUCKET:KEY` (the bucket is created for your project if missing).
    Put {
        file: PathBuf,
        /// `BUCKET:KEY`.
        target: String,
    },
    /// Download `BUCKET:KEY` into a local file (`-` for stdout).
    Get {
        /// `BUCKET:KEY`.
        source: String,
        file: PathBuf,
    },
    /// Delete `BUCKET:KEY`.
    Rm {
        /// `BUCKET:KEY`.
        target: String,
    },
}

fn split(target: &str) -> anyhow::Result<(&str, &str)> {
    match target.split_once(':') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b, k)),
        _ => bail!("expected BUCKET:KEY, got {target:?}"),
    }
}

pub async fn run(ctx: &Ctx, command: BucketCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        BucketCommand::Ls { target: None } => {
            let buckets = c.list_buckets().await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&buckets)),
                OutputFormat::Table => {
                    let mut t = Table::new(["Name", "Owner"]);
                    for b in &buckets {
                        t.row([b.name.clone(), b.owner.clone()]);
                    }
                    ctx.print(&t.render())
                }
            }
        }
        BucketCommand::Ls { target: Some(target) } => {
            let (bucket, prefix) = match target.split_once(':') {
                Some((b, p)) => (b, Some(p).filter(|p| !p.is_empty())),
                None => (target.as_str(), None),
            };
            let objects = c.list_objects(bucket, prefix).await?;
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&objects)),
                OutputFormat::Table => {
                    let mut t = Table::new(["Key", "Size", "Last modified"]);
                    for o in &objects {
                        t.row([o.key.clone(), o.size.to_string(), o.last_modified.clone()]);
                    }
                    ctx.print(&t.render())
                }
            }
        }
        BucketCommand::Put { file, target } => {
            let (bucket, key) = split(&target)?;
            let size = tokio::fs::metadata(&file).await.with_context(|| format!("cannot read {}", file.display()))?.len();
            let bar = bytes_bar(Some(size), ctx.progress_enabled(), "put");
            let reader = tokio::fs::File::open(&file).await.with_context(|| format!("cannot open {}", file.display()))?;
            let progress = bar.clone();
            let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).inspect(move |piece| {
                if let Ok(p) = piece {
                    progress.inc(p.len() as u64);
                }
            });
            let stored = c.put_object(bucket, key, ims_client::reqwest::Body::wrap_stream(stream)).await;
            bar.finish_and_clear();
            let stored = stored?;
            if stored != size {
                bail!("{target}: the server stored {stored} bytes of {size}");
            }
            match ctx.output {
                OutputFormat::Json => ctx.print(&output::json(&serde_json::json!({"bucket": bucket, "key": key, "size": stored}))),
                OutputFormat::Table => ctx.print(&format!("{stored} bytes stored as {bucket}:{key}")),
            }
        }
        BucketCommand::Get { source, file } => {
            let (bucket, key) = split(&source)?;
            let (size, mut stream) = c.get_object(bucket, key).await?;
            let to_stdout = file.as_os_str() == "-";
            let bar = bytes_bar(size, !to_stdout && ctx.progress_enabled(), "get");
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
                Box::new(tokio::io::stdout())
            } else {
                Box::new(tokio::fs::File::create(&file).await.with_context(|| format!("cannot create {}", file.display()))?)
            };
            let mut written = 0u64;
            while let Some(piece) = stream.next().await {
                let piece = piece?;
                out.write_all(&piece).await?;
                written += piece.len() as u64;
                bar.inc(piece.len() as u64);
            }
            out.flush().await?;
            bar.finish_and_clear();
            if let Some(size) = size.filter(|s| *s != written) {
                bail!("{source}: received {written} bytes of {size}");
            }
            if !to_stdout && ctx.output == OutputFormat::Json {
                ctx.print(&output::json(&serde_json::json!({"source": source, "file": file, "size": written})))?;
            }
            Ok(())
        }
        BucketCommand::Rm { target } => {
            let (bucket, key) = split(&target)?;
            c.delete_object(bucket, key).await?;
            Ok(())
        }
    }
}
