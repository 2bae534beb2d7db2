//! `ims admin store gc|verify|stats`: garbage collection, integrity verification and accounting of the
//! chunk store.

use clap::Subcommand;
use ims_client::{GcReport, StoreStats, VerifyReport};

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Collect garbage now: delete chunks and manifests no image references.
    Gc {
        /// Only delete objects older than this many seconds (default: the server's grace period).
        /// Short graces are only safe while nobody uploads.
        #[arg(long)]
        grace: Option<u64>,
    },
    /// Read back and hash every chunk of every image (or of one); exits with an error if any is bad.
    Verify {
        /// Only this image.
        #[arg(long)]
        image: Option<String>,
    },
    /// Logical and physical bytes of the store, in total and per project.
    Stats,
}

pub async fn run(ctx: &Ctx, command: StoreCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        StoreCommand::Gc { grace } => ctx.print(&gc(&c.store_gc(grace).await?, ctx.output)),
        StoreCommand::Verify { image } => {
            let report = c.store_verify(image.as_deref()).await?;
            ctx.print(&verify(&report, ctx.output))?;
            let problems = report.chunk_problems.len() + report.manifest_problems.len();
            if problems > 0 {
                anyhow::bail!("verification found {problems} problem(s)");
            }
            if !report.images_skipped.is_empty() {
                anyhow::bail!("{} image(s) could not be verified", report.images_skipped.len());
            }
            Ok(())
        }
        StoreCommand::Stats => ctx.print(&stats(&c.store_stats().await?, ctx.output)),
    }
}

fn gc(r: &GcReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return output::json(r);
    }
    let mut pairs: Vec<(String, String)> = [
        ("chunks_deleted", r.chunks_deleted.to_string()),
        ("bytes_reclaimed", r.bytes_reclaimed.to_string()),
        ("manifests_removed", r.manifests_removed.to_string()),
        ("pending_removed", r.pending_removed.to_string()),
        ("chunks_live", r.chunks_live.to_string()),
        ("chunks_young", r.chunks_young.to_string()),
        ("chunks_scanned", r.chunks_scanned.to_string()),
        ("deadline_reached", r.deadline_reached.to_string()),
        ("grace_seconds", r.grace_seconds.to_string()),
        ("duration_seconds", r.duration_seconds.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // The extra stores' collections, one line per figure and store.
    for (store, extra) in &r.extra_stores {
        pairs.push((format!("{store}.chunks_deleted"), extra.chunks_deleted.to_string()));
        pairs.push((format!("{store}.bytes_reclaimed"), extra.bytes_reclaimed.to_string()));
        pairs.push((format!("{store}.manifests_removed"), extra.manifests_removed.to_string()));
        pairs.push((format!("{store}.chunks_live"), extra.chunks_live.to_string()));
    }
    output::fields(pairs)
}

fn verify(r: &VerifyReport, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return output::json(r);
    }
    let mut text = output::fields([
        ("images_checked", r.images_checked.to_string()),
        ("chunks_checked", r.chunks_checked.to_string()),
        ("bytes_checked", r.bytes_checked.to_string()),
        ("problems", (r.chunk_problems.len() + r.manifest_problems.len()).to_string()),
        ("images_skipped", r.images_skipped.len().to_string()),
        ("duration_seconds", r.duration_seconds.to_string()),
    ]);
    if !r.chunk_problems.is_empty() {
        let mut t = Table::new(["Image", "Offset", "Length", "Chunk", "Problem", "Detail"]);
        for p in &r.chunk_problems {
            t.row([
                p.image_id.clone(),
                p.offset.to_string(),
                p.length.to_string(),
                p.chunk.clone(),
                p.kind.clone(),
                p.detail.clone(),
            ]);
        }
        text.push_str(&t.render());
    }
    if !r.manifest_problems.is_empty() {
        let mut t = Table::new(["Image", "Manifest", "Problem", "Detail"]);
        for p in &r.manifest_problems {
            t.row([p.image_id.clone(), p.manifest_id.clone(), p.kind.clone(), p.detail.clone()]);
        }
        text.push_str(&t.render());
    }
    if !r.images_skipped.is_empty() {
        let mut t = Table::new(["Image", "Not verified because"]);
        for p in &r.images_skipped {
            t.row([p.image_id.clone(), p.reason.clone()]);
        }
        text.push_str(&t.render());
    }
    text
}

fn stats(s: &StoreStats, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return output::json(s);
    }
    let mut text = output::fields([
        ("images", s.images.to_string()),
        ("logical_bytes", s.logical_bytes.to_string()),
        ("physical_bytes", s.physical_bytes.to_string()),
        ("chunks", s.chunks.to_string()),
        ("chunk_bytes", s.chunk_bytes.to_string()),
        ("referenced_bytes", s.referenced_bytes.to_string()),
        ("unreferenced_bytes", s.unreferenced_bytes.to_string()),
        ("manifests", s.manifests.to_string()),
        ("manifest_bytes", s.manifest_bytes.to_string()),
        ("dedup_ratio", format!("{:.3}", s.dedup_ratio)),
    ]);
    let mut t = Table::new(["Project", "Images", "Logical bytes", "Physical bytes", "Chunks"]);
    for p in &s.projects {
        t.row([
            p.project_id.clone(),
            p.images.to_string(),
            p.logical_bytes.to_string(),
            p.physical_bytes.to_string(),
            p.chunks.to_string(),
        ]);
    }
    text.push_str(&t.render());
    text
}
