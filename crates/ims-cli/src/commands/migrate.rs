//! `ims admin migrate`: moves a single-node deployment (its SQLite catalog and its store) to a cluster's
//! PostgreSQL catalog and shared store. Runs on the single node's machine, offline: stop `ims serve` first.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use ims_core::migration::{Migration, MigrationEndpoints};
use ims_server::{Overrides, Settings};
use ims_store::MigrationProgress;

/// How often chunk progress is printed at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// A node heartbeat this recent means `ims serve` probably still runs on the source.
const RECENT_HEARTBEAT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// TOML configuration file of the source node.
    #[arg(long, env = "IMS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the source node [default: ./ims-data].
    #[arg(long, env = "IMS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Catalog of the source node [default: sqlite://<data-dir>/ims.db].
    #[arg(long, env = "IMS_DATABASE_URL")]
    database: Option<String>,
    /// Chunk store of the source node [default: file://<data-dir>/store].
    #[arg(long, env = "IMS_STORE_URL")]
    store: Option<String>,
    /// Catalog of the cluster: postgres://USER@HOST:PORT/DATABASE (the database must exist).
    #[arg(long)]
    to_database: String,
    /// Chunk store of the cluster: s3://BUCKET?endpoint=... or file:///PATH.
    #[arg(long)]
    to_store: String,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let mut settings = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    settings.apply(Overrides {
        data_dir: args.data_dir.clone(),
        database: args.database.clone(),
        store: args.store.clone(),
        s3_access_key_id: std::env::var("IMS_S3_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty()),
        s3_secret_access_key: std::env::var("IMS_S3_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty()),
        ..Overrides::default()
    });
    let source_database = settings.database_url();
    let source_store = settings.store_url()?;
    let master_key = settings.data_dir.join("master.key");
    let store_options = ims_store::StoreOptions {
        s3_access_key_id: settings.s3_access_key_id.clone(),
        s3_secret_access_key: settings.s3_secret_access_key.clone(),
    };
    let endpoints = MigrationEndpoints {
        source_database: &source_database,
        source_store: &source_store,
        master_key: &master_key,
        target_database: &args.to_database,
        target_store: &args.to_store,
        store_options: &store_options,
    };
    let started = Instant::now();
    let migration = Migration::open(&endpoints).await.context("opening the source and the target")?;

    let activity = migration.source_activity().await?;
    if activity.unfinished_jobs > 0 {
        eprintln!(
            "warning: the source has {} unfinished job(s); they are copied as they are and resume on the cluster",
            activity.unfinished_jobs
        );
    }
    if let Some(at) = activity.last_node_heartbeat {
        let age = (chrono::Utc::now() - at).to_std().unwrap_or_default();
        if age < RECENT_HEARTBEAT {
            eprintln!(
                "warning: a node of the source was alive {}s ago: stop `ims serve` (or drain the node) so that \
                 nothing changes during the migration",
                age.as_secs()
            );
        }
    }

    eprintln!("checking the target catalog for data of another deployment");
    migration.check_target().await?;

    eprintln!("copying the store: {source_store} -> {}", args.to_store);
    let last_print = Mutex::new(Instant::now() - PROGRESS_EVERY);
    let print_progress = |p: &MigrationProgress| {
        let mut last = last_print.lock().expect("progress lock");
        let finished = p.chunks_done == p.chunks_total && p.manifests_done == p.manifests_total;
        if finished || last.elapsed() >= PROGRESS_EVERY {
            *last = Instant::now();
            eprintln!(
                "  chunks {}/{}, manifests {}/{}, {} already present, {} bytes written",
                p.chunks_done, p.chunks_total, p.manifests_done, p.manifests_total, p.objects_present, p.bytes_written
            );
        }
    };
    let store_report = migration.copy_store(&print_progress).await?;
    if !store_report.failures.is_empty() {
        for failure in &store_report.failures {
            eprintln!("  FAILED {}: {}", failure.object, failure.detail);
        }
        anyhow::bail!(
            "{} object(s) could not be migrated (first: {}: {}); the target catalog was not written",
            store_report.failures.len(),
            store_report.failures[0].object,
            store_report.failures[0].detail
        );
    }

    eprintln!("copying the catalog: {} -> PostgreSQL", redact(&source_database));
    let mut last_printed = ("", u64::MAX);
    let tables = migration
        .copy_catalog(&mut |t| {
            if (t.table, t.rows_read) != last_printed {
                last_printed = (t.table, t.rows_read);
                eprintln!("  {}: {} rows read, {} inserted", t.table, t.rows_read, t.rows_inserted);
            }
        })
        .await?;

    let p = &store_report.progress;
    let rows_read: u64 = tables.iter().map(|t| t.rows_read).sum();
    let rows_inserted: u64 = tables.iter().map(|t| t.rows_inserted).sum();
    let mut summary = String::from("table                 rows  inserted\n");
    for t in &tables {
        summary.push_str(&format!("{:<20} {:>5} {:>9}\n", t.table, t.rows_read, t.rows_inserted));
    }
    summary.push_str(&format!(
        "migrated {} tables ({rows_read} rows, {rows_inserted} inserted), {} manifests and {} chunks \
         ({} already present, {} bytes written), all verified, in {:.1}s\n",
        tables.len(),
        p.manifests_total,
        p.chunks_total,
        p.objects_present,
        p.bytes_written,
        started.elapsed().as_secs_f64()
    ));
    summary.push_str(&format!(
        "next: copy {} into the data directory of every node of the cluster (it unlocks the encryption keys \
         and access keys), then start the nodes with --database and --store set to the target",
        master_key.display()
    ));
    super::print_stdout(&summary)
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, rest)) if credentials.contains("://") => {
            let scheme = credentials.split("://").next().unwrap_or_default();
            format!("{scheme}://***@{rest}")
        }
        _ => url.to_string(),
    }
}
