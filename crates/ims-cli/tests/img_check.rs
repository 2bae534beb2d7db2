//! `ims img check` table checks against `qemu-img check`: images qemu-img makes check clean, and
//! images damaged here get the same counts of errors and leaked clusters from both tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const MIB: u64 = 1 << 20;

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn run_ok(cmd: &str, args: &[&str]) {
    let o = run(cmd, args);
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// (exit code, corruptions, leaks, JSON) of `ims img check --output json`.
fn ims_check(path: &Path) -> (i32, u64, u64, Value) {
    let o = run(env!("CARGO_BIN_EXE_ims"), &["img", "check", "--output", "json", p(path)]);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    (o.status.code().unwrap_or(-1), n("corruptions"), n("leaks"), v)
}

/// (exit code, corruptions, leaks) of `qemu-img check --output json`.
fn qemu_check(path: &Path) -> (i32, u64, u64) {
    let o = run("qemu-img", &["check", "--output=json", p(path)]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("qemu-img check JSON");
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    (o.status.code().unwrap_or(-1), n("corruptions"), n("leaks"))
}

fn assert_same_as_qemu(path: &Path) -> (u64, u64) {
    let (code, corruptions, leaks, v) = ims_check(path);
    let (qcode, qcorruptions, qleaks) = qemu_check(path);
    assert_eq!((code, corruptions, leaks), (qcode, qcorruptions, qleaks), "{}: {v}", path.display());
    (corruptions, leaks)
}

/// A qcow2 image made and filled by qemu: data at 1 MiB, 9 MiB and 20 MiB.
fn qemu_qcow2(dir: &Path, name: &str, opts: &str) -> PathBuf {
    let path = dir.join(name);
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", "-o", opts, p(&path), "32M"]);
    run_ok(
        "qemu-io",
        &["-c", "write -P 0x55 1M 192k", "-c", "write -P 0x66 9M 64k", "-c", "write -P 7 20M 1M", p(&path)],
    );
    path
}

fn be(data: &[u8], at: usize, n: usize) -> u64 {
    data[at..at + n].iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// Refcount block 0's file offset and the first data cluster's host offset of a qcow2 image with
/// 16-bit refcounts.
fn qcow2_layout(data: &[u8]) -> (usize, usize, usize) {
    let cluster = 1usize << be(data, 20, 4);
    let refblock = be(data, be(data, 48, 8) as usize, 8) as usize;
    let l2 = (be(data, be(data, 40, 8) as usize, 8) & 0x00ff_ffff_ffff_fe00) as usize;
    let host = (0..cluster / 8)
        .map(|i| be(data, l2 + 8 * i, 8) & 0x00ff_ffff_ffff_fe00)
        .find(|&h| h != 0)
        .expect("a data cluster") as usize;
    (cluster, refblock, host)
}

#[test]
fn images_made_by_qemu_check_clean() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = qemu_qcow2(d, "plain.qcow2", "cluster_size=65536");
    let small = qemu_qcow2(d, "small.qcow2", "cluster_size=4096,refcount_bits=4");
    let ext = qemu_qcow2(d, "ext.qcow2", "extended_l2=on,cluster_size=131072");
    let v2 = qemu_qcow2(d, "v2.qcow2", "compat=0.10");
    let compressed = d.join("compressed.qcow2");
    run_ok("qemu-img", &["convert", "-c", "-O", "qcow2", p(&plain), p(&compressed)]);
    let snap = qemu_qcow2(d, "snap.qcow2", "cluster_size=65536");
    run_ok("qemu-img", &["snapshot", "-c", "first", p(&snap)]);
    run_ok("qemu-io", &["-c", "write -P 9 1M 64k", p(&snap)]);
    for path in [&plain, &small, &ext, &v2, &compressed, &snap] {
        assert_eq!(assert_same_as_qemu(path), (0, 0), "{}", path.display());
    }
    // Persistent bitmaps, one with set bits (so with allocated bitmap clusters).
    let bitmaps = qemu_qcow2(d, "bitmaps.qcow2", "cluster_size=65536");
    run_ok("qemu-img", &["bitmap", "--add", p(&bitmaps), "b0"]);
    run_ok("qemu-img", &["bitmap", "--add", "-g", "512", p(&bitmaps), "b1"]);
    run_ok("qemu-io", &["-c", "write -P 3 2M 3M", p(&bitmaps)]);
    assert_eq!(assert_same_as_qemu(&bitmaps), (0, 0));
    let vhd = d.join("dynamic.vhd");
    run_ok("qemu-img", &["convert", "-O", "vpc", p(&plain), p(&vhd)]);
    let (code, corruptions, _, v) = ims_check(&vhd);
    assert_eq!((code, corruptions), (0, 0), "{v}");
}

#[test]
fn refcount_errors_and_leaks_are_counted_like_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let good = qemu_qcow2(dir.path(), "good.qcow2", "cluster_size=65536");
    let data = std::fs::read(&good).unwrap();
    let (cluster, refblock, host) = qcow2_layout(&data);
    let entry = refblock + 2 * (host / cluster);

    // The refcount of a used data cluster zeroed: the cluster error and the COPIED flag error.
    let mut zeroed = data.clone();
    zeroed[entry..entry + 2].fill(0);
    let path = dir.path().join("zeroed.qcow2");
    std::fs::write(&path, &zeroed).unwrap();
    assert_eq!(assert_same_as_qemu(&path), (2, 0));
    let o = run(env!("CARGO_BIN_EXE_ims"), &["img", "check", p(&path)]);
    let out = String::from_utf8_lossy(&o.stdout);
    let index = host / cluster;
    assert!(out.contains(&format!("ERROR cluster {index} refcount=0 reference=1")), "{out}");
    assert!(out.contains("2 errors were found on the image."), "{out}");

    // A cluster appended and counted but used by nothing: a leak, exit code 3.
    let mut leaked = data.clone();
    let spare = leaked.len() / cluster;
    leaked.resize(leaked.len() + cluster, 0);
    leaked[refblock + 2 * spare + 1] = 1;
    let path = dir.path().join("leaked.qcow2");
    std::fs::write(&path, &leaked).unwrap();
    assert_eq!(assert_same_as_qemu(&path), (0, 1));
    let o = run(env!("CARGO_BIN_EXE_ims"), &["img", "check", p(&path)]);
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("Leaked cluster {spare} refcount=1 reference=0")), "{out}");
    assert!(out.contains("1 leaked clusters were found on the image."), "{out}");

    // A refcount too high for a used cluster: a leak and a COPIED flag error.
    let mut high = data.clone();
    high[entry + 1] = 3;
    let path = dir.path().join("high.qcow2");
    std::fs::write(&path, &high).unwrap();
    assert_eq!(assert_same_as_qemu(&path), (1, 1));

    // Both at once, in a compressed image.
    let compressed = dir.path().join("compressed.qcow2");
    run_ok("qemu-img", &["convert", "-c", "-O", "qcow2", p(&good), p(&compressed)]);
    let mut both = std::fs::read(&compressed).unwrap();
    let (cluster, refblock, _) = qcow2_layout(&both);
    let spare = both.len().div_ceil(cluster);
    both.resize((spare + 1) * cluster, 0);
    both[refblock + 2 * spare + 1] = 1;
    // The L1 table's cluster: its refcount zeroed.
    let l1 = be(&both, 40, 8) as usize;
    both[refblock + 2 * (l1 / cluster)..][..2].fill(0);
    let path = dir.path().join("both.qcow2");
    std::fs::write(&path, &both).unwrap();
    let (corruptions, leaks) = assert_same_as_qemu(&path);
    assert!(corruptions >= 1 && leaks >= 1, "{corruptions} {leaks}");
}

#[test]
fn overlapping_vhd_blocks_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(16 * MIB).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 4096], 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[2u8; 4096], 5 * MIB).unwrap();
    let vhd = dir.path().join("disk.vhd");
    run_ok("qemu-img", &["convert", "-f", "raw", "-O", "vpc", p(&raw), p(&vhd)]);
    let (code, corruptions, _, v) = ims_check(&vhd);
    assert_eq!((code, corruptions), (0, 0), "{v}");
    // Point the BAT entry of block 2 (at 5 MiB with 2 MiB blocks) at block 0's data.
    let mut data = std::fs::read(&vhd).unwrap();
    let bat = be(&data, 512 + 16, 8) as usize;
    let first = data[bat..bat + 4].to_vec();
    data[bat + 8..bat + 12].copy_from_slice(&first);
    let bad = dir.path().join("overlap.vhd");
    std::fs::write(&bad, &data).unwrap();
    let (code, corruptions, _, v) = ims_check(&bad);
    assert_eq!(code, 2, "{v}");
    assert_eq!(corruptions, 1, "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("overlaps block"), "{v}");
}

fn le(data: &[u8], at: usize, n: usize) -> u64 {
    data[at..at + n].iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// A 16 MiB raw disk with data at 0 and at 9 MiB, converted by qemu-img to `fmt` with `opts`.
fn qemu_converted(dir: &Path, name: &str, fmt: &str, opts: &[&str]) -> PathBuf {
    let raw = dir.join(format!("{name}.raw"));
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(16 * MIB).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 65536], 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[2u8; 65536], 9 * MIB).unwrap();
    let out = dir.join(name);
    let mut args = vec!["convert", "-f", "raw", "-O", fmt];
    args.extend(opts);
    args.extend([p(&raw), p(&out)]);
    run_ok("qemu-img", &args);
    out
}

#[test]
fn vmdk_and_vhdx_tables_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sparse = qemu_converted(d, "sparse.vmdk", "vmdk", &["-o", "subformat=monolithicSparse"]);
    let stream = qemu_converted(d, "stream.vmdk", "vmdk", &["-o", "subformat=streamOptimized"]);
    let vhdx = qemu_converted(d, "disk.vhdx", "vhdx", &[]);
    for path in [&sparse, &stream, &vhdx] {
        let (code, corruptions, leaks, v) = ims_check(path);
        assert_eq!((code, corruptions, leaks), (0, 0, 0), "{}: {v}", path.display());
    }

    // VMDK: the grain at 9 MiB (grain 144 of 64 KiB) pointed at the grain at 0.
    let mut data = std::fs::read(&sparse).unwrap();
    let gd = le(&data, 56, 8) as usize * 512;
    let gt = le(&data, gd, 4) as usize * 512;
    let first = data[gt..gt + 4].to_vec();
    assert_ne!(le(&data, gt + 4 * 144, 4), 0, "grain 144 is allocated");
    data[gt + 4 * 144..gt + 4 * 145].copy_from_slice(&first);
    let bad = d.join("overlap.vmdk");
    std::fs::write(&bad, &data).unwrap();
    let (code, corruptions, _, v) = ims_check(&bad);
    assert_eq!((code, corruptions), (2, 1), "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("overlaps grain"), "{v}");

    // VHDX: BAT entry of payload block 1 pointed at block 0.
    let mut data = std::fs::read(&vhdx).unwrap();
    let bat_guid = [0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08];
    let table = 192 * 1024;
    let entries = le(&data, table + 8, 4) as usize;
    let bat = (0..entries)
        .map(|i| table + 16 + 32 * i)
        .find(|&e| data[e..e + 16] == bat_guid)
        .map(|e| le(&data, e + 16, 8) as usize)
        .expect("a BAT region");
    assert_eq!(le(&data, bat, 8) & 7, 6, "block 0 is fully present");
    assert_eq!(le(&data, bat + 8, 8) & 7, 6, "block 1 is fully present");
    let first = data[bat..bat + 8].to_vec();
    data[bat + 8..bat + 16].copy_from_slice(&first);
    let bad = d.join("overlap.vhdx");
    std::fs::write(&bad, &data).unwrap();
    let (code, corruptions, _, v) = ims_check(&bad);
    assert_eq!((code, corruptions), (2, 1), "{v}");
    assert!(v["errors"][0].as_str().unwrap().contains("overlaps payload block"), "{v}");
}
