//! Every reader against qemu as the oracle: images are made at test time with qemu-img / qemu-io,
//! then our detection, virtual size, reads and block status must agree with what qemu reads.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ims_formats::{detect, inspect, open, BlockStatus, Format, Limits};

const MIB: u64 = 1 << 20;

/// Creates an image with qemu-img (`opts` for `-o`), writes the scattered patterns with qemu-io,
/// plus `extra` qemu-io commands. Returns the image path and the writes.
fn qemu_written(s: &Scratch, fmt: &str, opts: &str, size: u64, extra: &[String]) -> (PathBuf, Vec<Write>) {
    let img = s.path(&format!("img.{fmt}"));
    let size_arg = size.to_string();
    let mut args = vec!["create", "-q", "-f", fmt];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend([p(&img), size_arg.as_str()]);
    qemu_img(&args);
    let vsize = qemu_virtual_size(&img, fmt);
    let writes = scattered_writes(vsize);
    let mut cmds: Vec<String> = writes.iter().map(Write::qemu_io).collect();
    cmds.extend_from_slice(extra);
    qemu_io(fmt, &img, &cmds);
    (img, writes)
}

/// Writes the scattered patterns into a raw file and converts it with `qemu-img convert`.
fn converted(s: &Scratch, fmt: &str, args: &[&str], size: u64) -> (PathBuf, Vec<Write>) {
    let raw = s.path("source.raw");
    let writes = scattered_writes(size);
    make_raw(&raw, size, &writes);
    let img = s.path(&format!("img.{fmt}"));
    let mut a = vec!["convert", "-f", "raw", "-O", fmt];
    a.extend_from_slice(args);
    a.extend([p(&raw), p(&img)]);
    qemu_img(&a);
    (img, writes)
}

/// The full check: detection, virtual size, reads and block status against qemu, inspection.
/// Returns the opened image for further assertions.
fn verify(
    s: &Scratch,
    img: &Path,
    qemu_fmt: &str,
    format: Format,
    writes: &[Write],
) -> Box<dyn ims_formats::DiskImage> {
    let src = open_file(img);
    assert_eq!(detect(&*src).expect("detect"), format, "{qemu_fmt}: detected format");
    let image = open(src.clone(), format, &Limits::default()).unwrap_or_else(|e| panic!("{qemu_fmt}: open: {e}"));
    let vsize = qemu_virtual_size(img, qemu_fmt);
    assert_eq!(image.virtual_size(), vsize, "{qemu_fmt}: virtual size");
    let oracle = qemu_to_raw(s, img, qemu_fmt);
    // qemu's view must be what the test wrote (guards the test itself).
    assert_same(
        &format!("{qemu_fmt}: qemu's view of the writes"),
        &oracle,
        &apply(vsize, writes),
    );
    check_image(qemu_fmt, &*image, &oracle);
    let found = inspect(src, Some(format), &Limits::default()).unwrap_or_else(|e| panic!("{qemu_fmt}: inspect: {e}"));
    assert_eq!((found.format, found.virtual_size), (format, vsize));
    assert_eq!(found.actual_size, std::fs::metadata(img).expect("stat").len());
    image
}

fn check_patterns(img: &dyn ims_formats::DiskImage, writes: &[Write]) {
    let expected = apply(img.virtual_size(), writes);
    let mut all = vec![0u8; expected.len()];
    img.read_at(&mut all, 0).expect("read");
    assert_same("patterns", &all, &expected);
}

#[test]
fn raw() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "raw", "", 16 * MIB, &[]);
    let image = verify(&s, &img, "raw", Format::Raw, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn qcow2_compat_0_10() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "qcow2", "compat=0.10", 16 * MIB, &[]);
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
    assert!(image.details().features.contains(&("compat".into(), "0.10".into())));
    assert_eq!(statuses(&*image, 12 * MIB, MIB), vec![BlockStatus::Unallocated]);
}

#[test]
fn qcow2_compat_1_1_large() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "qcow2", "compat=1.1,cluster_size=4096", 48 * MIB, &[]);
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn qcow2_zero_clusters() {
    let s = Scratch::new();
    // Zero over written data (flagged, may stay allocated) and over nothing.
    let extra = vec![
        format!("write -z {} {}", 4 * MIB, MIB),
        format!("write -z {} {}", 10 * MIB, MIB),
    ];
    let (img, mut writes) = qemu_written(&s, "qcow2", "compat=1.1", 16 * MIB, &extra);
    writes.push(Write {
        offset: 4 * MIB,
        len: MIB,
        pattern: 0,
    });
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
    assert_eq!(statuses(&*image, 4 * MIB, MIB), vec![BlockStatus::Zero]);
    assert!(!statuses(&*image, 10 * MIB, MIB).contains(&BlockStatus::Data));
}

#[test]
fn qcow2_compressed_zlib() {
    let s = Scratch::new();
    let (img, writes) = converted(&s, "qcow2", &["-c"], 16 * MIB);
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
    assert_eq!(image.details().compression.as_deref(), Some("zlib"));
}

#[test]
fn qcow2_compressed_zstd() {
    let s = Scratch::new();
    let (img, writes) = converted(&s, "qcow2", &["-c", "-o", "compression_type=zstd"], 16 * MIB);
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
    assert_eq!(image.details().compression.as_deref(), Some("zstd"));
}

#[test]
fn qcow2_extended_l2() {
    let s = Scratch::new();
    // Zero a run of 2 KiB subclusters inside written data, and some outside.
    let sub = 2048;
    let extra = vec![
        format!("write -z {} {}", 4 * MIB + 3 * sub, 5 * sub),
        format!("write -z {} {}", 12 * MIB, 4 * sub),
    ];
    let (img, mut writes) = qemu_written(&s, "qcow2", "extended_l2=on,cluster_size=64k", 16 * MIB, &extra);
    writes.push(Write {
        offset: 4 * MIB + 3 * sub,
        len: 5 * sub,
        pattern: 0,
    });
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
    assert_eq!(statuses(&*image, 4 * MIB + 3 * sub, 5 * sub), vec![BlockStatus::Zero]);
    assert!(image
        .details()
        .features
        .contains(&("extended_l2".into(), "true".into())));
}

#[test]
fn qcow_v1() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "qcow", "", 16 * MIB, &[]);
    let image = verify(&s, &img, "qcow", Format::Qcow, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn qcow_v1_compressed() {
    let s = Scratch::new();
    // qemu-img convert -c cannot write qcow; qemu-io writes whole 4 KiB clusters compressed.
    let writes = vec![
        Write {
            offset: 0,
            len: 4096,
            pattern: 0x11,
        },
        Write {
            offset: 65536,
            len: 3 * 4096,
            pattern: 0x22,
        },
        Write {
            offset: 5 * MIB,
            len: 4096,
            pattern: 0x33,
        },
        Write {
            offset: 16 * MIB - 4096,
            len: 4096,
            pattern: 0x44,
        },
    ];
    let img = s.path("img.qcow");
    qemu_img(&["create", "-q", "-f", "qcow", p(&img), "16M"]);
    let mut cmds: Vec<String> = Vec::new();
    for w in &writes {
        for c in (w.offset..w.offset + w.len).step_by(4096) {
            cmds.push(format!("write -c -P {:#04x} {c} 4096", w.pattern));
        }
    }
    cmds.push("write -P 0x55 8192 100".into());
    qemu_io("qcow", &img, &cmds);
    let mut all = writes.clone();
    all.push(Write {
        offset: 8192,
        len: 100,
        pattern: 0x55,
    });
    let image = verify(&s, &img, "qcow", Format::Qcow, &all);
    check_patterns(&*image, &all);
}

#[test]
fn qed() {
    let s = Scratch::new();
    let extra = vec![format!("write -z {} {}", 4 * MIB, MIB)];
    let (img, mut writes) = qemu_written(&s, "qed", "", 24 * MIB, &extra);
    writes.push(Write {
        offset: 4 * MIB,
        len: MIB,
        pattern: 0,
    });
    let image = verify(&s, &img, "qed", Format::Qed, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vmdk_monolithic_sparse() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "vmdk", "", 16 * MIB, &[]);
    let image = verify(&s, &img, "vmdk", Format::Vmdk, &writes);
    check_patterns(&*image, &writes);
    assert!(image
        .details()
        .features
        .contains(&("subformat".into(), "monolithicSparse".into())));
}

#[test]
fn vmdk_zeroed_grains() {
    let s = Scratch::new();
    let extra = vec![format!("write -z {} {}", 4 * MIB, MIB)];
    let (img, mut writes) = qemu_written(&s, "vmdk", "zeroed_grain=on", 16 * MIB, &extra);
    writes.push(Write {
        offset: 4 * MIB,
        len: MIB,
        pattern: 0,
    });
    let image = verify(&s, &img, "vmdk", Format::Vmdk, &writes);
    check_patterns(&*image, &writes);
    assert_eq!(statuses(&*image, 4 * MIB, MIB), vec![BlockStatus::Zero]);
}

#[test]
fn vmdk_stream_optimized() {
    let s = Scratch::new();
    let (img, writes) = converted(&s, "vmdk", &["-o", "subformat=streamOptimized"], 16 * MIB);
    let image = verify(&s, &img, "vmdk", Format::Vmdk, &writes);
    check_patterns(&*image, &writes);
    assert_eq!(image.details().compression.as_deref(), Some("deflate"));
}

#[test]
fn vhd_dynamic() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "vpc", "", 16 * MIB, &[]);
    let image = verify(&s, &img, "vpc", Format::Vhd, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vhd_fixed() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "vpc", "subformat=fixed", 16 * MIB, &[]);
    let image = verify(&s, &img, "vpc", Format::Vhd, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vhd_converted_force_size() {
    let s = Scratch::new();
    let (img, writes) = converted(&s, "vpc", &["-o", "force_size=on"], 16 * MIB);
    let image = verify(&s, &img, "vpc", Format::Vhd, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vhdx() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "vhdx", "", 16 * MIB, &[]);
    let image = verify(&s, &img, "vhdx", Format::Vhdx, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vhdx_small_blocks_converted() {
    let s = Scratch::new();
    let (img, writes) = converted(&s, "vhdx", &["-o", "block_size=1M"], 40 * MIB);
    let image = verify(&s, &img, "vhdx", Format::Vhdx, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vdi_dynamic() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "vdi", "", 16 * MIB, &[]);
    let image = verify(&s, &img, "vdi", Format::Vdi, &writes);
    check_patterns(&*image, &writes);
}

#[test]
fn vdi_static() {
    let s = Scratch::new();
    let (img, writes) = qemu_written(&s, "vdi", "static=on", 16 * MIB, &[]);
    let image = verify(&s, &img, "vdi", Format::Vdi, &writes);
    check_patterns(&*image, &writes);
}

/// A small ISO 9660 image (primary volume descriptor built in code) reads as its raw bytes.
#[test]
fn iso() {
    let s = Scratch::new();
    let path = s.path("tiny.iso");
    let mut v = vec![0u8; 64 * 2048];
    let pvd = 16 * 2048;
    v[pvd] = 1;
    v[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    v[pvd + 6] = 1;
    v[pvd + 40..pvd + 72].fill(b' ');
    v[pvd + 40..pvd + 44].copy_from_slice(b"IMST");
    v[pvd + 80..pvd + 84].copy_from_slice(&64u32.to_le_bytes());
    v[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    v[pvd + 2048] = 255; // set terminator
    v[pvd + 2049..pvd + 2054].copy_from_slice(b"CD001");
    v[100 * 1024..100 * 1024 + 5].copy_from_slice(b"hello");
    std::fs::write(&path, &v).expect("write iso");
    let src = open_file(&path);
    assert_eq!(detect(&*src).expect("detect"), Format::Iso);
    let image = open(src.clone(), Format::Iso, &Limits::default()).expect("open iso");
    check_image("iso", &*image, &v);
    assert!(image.details().features.contains(&("volume_id".into(), "IMST".into())));
    // Raw declared, ISO content: fine, inspected as raw.
    let as_raw = inspect(src.clone(), Some(Format::Raw), &Limits::default()).expect("iso as raw");
    assert_eq!(as_raw.format, Format::Raw);
    let as_iso = inspect(src, Some(Format::Iso), &Limits::default()).expect("iso as iso");
    assert_eq!((as_iso.format, as_iso.virtual_size), (Format::Iso, v.len() as u64));
}

/// A stream-optimized VMDK whose header defers to a footer at the end (as VMware writes them).
#[test]
fn vmdk_stream_optimized_with_footer() {
    let s = Scratch::new();
    let (img, writes) = converted(&s, "vmdk", &["-o", "subformat=streamOptimized"], 8 * MIB);
    let mut file = std::fs::read(&img).expect("read");
    assert_eq!(file.len() % 512, 0);
    let header: Vec<u8> = file[..512].to_vec();
    file[56..64].copy_from_slice(&u64::MAX.to_le_bytes()); // gd_offset = GD_AT_END
    let mut marker = vec![0u8; 512];
    marker[0..8].copy_from_slice(&1u64.to_le_bytes());
    marker[12..16].copy_from_slice(&3u32.to_le_bytes()); // footer marker
    file.extend_from_slice(&marker);
    file.extend_from_slice(&header);
    file.extend_from_slice(&[0u8; 512]); // end-of-stream marker
    std::fs::write(&img, &file).expect("write");
    let image = verify(&s, &img, "vmdk", Format::Vmdk, &writes);
    check_patterns(&*image, &writes);
}

/// A VHDX whose log holds an unreplayed entry: we replay it in memory; qemu-img check -r all
/// replays it into a copy, which is the oracle.
#[test]
fn vhdx_log_replayed_in_memory() {
    let s = Scratch::new();
    let img = s.path("img.vhdx");
    qemu_img(&["create", "-q", "-f", "vhdx", p(&img), "8M"]);
    qemu_io("vhdx", &img, &["write -P 0x5a 0 1M".to_string()]);
    let mut file = std::fs::read(&img).expect("read");
    let (hat, h) = vhdx_current_header(&file);
    let (bat, _) = vhdx_regions(&file);
    let e0 = u64::from_le_bytes(file[bat as usize..][..8].try_into().unwrap());
    let block0 = e0 & !0xF_FFFF;
    let guid = [0x42u8; 16];
    let entry = vhdx_log_entry(
        &guid,
        1,
        0,
        &[(block0, [0xEE; 4096])],
        &[(block0 + 8192, 4096)],
        file.len() as u64,
    );
    let log = h.log_offset as usize;
    file[log..log + entry.len()].copy_from_slice(&entry);
    file[hat + 48..hat + 64].copy_from_slice(&guid);
    file[hat + 64..hat + 66].copy_from_slice(&0u16.to_le_bytes());
    vhdx_fix_checksum(&mut file, hat, 4096);
    std::fs::write(&img, &file).expect("write");

    let image = open(open_file(&img), Format::Vhdx, &Limits::default()).expect("open with log");
    assert!(image
        .details()
        .features
        .contains(&("log_replayed".into(), "true".into())));
    let mut head = vec![0u8; 16384];
    image.read_at(&mut head, 0).expect("read");
    assert!(head[..4096].iter().all(|&b| b == 0xEE));
    assert!(head[4096..8192].iter().all(|&b| b == 0x5a));
    assert!(head[8192..12288].iter().all(|&b| b == 0));
    assert!(head[12288..].iter().all(|&b| b == 0x5a));

    let copy = s.path("replayed.vhdx");
    std::fs::copy(&img, &copy).expect("copy");
    let _ = std::process::Command::new("qemu-img")
        .args(["check", "-r", "all", "-f", "vhdx", p(&copy)])
        .output();
    let oracle = qemu_to_raw(&s, &copy, "vhdx");
    check_image("vhdx with log", &*image, &oracle);

    // A log entry that expects a longer file than there is: the file was truncated.
    let mut bad = std::fs::read(&img).expect("read");
    let entry = vhdx_log_entry(
        &guid,
        1,
        0,
        &[(block0, [0xEE; 4096])],
        &[],
        bad.len() as u64 + (1 << 20),
    );
    bad[log..log + entry.len()].copy_from_slice(&entry);
    let r = open(std::sync::Arc::new(bad), Format::Vhdx, &Limits::default());
    assert!(
        matches!(r, Err(ims_formats::FormatError::Corrupt(ref m)) if m.contains("expects a file of at least")),
        "{:?}",
        r.err()
    );
}

/// Internal snapshots are ignored: the active L1 table is read.
#[test]
fn qcow2_with_internal_snapshot() {
    let s = Scratch::new();
    let (img, mut writes) = qemu_written(&s, "qcow2", "", 16 * MIB, &[]);
    qemu_img(&["snapshot", "-c", "before", p(&img)]);
    let later = Write { offset: 2 * MIB, len: 3 * MIB, pattern: 0x77 };
    qemu_io("qcow2", &img, &[later.qemu_io()]);
    writes.insert(4, later); // after the write it overlaps
    let image = verify(&s, &img, "qcow2", Format::Qcow2, &writes);
    check_patterns(&*image, &writes);
    assert!(image.details().features.contains(&("snapshots".into(), "1".into())));
}
