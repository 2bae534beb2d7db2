//! Hostile images: files whose headers claim huge tables, compressed data that inflates past its
//! block, and counts that point far past the end. Every one is refused (or read within its bounds)
//! without allocating more than the file could justify: the largest single allocation made while
//! opening and reading is measured by a counting allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::Arc;

use common::{p, qemu_img, Scratch};
use ims_formats::{DiskImage, Format, FormatError, Limits};

/// The system allocator, recording the largest allocation of each thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: allocations while the thread is being torn down are not recorded.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn open(bytes: Vec<u8>, format: Format) -> Result<Box<dyn DiskImage>, FormatError> {
    ims_formats::open(Arc::new(bytes), format, &Limits::default())
}

fn put_u32_be(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_u64_be(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn be64(buf: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(buf[at..at + 8].try_into().unwrap())
}

/// A 1 KiB qcow2 (version 2, 64 KiB clusters, 1 MiB virtual) whose L1 table has `l1_size` entries at
/// 64 KiB, with `nb_snapshots` snapshots at 128 KiB: both past the end of the file.
fn tiny_qcow2(l1_size: u32, nb_snapshots: u32) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[0..4].copy_from_slice(b"QFI\xfb");
    put_u32_be(&mut b, 4, 2);
    put_u32_be(&mut b, 20, 16);
    put_u64_be(&mut b, 24, 1 << 20);
    put_u32_be(&mut b, 36, l1_size);
    put_u64_be(&mut b, 40, 0x1_0000);
    put_u32_be(&mut b, 60, nb_snapshots);
    put_u64_be(&mut b, 64, 0x2_0000);
    b
}

#[test]
fn a_tiny_qcow2_claiming_a_huge_l1_table_is_refused_before_allocating_it() {
    // 1 GiB of L1 table: over `max_table_bytes`.
    let (r, largest) = largest_allocation(|| open(tiny_qcow2(1 << 27, 0), Format::Qcow2).map(|_| ()));
    let e = r.expect_err("a 1 GiB L1 table");
    assert!(matches!(e, FormatError::Unsafe(_)), "{e}");
    assert!(largest < 64 << 10, "largest allocation {largest} bytes");
    // 8 MiB of L1 table: under the limit, but not in a 1 KiB file.
    let (r, largest) = largest_allocation(|| open(tiny_qcow2(1 << 20, 0), Format::Qcow2).map(|_| ()));
    let e = r.expect_err("an L1 table past the end");
    assert!(matches!(e, FormatError::Corrupt(_)) && e.to_string().contains("past the end"), "{e}");
    assert!(largest < 64 << 10, "largest allocation {largest} bytes");
}

#[test]
fn a_qcow2_claiming_billions_of_snapshots_is_refused() {
    let (r, largest) = largest_allocation(|| open(tiny_qcow2(1, u32::MAX), Format::Qcow2).map(|_| ()));
    let e = r.expect_err("4 billion snapshots in 1 KiB");
    assert!(e.to_string().contains("past the end"), "{e}");
    assert!(largest < 64 << 10, "largest allocation {largest} bytes");
}

/// A raw disk of `clusters` 64 KiB clusters, each half pseudo-random and half zeros, so that every
/// cluster compresses to about half its size.
fn half_random_disk(scratch: &Scratch, clusters: usize) -> std::path::PathBuf {
    let mut data = common_pattern(clusters * 65536);
    for cluster in data.chunks_mut(65536) {
        cluster[32768..].fill(0);
    }
    let path = scratch.path("disk.raw");
    std::fs::write(&path, &data).unwrap();
    path
}

fn common_pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn a_qcow2_compressed_cluster_inflating_past_its_cluster_yields_one_cluster() {
    let scratch = Scratch::new();
    let raw = half_random_disk(&scratch, 2);
    let qcow2 = scratch.path("disk.qcow2");
    qemu_img(&["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", p(&raw), p(&qcow2)]);
    let mut b = std::fs::read(&qcow2).unwrap();
    // The first L2 entry: compressed, with its host offset in the low 54 bits (62 - (16 - 8)).
    let l1 = be64(&b, 40) as usize;
    let l2 = (be64(&b, l1) & 0x00ff_ffff_ffff_fe00) as usize;
    let entry = be64(&b, l2);
    assert_ne!(entry & (1 << 62), 0, "cluster 0 is compressed");
    let host = (entry & ((1 << 54) - 1)) as usize;
    let sectors = (((entry >> 54) & 0xff) + 1) as usize;
    // 64 MiB of zeros deflate to about 64 KiB... too much for the slot; 16 MiB fits.
    let bomb = deflate_raw(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < sectors * 512 - 512, "{} bytes of bomb, {} of slot", bomb.len(), sectors * 512);
    b[host..host + bomb.len()].copy_from_slice(&bomb);

    let (read, largest) = largest_allocation(|| {
        let image = open(b, Format::Qcow2)?;
        let mut cluster = vec![1u8; 65536];
        image.read_at(&mut cluster, 0)?;
        Ok::<_, FormatError>(cluster)
    });
    // As qemu does, the output stops at the end of the cluster: 16 MiB are never produced.
    assert_eq!(read.expect("the cluster reads"), vec![0u8; 65536]);
    assert!(largest < 4 << 20, "largest allocation {largest} bytes");
}

#[test]
fn a_vmdk_stream_grain_inflating_past_its_grain_is_refused() {
    let scratch = Scratch::new();
    let raw = half_random_disk(&scratch, 2);
    let vmdk = scratch.path("disk.vmdk");
    qemu_img(&["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", p(&raw), p(&vmdk)]);
    let mut b = std::fs::read(&vmdk).unwrap();
    // The first grain (LBA 0) follows the metadata: `overHead` sectors (little-endian u64 at 64).
    let first = u64::from_le_bytes(b[64..72].try_into().unwrap()) as usize * 512;
    assert_eq!(u64::from_le_bytes(b[first..first + 8].try_into().unwrap()), 0, "the grain of LBA 0");
    let size = u32::from_le_bytes(b[first + 8..first + 12].try_into().unwrap()) as usize;
    let bomb = zlib(&vec![0u8; 16 << 20]);
    assert!(bomb.len() <= size, "{} bytes of bomb, {size} of grain", bomb.len());
    b[first + 8..first + 12].copy_from_slice(&(bomb.len() as u32).to_le_bytes());
    b[first + 12..first + 12 + bomb.len()].copy_from_slice(&bomb);

    let (read, largest) = largest_allocation(|| {
        let image = open(b, Format::Vmdk)?;
        let mut grain = vec![0u8; 65536];
        image.read_at(&mut grain, 0)
    });
    let e = read.expect_err("a grain of 16 MiB");
    assert!(matches!(e, FormatError::Corrupt(_)), "{e}");
    assert!(largest < 4 << 20, "largest allocation {largest} bytes");
}

/// The VHD checksum: the one's complement of the byte sum, with the field itself taken as zero.
fn vhd_checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf.iter().enumerate().filter(|(i, _)| !(field..field + 4).contains(i)).fold(0u32, |s, (_, b)| s.wrapping_add(u32::from(*b)));
    !sum
}

#[test]
fn a_dynamic_vhd_claiming_a_huge_block_table_is_refused_before_allocating_it() {
    let scratch = Scratch::new();
    let vhd = scratch.path("disk.vhd");
    qemu_img(&["create", "-f", "vpc", p(&vhd), "8M"]);
    let original = std::fs::read(&vhd).unwrap();
    let footer_at = original.len() - 512;
    let dynamic = be64(&original, footer_at + 16) as usize;
    for (entries, want_unsafe) in [(1u32 << 30, true), (1 << 22, false)] {
        let mut b = original.clone();
        put_u32_be(&mut b, dynamic + 28, entries);
        let sum = vhd_checksum(&b[dynamic..dynamic + 1024], 36);
        put_u32_be(&mut b, dynamic + 36, sum);
        let (r, largest) = largest_allocation(|| open(b, Format::Vhd).map(|_| ()));
        let e = r.expect_err("a block table larger than the file");
        assert_eq!(matches!(e, FormatError::Unsafe(_)), want_unsafe, "{entries} entries: {e}");
        assert!(largest < 1 << 20, "{entries} entries: largest allocation {largest} bytes");
    }
}
