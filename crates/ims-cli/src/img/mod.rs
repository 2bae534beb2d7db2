//! `ims img ...`: offline disk-image tools shaped like qemu-img's (`info`, `convert`, `check`,
//! `compare`). They work on local files with the `ims-formats` engine; no server is involved.
//!
//! Exit codes follow qemu-img: `info` and `convert` exit 1 on any error; `check` exits 2 when it
//! finds corruption and 1 when it cannot complete; `compare` exits 1 when the images differ and 2
//! on errors.

mod check;
mod compare;
mod convert;
mod info;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ims_formats::{DiskImage, Format, Limits, ReadAt};

/// The `ims img` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImgCommand {
    /// Show an image file's format, sizes, format facts and safety verdict.
    Info(InfoArgs),
    /// Convert an image file to another format.
    Convert(ConvertArgs),
    /// Check an image file's structure and read every allocated block.
    Check(CheckArgs),
    /// Compare the guest disks of two image files.
    Compare(CompareArgs),
}

/// How `info` and `check` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ImgOutput {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The image's declared format (detected from the content when absent). The safety verdict
    /// checks the content against it.
    #[arg(short = 'f', long = "format", value_name = "FMT", value_parser = parse_format)]
    pub format: Option<Format>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ImgOutput::Human)]
    pub output: ImgOutput,
    /// The image file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Source format (detected from the content when absent); the source must match it.
    #[arg(short = 'f', long = "format", value_name = "FMT", value_parser = parse_format)]
    pub format: Option<Format>,
    /// Output format: raw, qcow2, vmdk, vhd (or vpc), vhdx, zvhd, zvhd2.
    #[arg(short = 'O', long = "output-format", value_name = "FMT", value_parser = parse_format)]
    pub output_format: Format,
    /// Output options, comma-separated KEY=VALUE: compression_type=zlib|zstd, cluster_size=N
    /// (qcow2); subformat=streamOptimized|monolithicSparse (vmdk); subformat=dynamic|fixed (vhd);
    /// block_size=N (vhdx, zvhd, zvhd2). Sizes take k, M, G suffixes.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Compress the output (qcow2 compressed clusters; vmdk streamOptimized).
    #[arg(short = 'c')]
    pub compress: bool,
    /// Show a progress bar (shown anyway when stderr is a terminal).
    #[arg(short = 'p')]
    pub progress: bool,
    /// Threads that read and compress (default: one per core).
    #[arg(
        short = 't',
        long = "threads",
        value_name = "THREADS",
        default_value_t = 0
    )]
    pub threads: usize,
    /// The source image file.
    pub src: PathBuf,
    /// The image file to write (created or replaced).
    pub dst: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image's format (detected from the content when absent).
    #[arg(short = 'f', long = "format", value_name = "FMT", value_parser = parse_format)]
    pub format: Option<Format>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ImgOutput::Human)]
    pub output: ImgOutput,
    /// The image file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Format of the first image (detected when absent).
    #[arg(short = 'f', value_name = "FMT", value_parser = parse_format)]
    pub format_a: Option<Format>,
    /// Format of the second image (detected when absent).
    #[arg(short = 'F', value_name = "FMT", value_parser = parse_format)]
    pub format_b: Option<Format>,
    /// Strict mode: images of different sizes are different.
    #[arg(short = 's')]
    pub strict: bool,
    /// Show a progress bar (shown anyway when stderr is a terminal).
    #[arg(short = 'p')]
    pub progress: bool,
    /// The first image file.
    pub a: PathBuf,
    /// The second image file.
    pub b: PathBuf,
}

/// Runs an `ims img` command. Outcomes that are not errors but need a non-zero exit code (check
/// found corruption, compare found a difference) exit the process here with that code.
pub fn run(cmd: ImgCommand) -> anyhow::Result<()> {
    let code = match cmd {
        ImgCommand::Info(a) => info::run(a)?,
        ImgCommand::Convert(a) => convert::run(a)?,
        ImgCommand::Check(a) => check::run(a),
        ImgCommand::Compare(a) => compare::run(a),
    };
    if code != 0 {
        exit(code);
    }
    Ok(())
}

/// Flushes stdout and exits with `code`.
fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

/// clap value parser: Glance, qemu-img (`vpc`) and IMS format names.
pub fn parse_format(s: &str) -> Result<Format, String> {
    s.parse::<Format>().map_err(|_| {
        format!("unknown format {s:?}: expected raw, qcow2, qcow, qed, vmdk, vhd (vpc), vhdx, vdi, iso, zvhd or zvhd2")
    })
}

/// The limits the offline tools open images with.
fn limits() -> Limits {
    Limits::default()
}

/// An image file opened for reading.
fn open_file(path: &Path) -> anyhow::Result<Arc<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata()?.is_dir() {
        anyhow::bail!("{} is a directory", path.display());
    }
    Ok(Arc::new(file))
}

/// Opens `path` with the reader of `format` (detected from the content when `None`).
fn open_image(path: &Path, format: Option<Format>) -> anyhow::Result<Box<dyn DiskImage>> {
    let file: Arc<dyn ReadAt> = open_file(path)?;
    let format = match format {
        Some(f) => f,
        None => ims_formats::detect(&*file)
            .with_context(|| format!("cannot read {}", path.display()))?,
    };
    ims_formats::open(file, format, &limits())
        .with_context(|| format!("cannot open {} as {format}", path.display()))
}

/// The number of worker threads to use for `requested` (0 = one per core).
fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        requested.min(256)
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Applies `f` to every job on `threads` threads; results in job order. Workers skip the remaining
/// jobs once `stop(&result)` is true for some result (their slots are `None`).
fn par_map<J: Sync, T: Send>(
    jobs: &[J],
    threads: usize,
    f: impl Fn(&J) -> T + Sync,
    stop: impl Fn(&T) -> bool + Sync,
) -> Vec<Option<T>> {
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        let mut out = Vec::with_capacity(jobs.len());
        let mut stopped = false;
        for job in jobs {
            if stopped {
                out.push(None);
                continue;
            }
            let r = f(job);
            stopped = stop(&r);
            out.push(Some(r));
        }
        return out;
    }
    let next = AtomicUsize::new(0);
    let halt = std::sync::atomic::AtomicBool::new(false);
    let mut results: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        if halt.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let r = f(job);
                        if stop(&r) {
                            halt.store(true, Ordering::Relaxed);
                        }
                        mine.push((i, r));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out: Vec<Option<T>> = (0..jobs.len()).map(|_| None).collect();
    for (i, r) in results.drain(..) {
        out[i] = Some(r);
    }
    out
}

/// A size for people: `64 MiB`, `1.5 GiB`, `512 B`.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    let mut v = n as f64;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v < 10.0 {
        format!("{v:.2} {}", UNITS[unit])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// Parses a size with an optional k/M/G/T suffix (binary multiples, as qemu-img does).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let mult = match t[i..].to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                "t" | "tb" | "tib" => 1 << 40,
                _ => return Err(format!("invalid size {s:?}")),
            };
            (&t[..i], mult)
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|d| d.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(1536 << 20), "1.50 GiB");
        assert_eq!(human_size(100), "100 B");
    }

    #[test]
    fn par_map_keeps_order_and_stops() {
        let jobs: Vec<u32> = (0..100).collect();
        let out = par_map(&jobs, 4, |j| j * 2, |_| false);
        assert_eq!(
            out.iter().map(|o| o.unwrap()).collect::<Vec<_>>(),
            (0..100).map(|j| j * 2).collect::<Vec<_>>()
        );
        let out = par_map(&jobs, 1, |j| *j, |r| *r == 10);
        assert!(out[11].is_none());
        assert_eq!(out[10], Some(10));
    }
}
