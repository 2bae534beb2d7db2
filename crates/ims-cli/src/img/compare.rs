//! `ims img compare`: are two guest disks the same? As qemu-img compare: the part of the longer disk
//! past the end of the shorter must read as zeros (unless `-s`); a mismatch is reported at the
//! start of the first differing 512-byte sector. Exit 0 identical, 1 different, 2 error.

use std::io::IsTerminal;

use ims_formats::{BlockExtent, BlockStatus, DiskImage};

use super::{open_image, par_map, thread_count, CompareArgs};

/// Guest bytes whose block status is asked for (and compared) in one round.
const WINDOW: u64 = 1 << 30;
/// Largest read of one job (per image).
const CHUNK: u64 = 4 << 20;
const SECTOR: u64 = 512;

pub fn run(args: CompareArgs) -> i32 {
    match compare(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::commands::error_message(&e));
            2
        }
    }
}

/// One piece of work: `[offset, offset + len)`, where each image either has data (read it) or
/// reads as zeros (`None`).
#[derive(Debug, Clone, Copy)]
struct Job {
    offset: u64,
    len: u64,
    a: bool,
    b: bool,
}

fn compare(args: &CompareArgs) -> anyhow::Result<i32> {
    let a = open_image(&args.a, args.format_a)?;
    let b = open_image(&args.b, args.format_b)?;
    let (sa, sb) = (a.virtual_size(), b.virtual_size());
    if sa != sb {
        if args.strict {
            crate::commands::print_stdout("Strict mode: Image size mismatch!")?;
            return Ok(1);
        }
        crate::commands::print_stdout("Warning: Image size mismatch!")?;
    }
    let common = sa.min(sb);
    let longest = sa.max(sb);
    let show = args.progress || std::io::stderr().is_terminal();
    let bar = crate::progress::bytes_bar(Some(longest), show, "Comparing");
    let threads = thread_count(0);

    let mut offset = 0u64;
    while offset < longest {
        let len = WINDOW.min(if offset < common {
            common - offset
        } else {
            longest - offset
        });
        let jobs = if offset < common {
            let ea = a.block_status(offset, len)?;
            let eb = b.block_status(offset, len)?;
            jobs_for(&ea, &eb)
        } else {
            // Past the shorter disk: the longer one must read as zeros.
            let (longer, a_longer) = if sa > sb { (&a, true) } else { (&b, false) };
            let e = longer.block_status(offset, len)?;
            let none = [BlockExtent {
                offset,
                length: len,
                status: BlockStatus::Unallocated,
            }];
            if a_longer {
                jobs_for(&e, &none)
            } else {
                jobs_for(&none, &e)
            }
        };
        let results = par_map(
            &jobs,
            threads,
            |j| compare_job(&*a, &*b, j),
            |r| !matches!(r, Ok(None)),
        );
        for r in results {
            // Jobs are handed out in order and a stop lets running jobs finish, so every job before
            // the first mismatch has a result.
            match r {
                Some(Ok(None)) => {}
                Some(Ok(Some(at))) => {
                    bar.abandon();
                    crate::commands::print_stdout(&format!("Content mismatch at offset {at}!"))?;
                    return Ok(1);
                }
                Some(Err(e)) => {
                    bar.abandon();
                    return Err(e);
                }
                None => break,
            }
        }
        offset += len;
        bar.set_position(offset);
    }
    bar.finish_and_clear();
    crate::commands::print_stdout("Images are identical.")?;
    Ok(0)
}

/// Cuts a window into jobs: the ranges where at least one of the two images holds data, split at
/// `CHUNK` boundaries. `ea` and `eb` cover the same range.
fn jobs_for(ea: &[BlockExtent], eb: &[BlockExtent]) -> Vec<Job> {
    let data = |s: BlockStatus| s == BlockStatus::Data;
    let mut jobs = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < ea.len() && j < eb.len() {
        let (x, y) = (&ea[i], &eb[j]);
        let start = x.offset.max(y.offset);
        let end = (x.offset + x.length).min(y.offset + y.length);
        if start < end && (data(x.status) || data(y.status)) {
            let mut at = start;
            while at < end {
                let stop = ((at / CHUNK + 1) * CHUNK).min(end);
                // Merge with the previous job when contiguous, alike and within one chunk.
                match jobs.last_mut() {
                    Some(Job { offset, len, a, b })
                        if *offset + *len == at
                            && *a == data(x.status)
                            && *b == data(y.status)
                            && at / CHUNK == *offset / CHUNK =>
                    {
                        *len += stop - at
                    }
                    _ => jobs.push(Job {
                        offset: at,
                        len: stop - at,
                        a: data(x.status),
                        b: data(y.status),
                    }),
                }
                at = stop;
            }
        }
        if x.offset + x.length <= y.offset + y.length {
            i += 1;
        } else {
            j += 1;
        }
    }
    jobs
}

/// The first differing sector of a job, if any.
fn compare_job(a: &dyn DiskImage, b: &dyn DiskImage, job: &Job) -> anyhow::Result<Option<u64>> {
    let len = job.len as usize;
    let read = |img: &dyn DiskImage, which: &str| -> anyhow::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        img.read_at(&mut buf, job.offset).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "reading the {which} image at offset {}",
                job.offset
            ))
        })?;
        Ok(buf)
    };
    let diff = match (job.a, job.b) {
        (true, true) => {
            let (x, y) = (read(a, "first")?, read(b, "second")?);
            first_difference(&x, &y)
        }
        (true, false) => first_nonzero(&read(a, "first")?),
        (false, true) => first_nonzero(&read(b, "second")?),
        (false, false) => None,
    };
    Ok(diff.map(|i| (job.offset + i as u64) / SECTOR * SECTOR))
}

const ZEROS: [u8; 4096] = [0u8; 4096];

fn first_nonzero(buf: &[u8]) -> Option<usize> {
    let mut base = 0usize;
    for chunk in buf.chunks(ZEROS.len()) {
        if chunk != &ZEROS[..chunk.len()] {
            return chunk.iter().position(|&b| b != 0).map(|i| base + i);
        }
        base += chunk.len();
    }
    None
}

fn first_difference(x: &[u8], y: &[u8]) -> Option<usize> {
    if x == y {
        return None;
    }
    let mut base = 0usize;
    for (cx, cy) in x.chunks(4096).zip(y.chunks(4096)) {
        if cx != cy {
            return cx
                .iter()
                .zip(cy)
                .position(|(p, q)| p != q)
                .map(|i| base + i);
        }
        base += cx.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(offset: u64, length: u64, status: BlockStatus) -> BlockExtent {
        BlockExtent {
            offset,
            length,
            status,
        }
    }

    #[test]
    fn jobs_cover_data_of_either_side() {
        let a = [
            ext(0, 8 << 20, BlockStatus::Data),
            ext(8 << 20, 8 << 20, BlockStatus::Unallocated),
        ];
        let b = [
            ext(0, 2 << 20, BlockStatus::Zero),
            ext(2 << 20, 14 << 20, BlockStatus::Data),
        ];
        let jobs = jobs_for(&a, &b);
        let summary: Vec<_> = jobs
            .iter()
            .map(|j| (j.offset >> 20, j.len >> 20, j.a, j.b))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, 2, true, false),
                (2, 2, true, true),
                (4, 4, true, true),
                (8, 4, false, true),
                (12, 4, false, true)
            ]
        );
    }

    #[test]
    fn differences() {
        let mut x = vec![0u8; 10000];
        assert_eq!(first_nonzero(&x), None);
        x[5000] = 1;
        assert_eq!(first_nonzero(&x), Some(5000));
        let y = vec![0u8; 10000];
        assert_eq!(first_difference(&x, &y), Some(5000));
        assert_eq!(first_difference(&y, &y), None);
    }
}
