//! The code behind the fuzz targets: one function per target, each taking the raw fuzz input.
//!
//! This file is shared with the regression test `crates/ims-formats/tests/fuzz_regressions.rs`,
//! which includes it with `#[path]`, so that a saved input goes through exactly the code its target
//! ran. It therefore uses only `std` and `ims_formats`, and no crate-level attributes.
//!
//! Every function must return normally for any input. A panic — in `ims-formats` or one of the
//! assertions below, which check what the `DiskImage` contract promises — is a bug; so is a hang or
//! an allocation beyond what [`LIMITS`] allows (libFuzzer reports those as timeouts and OOMs).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ims_formats::write::Target;
use ims_formats::{
    iso, qcow, qcow2, qed, vdi, vhd, vhdx, vmdk, zvhd, zvhd2, BlockExtent, BlockStatus, DiskImage,
    Format, Limits, ReadAt, WriteAt,
};

/// The targets of the service's request parsers. Left out when this file is included by the
/// `ims-formats` regression test, which has none of the crates they need.
#[cfg(feature = "protocols")]
pub mod protocols;

/// Tight limits for every target: a hostile input must not make a reader allocate more than this
/// for one table, nor describe a larger disk.
pub const LIMITS: Limits = Limits {
    max_virtual_size: 1 << 30,
    max_table_bytes: 1 << 20,
};

/// Smaller virtual-size limit for decoding ZVHD into a byte stream (which writes every zero).
const STREAM_LIMITS: Limits = Limits {
    max_virtual_size: 8 << 20,
    max_table_bytes: 1 << 20,
};

/// Every target, by name (the names of the `fuzz_targets/*.rs` binaries and the prefixes of the
/// regression files).
pub const TARGETS: [(&str, fn(&[u8])); 13] = [
    ("qcow2", qcow2),
    ("qcow", qcow),
    ("qed", qed),
    ("vmdk", vmdk),
    ("vmdk_descriptor", vmdk_descriptor),
    ("vhd", vhd),
    ("vhdx", vhdx),
    ("vdi", vdi),
    ("iso", iso),
    ("iso_fs", iso_fs),
    ("zvhd", zvhd),
    ("zvhd2", zvhd2),
    ("inspect_any", inspect_any),
];

/// Runs target `name` on `data`; false when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => {
            f(data);
            true
        }
        None => false,
    }
}

/// In the fuzz targets (cargo-fuzz builds with `--cfg fuzzing`), any single allocation above
/// [`MAX_ALLOCATION`] aborts, which libFuzzer reports as a crash. With AddressSanitizer,
/// `-malloc_limit_mb` does the same; without a sanitizer it does not work at all, and a huge
/// `calloc` that is never touched would not show in the RSS either.
pub const MAX_ALLOCATION: usize = 256 << 20;

// `fuzzing` is set by cargo-fuzz only; the regression test includes this file without it.
#[allow(unexpected_cfgs)]
#[cfg(fuzzing)]
mod allocation_cap {
    use std::alloc::{GlobalAlloc, Layout, System};

    struct Capped;

    fn check(size: usize) {
        if size > super::MAX_ALLOCATION {
            eprintln!(
                "ims-fuzz: allocation of {size} bytes is above the cap of {} bytes",
                super::MAX_ALLOCATION
            );
            std::process::abort();
        }
    }

    // SAFETY: forwards every call to the system allocator unchanged, after a size check.
    unsafe impl GlobalAlloc for Capped {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            check(layout.size());
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            check(layout.size());
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            check(new_size);
            System.realloc(ptr, layout, new_size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static CAPPED: Capped = Capped;
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// An input starting with these 8 bytes describes a sparse file instead of being the file:
/// after the magic, the file length (u32 LE), then chunks of `offset (u32 LE), length (u16 LE),
/// bytes` (a short last chunk is cut). The rest of the file reads as zeros.
///
/// It lets a small input describe an image whose structures lie megabytes apart (VHDX: headers at
/// 64 KiB, log at 1 MiB, metadata at 2 MiB; VHD: footer copy at the end), so the fuzzer can mutate
/// the few KiB that matter. No image format starts with these bytes.
pub const SPARSE_MAGIC: &[u8; 8] = b"IMSFZSP1";
/// Largest file a sparse input may describe.
pub const MAX_SPARSE_LEN: usize = 32 << 20;

/// The image file an input stands for: the input itself, or the sparse file it describes.
pub fn file_from_input(data: &[u8]) -> Vec<u8> {
    let Some(rest) = data.strip_prefix(SPARSE_MAGIC) else {
        return data.to_vec();
    };
    let le32 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let declared = le32(rest, 0).unwrap_or(0) as usize;
    let mut chunks = Vec::new();
    let mut len = declared.min(MAX_SPARSE_LEN);
    let mut at = 4;
    while let (Some(offset), Some(n)) = (le32(rest, at), rest.get(at + 4..at + 6)) {
        let n = usize::from(u16::from_le_bytes([n[0], n[1]]));
        let start = at + 6;
        let bytes = &rest[start.min(rest.len())..(start + n).min(rest.len())];
        let offset = offset as usize;
        let end = offset.saturating_add(bytes.len()).min(MAX_SPARSE_LEN);
        if offset < end {
            len = len.max(end);
            chunks.push((offset, &bytes[..end - offset]));
        }
        at = start + n;
    }
    let mut file = vec![0u8; len];
    for (offset, bytes) in chunks {
        file[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    file
}

/// The sparse input (see [`SPARSE_MAGIC`]) describing `file`: its non-zero 512-byte sectors.
pub fn sparse_input(file: &[u8]) -> Vec<u8> {
    const SECTOR: usize = 512;
    const MAX_CHUNK: usize = 64 * SECTOR;
    let mut out = SPARSE_MAGIC.to_vec();
    out.extend_from_slice(&u32::try_from(file.len()).unwrap_or(u32::MAX).to_le_bytes());
    let mut i = 0;
    while i < file.len() {
        let sector = |k: usize| &file[k..(k + SECTOR).min(file.len())];
        if sector(i).iter().all(|&b| b == 0) {
            i += SECTOR;
            continue;
        }
        let start = i;
        while i < file.len() && i - start < MAX_CHUNK && sector(i).iter().any(|&b| b != 0) {
            i += SECTOR;
        }
        let end = i.min(file.len());
        out.extend_from_slice(&(start as u32).to_le_bytes());
        out.extend_from_slice(&((end - start) as u16).to_le_bytes());
        out.extend_from_slice(&file[start..end]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What is checked on every image that opens

/// Uses an opened image the way conversion does and checks the `DiskImage` contract: virtual size
/// within [`LIMITS`]; `block_status` covering exactly the range asked, consistently between the
/// whole disk and a part of it; `read_at` returning zeros wherever the status says zero or
/// unallocated, the same bytes whether a range is read at once or in two pieces, and an error past
/// the end.
pub fn exercise(img: &dyn DiskImage) {
    let format = img.format();
    let vsize = img.virtual_size();
    assert!(
        vsize <= LIMITS.max_virtual_size,
        "{format}: virtual size {vsize} is above the limit"
    );
    let _ = img.details();

    let whole = img.block_status(0, vsize).ok();
    if let Some(w) = &whole {
        check_cover(format, w, 0, vsize);
    }
    let (sub_off, sub_len) = (vsize / 3, (vsize - vsize / 3).min(vsize / 3 + 4097));
    if let Ok(sub) = img.block_status(sub_off, sub_len) {
        check_cover(format, &sub, sub_off, sub_len);
        if let Some(w) = &whole {
            for e in &sub {
                check_status(
                    format,
                    w,
                    e.offset,
                    e.length,
                    |s| s == e.status,
                    "block status",
                );
            }
        }
    }

    let small = vsize.min(4096);
    let reads = [
        (0, small),
        ((vsize / 2) & !511, small.min(vsize - ((vsize / 2) & !511))),
        (vsize - small, small),
        (
            vsize / 3 + 7,
            (vsize - (vsize / 3 + 7).min(vsize)).min(1000),
        ),
    ];
    for (offset, len) in reads {
        if offset > vsize {
            continue;
        }
        let mut buf = vec![0xA5u8; len as usize];
        if img.read_at(&mut buf, offset).is_err() {
            continue;
        }
        if let Some(w) = &whole {
            check_zeros(format, w, offset, &buf);
        }
        // The same bytes when read in two unaligned pieces (caches, grain/cluster boundaries).
        let cut = (len / 2 + 1).min(len) as usize;
        let mut a = vec![0x5Au8; cut];
        let mut b = vec![0x5Au8; len as usize - cut];
        if img.read_at(&mut a, offset).is_ok() && img.read_at(&mut b, offset + cut as u64).is_ok() {
            assert!(
                a == buf[..cut] && b == buf[cut..],
                "{format}: reading [{offset}, +{len}) in two pieces gives other bytes"
            );
        }
    }
    assert!(
        img.read_at(&mut [0u8; 1], vsize).is_err(),
        "{format}: read past the end of the disk ({vsize}) succeeded"
    );
}

/// `extents` must be consecutive, non-empty and cover `[offset, offset + len)` exactly.
fn check_cover(format: Format, extents: &[BlockExtent], offset: u64, len: u64) {
    let mut at = offset;
    for e in extents {
        assert!(
            e.offset == at && e.length > 0,
            "{format}: block_status({offset}, {len}) is not a cover: extent {e:?} where {at} was expected"
        );
        at = e
            .offset
            .checked_add(e.length)
            .expect("extent end overflows");
    }
    assert_eq!(
        at,
        offset + len,
        "{format}: block_status({offset}, {len}) ends at {at}"
    );
}

/// `buf`, read at `offset`, must hold only zeros where `whole` says zero or unallocated.
fn check_zeros(format: Format, whole: &[BlockExtent], offset: u64, buf: &[u8]) {
    let end = offset + buf.len() as u64;
    for e in whole.iter().filter(|e| e.status != BlockStatus::Data) {
        let (from, to) = (e.offset.max(offset), (e.offset + e.length).min(end));
        if from < to {
            let part = &buf[(from - offset) as usize..(to - offset) as usize];
            if let Some(i) = part.iter().position(|&b| b != 0) {
                panic!(
                    "{format}: byte {} reads {:#04x} but the whole-disk block status says {e:?}",
                    from + i as u64,
                    part[i]
                );
            }
        }
    }
}

/// Every extent of `whole` that overlaps `[offset, offset + len)` must satisfy `ok`.
fn check_status(
    format: Format,
    whole: &[BlockExtent],
    offset: u64,
    len: u64,
    ok: impl Fn(BlockStatus) -> bool,
    what: &str,
) {
    let end = offset + len;
    for e in whole
        .iter()
        .filter(|e| e.offset < end && offset < e.offset + e.length)
    {
        assert!(
            ok(e.status),
            "{format}: {what} at [{offset}, {end}) but the whole-disk block status says {e:?}"
        );
    }
}

/// Opens `data` (see [`file_from_input`]) as `format` and exercises it, then runs the inspector
/// with `format` declared; again with the checksums repaired.
fn whole_image(data: &[u8], format: Format) {
    as_is_and_repaired(file_from_input(data), format, |file| {
        let src: Arc<dyn ReadAt> = file.clone();
        let opened = ims_formats::open(Arc::clone(&src), format, &LIMITS);
        if let Ok(img) = &opened {
            exercise(&**img);
        }
        if let Ok(found) = ims_formats::inspect(src, Some(format), &LIMITS) {
            assert!(found.virtual_size <= LIMITS.max_virtual_size);
            if let Ok(img) = &opened {
                assert_eq!(
                    found.virtual_size,
                    img.virtual_size(),
                    "{format}: inspect and open disagree"
                );
            }
        }
    });
}

/// Runs `run` on `file`, then, if [`repair`] changes it, on the repaired file.
///
/// Checksums keep a fuzzer out of everything behind them: a mutated field fails the checksum, the
/// input finds nothing new and is dropped. Running the repaired file too lets mutations of
/// checksummed structures (VHDX headers and log, ZVHD records, ...) reach the code behind them,
/// while the file as it came still exercises the checksum checks themselves.
fn as_is_and_repaired(file: Vec<u8>, format: Format, run: impl Fn(&Arc<Vec<u8>>)) {
    let file = Arc::new(file);
    run(&file);
    let mut bytes = Arc::try_unwrap(file).unwrap_or_else(|shared| (*shared).clone());
    if repair(format, &mut bytes) {
        run(&Arc::new(bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// Targets

/// QCOW2: the header and extension parser, then the reader and inspector.
pub fn qcow2(data: &[u8]) {
    let _ = qcow2::probe(data);
    if let Ok(h) = qcow2::parse_header(data) {
        let _ = (h.cluster_size(), h.extended_l2(), h.data_file_name());
        let _ = h.incompatible_names(h.incompatible_features);
    }
    whole_image(data, Format::Qcow2);
}

/// QCOW (version 1).
pub fn qcow(data: &[u8]) {
    let _ = qcow::probe(data);
    if let Ok(h) = qcow::parse_header(data) {
        let _ = (h.cluster_size(), h.l1_size());
    }
    whole_image(data, Format::Qcow);
}

/// QED.
pub fn qed(data: &[u8]) {
    let _ = qed::probe(data);
    if let Ok(h) = qed::parse_header(data) {
        let _ = (h.table_bytes(), h.table_entries());
    }
    whole_image(data, Format::Qed);
}

/// VMDK sparse extents: header, marker and footer parsers, the embedded descriptor, the reader.
pub fn vmdk(data: &[u8]) {
    let _ = vmdk::probe(data);
    if let Ok(h) = vmdk::parse_sparse_header(data) {
        let _ = (h.compressed(), h.has_markers(), h.has_zero_grain());
    }
    let _ = vmdk::parse_marker(data);
    let _ = vmdk::parse_footer(data);
    if let Some(tail) = data.len().checked_sub(1536).and_then(|at| data.get(at..)) {
        let _ = vmdk::parse_footer(tail);
    }
    if let Some(text) = data.get(512..) {
        if let Ok(d) = vmdk::parse_descriptor(text) {
            let _ = vmdk::check_embedded_descriptor(&d);
        }
    }
    whole_image(data, Format::Vmdk);
}

/// The VMDK descriptor grammar and policy: the input is descriptor text, parsed alone, opened as a
/// descriptor file (always refused), and embedded in a small monolithicSparse extent.
pub fn vmdk_descriptor(data: &[u8]) {
    let _ = vmdk::looks_like_descriptor(data);
    let parsed = vmdk::parse_descriptor(data);
    if let Ok(d) = &parsed {
        let _ = vmdk::check_embedded_descriptor(d);
        let _ = vmdk::refuse_descriptor_file(d);
        let _ = (d.create_type(), d.field("parentFileNameHint"));
        for e in &d.extents {
            let _ = vmdk::is_plain_file_name(&e.file_name);
        }
    }
    if !data.starts_with(&vmdk::MAGIC) && !data.starts_with(&vmdk::MAGIC_COWD) {
        let r = ims_formats::open(Arc::new(data.to_vec()), Format::Vmdk, &LIMITS);
        assert!(
            r.is_err(),
            "vmdk: a file without a sparse extent header was opened"
        );
    }
    let embedded = embed_descriptor(data);
    if let Ok(img) = ims_formats::open(Arc::new(embedded), Format::Vmdk, &LIMITS) {
        assert!(
            parsed.is_ok_and(|d| vmdk::check_embedded_descriptor(&d).is_ok()),
            "vmdk: opened an extent whose descriptor fails the policy"
        );
        exercise(&*img);
    }
}

/// A 1 MiB monolithicSparse extent (all grains unallocated) with `text` as its embedded descriptor.
pub fn embed_descriptor(text: &[u8]) -> Vec<u8> {
    let text = &text[..text.len().min(64 * 1024)];
    let desc_sectors = (text.len() as u64).div_ceil(512).max(1);
    let gd_sector = 1 + desc_sectors;
    let gt_sector = gd_sector + 1;
    let overhead = gt_sector + 4;
    let mut h = vec![0u8; 512];
    h[0..4].copy_from_slice(&vmdk::MAGIC);
    h[4..8].copy_from_slice(&1u32.to_le_bytes()); // version
    h[8..12].copy_from_slice(&vmdk::FLAG_NL_DETECT.to_le_bytes());
    h[12..20].copy_from_slice(&2048u64.to_le_bytes()); // capacity (sectors)
    h[20..28].copy_from_slice(&128u64.to_le_bytes()); // grain size (sectors)
    h[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor offset
    h[36..44].copy_from_slice(&desc_sectors.to_le_bytes());
    h[44..48].copy_from_slice(&512u32.to_le_bytes()); // grain table entries per table
    h[56..64].copy_from_slice(&gd_sector.to_le_bytes());
    h[64..72].copy_from_slice(&overhead.to_le_bytes());
    h[73..77].copy_from_slice(b"\n \r\n");
    let mut file = h;
    file.extend_from_slice(text);
    file.resize(gd_sector as usize * 512, 0);
    file.extend_from_slice(&(gt_sector as u32).to_le_bytes());
    file.resize(overhead as usize * 512, 0);
    file
}

/// VHD: footer and dynamic header parsers, the reader.
pub fn vhd(data: &[u8]) {
    let _ = vhd::probe(data);
    if let Ok(f) = vhd::parse_footer(data) {
        let _ = f.virtual_size();
    }
    if let Some(tail) = data.len().checked_sub(512).and_then(|at| data.get(at..)) {
        if let Ok(f) = vhd::parse_footer(tail) {
            let _ = f.virtual_size();
        }
    }
    let _ = vhd::parse_dynamic_header(data);
    if let Some(rest) = data.get(512..) {
        let _ = vhd::parse_dynamic_header(rest);
    }
    whole_image(data, Format::Vhd);
}

/// VHDX: header, region table, metadata and log parsers, log replay, the reader.
pub fn vhdx(data: &[u8]) {
    let _ = vhdx::probe(data);
    let _ = vhdx::current_header(
        vhdx::parse_header(data),
        vhdx::parse_header(data.get(4096..).unwrap_or(&[])),
    );
    let _ = vhdx::parse_region_table(data);
    let _ = vhdx::parse_metadata_table(data);
    let _ = vhdx::parse_metadata(data);
    // The input as a log region, with the log GUID its first entry names (so that entries can be
    // valid without the fuzzer having to guess a GUID in the header too).
    if let Some(guid) = data.get(32..48).and_then(|g| <[u8; 16]>::try_from(g).ok()) {
        let _ = vhdx::parse_entry(data, 0, &guid);
        if let Ok(entries) = vhdx::active_sequence(data, &guid) {
            if let Ok(r) = vhdx::Replayed::new(Arc::new(data.to_vec()), &entries) {
                let size = r.size().unwrap_or(0);
                let mut buf = vec![0u8; 4096];
                for at in [0, size / 2, size.saturating_sub(4096)] {
                    let _ = r.read_at(&mut buf, at);
                }
            }
        }
    }
    whole_image(data, Format::Vhdx);
}

/// VDI.
pub fn vdi(data: &[u8]) {
    let _ = vdi::probe(data);
    let _ = vdi::parse_header(data);
    whole_image(data, Format::Vdi);
}

/// ISO 9660 / UDF: probe and primary volume descriptor, the reader, and ISO content declared raw.
pub fn iso(data: &[u8]) {
    let _ = iso::probe(data);
    let _ = iso::parse_primary_volume(data);
    if let Some(s) = data.get(iso::VOLUME_DESCRIPTORS_OFFSET..) {
        let _ = iso::parse_primary_volume(s);
    }
    whole_image(data, Format::Iso);
    let _ = ims_formats::inspect(Arc::new(file_from_input(data)), Some(Format::Raw), &LIMITS);
}

/// The ISO 9660 file system reader: open (Joliet or primary tree), walk the whole tree, read each
/// file at its start, middle and end, look entries up by path. Reads must stay inside each file.
pub fn iso_fs(data: &[u8]) {
    let limits = iso::IsoReadLimits {
        max_entries: 4096,
        max_depth: 16,
        max_directory_bytes: 1 << 20,
        max_descriptors: 16,
        max_walk_bytes: 4 << 20,
    };
    let src: Arc<dyn ReadAt> = Arc::new(file_from_input(data));
    let Ok(fs) = iso::IsoFilesystem::open_with_limits(src, limits) else {
        return;
    };
    let _ = (fs.volume_id(), fs.uses_joliet());
    let Ok(entries) = fs.walk() else {
        return;
    };
    assert!(entries.len() <= limits.max_entries, "iso_fs: walk went past the entry limit");
    let mut buf = vec![0u8; 4096];
    for entry in entries.iter().take(64) {
        if entry.is_dir {
            let _ = fs.read_dir(entry);
            continue;
        }
        for at in [0, entry.size / 2, entry.size.saturating_sub(1)] {
            if let Ok(n) = fs.read_file_at(entry, &mut buf, at) {
                assert!(at + n as u64 <= entry.size, "iso_fs: read past the end of a file");
            }
        }
        let _ = fs.find(&entry.path);
    }
}

/// ZVHD: the random-access reader, and the streaming decoder (into a seekable sink and into a byte
/// stream), which must agree with each other.
pub fn zvhd(data: &[u8]) {
    as_is_and_repaired(file_from_input(data), Format::Zvhd, |file| {
        let src: Arc<dyn ReadAt> = file.clone();
        let opened = ims_formats::open(Arc::clone(&src), Format::Zvhd, &LIMITS);
        if let Ok(img) = &opened {
            exercise(&**img);
        }
        let _ = ims_formats::inspect(src, Some(Format::Zvhd), &LIMITS);

        let sink = MemSink::new(1 << 20);
        if let Ok(vsize) = zvhd::decode_stream(&mut &file[..], Target::Seekable(&sink), &LIMITS) {
            let end = sink.end.load(Ordering::Relaxed);
            assert!(
                end <= vsize,
                "zvhd: decoder wrote up to {end} on a disk of {vsize}"
            );
            if let (Ok(img), Some(bytes)) = (&opened, sink.bytes()) {
                assert_eq!(
                    img.virtual_size(),
                    vsize,
                    "zvhd: reader and stream decoder disagree on the size"
                );
                let mut disk = vec![0u8; vsize as usize];
                if img.read_at(&mut disk, 0).is_ok() {
                    assert!(
                        disk == bytes,
                        "zvhd: reader and stream decoder give other bytes"
                    );
                }
            }
        }
        let mut counter = Counter(0);
        if let Ok(vsize) =
            zvhd::decode_stream(&mut &file[..], Target::Stream(&mut counter), &STREAM_LIMITS)
        {
            assert_eq!(
                counter.0, vsize,
                "zvhd: decoded stream length is not the virtual size"
            );
        }
    });
}

/// ZVHD2: the random-access reader.
pub fn zvhd2(data: &[u8]) {
    let _ = zvhd2::probe(data);
    whole_image(data, Format::Zvhd2);
}

/// The whole pipeline on an untrusted upload: detection, raw-image checks, the inspector with no
/// declared format, then the reader of whatever format it found. An image that passed inspection
/// must open again as the same disk.
pub fn inspect_any(data: &[u8]) {
    let file = file_from_input(data);
    let format = ims_formats::detect(&file).unwrap_or(Format::Raw);
    as_is_and_repaired(file, format, |file| {
        let _ = ims_formats::detect::detect_header(&file[..file.len().min(64 * 1024)]);
        let _ = ims_formats::inspect::check_mbr(&file[..file.len().min(512)]);
        let src: Arc<dyn ReadAt> = file.clone();
        if let Ok(found) = ims_formats::inspect(Arc::clone(&src), None, &LIMITS) {
            assert!(found.virtual_size <= LIMITS.max_virtual_size);
            let img = match ims_formats::open(src, found.format, &LIMITS) {
                Ok(img) => img,
                Err(e) => panic!("{}: inspected image does not open again: {e}", found.format),
            };
            assert_eq!(
                img.virtual_size(),
                found.virtual_size,
                "{}: inspect and open disagree",
                found.format
            );
            exercise(&*img);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Checksum repair

/// Recomputes in place the checksums of the structures of `file` that `format` protects with one,
/// the way a writer would: VHD footers; VHDX headers, region tables and log entries; ZVHD and ZVHD2
/// header, record, trailer, index and footer CRCs (and the CRC of blocks stored uncompressed).
/// Returns whether anything changed. Other formats have no checksums.
pub fn repair(format: Format, file: &mut [u8]) -> bool {
    let mut changed = false;
    let mut put = |file: &mut [u8], at: usize, bytes: &[u8]| {
        if let Some(dst) = file.get_mut(at..at + bytes.len()) {
            if dst != bytes {
                dst.copy_from_slice(bytes);
                changed = true;
            }
        }
    };
    match format {
        Format::Vhd => {
            let len = file.len();
            for at in [0, len.saturating_sub(512)] {
                if len >= 512 && file[at..].starts_with(b"conectix") {
                    let sum = vhd::checksum(&file[at..at + 512], 64);
                    put(file, at + 64, &sum.to_be_bytes());
                }
            }
        }
        Format::Vhdx => {
            for (at, len, sig) in [
                (64 << 10, 4096, b"head"),
                (128 << 10, 4096, b"head"),
                (192 << 10, 64 << 10, b"regi"),
                (256 << 10, 64 << 10, b"regi"),
            ] {
                if file.get(at..at + 4) == Some(&sig[..]) && at + len <= file.len() {
                    let crc = crc32c_zeroed(&file[at..at + len], 4);
                    put(file, at + 4, &crc.to_le_bytes());
                }
            }
            // Log entries of the log each header names (entries that wrap around are left alone).
            let mut budget = 8usize << 20;
            for h in [64 << 10, 128 << 10] {
                let (Some(log_len), Some(log_at)) = (le32(file, h + 68), le64(file, h + 72)) else {
                    continue;
                };
                let log_at = usize::try_from(log_at).unwrap_or(usize::MAX);
                let log_end = log_at.saturating_add(log_len as usize).min(file.len());
                let mut p = log_at;
                while p < log_end && budget > 0 {
                    let len = le32(file, p + 8).unwrap_or(0) as usize;
                    if file.get(p..p + 4) == Some(b"loge")
                        && len > 0
                        && len % 4096 == 0
                        && p + len <= log_end
                    {
                        budget = budget.saturating_sub(len);
                        let crc = crc32c_zeroed(&file[p..p + len], 4);
                        put(file, p + 4, &crc.to_le_bytes());
                        p += len;
                    } else {
                        p += 4096;
                    }
                }
            }
        }
        Format::Zvhd | Format::Zvhd2 => {
            let Some(hlen) = le32(file, 12) else {
                return false;
            };
            let hlen = (hlen as usize).clamp(64, 4096);
            if file.len() < hlen {
                return false;
            }
            if format == Format::Zvhd {
                repair_zvhd_records(file, hlen, &mut put);
            } else {
                repair_zvhd2_index(file, &mut put);
            }
            let crc = crc32(crc32(crc32(0, &file[..60]), &[0; 4]), &file[64..hlen]);
            put(file, 60, &crc.to_le_bytes());
        }
        _ => {}
    }
    changed
}

/// ZVHD: record header CRCs (and stored blocks' CRCs), then the trailer's counts and CRCs.
fn repair_zvhd_records(
    file: &mut [u8],
    header_len: usize,
    put: &mut impl FnMut(&mut [u8], usize, &[u8]),
) {
    let (mut at, mut headers_crc, mut records, mut data_bytes) = (header_len, 0u32, 0u64, 0u64);
    for _ in 0..100_000 {
        match file.get(at..at + 4) {
            Some(b"ZBLK") if at + 32 <= file.len() => {
                let (flags, stored) = (
                    le32(file, at + 4).unwrap_or(0),
                    le32(file, at + 16).unwrap_or(0) as usize,
                );
                let payload = at + 32..(at + 32).saturating_add(stored);
                if flags & 2 != 0 && stored <= 1 << 20 && payload.end <= file.len() {
                    let crc = crc32(0, &file[payload.clone()]);
                    put(file, at + 24, &crc.to_le_bytes());
                }
                let crc = crc32(0, &file[at..at + 28]);
                put(file, at + 28, &crc.to_le_bytes());
                headers_crc = crc32(headers_crc, &file[at..at + 32]);
                records += 1;
                if flags & 1 == 0 {
                    data_bytes =
                        data_bytes.wrapping_add(u64::from(le32(file, at + 20).unwrap_or(0)));
                }
                at = payload.end;
            }
            Some(b"ZEND") if at + 40 <= file.len() => {
                put(file, at + 8, &records.to_le_bytes());
                put(file, at + 16, &data_bytes.to_le_bytes());
                put(file, at + 24, &(at as u64).to_le_bytes());
                put(file, at + 32, &headers_crc.to_le_bytes());
                let crc = crc32(0, &file[at..at + 36]);
                put(file, at + 36, &crc.to_le_bytes());
                return;
            }
            _ => return,
        }
    }
}

/// ZVHD2: stored blocks' CRCs in the index, the footer's data byte count, index CRC and CRC.
fn repair_zvhd2_index(file: &mut [u8], put: &mut impl FnMut(&mut [u8], usize, &[u8])) {
    let Some(footer) = file.len().checked_sub(64) else {
        return;
    };
    if file.get(footer..footer + 8) != Some(b"ZVHD2IDX") {
        return;
    }
    let index_at = le64(file, footer + 8)
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(usize::MAX);
    let index_len = le64(file, footer + 16)
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(usize::MAX);
    if index_at
        .checked_add(index_len)
        .is_some_and(|end| end <= footer)
        && index_len <= 1 << 20
    {
        let mut data_bytes = 0u64;
        for e in (index_at..index_at + index_len - index_len % 32).step_by(32) {
            let offset = le64(file, e + 8)
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(usize::MAX);
            let stored = le32(file, e + 16).unwrap_or(0) as usize;
            let flags = le32(file, e + 24).unwrap_or(0);
            if flags & 2 != 0
                && stored <= 1 << 20
                && offset
                    .checked_add(stored)
                    .is_some_and(|end| end <= index_at)
            {
                let crc = crc32(0, &file[offset..offset + stored]);
                put(file, e + 28, &crc.to_le_bytes());
            }
            if flags & 1 == 0 {
                data_bytes = data_bytes.wrapping_add(u64::from(le32(file, e + 20).unwrap_or(0)));
            }
        }
        put(file, footer + 48, &data_bytes.to_le_bytes());
        let crc = crc32(0, &file[index_at..index_at + index_len]);
        put(file, footer + 44, &crc.to_le_bytes());
    }
    let crc = crc32(0, &file[footer..footer + 60]);
    put(file, footer + 60, &crc.to_le_bytes());
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// CRC-32C (VHDX) of `data` with the 4 bytes at `field` taken as zeros.
fn crc32c_zeroed(data: &[u8], field: usize) -> u32 {
    let mut copy = data.to_vec();
    copy[field..field + 4].fill(0);
    vhdx::checksum(&copy)
}

/// Continues a CRC-32 (IEEE, as ZVHD uses): `crc32(crc32(0, a), b)` is the CRC of `a ++ b`.
fn crc32(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------------------------------------
// Sinks

/// A seekable sink that keeps the bytes when the file stays under `cap`, and otherwise only
/// remembers how far writes went.
struct MemSink {
    cap: u64,
    bytes: Mutex<Option<Vec<u8>>>,
    end: AtomicU64,
}

impl MemSink {
    fn new(cap: u64) -> MemSink {
        MemSink {
            cap,
            bytes: Mutex::new(Some(Vec::new())),
            end: AtomicU64::new(0),
        }
    }

    fn bytes(&self) -> Option<Vec<u8>> {
        self.bytes.lock().ok()?.clone()
    }
}

impl WriteAt for MemSink {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| io::Error::other("write past u64"))?;
        self.end.fetch_max(end, Ordering::Relaxed);
        let mut guard = self
            .bytes
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        if let Some(v) = guard.as_mut() {
            if end <= self.cap {
                if v.len() < end as usize {
                    v.resize(end as usize, 0);
                }
                v[offset as usize..end as usize].copy_from_slice(buf);
            } else {
                *guard = None;
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut guard = self
            .bytes
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        if let Some(v) = guard.as_mut() {
            if len <= self.cap {
                v.resize(len as usize, 0);
            } else {
                *guard = None;
            }
        }
        Ok(())
    }
}

/// A byte stream that only counts.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
