//! `ims image ...`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use ims_client::{CreateImage, Image, ListParams, PatchOp};
use md5::{Digest, Md5};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{parse_key_value, parse_sort, Ctx};
use crate::output::{self, OutputFormat};
use crate::progress::bytes_bar;

const VISIBILITIES: [&str; 4] = ["public", "private", "shared", "community"];

#[derive(Debug, Args)]
pub struct IdArg {
    /// Image id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new image.
    pub name: String,
    /// Disk format (raw, qcow2, vmdk, vhd, vhdx, vdi, iso, ploop, zvhd, zvhd2, ...); raw with --file.
    #[arg(long)]
    pub disk_format: Option<String>,
    /// Container format (bare, ovf, ova, ...); bare with --file.
    #[arg(long)]
    pub container_format: Option<String>,
    #[arg(long, value_parser = VISIBILITIES)]
    pub visibility: Option<String>,
    /// A free-form property (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Minimum disk size in GiB.
    #[arg(long)]
    pub min_disk: Option<u64>,
    /// Minimum RAM in MiB.
    #[arg(long)]
    pub min_ram: Option<u64>,
    /// Protect the image from deletion.
    #[arg(long)]
    pub protected: bool,
    /// Use this id instead of a generated one.
    #[arg(long, value_name = "UUID")]
    pub id: Option<String>,
    /// Upload this file as the image's data once created.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Deprecate the image from this RFC 3339 time on (hidden from default lists, still usable).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub deprecate_at: Option<String>,
}

impl CreateArgs {
    /// The body of `POST /v2/images`.
    pub fn to_request(&self) -> CreateImage {
        let with_file = self.file.is_some();
        CreateImage {
            id: self.id.clone(),
            name: Some(self.name.clone()),
            disk_format: self.disk_format.clone().or_else(|| with_file.then(|| "raw".to_string())),
            container_format: self.container_format.clone().or_else(|| with_file.then(|| "bare".to_string())),
            visibility: self.visibility.clone(),
            protected: self.protected.then_some(true),
            os_hidden: None,
            min_disk: self.min_disk,
            min_ram: self.min_ram,
            tags: self.tags.clone(),
            deprecate_at: self.deprecate_at.clone(),
            properties: self.properties.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    /// public, private, shared, community or all.
    #[arg(long)]
    pub visibility: Option<String>,
    /// Owner project id.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only images with this tag (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only images whose property KEY is VALUE (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// Sort order, e.g. `name:asc` or `status:desc,name` (repeatable; combined in order).
    #[arg(long, value_name = "KEY[:asc|desc]", value_parser = parse_sort)]
    pub sort: Vec<String>,
    /// Return at most N images (one page) instead of following every page.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// List only deprecated images (their deprecate_at has passed), which are hidden by default.
    #[arg(long)]
    pub deprecated: bool,
}

impl ListArgs {
    /// The query of `GET /v2/images`.
    pub fn to_params(&self) -> ListParams {
        ListParams {
            name: self.name.clone(),
            status: self.status.clone(),
            visibility: self.visibility.clone(),
            owner: self.owner.clone(),
            tags: self.tags.clone(),
            properties: self.properties.clone(),
            sort: (!self.sort.is_empty()).then(|| self.sort.join(",")),
            limit: self.limit,
            deprecated: self.deprecated.then_some(true),
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Image id.
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_parser = VISIBILITIES)]
    pub visibility: Option<String>,
    /// Set a property (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// Remove a property (repeatable).
    #[arg(long = "remove-property", value_name = "KEY")]
    pub remove_properties: Vec<String>,
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub protected: Option<bool>,
    #[arg(long)]
    pub min_disk: Option<u64>,
    #[arg(long)]
    pub min_ram: Option<u64>,
    /// Disk format (only while the image has no data).
    #[arg(long)]
    pub disk_format: Option<String>,
    /// Container format (only while the image has no data).
    #[arg(long)]
    pub container_format: Option<String>,
    /// Deprecate the image from this RFC 3339 time on.
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "undeprecate")]
    pub deprecate_at: Option<String>,
    /// Clear the image's deprecation time.
    #[arg(long)]
    pub undeprecate: bool,
}

impl UpdateArgs {
    /// The JSON-patch operations, given the image as it is now: a property that exists is replaced,
    /// a new one added (as python-glanceclient does).
    pub fn to_patch(&self, current: &Image) -> Vec<PatchOp> {
        let mut ops = Vec::new();
        if let Some(name) = &self.name {
            ops.push(PatchOp::replace("name", name.as_str()));
        }
        if let Some(v) = &self.visibility {
            ops.push(PatchOp::replace("visibility", v.as_str()));
        }
        if let Some(p) = self.protected {
            ops.push(PatchOp::replace("protected", p));
        }
        if let Some(n) = self.min_disk {
            ops.push(PatchOp::replace("min_disk", n));
        }
        if let Some(n) = self.min_ram {
            ops.push(PatchOp::replace("min_ram", n));
        }
        if let Some(f) = &self.disk_format {
            ops.push(PatchOp::replace("disk_format", f.as_str()));
        }
        if let Some(f) = &self.container_format {
            ops.push(PatchOp::replace("container_format", f.as_str()));
        }
        for (k, v) in &self.properties {
            if current.properties.contains_key(k) {
                ops.push(PatchOp::replace(k, v.as_str()));
            } else {
                ops.push(PatchOp::add(k, v.as_str()));
            }
        }
        for k in &self.remove_properties {
            ops.push(PatchOp::remove(k));
        }
        if let Some(at) = &self.deprecate_at {
            ops.push(PatchOp::replace("deprecate_at", at.as_str()));
        }
        if self.undeprecate {
            ops.push(PatchOp::remove("deprecate_at"));
        }
        ops
    }
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Image ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Delete for good at once instead of moving the images to the recycle bin.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Image id.
    pub id: String,
    /// File to upload (`-` for stdin).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Image id.
    pub id: String,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Image id.
    pub id: String,
    pub tag: String,
}

pub async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    // Open the file first: a typo should not leave an empty image behind.
    let source = match &args.file {
        Some(path) => Some(open_source(path).await?),
        None => None,
    };
    let image = ctx.client.create_image(&args.to_request()).await?;
    let image = match source {
        Some((reader, size)) => {
            send_data(ctx, &image.id, reader, size)
                .await
                .with_context(|| format!("image {} was created but its upload failed", image.id))?;
            ctx.client.get_image(&image.id).await?
        }
        None => image,
    };
    ctx.print(&output::image(&image, ctx.output))
}

pub async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let params = args.to_params();
    let mut images = if args.limit.is_some() {
        ctx.client.list_images(&params).await?.images
    } else {
        ctx.client.list_all_images(&params).await?
    };
    // The whole list in the server's default order: the caller's favourites come first.
    if args.limit.is_none() && args.sort.is_empty() {
        super::favorite::put_favorites_first(ctx, &mut images).await?;
    }
    ctx.print(&output::images(&images, ctx.output))
}

pub async fn show(ctx: &Ctx, args: IdArg) -> anyhow::Result<()> {
    let image = ctx.client.get_image(&args.id).await?;
    super::deprecation::warn(&image);
    ctx.print(&output::image(&image, ctx.output))
}

pub async fn update(ctx: &Ctx, args: UpdateArgs) -> anyhow::Result<()> {
    let current = ctx.client.get_image(&args.id).await?;
    let ops = args.to_patch(&current);
    if ops.is_empty() {
        bail!("nothing to update: give at least one of --name, --visibility, --property, --remove-property, --protected, --min-disk, --min-ram, --disk-format, --container-format, --deprecate-at, --undeprecate");
    }
    let image = ctx.client.update_image(&args.id, &ops).await?;
    ctx.print(&output::image(&image, ctx.output))
}

pub async fn delete(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for id in &args.ids {
        let deleted =
            if args.force { ctx.client.force_delete_image(id).await } else { ctx.client.delete_image(id).await };
        if let Err(e) = deleted {
            eprintln!("error: cannot delete image {id}: {e}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} image(s) not deleted", args.ids.len());
    }
    Ok(())
}

pub async fn upload(ctx: &Ctx, args: UploadArgs) -> anyhow::Result<()> {
    let (reader, size) = open_source(&args.file).await?;
    send_data(ctx, &args.id, reader, size).await?;
    let image = ctx.client.get_image(&args.id).await?;
    ctx.print(&output::image(&image, ctx.output))
}

/// Checks an RFC 3339 time argument and passes it on as given.
fn parse_time(s: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (like 2030-01-31T00:00:00Z): {e}"))
}

type Source = (Box<dyn AsyncRead + Send + Unpin>, Option<u64>);

/// The file (or stdin for `-`) and its size when known.
async fn open_source(path: &Path) -> anyhow::Result<Source> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(tokio::io::stdin()), None));
    }
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file.metadata().await.with_context(|| format!("cannot stat {}", path.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory", path.display());
    }
    Ok((Box::new(file), Some(meta.len())))
}

/// Streams `reader` to the image's data, with a progress bar.
pub(crate) async fn send_data(
    ctx: &Ctx,
    id: &str,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    size: Option<u64>,
) -> anyhow::Result<()> {
    let bar = bytes_bar(size, ctx.progress_enabled(), "upload");
    let counter = bar.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024)
        .inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let result = ctx.client.upload_stream(id, stream, size).await;
    bar.finish_and_clear();
    Ok(result?)
}

pub async fn download(ctx: &Ctx, args: DownloadArgs) -> anyhow::Result<()> {
    let record = ctx.client.get_image(&args.id).await?;
    super::deprecation::warn(&record);
    let dl = ctx.client.download(&args.id, None).await?;
    if dl.is_empty() {
        bail!("image {} has no data", args.id);
    }
    let expected_md5 = match dl.content_md5.as_deref().and_then(md5_hex) {
        Some(md5) => Some(md5),
        None => record.checksum.map(|c| c.to_ascii_lowercase()),
    };
    let expected_len = dl.content_length;
    let show_bar = args.file.is_some() && ctx.progress_enabled() || ctx.force_progress;
    let bar = bytes_bar(expected_len, show_bar, "download");

    match &args.file {
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".ims-download.")
                .tempfile_in(&dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))?;
            let mut file = tokio::fs::File::from_std(tmp.as_file().try_clone()?);
            let (len, md5) = copy_hashing(dl, &mut file, &bar).await;
            bar.finish_and_clear();
            let (len, md5) = (len?, md5);
            file.sync_all().await?;
            drop(file);
            // On a mismatch `tmp` is dropped (deleted): a corrupt image never appears under `path`.
            verify(&args.id, len, &md5, expected_len, expected_md5.as_deref())
                .with_context(|| format!("{} was not written", path.display()))?;
            let persisted = tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
            set_default_permissions(&persisted)?;
            if ctx.output == OutputFormat::Json {
                ctx.print(&output::json(&json!({
                    "id": args.id, "file": path, "size": len, "checksum": md5,
                })))?;
            } else if ctx.progress_enabled() {
                eprintln!("{len} bytes written to {} (md5 {md5} verified)", path.display());
            }
            Ok(())
        }
        None => {
            let mut stdout = tokio::io::stdout();
            let (len, md5) = copy_hashing(dl, &mut stdout, &bar).await;
            bar.finish_and_clear();
            verify(&args.id, len?, &md5, expected_len, expected_md5.as_deref())
        }
    }
}

/// Copies the body to `out`, counting and hashing; returns the byte count and the hex md5.
async fn copy_hashing<W: AsyncWrite + Unpin>(
    dl: ims_client::Download,
    out: &mut W,
    bar: &indicatif::ProgressBar,
) -> (anyhow::Result<u64>, String) {
    let mut hasher = Md5::new();
    let mut len = 0u64;
    let mut stream = dl.into_stream();
    let result: anyhow::Result<u64> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("download interrupted")?;
            hasher.update(&chunk);
            out.write_all(&chunk).await.context("cannot write the image data")?;
            len += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        out.flush().await.context("cannot write the image data")?;
        Ok(len)
    }
    .await;
    (result, hex(&hasher.finalize()))
}

fn verify(id: &str, len: u64, md5: &str, expected_len: Option<u64>, expected_md5: Option<&str>) -> anyhow::Result<()> {
    if let Some(expected) = expected_len {
        if expected != len {
            bail!("download of image {id} is truncated: got {len} bytes, expected {expected}");
        }
    }
    match expected_md5 {
        Some(expected) if expected != md5 => {
            bail!("CHECKSUM MISMATCH for image {id}: the data has md5 {md5} but the server says {expected}")
        }
        Some(_) => Ok(()),
        None => {
            eprintln!("warning: image {id} has no checksum; the download was not verified");
            Ok(())
        }
    }
}

/// `Content-MD5` as lowercase hex: Glance sends the hex checksum, RFC 1864 says base64; accept both.
pub fn md5_hex(header: &str) -> Option<String> {
    let h = header.trim();
    if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(h.to_ascii_lowercase());
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(h).ok()?;
    (raw.len() == 16).then(|| hex(&raw))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
fn set_default_permissions(file: &std::fs::File) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_default_permissions(_file: &std::fs::File) -> anyhow::Result<()> {
    Ok(())
}

pub async fn tag_add(ctx: &Ctx, args: TagArgs) -> anyhow::Result<()> {
    Ok(ctx.client.add_tag(&args.id, &args.tag).await?)
}

pub async fn tag_remove(ctx: &Ctx, args: TagArgs) -> anyhow::Result<()> {
    Ok(ctx.client.remove_tag(&args.id, &args.tag).await?)
}

pub async fn deactivate(ctx: &Ctx, args: IdArg) -> anyhow::Result<()> {
    Ok(ctx.client.deactivate(&args.id).await?)
}

pub async fn reactivate(ctx: &Ctx, args: IdArg) -> anyhow::Result<()> {
    Ok(ctx.client.reactivate(&args.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap<T: clap::Args> {
        #[command(flatten)]
        args: T,
    }

    fn parse<T: clap::Args>(argv: &[&str]) -> T {
        let mut full = vec!["test"];
        full.extend_from_slice(argv);
        Wrap::<T>::try_parse_from(full).unwrap().args
    }

    #[test]
    fn create_maps_flags_to_body() {
        let a: CreateArgs = parse(&[
            "img", "--disk-format", "qcow2", "--visibility", "shared", "--property", "os_distro=ubuntu",
            "--property", "k=a=b", "--tag", "t1", "--tag", "t2", "--min-disk", "10", "--protected",
        ]);
        assert_eq!(
            serde_json::to_value(a.to_request()).unwrap(),
            json!({
                "name": "img", "disk_format": "qcow2", "visibility": "shared", "protected": true,
                "min_disk": 10, "tags": ["t1", "t2"], "os_distro": "ubuntu", "k": "a=b"
            })
        );
    }

    #[test]
    fn create_with_file_defaults_formats() {
        let a: CreateArgs = parse(&["img", "--file", "x.raw"]);
        let r = a.to_request();
        assert_eq!(r.disk_format.as_deref(), Some("raw"));
        assert_eq!(r.container_format.as_deref(), Some("bare"));
        let a: CreateArgs = parse(&["img", "--file", "x.qcow2", "--disk-format", "qcow2"]);
        assert_eq!(a.to_request().disk_format.as_deref(), Some("qcow2"));
        let a: CreateArgs = parse(&["img"]);
        assert_eq!(serde_json::to_value(a.to_request()).unwrap(), json!({"name": "img"}));
    }

    #[test]
    fn create_rejects_bad_input() {
        let bad = |argv: &[&str]| {
            let mut full = vec!["test"];
            full.extend_from_slice(argv);
            Wrap::<CreateArgs>::try_parse_from(full).is_err()
        };
        assert!(bad(&["img", "--property", "novalue"]));
        assert!(bad(&["img", "--visibility", "everyone"]));
        assert!(bad(&["img", "--min-disk", "-1"]));
    }

    #[test]
    fn list_maps_flags_to_query() {
        let a: ListArgs = parse(&[
            "--name", "n", "--tag", "a", "--tag", "b", "--property", "os_distro=ubuntu", "--sort", "name:asc",
            "--sort", "size:DESC", "--limit", "3", "--visibility", "all",
        ]);
        let q = a.to_params().to_query();
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            vec![
                ("name", "n"),
                ("visibility", "all"),
                ("tag", "a"),
                ("tag", "b"),
                ("os_distro", "ubuntu"),
                ("sort", "name:asc,size:desc"),
                ("limit", "3"),
            ]
        );
        assert!(Wrap::<ListArgs>::try_parse_from(["t", "--sort", "nope"]).is_err());
    }

    #[test]
    fn update_builds_patch() {
        let current: Image = serde_json::from_value(json!({"id": "x", "name": "old", "os_distro": "debian"})).unwrap();
        let a: UpdateArgs = parse(&[
            "x", "--name", "new", "--property", "os_distro=ubuntu", "--property", "fresh=1", "--remove-property",
            "gone", "--protected", "false", "--min-ram", "512",
        ]);
        assert_eq!(
            serde_json::to_value(a.to_patch(&current)).unwrap(),
            json!([
                {"op": "replace", "path": "/name", "value": "new"},
                {"op": "replace", "path": "/protected", "value": false},
                {"op": "replace", "path": "/min_ram", "value": 512},
                {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
                {"op": "add", "path": "/fresh", "value": "1"},
                {"op": "remove", "path": "/gone"}
            ])
        );
        let a: UpdateArgs = parse(&["x"]);
        assert!(a.to_patch(&current).is_empty());
    }

    #[test]
    fn content_md5_forms() {
        assert_eq!(md5_hex("D41D8CD98F00B204E9800998ECF8427E").as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(md5_hex("1B2M2Y8AsgTpgAmY7PhCfg==").as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(md5_hex("garbage"), None);
    }

    #[test]
    fn verify_catches_mismatches() {
        assert!(verify("i", 3, "aa", Some(3), Some("aa")).is_ok());
        assert!(verify("i", 3, "aa", Some(4), Some("aa")).is_err());
        let e = verify("i", 3, "aa", None, Some("bb")).unwrap_err();
        assert!(e.to_string().contains("CHECKSUM MISMATCH"));
    }
}
