//! `ims img info`: what an image file is, and whether IMS would accept it.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use anyhow::Context;
use ims_formats::{Format, ImageDetails, ReadAt};
use serde_json::{json, Map, Value};

use super::{human_size, limits, open_file, ImgOutput, InfoArgs};

/// What `info` shows.
struct Info {
    filename: String,
    format: Format,
    virtual_size: Option<u64>,
    /// Bytes the file occupies on disk (allocated blocks).
    actual_size: u64,
    /// The file's length.
    file_length: u64,
    details: ImageDetails,
    backing_filename: Option<String>,
    /// `None` when safe, else why the inspector refuses the file.
    refusal: Option<String>,
}

pub fn run(args: InfoArgs) -> anyhow::Result<i32> {
    let file = open_file(&args.file)?;
    let meta = file.metadata()?;
    let src: Arc<dyn ReadAt> = file;
    let content = ims_formats::detect(&*src)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let shown = args.format.unwrap_or(content);
    let verdict = ims_formats::inspect(src.clone(), args.format, &limits());
    let (format, virtual_size, details, backing_filename, refusal) = match verdict {
        Ok(i) => (i.format, Some(i.virtual_size), i.details, None, None),
        Err(e) => {
            // Still show what can be known: the reader's facts if it opens the file, else what the
            // header says.
            let (vsize, details, backing) = match ims_formats::open(src.clone(), shown, &limits()) {
                Ok(img) => (Some(img.virtual_size()), img.details(), None),
                Err(_) => header_facts(&*src, shown),
            };
            (shown, vsize, details, backing, Some(e.to_string()))
        }
    };
    let info = Info {
        filename: args.file.display().to_string(),
        format,
        virtual_size,
        actual_size: meta.blocks() * 512,
        file_length: meta.len(),
        details,
        backing_filename,
        refusal,
    };
    let text = match args.output {
        ImgOutput::Human => human(&info),
        ImgOutput::Json => crate::output::json(&to_json(&info)),
    };
    crate::commands::print_stdout(&text)?;
    Ok(0)
}

/// A feature value as JSON: booleans and integers typed, the rest as strings.
fn typed(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match v.parse::<u64>() {
            Ok(n) if !v.starts_with('0') || v == "0" => Value::from(n),
            _ => Value::String(v.to_string()),
        },
    }
}

fn to_json(i: &Info) -> Value {
    let features: Map<String, Value> = i
        .details
        .features
        .iter()
        .map(|(k, v)| (k.clone(), typed(v)))
        .collect();
    let mut v = json!({
        "filename": i.filename,
        "format": i.format.as_str(),
        "virtual-size": i.virtual_size,
        "actual-size": i.actual_size,
        "file-length": i.file_length,
        "cluster-size": i.details.cluster_size,
        "compression": i.details.compression,
        "features": features,
        "safe": i.refusal.is_none(),
        "refusal": i.refusal,
    });
    if let Some(b) = &i.backing_filename {
        v["backing-filename"] = Value::String(b.clone());
    }
    v
}

fn human(i: &Info) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "image: {}", i.filename);
    let _ = writeln!(s, "file format: {}", i.format);
    match i.virtual_size {
        Some(v) => {
            let _ = writeln!(s, "virtual size: {} ({v} bytes)", human_size(v));
        }
        None => s.push_str("virtual size: unknown\n"),
    }
    let _ = writeln!(s, "disk size: {}", human_size(i.actual_size));
    let _ = writeln!(
        s,
        "file length: {} ({} bytes)",
        human_size(i.file_length),
        i.file_length
    );
    if let Some(c) = i.details.cluster_size {
        let _ = writeln!(s, "cluster_size: {c}");
    }
    if let Some(c) = &i.details.compression {
        let _ = writeln!(s, "compression: {c}");
    }
    if let Some(b) = &i.backing_filename {
        let _ = writeln!(s, "backing file: {b}");
    }
    if !i.details.features.is_empty() {
        s.push_str("Format specific information:\n");
        for (k, v) in &i.details.features {
            let _ = writeln!(s, "    {k}: {v}");
        }
    }
    match &i.refusal {
        None => s.push_str("safety: safe\n"),
        Some(r) => {
            let _ = writeln!(s, "safety: refused: {r}");
        }
    }
    s
}

/// Best-effort facts from the header of a file its reader refuses (a backing file, say): virtual
/// size, cluster size and backing file name where the header has them.
fn header_facts(src: &dyn ReadAt, format: Format) -> (Option<u64>, ImageDetails, Option<String>) {
    let size = src.size().unwrap_or(0);
    let mut head = vec![0u8; usize::try_from(size.min(64 << 10)).unwrap_or(0)];
    if src.read_exact_at(&mut head, 0).is_err() {
        return (None, ImageDetails::default(), None);
    }
    let name_at = |offset: u64, len: u64| -> Option<String> {
        if len == 0 || len > 1023 || offset == 0 {
            return None;
        }
        let mut buf = vec![0u8; len as usize];
        src.read_exact_at(&mut buf, offset).ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    let mut details = ImageDetails::default();
    match format {
        Format::Qcow2 => match ims_formats::qcow2::parse_header(&head) {
            Ok(h) => {
                details.cluster_size = Some(h.cluster_size());
                details
                    .features
                    .push(("version".into(), h.version.to_string()));
                let backing = name_at(h.backing_file_offset, u64::from(h.backing_file_size));
                (Some(h.size), details, backing)
            }
            Err(_) => (None, details, None),
        },
        Format::Qcow => match ims_formats::qcow::parse_header(&head) {
            Ok(h) => {
                details.cluster_size = Some(h.cluster_size());
                let backing = name_at(h.backing_file_offset, u64::from(h.backing_file_size));
                (Some(h.size), details, backing)
            }
            Err(_) => (None, details, None),
        },
        Format::Qed => match ims_formats::qed::parse_header(&head) {
            Ok(h) => {
                details.cluster_size = Some(u64::from(h.cluster_size));
                let backing = name_at(
                    u64::from(h.backing_filename_offset),
                    u64::from(h.backing_filename_size),
                );
                (Some(h.image_size), details, backing)
            }
            Err(_) => (None, details, None),
        },
        Format::Vdi => match ims_formats::vdi::parse_header(&head) {
            Ok(h) => {
                details.cluster_size = Some(u64::from(h.block_size));
                (Some(h.disk_size), details, None)
            }
            Err(_) => (None, details, None),
        },
        Format::Vhd => {
            let mut tail = [0u8; 512];
            let footer = if size >= 512 && src.read_exact_at(&mut tail, size - 512).is_ok() {
                ims_formats::vhd::parse_footer(&tail)
                    .or_else(|_| ims_formats::vhd::parse_footer(&head[..head.len().min(512)]))
            } else {
                ims_formats::vhd::parse_footer(&head[..head.len().min(512)])
            };
            match footer {
                Ok(f) => (Some(f.virtual_size()), details, None),
                Err(_) => (None, details, None),
            }
        }
        Format::Vmdk => match ims_formats::vmdk::parse_sparse_header(&head) {
            Ok(h) => {
                details.cluster_size = h.grain_size.checked_mul(512);
                (h.capacity.checked_mul(512), details, None)
            }
            Err(_) => (None, details, None),
        },
        Format::Raw | Format::Iso => (Some(size), details, None),
        _ => (None, details, None),
    }
}
