//! `ims admin seed-public-images --from DIR`: registers a directory of images as public (gold) images.
//!
//! DIR holds the image files and one metadata file, `images.toml` or `images.json` (format in
//! `docs/governance.md`, "Public images"). The whole metadata file is checked before anything is
//! created. Each image is then created public through the Images API and its file uploaded through the
//! normal upload path (so the server inspects it against its `disk_format` and records its checksums).
//! An image already present (a public image of the same name whose checksum is the file's MD5) is
//! skipped, so re-running the command is safe. A failed upload deletes the image it created. The
//! command prints one result per image and fails if any image failed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use ims_client::{CreateImage, ListParams};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

/// The metadata file names looked for in DIR.
const METADATA_FILES: [&str; 2] = ["images.toml", "images.json"];

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Directory holding the image files and `images.toml` or `images.json`.
    #[arg(long = "from", value_name = "DIR")]
    pub dir: PathBuf,
}

/// The metadata file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    images: Vec<SeedImage>,
}

/// One image of the metadata file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedImage {
    name: String,
    /// Path of the image file, relative to DIR.
    file: PathBuf,
    disk_format: String,
    #[serde(default = "bare")]
    container_format: String,
    /// `__platform` (Ubuntu, CentOS, Windows, ...).
    platform: Option<String>,
    /// `__os_version` (a key of the OS version catalogue, like "Ubuntu 22.04 server 64bit").
    os_version: Option<String>,
    /// `__os_type`: Linux or Windows.
    os_type: Option<String>,
    /// `__os_bit`: 32 or 64.
    os_bit: Option<u32>,
    /// `hw_firmware_type`: bios or uefi.
    firmware: Option<String>,
    /// `architecture` (x86_64, aarch64, ...).
    architecture: Option<String>,
    #[serde(default)]
    min_disk: u64,
    #[serde(default)]
    min_ram: u64,
    #[serde(default)]
    tags: Vec<String>,
    /// Any other properties.
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

fn bare() -> String {
    "bare".into()
}

impl SeedImage {
    /// The create request: public, with the OS metadata as properties.
    fn request(&self) -> CreateImage {
        let mut properties = self.properties.clone();
        let os = [
            ("__platform", self.platform.clone()),
            ("__os_version", self.os_version.clone()),
            ("__os_type", self.os_type.clone()),
            ("__os_bit", self.os_bit.map(|b| b.to_string())),
            ("hw_firmware_type", self.firmware.clone()),
            ("architecture", self.architecture.clone()),
        ];
        for (key, value) in os {
            if let Some(value) = value {
                properties.insert(key.to_string(), value);
            }
        }
        CreateImage {
            name: Some(self.name.clone()),
            disk_format: Some(self.disk_format.clone()),
            container_format: Some(self.container_format.clone()),
            visibility: Some("public".into()),
            min_disk: Some(self.min_disk),
            min_ram: Some(self.min_ram),
            tags: self.tags.clone(),
            properties,
            ..Default::default()
        }
    }
}

/// What happened to one image.
#[derive(Debug, Serialize)]
struct SeedResult {
    name: String,
    /// `created`, `skipped` or `failed`.
    result: &'static str,
    image_id: Option<String>,
    detail: String,
}

pub async fn run(ctx: &Ctx, args: SeedArgs) -> anyhow::Result<()> {
    let images = load(&args.dir)?;
    let mut results = Vec::with_capacity(images.len());
    for image in &images {
        let path = args.dir.join(&image.file);
        let result = match seed_one(ctx, image, &path).await {
            Ok(r) => r,
            Err(e) => SeedResult {
                name: image.name.clone(),
                result: "failed",
                image_id: None,
                detail: super::error_message(&e),
            },
        };
        results.push(result);
    }
    ctx.print(&render(&results, ctx.output))?;
    let failed = results.iter().filter(|r| r.result == "failed").count();
    if failed > 0 {
        bail!("{failed} of {} image(s) failed", results.len());
    }
    Ok(())
}

/// Reads and checks the metadata file of `dir`: exactly one of [`METADATA_FILES`], at least one image,
/// unique names, files inside `dir` that exist, and valid OS metadata.
fn load(dir: &Path) -> anyhow::Result<Vec<SeedImage>> {
    let present: Vec<PathBuf> = METADATA_FILES.iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect();
    let path = match present.as_slice() {
        [one] => one,
        [] => bail!("{} has no images.toml or images.json", dir.display()),
        _ => bail!("{} has both images.toml and images.json: keep one", dir.display()),
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: SeedFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid metadata file", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{} is not a valid metadata file", path.display()))?
    };
    if file.images.is_empty() {
        bail!("{} lists no images", path.display());
    }
    let mut names = BTreeSet::new();
    for image in &file.images {
        check(dir, image).with_context(|| format!("image {:?} in {}", image.name, path.display()))?;
        if !names.insert(image.name.as_str()) {
            bail!("image name {:?} appears twice in {}", image.name, path.display());
        }
    }
    Ok(file.images)
}

fn check(dir: &Path, image: &SeedImage) -> anyhow::Result<()> {
    if image.name.trim().is_empty() {
        bail!("the name is empty");
    }
    let inside = image.file.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside || image.file.as_os_str().is_empty() {
        bail!("file {:?} must be a relative path inside the directory", image.file);
    }
    let path = dir.join(&image.file);
    let meta = std::fs::metadata(&path).with_context(|| format!("cannot open {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", path.display());
    }
    if let Some(bits) = image.os_bit {
        if bits != 32 && bits != 64 {
            bail!("os_bit must be 32 or 64, not {bits}");
        }
    }
    if let Some(t) = &image.os_type {
        if t != "Linux" && t != "Windows" {
            bail!("os_type must be Linux or Windows, not {t:?}");
        }
    }
    if let Some(f) = &image.firmware {
        if f != "bios" && f != "uefi" {
            bail!("firmware must be bios or uefi, not {f:?}");
        }
    }
    Ok(())
}

/// Registers one image unless it is present already.
async fn seed_one(ctx: &Ctx, image: &SeedImage, path: &Path) -> anyhow::Result<SeedResult> {
    let md5 = file_md5(path).await?;
    let params = ListParams { name: Some(image.name.clone()), visibility: Some("public".into()), ..Default::default() };
    let existing = ctx.client.list_all_images(&params).await?;
    if let Some(found) = existing.iter().find(|i| i.status == "active" && i.checksum.as_deref() == Some(md5.as_str())) {
        return Ok(SeedResult {
            name: image.name.clone(),
            result: "skipped",
            image_id: Some(found.id.clone()),
            detail: "already present with the same checksum".into(),
        });
    }
    let created = ctx.client.create_image(&image.request()).await?;
    let uploaded = upload(ctx, &created.id, path, &md5).await;
    if let Err(e) = uploaded {
        // Leave nothing half-registered behind: a re-run starts this image afresh.
        let cleanup = match ctx.client.delete_image(&created.id).await {
            Ok(()) => "the image was deleted".to_string(),
            Err(d) => format!("deleting image {} failed too: {d}", created.id),
        };
        bail!("{}; {cleanup}", super::error_message(&e));
    }
    Ok(SeedResult {
        name: image.name.clone(),
        result: "created",
        image_id: Some(created.id.clone()),
        detail: format!("checksum {md5}"),
    })
}

/// Uploads the file and checks that the image became active with the file's checksum.
async fn upload(ctx: &Ctx, id: &str, path: &Path, md5: &str) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().await.with_context(|| format!("cannot stat {}", path.display()))?.len();
    super::image::send_data(ctx, id, Box::new(file), Some(size))
        .await
        .with_context(|| format!("uploading {}", path.display()))?;
    let image = ctx.client.get_image(id).await?;
    if image.status != "active" || image.checksum.as_deref() != Some(md5) {
        bail!(
            "after the upload image {id} is {} with checksum {:?}, expected active with {md5}",
            image.status,
            image.checksum
        );
    }
    Ok(())
}

/// The MD5 of the file as lowercase hex (Glance's `checksum`), read in 1 MiB pieces.
async fn file_md5(path: &Path) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn render(results: &[SeedResult], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(results),
        OutputFormat::Table => {
            let mut t = Table::new(["Name", "Result", "Image ID", "Detail"]);
            for r in results {
                t.row([r.name.clone(), r.result.to_string(), r.image_id.clone().unwrap_or_default(), r.detail.clone()]);
            }
            t.render()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn toml_and_json_describe_the_same_images() {
        let toml = r#"
            [[images]]
            name = "Ubuntu"
            file = "u.img"
            disk_format = "raw"
            platform = "Ubuntu"
            os_bit = 64
            min_disk = 1
            tags = ["lts"]
            properties = { hw_disk_bus = "virtio" }
        "#;
        let dir = dir_with(&[("images.toml", toml), ("u.img", "x")]);
        let images = load(dir.path()).unwrap();
        let req = images[0].request();
        assert_eq!(req.visibility.as_deref(), Some("public"));
        assert_eq!(req.container_format.as_deref(), Some("bare"));
        assert_eq!(req.properties.get("__os_bit").map(String::as_str), Some("64"));
        assert_eq!(req.properties.get("hw_disk_bus").map(String::as_str), Some("virtio"));
        let json = r#"{"images": [{"name": "Ubuntu", "file": "u.img", "disk_format": "raw"}]}"#;
        let dir = dir_with(&[("images.json", json), ("u.img", "x")]);
        assert_eq!(load(dir.path()).unwrap()[0].name, "Ubuntu");
    }

    #[test]
    fn bad_metadata_is_refused_before_anything_happens() {
        let one = |extra: &str| format!("[[images]]\nname = \"a\"\nfile = \"a.img\"\ndisk_format = \"raw\"\n{extra}");
        let refused = |files: &[(&str, &str)]| load(dir_with(files).path()).is_err();
        assert!(refused(&[("a.img", "x")]), "no metadata file");
        assert!(refused(&[("images.toml", &one("")), ("images.json", "{}"), ("a.img", "x")]), "two metadata files");
        assert!(refused(&[("images.toml", &one(""))]), "missing image file");
        assert!(refused(&[("images.toml", &one("os_bit = 16")), ("a.img", "x")]));
        assert!(refused(&[("images.toml", &one("firmware = \"efi\"")), ("a.img", "x")]));
        assert!(refused(&[("images.toml", &one("colour = \"red\"")), ("a.img", "x")]), "unknown field");
        let twice = format!("{}\n{}", one(""), one(""));
        assert!(refused(&[("images.toml", &twice), ("a.img", "x")]), "duplicate name");
        let outside = "[[images]]\nname = \"a\"\nfile = \"../a.img\"\ndisk_format = \"raw\"\n";
        assert!(refused(&[("images.toml", outside)]), "file outside the directory");
        assert!(refused(&[("images.toml", "images = []")]), "no images");
    }
}
