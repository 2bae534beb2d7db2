//! The `ims` command: the clap tree and dispatch. The work is in `commands/`, `output.rs`,
//! `progress.rs` and `serve.rs`.

mod allocator;
mod commands;
mod img;
mod output;
mod progress;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::admin::{AccessKeyCommand, ProjectCommand, TokenCommand, UserCommand};
use commands::image::{
    CreateArgs, DeleteArgs, DownloadArgs, IdArg, ListArgs, TagArgs, UpdateArgs, UploadArgs,
};
use commands::member::{MemberArgs, MemberOptionalArgs};
use commands::{ClientOpts, Ctx};

/// IMS: an image management service for clouds.
#[derive(Debug, Parser)]
#[command(name = "ims", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the IMS server.
    Serve(serve::ServeArgs),
    /// Manage images (OpenStack Images API v2).
    Image {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Manage projects, users and tokens (admin).
    Admin {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Servers of the built-in compute driver.
    Server {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::server::ServerCommand,
    },
    /// Volumes of the built-in compute driver (guest disks of servers).
    Volume {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::volume::VolumeCommand,
    },
    /// User buckets: where images are imported from and exported to.
    Bucket {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::bucket::BucketCommand,
    },
    /// Long work (imports, exports, copies): list, show, wait for, cancel.
    Job {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::job::JobCommand,
    },
    /// The audit trail: who did what, when, from where, and how it ended.
    Audit {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::audit::AuditCommand,
    },
    /// Capsule images: an application packaged on a base image, deployable in one step.
    Capsule {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::capsule::CapsuleCommand,
    },
    /// The recycle bin: deleted images that can still be restored.
    Bin {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::recycle_bin::BinCommand,
    },
    /// The marketplace: browse, publish and subscribe to listed images.
    Market {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::market::MarketCommand,
    },
    /// Your project's quotas and usage.
    Quota {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        command: commands::own_quota::OwnQuotaCommand,
    },
    /// Show the user, project and role of the current token.
    Whoami {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Offline disk-image tools shaped like qemu-img's: info, convert, check, compare.
    #[command(subcommand)]
    Img(img::ImgCommand),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Create an image (and upload its data with --file).
    Create(CreateArgs),
    /// List images (all pages unless --limit).
    List(ListArgs),
    /// Show an image.
    Show(IdArg),
    /// Change an image's attributes and properties.
    Update(UpdateArgs),
    /// Delete images (into the recycle bin, unless --force or the bin is off).
    Delete(DeleteArgs),
    /// Bring a deleted image back from the recycle bin (same id, data and checksums).
    Restore(IdArg),
    /// Show the image and each image it was derived from, up to the root.
    Lineage(IdArg),
    /// Upload an image's data from a file (`-` for stdin).
    Upload(UploadArgs),
    /// Download an image's data to a file or stdout, verifying its md5.
    Download(DownloadArgs),
    /// Add or remove an image's tags.
    #[command(subcommand)]
    Tag(TagCommand),
    /// Share an image with projects, and answer shares.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Your frequently used images (listed first by `image list`).
    #[command(subcommand)]
    Favorite(commands::favorite::FavoriteCommand),
    /// Deactivate an image: its data can no longer be downloaded (admin).
    Deactivate(IdArg),
    /// Reactivate a deactivated image (admin).
    Reactivate(IdArg),
    /// Make an image from a bucket file (converted as the operator set), as a job.
    Import(commands::pipeline::ImportArgs),
    /// Export an image into a bucket in another format, as a job.
    Export(commands::pipeline::ExportArgs),
    /// Copy an image (the copy shares the source's data), as a job.
    Copy(commands::pipeline::CopyArgs),
}

#[derive(Debug, Subcommand)]
enum TagCommand {
    /// Add a tag to an image.
    Add(TagArgs),
    /// Remove a tag from an image.
    Remove(TagArgs),
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Share the image with a project.
    Add(MemberArgs),
    /// Stop sharing the image with a project.
    Remove(MemberArgs),
    /// List the projects the image is shared with.
    List(IdArg),
    /// Show one membership (default: the caller's project).
    Show(MemberOptionalArgs),
    /// Accept an image shared with your project.
    Accept(MemberOptionalArgs),
    /// Reject an image shared with your project.
    Reject(MemberOptionalArgs),
    /// List the images shared with your project that wait for your answer.
    Pending,
    /// Accept shares from named projects without answering them.
    #[command(subcommand)]
    AutoAccept(commands::share_auto_accept::AutoAcceptCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Projects (tenants).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Access keys (AK/SK) for SDK-HMAC-SHA256 signed requests (the Huawei Cloud SDK).
    #[command(subcommand)]
    AccessKey(AccessKeyCommand),
    /// Master keys of the key management service (encrypted images).
    #[command(subcommand)]
    Kms(commands::kms::KmsCommand),
    /// Per-project quotas.
    #[command(subcommand)]
    Quota(commands::quota::QuotaCommand),
    /// The chunk store: garbage collection, verification, statistics.
    #[command(subcommand)]
    Store(commands::store::StoreCommand),
    /// The audit trail's hash chain.
    #[command(subcommand)]
    Audit(commands::audit::AdminAuditCommand),
    /// The nodes sharing the catalog; draining one before it is stopped.
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
    /// The metadata definitions catalog: load Glance's definition files.
    #[command(subcommand)]
    Metadefs(commands::metadefs::MetadefsCommand),
    /// Register a directory of images (with images.toml or images.json) as public images; images
    /// already present with the same name and checksum are skipped.
    SeedPublicImages(commands::seed_public_images::SeedArgs),
    /// Move this single node's catalog and store to a cluster's PostgreSQL catalog and shared store
    /// (offline: stop `ims serve` first). Safe to rerun; refuses a target holding another deployment.
    Migrate(commands::migrate::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the runtime starts any thread.
    allocator::tune_malloc();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", commands::error_message(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    use commands::{admin, image, member};
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Image { opts, command } => {
            let ctx = Ctx::new(&opts)?;
            match command {
                ImageCommand::Create(a) => image::create(&ctx, a).await,
                ImageCommand::List(a) => image::list(&ctx, a).await,
                ImageCommand::Show(a) => image::show(&ctx, a).await,
                ImageCommand::Update(a) => image::update(&ctx, a).await,
                ImageCommand::Delete(a) => image::delete(&ctx, a).await,
                ImageCommand::Restore(a) => commands::recycle_bin::restore(&ctx, a).await,
                ImageCommand::Lineage(a) => commands::recycle_bin::lineage(&ctx, a).await,
                ImageCommand::Upload(a) => image::upload(&ctx, a).await,
                ImageCommand::Download(a) => image::download(&ctx, a).await,
                ImageCommand::Tag(TagCommand::Add(a)) => image::tag_add(&ctx, a).await,
                ImageCommand::Tag(TagCommand::Remove(a)) => image::tag_remove(&ctx, a).await,
                ImageCommand::Member(m) => match m {
                    MemberCommand::Add(a) => member::add(&ctx, a).await,
                    MemberCommand::Remove(a) => member::remove(&ctx, a).await,
                    MemberCommand::List(a) => member::list(&ctx, a).await,
                    MemberCommand::Show(a) => member::show(&ctx, a).await,
                    MemberCommand::Pending => commands::pending_shares::list(&ctx).await,
                    MemberCommand::AutoAccept(c) => commands::share_auto_accept::run(&ctx, c).await,
                    MemberCommand::Accept(a) => member::answer(&ctx, a, ims_client::MemberStatus::Accepted).await,
                    MemberCommand::Reject(a) => member::answer(&ctx, a, ims_client::MemberStatus::Rejected).await,
                },
                ImageCommand::Favorite(c) => commands::favorite::run(&ctx, c).await,
                ImageCommand::Deactivate(a) => image::deactivate(&ctx, a).await,
                ImageCommand::Reactivate(a) => image::reactivate(&ctx, a).await,
                ImageCommand::Import(a) => commands::pipeline::import(&ctx, a).await,
                ImageCommand::Export(a) => commands::pipeline::export(&ctx, a).await,
                ImageCommand::Copy(a) => commands::pipeline::copy(&ctx, a).await,
            }
        }
        // Works on the node's files and databases, not through the API: no token needed.
        Command::Admin { command: AdminCommand::Migrate(args), .. } => commands::migrate::run(args).await,
        Command::Admin { opts, command } => {
            let ctx = Ctx::new(&opts)?;
            match command {
                AdminCommand::Project(c) => admin::project(&ctx, c).await,
                AdminCommand::User(c) => admin::user(&ctx, c).await,
                AdminCommand::Token(c) => admin::token(&ctx, c).await,
                AdminCommand::AccessKey(c) => admin::access_key(&ctx, c).await,
                AdminCommand::Kms(c) => commands::kms::run(&ctx, c).await,
                AdminCommand::Quota(c) => commands::quota::run(&ctx, c).await,
                AdminCommand::Store(c) => commands::store::run(&ctx, c).await,
                AdminCommand::Audit(c) => commands::audit::admin(&ctx, c).await,
                AdminCommand::Node(c) => commands::node::run(&ctx, c).await,
                AdminCommand::Metadefs(c) => commands::metadefs::run(&ctx, c).await,
                AdminCommand::SeedPublicImages(a) => commands::seed_public_images::run(&ctx, a).await,
                AdminCommand::Migrate(args) => commands::migrate::run(args).await,
            }
        }
        Command::Bucket { opts, command } => commands::bucket::run(&Ctx::new(&opts)?, command).await,
        Command::Server { opts, command } => commands::server::run(&Ctx::new(&opts)?, command).await,
        Command::Volume { opts, command } => commands::volume::run(&Ctx::new(&opts)?, command).await,
        Command::Job { opts, command } => commands::job::run(&Ctx::new(&opts)?, command).await,
        Command::Audit { opts, command } => commands::audit::run(&Ctx::new(&opts)?, command).await,
        Command::Capsule { opts, command } => commands::capsule::run(&Ctx::new(&opts)?, command).await,
        Command::Market { opts, command } => commands::market::run(&Ctx::new(&opts)?, command).await,
        Command::Bin { opts, command } => commands::recycle_bin::run(&Ctx::new(&opts)?, command).await,
        Command::Quota { opts, command } => commands::own_quota::run(&Ctx::new(&opts)?, command).await,
        Command::Whoami { opts } => {
            let ctx = Ctx::new(&opts)?;
            admin::whoami(&ctx).await
        }
        Command::Img(command) => img::run(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_tree_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_client_options_work_at_any_depth() {
        let cli = Cli::try_parse_from([
            "ims", "image", "--url", "http://h:1", "member", "list", "IMG", "--output", "json", "--token", "t",
        ])
        .unwrap();
        match cli.command {
            Command::Image { opts, command: ImageCommand::Member(MemberCommand::List(a)) } => {
                assert_eq!(opts.url, "http://h:1");
                assert_eq!(opts.token.as_deref(), Some("t"));
                assert_eq!(opts.output, output::OutputFormat::Json);
                assert_eq!(a.id, "IMG");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn download_short_o_is_the_file() {
        let cli = Cli::try_parse_from(["ims", "image", "download", "IMG", "-o", "out.raw", "--output", "json"]).unwrap();
        match cli.command {
            Command::Image { opts, command: ImageCommand::Download(a) } => {
                assert_eq!(a.file.as_deref(), Some(std::path::Path::new("out.raw")));
                assert_eq!(opts.output, output::OutputFormat::Json);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
