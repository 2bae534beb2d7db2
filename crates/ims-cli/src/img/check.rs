//! `ims img check`: opens an image with its reader (which checks the header and the tables it
//! loads), cross-checks the metadata tables (QCOW2 refcounts, overlapping or out-of-file blocks; see
//! `ims_formats::check`), asks block status over the whole disk (which walks every mapping table) and
//! reads every allocated block (which decodes every compressed cluster). Exit codes as qemu-img
//! check's: 0 no errors, 2 corruption found, 3 only leaked clusters found, 1 the check could not be
//! done.

use std::fmt::Write as _;
use std::sync::Arc;

use ims_formats::{BlockStatus, DiskImage, Format, FormatError, ReadAt};
use serde_json::json;

use super::{limits, open_file, par_map, thread_count, CheckArgs, ImgOutput};

/// Guest bytes whose block status is asked for, and whose blocks are read, in one round.
const WINDOW: u64 = 1 << 30;
/// Largest read of one job.
const CHUNK: u64 = 4 << 20;
/// Errors listed in full; the rest are counted.
const MAX_LISTED: usize = 100;

/// What the check found.
#[derive(Default)]
struct Report {
    filename: String,
    format: Option<Format>,
    virtual_size: Option<u64>,
    file_length: u64,
    data_bytes: u64,
    zero_bytes: u64,
    /// Corruptions found (counted in full, listed up to `MAX_LISTED`).
    corruptions: u64,
    errors: Vec<String>,
    /// Leaked clusters or blocks found by the table check.
    leaks: u64,
    /// The table check's findings, worded as `qemu-img check` words them.
    table_messages: Vec<String>,
    /// Table checks that were not done, and why.
    skipped: Vec<String>,
    /// Why the check could not be done at all (refused, unsupported, I/O).
    check_error: Option<String>,
}

impl Report {
    fn corrupt(&mut self, msg: String) {
        self.corruptions += 1;
        if self.errors.len() < MAX_LISTED {
            self.errors.push(msg);
        }
    }
}

pub fn run(args: CheckArgs) -> i32 {
    let mut report = Report {
        filename: args.file.display().to_string(),
        ..Report::default()
    };
    check(&args, &mut report);
    let text = match args.output {
        ImgOutput::Human => human(&report),
        ImgOutput::Json => crate::output::json(&to_json(&report)),
    };
    if crate::commands::print_stdout(&text).is_err() {
        return 1;
    }
    if report.check_error.is_some() {
        if args.output == ImgOutput::Human {
            eprintln!(
                "error: {}",
                report.check_error.as_deref().unwrap_or_default()
            );
        }
        1
    } else if report.corruptions > 0 {
        2
    } else if report.leaks > 0 {
        3
    } else {
        0
    }
}

fn check(args: &CheckArgs, report: &mut Report) {
    let file = match open_file(&args.file) {
        Ok(f) => f,
        Err(e) => {
            report.check_error = Some(crate::commands::error_message(&e));
            return;
        }
    };
    report.file_length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let src: Arc<dyn ReadAt> = file;
    let format = match args.format {
        Some(f) => f,
        None => match ims_formats::detect(&*src) {
            Ok(f) => f,
            Err(e) => {
                report.check_error = Some(format!("cannot read {}: {e}", report.filename));
                return;
            }
        },
    };
    report.format = Some(format);
    let image = match ims_formats::open(src.clone(), format, &limits()) {
        Ok(i) => i,
        Err(FormatError::Corrupt(msg)) => {
            report.corrupt(msg);
            return;
        }
        Err(e) => {
            report.check_error = Some(format!("cannot check {}: {e}", report.filename));
            return;
        }
    };
    report.virtual_size = Some(image.virtual_size());
    match ims_formats::check::check_tables(src, format, &limits()) {
        Ok(tables) => {
            report.corruptions += tables.corruptions;
            report.leaks += tables.leaks;
            report.table_messages = tables.messages;
            report.skipped = tables.skipped;
        }
        Err(FormatError::Corrupt(msg)) => report.corrupt(msg),
        Err(e) => {
            report.check_error = Some(format!("cannot check the tables of {}: {e}", report.filename));
            return;
        }
    }
    let unit = image
        .details()
        .cluster_size
        .unwrap_or(64 << 10)
        .clamp(512, 64 << 20);
    walk(&*image, unit, report);
}

/// Block status and reads over the whole disk, window by window.
fn walk(image: &dyn DiskImage, unit: u64, report: &mut Report) {
    let vsize = image.virtual_size();
    let threads = thread_count(0);
    let mut offset = 0u64;
    while offset < vsize {
        let len = WINDOW.min(vsize - offset);
        let mut extents = Vec::new();
        status(image, offset, len, unit, &mut extents, report);
        let mut jobs: Vec<(u64, u64)> = Vec::new();
        for (start, length, status) in extents {
            match status {
                BlockStatus::Data => {
                    report.data_bytes += length;
                    let end = start + length;
                    let mut at = start;
                    while at < end {
                        let next = ((at / CHUNK) + 1) * CHUNK;
                        let stop = next.min(end);
                        jobs.push((at, stop - at));
                        at = stop;
                    }
                }
                BlockStatus::Zero => report.zero_bytes += length,
                BlockStatus::Unallocated => {}
            }
        }
        let results = par_map(
            &jobs,
            threads,
            |&(at, len)| read_job(image, at, len, unit),
            |_| false,
        );
        for errs in results.into_iter().flatten() {
            for e in errs {
                report.corrupt(e);
            }
        }
        offset += len;
    }
}

/// Block status of `[offset, offset + len)`; a range whose status fails is split down to `unit`
/// to find the damaged tables, each of which is reported once.
fn status(
    image: &dyn DiskImage,
    offset: u64,
    len: u64,
    unit: u64,
    out: &mut Vec<(u64, u64, BlockStatus)>,
    report: &mut Report,
) {
    match image.block_status(offset, len) {
        Ok(extents) => out.extend(extents.into_iter().map(|e| (e.offset, e.length, e.status))),
        Err(e) if len <= unit => {
            let msg = format!("block status at guest offset {offset:#x}: {e}");
            // A damaged table spans many units: report its message once.
            if report.errors.last().map(|last| same_cause(last, &msg)) != Some(true) {
                report.corrupt(msg);
            }
        }
        Err(_) => {
            let mid = (offset + len / 2) / unit * unit;
            let mid = if mid <= offset {
                offset + unit.min(len)
            } else {
                mid
            };
            status(image, offset, mid - offset, unit, out, report);
            if mid < offset + len {
                status(image, mid, offset + len - mid, unit, out, report);
            }
        }
    }
}

/// True when two error lines differ only in the guest offset they name.
fn same_cause(a: &str, b: &str) -> bool {
    a.split_once(": ").map(|x| x.1) == b.split_once(": ").map(|x| x.1)
}

/// Reads `[at, at + len)`; on failure, reads it unit by unit to name every damaged unit.
fn read_job(image: &dyn DiskImage, at: u64, len: u64, unit: u64) -> Vec<String> {
    let mut buf = vec![0u8; len as usize];
    if image.read_at(&mut buf, at).is_ok() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let end = at + len;
    let mut pos = at;
    while pos < end {
        let next = ((pos / unit) + 1) * unit;
        let stop = next.min(end);
        let piece = &mut buf[..(stop - pos) as usize];
        if let Err(e) = image.read_at(piece, pos) {
            errors.push(format!("guest offset {pos:#x}: {e}"));
        }
        pos = stop;
    }
    if errors.is_empty() {
        // The whole read failed but no piece did (a transient error?): report the whole range.
        errors.push(format!("guest offset {at:#x}: reading {len} bytes failed"));
    }
    errors
}

fn human(r: &Report) -> String {
    let mut s = String::new();
    if r.check_error.is_some() {
        return s;
    }
    for m in &r.table_messages {
        let _ = writeln!(s, "{m}");
    }
    for m in &r.skipped {
        let _ = writeln!(s, "Note: {m}");
    }
    if r.corruptions == 0 && r.leaks == 0 {
        s.push_str("No errors were found on the image.\n");
    }
    for e in &r.errors {
        let _ = writeln!(s, "ERROR {e}");
    }
    let listed = (r.errors.len() + r.table_messages.len()) as u64;
    let unlisted = (r.corruptions + r.leaks).saturating_sub(listed);
    if unlisted > 0 {
        let _ = writeln!(s, "... and {unlisted} more");
    }
    if r.corruptions > 0 {
        let _ = writeln!(s, "\n{} errors were found on the image.", r.corruptions);
        s.push_str("Data may be corrupted, or further writes to the image may corrupt it.\n");
    }
    if r.leaks > 0 {
        let _ = writeln!(s, "\n{} leaked clusters were found on the image.", r.leaks);
        s.push_str("This means waste of disk space, but no harm to data.\n");
    }
    if let Some(v) = r.virtual_size {
        let pct = if v == 0 {
            0.0
        } else {
            r.data_bytes as f64 * 100.0 / v as f64
        };
        let _ = writeln!(s, "{}/{v} bytes = {pct:.2}% allocated", r.data_bytes);
    }
    let _ = writeln!(s, "Image end offset: {}", r.file_length);
    s
}

fn to_json(r: &Report) -> serde_json::Value {
    json!({
        "filename": r.filename,
        "format": r.format.map(|f| f.as_str()),
        "virtual-size": r.virtual_size,
        "image-end-offset": r.file_length,
        "allocated-bytes": r.data_bytes,
        "zero-bytes": r.zero_bytes,
        "check-errors": u64::from(r.check_error.is_some()),
        "corruptions": r.corruptions,
        "leaks": r.leaks,
        "skipped-checks": r.skipped,
        "errors": if let Some(e) = &r.check_error {
            vec![e.clone()]
        } else {
            r.table_messages.iter().chain(&r.errors).cloned().collect()
        },
    })
}
