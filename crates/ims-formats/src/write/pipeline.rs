//! The read → zero-test → compress pipeline every writer runs on.
//!
//! The guest disk is cut into fixed-size *units* (a qcow2 cluster, a VMDK grain, a VHD/VHDX block, a
//! ZVHD block). [`run`] hands the writer, in increasing order, every unit that holds a non-zero byte,
//! raw or compressed. Units that [`DiskImage::block_status`] reports as zero or unallocated are never
//! read; units that read as all zeros are dropped.
//!
//! Guarantees:
//! - Reading and compressing run on `threads` worker threads; the sink always runs on the calling
//!   thread and sees units in strictly increasing index order.
//! - Memory is bounded: at most a window of jobs (each at most about 1 MiB or one unit) is in flight,
//!   whatever the image size; block status is queried in windows of bounded length. Job buffers are
//!   recycled through a [`BufferPool`], so a conversion allocates about `window` buffers in all
//!   instead of one per job (no page faults or zeroing per block).
//! - A failing read, a failing sink or a worker panic stops the pipeline and returns an error;
//!   workers are joined before `run` returns.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use super::codec::{internal, is_zero, Codec, Compressor};
use crate::{BlockStatus, DiskImage, FormatError, Result};

/// How the guest disk is cut into units and what is done to each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitSpec {
    /// Unit size in bytes: a power of two, at most 256 MiB.
    pub unit_size: u64,
    /// Pad the last unit with zeros to `unit_size` (formats whose blocks are whole in the file).
    pub pad_last: bool,
    /// Compress each non-zero unit with this codec.
    pub codec: Option<Codec>,
    /// Deliver the raw bytes when the compressed form is not strictly smaller (ZVHD, qcow2);
    /// when false every unit is delivered compressed (VMDK streamOptimized).
    pub raw_if_not_smaller: bool,
    /// Compute the CRC-32 (IEEE) of each unit's raw bytes.
    pub checksum: bool,
}

/// The bytes of one unit as handed to the sink.
pub(crate) enum Payload<'a> {
    /// The unit's raw bytes (`unit_size` long, or shorter for an unpadded last unit).
    Raw(&'a [u8]),
    /// The unit compressed with the spec's codec.
    Compressed(&'a [u8]),
}

/// One non-zero unit of the guest disk.
pub(crate) struct Unit<'a> {
    /// Unit number: the unit covers guest bytes `[index * unit_size, (index + 1) * unit_size)`.
    pub index: u64,
    pub payload: Payload<'a>,
    /// Length of the unit's raw bytes (before compression).
    pub raw_len: usize,
    /// CRC-32 of the raw bytes when the spec asks for it, else 0.
    pub crc: u32,
}

/// Largest read one job does (several small units are read together).
const JOB_BYTES: u64 = 1 << 20;
/// Guest bytes whose block status is asked for at once.
const STATUS_WINDOW: u64 = 1 << 30;
/// Bytes of jobs allowed in flight at once, across all threads.
const INFLIGHT_BYTES: u64 = 192 << 20;

/// Runs the pipeline over `src` and feeds every non-zero unit to `sink`, in order.
/// `progress` is called on the calling thread with the number of guest bytes dealt with so far.
/// `threads` of 0 means one per available core.
pub(crate) fn run(
    src: &dyn DiskImage,
    spec: &UnitSpec,
    threads: usize,
    progress: &dyn Fn(u64),
    sink: &mut dyn FnMut(Unit<'_>) -> Result<()>,
) -> Result<()> {
    if !spec.unit_size.is_power_of_two() || spec.unit_size > (256 << 20) {
        return Err(internal("unit size"));
    }
    let vsize = src.virtual_size();
    let threads = effective_threads(threads);
    let mut planner = Planner::new(src, spec.unit_size);
    let pool = BufferPool::default();
    let pool = &pool;
    let job_bytes = spec.unit_size.max(JOB_BYTES);
    let window =
        usize::try_from((INFLIGHT_BYTES / job_bytes).clamp(2, 4 * threads as u64 + 2)).unwrap_or(2);
    let mut emit = |done: Done| -> Result<()> {
        for unit in &done.units {
            let raw = done
                .buf
                .get(unit.start..unit.end)
                .ok_or_else(|| internal("unit range"))?;
            let payload = match &unit.compressed {
                Some(c) => Payload::Compressed(c),
                None => Payload::Raw(raw),
            };
            sink(Unit {
                index: unit.index,
                payload,
                raw_len: raw.len(),
                crc: unit.crc,
            })?;
        }
        progress(done.end.min(vsize));
        pool.put(done.buf);
        Ok(())
    };
    if threads <= 1 {
        let mut comp = make_compressor(spec)?;
        while let Some(job) = planner.next_job()? {
            emit(process(src, spec, comp.as_mut(), pool, job)?)?;
        }
        progress(vsize);
        return Ok(());
    }
    let (job_tx, job_rx) = mpsc::channel::<(u64, Job)>();
    let (done_tx, done_rx) = mpsc::channel::<(u64, Result<Done>)>();
    let job_rx = Mutex::new(job_rx);
    let job_rx = &job_rx;
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            scope.spawn(move || worker(src, spec, pool, job_rx, done_tx, stop));
        }
        drop(done_tx);
        // `job_tx` is dropped when this closure returns, on success or error: workers then stop.
        let result = (|| -> Result<()> {
            let mut next_seq = 0u64; // next job to hand out
            let mut next_emit = 0u64; // next job to pass to the sink
            let mut exhausted = false;
            let mut pending: BTreeMap<u64, Result<Done>> = BTreeMap::new();
            loop {
                while !exhausted && next_seq - next_emit < window as u64 {
                    match planner.next_job()? {
                        Some(job) => {
                            job_tx
                                .send((next_seq, job))
                                .map_err(|_| internal("workers stopped"))?;
                            next_seq += 1;
                        }
                        None => exhausted = true,
                    }
                }
                if exhausted && next_emit == next_seq {
                    return Ok(());
                }
                let (seq, done) = done_rx.recv().map_err(|_| internal("workers stopped"))?;
                pending.insert(seq, done);
                while let Some(done) = pending.remove(&next_emit) {
                    emit(done?)?;
                    next_emit += 1;
                }
            }
        })();
        if result.is_err() {
            // Queued jobs are skipped, not processed.
            stop.store(true, Ordering::Relaxed);
        }
        drop(job_tx);
        result
    })?;
    progress(vsize);
    Ok(())
}

/// The number of worker threads for a request of `threads` (0 = all cores).
pub(crate) fn effective_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads.min(256)
    }
}

fn make_compressor(spec: &UnitSpec) -> Result<Option<Compressor>> {
    spec.codec.map(Compressor::new).transpose()
}

fn worker(
    src: &dyn DiskImage,
    spec: &UnitSpec,
    pool: &BufferPool,
    jobs: &Mutex<mpsc::Receiver<(u64, Job)>>,
    done: mpsc::Sender<(u64, Result<Done>)>,
    stop: &AtomicBool,
) {
    let mut comp = match make_compressor(spec) {
        Ok(c) => c,
        Err(e) => {
            // Report once, on the first job we get, then stop.
            if let Some((seq, _)) = jobs.lock().ok().and_then(|rx| rx.recv().ok()) {
                let _ = done.send((seq, Err(e)));
            }
            return;
        }
    };
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, job)) = next else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(|| process(src, spec, comp.as_mut(), pool, job)))
            .unwrap_or_else(|_| Err(internal("a worker thread panicked")));
        let failed = result.is_err();
        if done.send((seq, result)).is_err() || failed {
            return;
        }
    }
}

/// A contiguous run of units to read together.
#[derive(Debug, Clone, Copy)]
struct Job {
    first: u64,
    count: u64,
}

struct DoneUnit {
    index: u64,
    start: usize,
    end: usize,
    compressed: Option<Vec<u8>>,
    crc: u32,
}

/// A processed job: its buffer and the non-zero units in it.
struct Done {
    buf: JobBuf,
    units: Vec<DoneUnit>,
    /// Guest offset just past the job.
    end: u64,
}

fn process(
    src: &dyn DiskImage,
    spec: &UnitSpec,
    mut comp: Option<&mut Compressor>,
    pool: &BufferPool,
    job: Job,
) -> Result<Done> {
    let us = spec.unit_size;
    let vsize = src.virtual_size();
    let start = job
        .first
        .checked_mul(us)
        .ok_or_else(|| internal("job offset"))?;
    let span = job
        .count
        .checked_mul(us)
        .ok_or_else(|| internal("job length"))?;
    let end = start.checked_add(span).ok_or_else(|| internal("job end"))?;
    let readable = vsize.saturating_sub(start).min(span);
    let buf_len = if spec.pad_last { span } else { readable };
    let buf_len = usize::try_from(buf_len).map_err(|_| internal("job size"))?;
    let read_len = usize::try_from(readable).map_err(|_| internal("job size"))?;
    let mut buf = pool.take(buf_len);
    let (target, padding) = buf
        .split_at_mut_checked(read_len)
        .ok_or_else(|| internal("job buffer"))?;
    padding.fill(0);
    if let Err(e) = src.read_at(target, start) {
        pool.put(buf);
        return Err(e);
    }
    let mut units = Vec::new();
    let us_usize = usize::try_from(us).map_err(|_| internal("unit size"))?;
    for (i, raw) in buf.chunks(us_usize).enumerate() {
        if is_zero(raw) {
            continue;
        }
        let index = job.first + i as u64;
        let off = i * us_usize;
        let crc = if spec.checksum {
            crc32fast::hash(raw)
        } else {
            0
        };
        let compressed = match comp.as_deref_mut() {
            Some(c) => {
                let packed = c.compress(raw)?;
                if spec.raw_if_not_smaller && packed.len() >= raw.len() {
                    None
                } else {
                    Some(packed)
                }
            }
            None => None,
        };
        units.push(DoneUnit {
            index,
            start: off,
            end: off + raw.len(),
            compressed,
            crc,
        });
    }
    Ok(Done {
        buf,
        units,
        end: end.min(vsize),
    })
}

/// Turns block status into jobs: cluster-aligned runs of units that hold data, in order.
struct Planner<'a> {
    src: &'a dyn DiskImage,
    unit: u64,
    vsize: u64,
    /// Guest offset up to which block status has been asked.
    scanned: u64,
    /// Unit runs `[first, end)` with data, not yet cut into jobs.
    runs: VecDeque<(u64, u64)>,
    max_units: u64,
}

impl<'a> Planner<'a> {
    fn new(src: &'a dyn DiskImage, unit: u64) -> Planner<'a> {
        Planner {
            src,
            unit,
            vsize: src.virtual_size(),
            scanned: 0,
            runs: VecDeque::new(),
            max_units: (JOB_BYTES / unit).max(1),
        }
    }

    fn next_job(&mut self) -> Result<Option<Job>> {
        while self.runs.is_empty() && self.scanned < self.vsize {
            self.scan_window()?;
        }
        let Some((first, end)) = self.runs.pop_front() else {
            return Ok(None);
        };
        let count = (end - first).min(self.max_units);
        if first + count < end {
            self.runs.push_front((first + count, end));
        }
        Ok(Some(Job { first, count }))
    }

    /// Asks block status for the next window and queues its data runs, rounded out to units.
    fn scan_window(&mut self) -> Result<()> {
        // Windows are unit-aligned, so a unit never straddles two windows.
        let window = (STATUS_WINDOW / self.unit).max(1) * self.unit;
        let start = self.scanned;
        let len = (self.vsize - start).min(window);
        let extents = self.src.block_status(start, len)?;
        let end = start + len;
        let mut covered = start;
        for ext in extents {
            // Defensive: a reader returning extents out of range or out of order is an error.
            let ext_end = ext
                .offset
                .checked_add(ext.length)
                .ok_or_else(|| bad_status(start))?;
            if ext.offset != covered || ext_end > end || ext.length == 0 {
                return Err(bad_status(ext.offset));
            }
            covered = ext_end;
            if ext.status != BlockStatus::Data {
                continue;
            }
            let first = ext.offset / self.unit;
            let last = ext_end.div_ceil(self.unit);
            match self.runs.back_mut() {
                Some((_, prev_end)) if first <= *prev_end => *prev_end = (*prev_end).max(last),
                _ => self.runs.push_back((first, last)),
            }
        }
        if covered != end {
            return Err(bad_status(covered));
        }
        self.scanned = end;
        Ok(())
    }
}

fn bad_status(offset: u64) -> FormatError {
    FormatError::Corrupt(format!(
        "source block status does not cover the disk at offset {offset}"
    ))
}

/// Job buffers handed back after the sink has used them, for the next jobs to reuse.
///
/// Buffers keep their old contents: a job overwrites what it reads and zeroes only its padding.
/// The pool holds at most as many buffers as were in flight at once.
#[derive(Default)]
struct BufferPool {
    free: Mutex<Vec<JobBuf>>,
}

impl BufferPool {
    /// A buffer of exactly `len` bytes with unspecified contents.
    fn take(&self, len: usize) -> JobBuf {
        let reused = self.free.lock().ok().and_then(|mut free| free.pop());
        let mut buf = reused.unwrap_or_default();
        buf.resize(len);
        buf
    }

    /// Returns `buf` for reuse.
    fn put(&self, buf: JobBuf) {
        if let Ok(mut free) = self.free.lock() {
            free.push(buf);
        }
    }
}

/// Where job buffers start: a cache line. The kernel copies file data into a buffer that does not start on
/// a multiple of 32 bytes about 3.5 times slower on the machines measured (AMD EPYC under a hypervisor),
/// and a large `Vec` starts 16 bytes past a page boundary.
const BUF_ALIGN: usize = 64;

/// A job buffer: bytes that start on a [`BUF_ALIGN`] boundary.
#[derive(Default)]
struct JobBuf {
    vec: Vec<u8>,
    /// Where the buffer's bytes start in `vec`.
    start: usize,
}

impl JobBuf {
    /// Makes the buffer `len` bytes long. Only growth zeroes (new bytes); shrinking keeps the allocation for
    /// later jobs, and growth past it allocates anew (the old contents are not kept).
    fn resize(&mut self, len: usize) {
        if self.vec.capacity() < self.start + len {
            self.vec = Vec::with_capacity(len + BUF_ALIGN);
            self.start = self.vec.as_ptr().align_offset(BUF_ALIGN).min(BUF_ALIGN);
        }
        self.vec.resize(self.start + len, 0);
    }
}

impl std::ops::Deref for JobBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl std::ops::DerefMut for JobBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_buffers_and_sizes_them_exactly() {
        let pool = BufferPool::default();
        let mut a = pool.take(1000);
        assert_eq!(a.len(), 1000);
        a.fill(9);
        let ptr = a.as_ptr();
        pool.put(a);
        let b = pool.take(10);
        assert_eq!(b.len(), 10);
        assert_eq!(b.as_ptr(), ptr);
        pool.put(b);
        let c = pool.take(2000);
        assert_eq!(c.len(), 2000);
        // Growth past the allocation starts on zeros.
        assert!(c.iter().all(|&x| x == 0));
        let d = pool.take(1 << 20);
        for buf in [&c, &d] {
            assert_eq!(buf.as_ptr() as usize % BUF_ALIGN, 0, "buffers start on a cache line");
        }
    }
}
