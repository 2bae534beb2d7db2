//! The inspector against a malicious corpus built at test time: every refusal must name its
//! reason, and no input may panic or read a wrong byte silently.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use ims_formats::{inspect, open, Format, FormatError, Inspection, Limits, ReadAt};
use rand::{Rng, SeedableRng};

const MIB: u64 = 1 << 20;

fn create(s: &Scratch, name: &str, fmt: &str, opts: &[&str], size: &str) -> PathBuf {
    let img = s.path(name);
    let mut args = vec!["create", "-q", "-f", fmt];
    args.extend_from_slice(opts);
    args.extend([p(&img), size]);
    qemu_img(&args);
    img
}

fn inspect_bytes(bytes: Vec<u8>, declared: Format) -> Result<Inspection, FormatError> {
    inspect(Arc::new(bytes), Some(declared), &Limits::default())
}

fn inspect_path(path: &Path, declared: Format) -> Result<Inspection, FormatError> {
    inspect(open_file(path), Some(declared), &Limits::default())
}

#[track_caller]
fn unsafe_msg(r: Result<Inspection, FormatError>) -> String {
    match r {
        Err(FormatError::Unsafe(m)) => m,
        Err(e) => panic!("expected Unsafe, got {e:?}"),
        Ok(i) => panic!("expected a refusal, got {i:?}"),
    }
}

#[track_caller]
fn corrupt_msg(r: Result<Inspection, FormatError>) -> String {
    match r {
        Err(FormatError::Corrupt(m)) => m,
        Err(e) => panic!("expected Corrupt, got {e:?}"),
        Ok(i) => panic!("expected a refusal, got {i:?}"),
    }
}

fn be_put(buf: &mut [u8], at: usize, v: &[u8]) {
    buf[at..at + v.len()].copy_from_slice(v);
}

// ---- qcow2 ----

#[test]
fn qcow2_backing_file_made_by_qemu() {
    let s = Scratch::new();
    let base = create(&s, "base.qcow2", "qcow2", &[], "16M");
    let top = create(&s, "top.qcow2", "qcow2", &["-b", p(&base), "-F", "qcow2"], "16M");
    let m = unsafe_msg(inspect_path(&top, Format::Qcow2));
    assert_eq!(m, format!("qcow2: backing file \"{}\" is not allowed", p(&base)));
}

#[test]
fn qcow2_handcrafted_backing_file() {
    let s = Scratch::new();
    let img = create(&s, "a.qcow2", "qcow2", &[], "16M");
    let mut f = std::fs::read(&img).unwrap();
    be_put(&mut f, 8, &0x8000u64.to_be_bytes());
    be_put(&mut f, 16, &11u32.to_be_bytes());
    be_put(&mut f, 0x8000, b"/etc/passwd");
    assert_eq!(
        unsafe_msg(inspect_bytes(f.clone(), Format::Qcow2)),
        "qcow2: backing file \"/etc/passwd\" is not allowed"
    );
    // Declared as raw, the content is still qcow2.
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Raw)),
        "image content is qcow2, not the declared raw"
    );
}

#[test]
fn qcow2_external_data_file() {
    let s = Scratch::new();
    let data = s.path("data.raw");
    let img = create(
        &s,
        "a.qcow2",
        "qcow2",
        &["-o", &format!("data_file={}", p(&data))],
        "16M",
    );
    let m = unsafe_msg(inspect_path(&img, Format::Qcow2));
    assert_eq!(m, format!("qcow2: external data file \"{}\" is not allowed", p(&data)));

    // The incompatible bit alone, without the name extension.
    let clean = create(&s, "b.qcow2", "qcow2", &[], "16M");
    let mut f = std::fs::read(&clean).unwrap();
    f[79] |= 4;
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Qcow2)),
        "qcow2: external data file is not allowed"
    );
}

#[test]
fn qcow2_unknown_incompatible_feature() {
    let s = Scratch::new();
    let img = create(&s, "a.qcow2", "qcow2", &[], "16M");
    let mut f = std::fs::read(&img).unwrap();
    f[77] |= 0x10; // bit 20
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Qcow2)),
        "qcow2: unknown incompatible feature bits 0x100000"
    );
}

#[test]
fn qcow2_tables_outside_the_file_or_limits() {
    let s = Scratch::new();
    let img = create(&s, "a.qcow2", "qcow2", &[], "16M");
    let clean = std::fs::read(&img).unwrap();

    let mut f = clean.clone();
    be_put(&mut f, 40, &0x1_0000_0000u64.to_be_bytes());
    let m = corrupt_msg(inspect_bytes(f, Format::Qcow2));
    assert!(
        m.starts_with("qcow2: L1 table at offset 0x100000000 (8 bytes) lies past the end of the file"),
        "{m}"
    );

    let mut f = clean.clone();
    be_put(&mut f, 36, &0x7fff_ffffu32.to_be_bytes());
    let m = unsafe_msg(inspect_bytes(f, Format::Qcow2));
    assert_eq!(
        m,
        "qcow2: L1 table of 17179869176 bytes exceeds the limit of 268435456 bytes"
    );

    // An l1_size within the limit but larger than the file.
    let mut f = clean.clone();
    be_put(&mut f, 36, &0x100_0000u32.to_be_bytes());
    let m = corrupt_msg(inspect_bytes(f, Format::Qcow2));
    assert!(
        m.contains("L1 table at offset") && m.contains("lies past the end of the file"),
        "{m}"
    );

    // An L1 entry pointing past the end of the file.
    let mut f = clean.clone();
    let l1 = u64::from_be_bytes(f[40..48].try_into().unwrap()) as usize;
    be_put(&mut f, l1, &(0x4000_0000u64 | 1 << 63).to_be_bytes());
    let m = corrupt_msg(inspect_bytes(f, Format::Qcow2));
    assert!(
        m.starts_with("qcow2: L2 table (L1 entry 0) at offset 0x40000000"),
        "{m}"
    );

    // A virtual size above the limit.
    let big = create(&s, "big.qcow2", "qcow2", &[], "1T");
    let limits = Limits {
        max_virtual_size: 1 << 30,
        ..Limits::default()
    };
    let m = unsafe_msg(inspect(open_file(&big), Some(Format::Qcow2), &limits));
    assert_eq!(
        m,
        "qcow2: virtual size of 1099511627776 bytes exceeds the limit of 1073741824 bytes"
    );
    // An absurd size field.
    let mut f = clean;
    be_put(&mut f, 24, &u64::MAX.to_be_bytes());
    let m = unsafe_msg(inspect_bytes(f, Format::Qcow2));
    assert!(
        m.starts_with("qcow2: virtual size of 18446744073709551615 bytes exceeds"),
        "{m}"
    );
}

// ---- qcow, qed ----

#[test]
fn qcow_and_qed_backing_files() {
    let s = Scratch::new();
    let base = create(&s, "base.raw", "raw", &[], "8M");
    let q1 = create(&s, "top.qcow", "qcow", &["-b", p(&base), "-F", "raw"], "8M");
    assert_eq!(
        unsafe_msg(inspect_path(&q1, Format::Qcow)),
        format!("qcow: backing file \"{}\" is not allowed", p(&base))
    );
    let qed = create(&s, "top.qed", "qed", &["-b", p(&base), "-F", "raw"], "8M");
    assert_eq!(
        unsafe_msg(inspect_path(&qed, Format::Qed)),
        format!("qed: backing file \"{}\" is not allowed", p(&base))
    );

    let clean = create(&s, "clean.qed", "qed", &[], "8M");
    let mut f = std::fs::read(&clean).unwrap();
    f[16] |= 0x40;
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Qed)),
        "qed: unknown feature bits 0x40"
    );
}

// ---- vmdk ----

#[test]
fn vmdk_descriptor_files_are_refused() {
    let s = Scratch::new();
    let flat = create(&s, "x.vmdk", "vmdk", &["-o", "subformat=monolithicFlat"], "1M");
    assert_eq!(
        unsafe_msg(inspect_path(&flat, Format::Vmdk)),
        "vmdk: extent \"x-flat.vmdk\" refers to another file"
    );
    let split = create(&s, "y.vmdk", "vmdk", &["-o", "subformat=twoGbMaxExtentSparse"], "1M");
    assert_eq!(
        unsafe_msg(inspect_path(&split, Format::Vmdk)),
        "vmdk: extent \"y-s001.vmdk\" refers to another file"
    );

    let text = b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"/etc/passwd\" 0\n";
    assert_eq!(
        unsafe_msg(inspect_bytes(text.to_vec(), Format::Vmdk)),
        "vmdk: extent \"/etc/passwd\" refers to another file"
    );
    assert_eq!(
        unsafe_msg(inspect_bytes(text.to_vec(), Format::Raw)),
        "image content is vmdk, not the declared raw"
    );
    let dotdot = b"version=1\ncreateType=\"monolithicSparse\"\nRW 2048 SPARSE \"../../var/lib/x.vmdk\"\n";
    assert_eq!(
        unsafe_msg(inspect_bytes(dotdot.to_vec(), Format::Vmdk)),
        "vmdk: extent \"../../var/lib/x.vmdk\" refers to another file"
    );
}

/// Replaces the descriptor embedded in a monolithicSparse image.
fn with_descriptor(sparse: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let mut f = sparse.to_vec();
    let region = &f[512..512 + 20 * 512];
    let end = region.iter().position(|&b| b == 0).unwrap();
    let text = String::from_utf8(region[..end].to_vec()).unwrap();
    let new = edit(&text);
    assert!(new.len() < 20 * 512);
    f[512..512 + 20 * 512].fill(0);
    f[512..512 + new.len()].copy_from_slice(new.as_bytes());
    f
}

#[test]
fn vmdk_embedded_descriptor_policy() {
    let s = Scratch::new();
    let img = create(&s, "img.vmdk", "vmdk", &[], "8M");
    let sparse = std::fs::read(&img).unwrap();
    assert!(inspect_bytes(sparse.clone(), Format::Vmdk).is_ok());

    let f = with_descriptor(&sparse, |t| t.replace("\"img.vmdk\"", "\"../other.vmdk\""));
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vmdk)),
        "vmdk: extent \"../other.vmdk\" refers to another file"
    );

    let f = with_descriptor(&sparse, |t| {
        t.replace(
            "RW 16384 SPARSE \"img.vmdk\"",
            "RW 16384 SPARSE \"img.vmdk\"\nRW 2048 FLAT \"other.vmdk\" 0",
        )
    });
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vmdk)),
        "vmdk: extent \"other.vmdk\" refers to another file"
    );

    let f = with_descriptor(&sparse, |t| t.replace("SPARSE \"img.vmdk\"", "FLAT \"img.vmdk\" 0"));
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vmdk)),
        "vmdk: extent \"img.vmdk\" refers to another file"
    );

    let f = with_descriptor(&sparse, |t| t.replace("monolithicSparse", "vmfs"));
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vmdk)),
        "vmdk: createType \"vmfs\" is not allowed (only monolithicSparse and streamOptimized)"
    );

    let f = with_descriptor(&sparse, |t| {
        t.replace(
            "parentCID=ffffffff",
            "parentCID=12345678\nparentFileNameHint=\"/etc/shadow\"",
        )
    });
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vmdk)),
        "vmdk: parent file \"/etc/shadow\" is not allowed"
    );

    let f = with_descriptor(&sparse, |t| t.replace("version=1", "version=1\nrm -rf /"));
    let m = unsafe_msg(inspect_bytes(f, Format::Vmdk));
    assert_eq!(m, "vmdk: descriptor line 3 is not allowed: \"rm -rf /\"");

    let f = with_descriptor(&sparse, |t| t.replace("RW 16384 SPARSE \"img.vmdk\"", ""));
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vmdk)),
        "vmdk: descriptor lists no extent"
    );

    // A zero-capacity header defers to its descriptor's extents.
    let mut f = sparse;
    f[12..20].fill(0);
    assert!(unsafe_msg(inspect_bytes(f, Format::Vmdk)).contains("zero capacity"));
}

// ---- vhd, vhdx, vdi ----

#[test]
fn vhd_differencing_is_refused() {
    let s = Scratch::new();
    let img = create(&s, "a.vhd", "vpc", &[], "8M");
    let mut f = std::fs::read(&img).unwrap();
    let n = f.len();
    for at in [0, n - 512] {
        be_put(&mut f, at + 60, &4u32.to_be_bytes());
        let c = ims_formats::vhd::checksum(&f[at..at + 512], 64);
        be_put(&mut f, at + 64, &c.to_be_bytes());
    }
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vhd)),
        "vhd: differencing disk with a parent locator is not allowed"
    );

    // A broken footer checksum.
    let mut f = std::fs::read(&img).unwrap();
    f[100] ^= 0xff;
    assert!(corrupt_msg(inspect_bytes(f, Format::Vhd)).starts_with("vhd: footer checksum"));
}

#[test]
fn vhdx_parent_is_refused() {
    let s = Scratch::new();
    let img = create(&s, "a.vhdx", "vhdx", &[], "8M");
    let mut f = std::fs::read(&img).unwrap();
    let (_, meta) = vhdx_regions(&f);
    let table = ims_formats::vhdx::parse_metadata_table(&f[meta as usize..][..65536]).unwrap();
    let fp = table
        .iter()
        .find(|e| e.item_id == ims_formats::vhdx::META_FILE_PARAMETERS)
        .unwrap();
    f[meta as usize + fp.offset as usize + 4] |= 2; // HasParent
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vhdx)),
        "vhdx: differencing disk with a parent locator is not allowed"
    );
}

#[test]
fn vdi_parent_and_table_limits() {
    let s = Scratch::new();
    let img = create(&s, "a.vdi", "vdi", &[], "8M");
    let clean = std::fs::read(&img).unwrap();
    let mut f = clean.clone();
    f[0x1b8] = 1;
    assert_eq!(
        unsafe_msg(inspect_bytes(f, Format::Vdi)),
        "vdi: differencing image with a parent is not allowed"
    );
    let limits = Limits {
        max_table_bytes: 16,
        ..Limits::default()
    };
    let m = unsafe_msg(inspect(Arc::new(clean.clone()), Some(Format::Vdi), &limits));
    assert_eq!(m, "vdi: block map of 32 bytes exceeds the limit of 16 bytes");
    // A block count whose map cannot be in the file.
    let mut f = clean;
    f[0x180..0x184].copy_from_slice(&0x0100_0000u32.to_le_bytes());
    let m = corrupt_msg(inspect_bytes(f, Format::Vdi));
    assert!(
        m.starts_with("vdi: block map at offset") && m.contains("lies past the end of the file"),
        "{m}"
    );
}

// ---- declared format vs content ----

#[test]
fn declared_format_must_match_content() {
    let s = Scratch::new();
    let q = create(&s, "a.qcow2", "qcow2", &[], "8M");
    let v = create(&s, "a.vhd", "vpc", &["-o", "subformat=fixed"], "8M");
    let vd = create(&s, "a.vdi", "vdi", &[], "8M");
    let raw = create(&s, "a.raw", "raw", &[], "8M");
    assert_eq!(
        unsafe_msg(inspect_path(&q, Format::Raw)),
        "image content is qcow2, not the declared raw"
    );
    assert_eq!(
        unsafe_msg(inspect_path(&q, Format::Vmdk)),
        "image content is qcow2, not the declared vmdk"
    );
    assert_eq!(
        unsafe_msg(inspect_path(&v, Format::Qcow2)),
        "image content is vhd, not the declared qcow2"
    );
    assert_eq!(
        unsafe_msg(inspect_path(&v, Format::Raw)),
        "image content is vhd, not the declared raw"
    );
    assert_eq!(
        unsafe_msg(inspect_path(&vd, Format::Vhdx)),
        "image content is vdi, not the declared vhdx"
    );
    assert_eq!(
        unsafe_msg(inspect_path(&raw, Format::Iso)),
        "image content is raw, not the declared iso"
    );
    assert_eq!(
        unsafe_msg(inspect_path(&raw, Format::Qcow2)),
        "image content is raw, not the declared qcow2"
    );
    let ok = inspect_path(&raw, Format::Raw).unwrap();
    assert_eq!((ok.format, ok.virtual_size), (Format::Raw, 8 * MIB));
    let detected = inspect(open_file(&q), None, &Limits::default()).unwrap();
    assert_eq!(detected.format, Format::Qcow2);

    let mut luks = vec![0u8; 1 << 20];
    luks[..6].copy_from_slice(b"LUKS\xba\xbe");
    assert_eq!(
        unsafe_msg(inspect_bytes(luks, Format::Raw)),
        "image content is luks, not the declared raw"
    );

    let mut mbr = vec![0u8; 1 << 20];
    mbr[446] = 0x12;
    mbr[450] = 0x83;
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    assert_eq!(
        unsafe_msg(inspect_bytes(mbr.clone(), Format::Raw)),
        "raw: MBR partition entry 0 has an invalid boot flag 0x12"
    );
    mbr[446] = 0x80;
    let ok = inspect_bytes(mbr, Format::Raw).unwrap();
    assert!(ok.details.features.contains(&("partition_table".into(), "mbr".into())));
}

// ---- damaged files: truncation and mutation ----

/// One small image of every format, with data, as (qemu name, our format, path).
fn corpus(s: &Scratch) -> Vec<(&'static str, Format, PathBuf)> {
    let size = 8 * MIB;
    let writes = scattered_writes(size);
    let cmds: Vec<String> = writes.iter().map(Write::qemu_io).collect();
    let raw = s.path("src.raw");
    make_raw(&raw, size, &writes);
    let mut out = Vec::new();
    for (name, fmt, format, opts) in [
        ("a.qcow2", "qcow2", Format::Qcow2, vec![]),
        ("a2.qcow2", "qcow2", Format::Qcow2, vec!["-o", "extended_l2=on"]),
        ("a.qcow", "qcow", Format::Qcow, vec![]),
        ("a.qed", "qed", Format::Qed, vec![]),
        ("a.vmdk", "vmdk", Format::Vmdk, vec![]),
        ("a.vhd", "vpc", Format::Vhd, vec![]),
        ("f.vhd", "vpc", Format::Vhd, vec!["-o", "subformat=fixed"]),
        ("a.vhdx", "vhdx", Format::Vhdx, vec![]),
        ("a.vdi", "vdi", Format::Vdi, vec![]),
    ] {
        let img = create(s, name, fmt, &opts, "8M");
        qemu_io(fmt, &img, &cmds);
        out.push((fmt, format, img));
    }
    for (name, fmt, format, opts) in [
        ("c.qcow2", "qcow2", Format::Qcow2, vec!["-c"]),
        (
            "z.qcow2",
            "qcow2",
            Format::Qcow2,
            vec!["-c", "-o", "compression_type=zstd"],
        ),
        ("s.vmdk", "vmdk", Format::Vmdk, vec!["-o", "subformat=streamOptimized"]),
    ] {
        let img = s.path(name);
        let mut a = vec!["convert", "-f", "raw", "-O", fmt];
        a.extend_from_slice(&opts);
        a.extend([p(&raw), p(&img)]);
        qemu_img(&a);
        out.push((fmt, format, img));
    }
    out
}

fn ok_error(e: &FormatError) -> bool {
    matches!(
        e,
        FormatError::Corrupt(_) | FormatError::Io(_) | FormatError::Unsafe(_) | FormatError::Unsupported(_)
    )
}

#[test]
fn truncated_images_fail_cleanly() {
    let s = Scratch::new();
    for (fmt, format, img) in corpus(&s) {
        let full = std::fs::read(&img).unwrap();
        let oracle = qemu_to_raw(&s, &img, fmt);
        let n = full.len();
        let mut cuts = vec![
            0,
            1,
            100,
            511,
            600,
            4096,
            70_000,
            200_000,
            1 << 20,
            n / 3,
            n / 2,
            n - 600,
            n - 1,
        ];
        cuts.retain(|&c| c < n);
        for cut in cuts {
            let short = full[..cut].to_vec();
            let what = format!("{fmt} cut at {cut} of {n}");
            let src: Arc<dyn ReadAt> = Arc::new(short);
            let image = match inspect(src.clone(), Some(format), &Limits::default()) {
                Err(e) => {
                    assert!(ok_error(&e), "{what}: {e:?}");
                    assert!(!e.to_string().is_empty());
                    continue;
                }
                Ok(_) => open(src, format, &Limits::default()).expect("inspected image opens"),
            };
            let mut all = vec![0u8; image.virtual_size() as usize];
            match image.read_at(&mut all, 0) {
                Ok(()) => assert_same(&what, &all, &oracle),
                Err(e) => assert!(
                    matches!(e, FormatError::Corrupt(_) | FormatError::Io(_)),
                    "{what}: {e:?}"
                ),
            }
        }
    }
}

#[test]
fn mutated_headers_never_panic() {
    let s = Scratch::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (fmt, format, img) in corpus(&s) {
        let full = std::fs::read(&img).unwrap();
        for round in 0..60 {
            let mut f = full.clone();
            // Flip a few bytes in the metadata-heavy first 256 KiB (or in a footer).
            for _ in 0..rng.gen_range(1..6) {
                let at = if rng.gen_bool(0.8) {
                    rng.gen_range(0..f.len().min(256 * 1024))
                } else {
                    rng.gen_range(0..f.len())
                };
                f[at] = rng.gen();
            }
            let src: Arc<dyn ReadAt> = Arc::new(f);
            let limits = Limits {
                max_virtual_size: 1 << 30,
                max_table_bytes: 8 << 20,
            };
            let Ok(found) = inspect(src.clone(), Some(format), &limits) else {
                continue;
            };
            let Ok(image) = open(src, found.format, &limits) else {
                panic!("{fmt} round {round}: inspected but not opened")
            };
            let size = image.virtual_size();
            for _ in 0..8 {
                let off = rng.gen_range(0..size.max(1));
                let len = rng.gen_range(0..=(size - off).min(256 * 1024));
                let mut buf = vec![0u8; len as usize];
                let _ = image.read_at(&mut buf, off);
                let _ = image.block_status(off, len);
            }
        }
    }
}
