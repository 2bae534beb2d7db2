//! Generates the seed corpora of the fuzz targets; `scripts/fuzz --seed` runs it as
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example seeds -- fuzz/corpus
//! ```
//!
//! Seeds are real images: made by qemu-img (and qemu-io for zero clusters) from a small raw disk
//! with a few written patterns, by IMS's own writers (the only source of ZVHD and ZVHD2), plus
//! hand-made ISO, MBR and VMDK descriptor files and images that the policy refuses (backing files,
//! external data files, descriptor files). Each goes to `OUT/<target>/` and to `OUT/inspect_any/`.
//! Files over 64 KiB are stored twice: their first 64 KiB, and as a sparse input (see
//! `ims_fuzz::SPARSE_MAGIC`) holding all of their non-zero sectors.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ims_formats::write::{
    Qcow2Compression, VhdSubformat, VmdkSubformat, WriteOptions, ZvhdOptions,
};
use ims_formats::{write_image, Format, Limits, Target};

const KIB: usize = 1024;
const HEAD: usize = 64 * KIB;
/// Sparse inputs larger than this are not kept (they would slow every mutation down).
const MAX_SPARSE_SEED: usize = 512 * KIB;

struct Seeds {
    out: PathBuf,
    tmp: PathBuf,
    /// (target, file) of every seed written.
    written: Vec<(String, PathBuf)>,
}

impl Seeds {
    /// Stores `bytes` as seed `name` of `target` (and of `inspect_any`).
    fn add(&mut self, target: &str, name: &str, bytes: &[u8]) {
        self.put(target, name, bytes);
        if target != "inspect_any" && target != "vmdk_descriptor" {
            self.put("inspect_any", &format!("{target}-{name}"), bytes);
        }
    }

    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.out.join(target);
        fs::create_dir_all(&dir).expect("create corpus directory");
        let mut write = |file: PathBuf, bytes: &[u8]| {
            fs::write(&file, bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            self.written.push((target.to_string(), file));
        };
        if bytes.len() <= HEAD {
            write(dir.join(name), bytes);
            return;
        }
        write(dir.join(format!("{name}.head64k")), &bytes[..HEAD]);
        let sparse = ims_fuzz::sparse_input(bytes);
        if sparse.len() <= MAX_SPARSE_SEED {
            write(dir.join(format!("{name}.sparse")), &sparse);
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A 1 MiB disk: a filled first 4 KiB, pseudo-random bytes across a cluster boundary, text in the
/// middle, a filled last 4 KiB; zeros elsewhere.
fn source_disk() -> Vec<u8> {
    let mut d = vec![0u8; 1 << 20];
    d[..4096].fill(0x11);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in &mut d[65536 - 700..65536 + 2300] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let text = b"IMS fuzz seed: the quick brown fox jumps over the lazy dog. ";
    for (i, b) in d[512 * KIB..512 * KIB + 4096].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    let n = d.len();
    d[n - 4096..].fill(0x77);
    d
}

/// Images made by qemu-img from the source disk (and a few with qemu-io writes).
fn qemu_seeds(s: &mut Seeds, src: &Path) {
    // (target, qemu format, -o options, compress)
    let converts: &[(&str, &str, &str, bool)] = &[
        ("qcow2", "qcow2", "compat=0.10,cluster_size=4096", false),
        ("qcow2", "qcow2", "compat=1.1,cluster_size=512", false),
        ("qcow2", "qcow2", "compat=1.1", false),
        (
            "qcow2",
            "qcow2",
            "compat=1.1,cluster_size=16384,extended_l2=on",
            false,
        ),
        (
            "qcow2",
            "qcow2",
            "compat=1.1,cluster_size=4096,lazy_refcounts=on,refcount_bits=1",
            false,
        ),
        ("qcow2", "qcow2", "compat=0.10,cluster_size=4096", true),
        (
            "qcow2",
            "qcow2",
            "compat=1.1,cluster_size=4096,compression_type=zstd",
            true,
        ),
        ("qcow", "qcow", "", false),
        ("qed", "qed", "cluster_size=4096", false),
        ("qed", "qed", "cluster_size=4096,table_size=2", false),
        ("qed", "qed", "", false),
        ("vmdk", "vmdk", "subformat=monolithicSparse", false),
        ("vmdk", "vmdk", "subformat=streamOptimized", false),
        (
            "vmdk",
            "vmdk",
            "subformat=monolithicSparse,compat6=on",
            false,
        ),
        ("vhd", "vpc", "subformat=dynamic", false),
        ("vhd", "vpc", "subformat=dynamic,force_size=on", false),
        ("vhd", "vpc", "subformat=fixed", false),
        ("vhdx", "vhdx", "block_size=1M,log_size=1M", false),
        (
            "vhdx",
            "vhdx",
            "subformat=fixed,block_size=1M,log_size=1M",
            false,
        ),
        ("vdi", "vdi", "", false),
        ("vdi", "vdi", "static=on", false),
    ];
    for (i, (target, fmt, opts, compress)) in converts.iter().enumerate() {
        let img = s.path(&format!("c{i}.{fmt}"));
        let mut cmd = Command::new("qemu-img");
        cmd.args(["convert", "-f", "raw", "-O", fmt]);
        if !opts.is_empty() {
            cmd.args(["-o", opts]);
        }
        if *compress {
            cmd.arg("-c");
        }
        run(cmd.args([p(src), p(&img)]));
        let name = format!(
            "qemu-{}{}",
            opts.replace([',', '='], "_"),
            if *compress { "-c" } else { "" }
        );
        s.add(
            target,
            name.trim_end_matches('-'),
            &fs::read(&img).expect("read image"),
        );
    }

    // Zero clusters / grains / blocks written by qemu-io into images created empty.
    let zeros: &[(&str, &str, &str)] = &[
        ("qcow2", "qcow2", "compat=1.1,cluster_size=4096"),
        (
            "qcow2",
            "qcow2",
            "compat=1.1,cluster_size=16384,extended_l2=on",
        ),
        ("vmdk", "vmdk", "zeroed_grain=on"),
        ("vhdx", "vhdx", "block_size=1M,log_size=1M"),
        ("qed", "qed", "cluster_size=4096,table_size=2"),
    ];
    for (i, (target, fmt, opts)) in zeros.iter().enumerate() {
        let img = s.path(&format!("z{i}.{fmt}"));
        run(Command::new("qemu-img").args(["create", "-q", "-f", fmt, "-o", opts, p(&img), "1M"]));
        run(Command::new("qemu-io").args([
            "-f",
            fmt,
            "-c",
            "write -P 0x5a 0 8k",
            "-c",
            "write -z 64k 64k",
            "-c",
            "write -P 0xa5 1000k 6k",
            "-c",
            "write -z 1020k 4k",
            p(&img),
        ]));
        let name = format!("qemu-io-{}", opts.replace([',', '='], "_"));
        s.add(target, &name, &fs::read(&img).expect("read image"));
    }

    // Images the policy refuses: backing files, an external data file, descriptor files.
    let base = s.path("base.raw");
    fs::write(&base, vec![0u8; 65536]).expect("write base");
    let base_vmdk = s.path("base.vmdk");
    run(Command::new("qemu-img").args(["create", "-q", "-f", "vmdk", p(&base_vmdk), "64K"]));
    let refused: &[(&str, &str, Vec<&str>)] = &[
        ("qcow2", "qcow2", vec!["-b", p(&base), "-F", "raw"]),
        ("qcow2", "qcow2", vec!["-o", "data_file=data.raw"]),
        ("qcow", "qcow", vec!["-b", p(&base), "-F", "raw"]),
        ("qed", "qed", vec!["-b", p(&base), "-F", "raw"]),
        ("vmdk", "vmdk", vec!["-o", "subformat=monolithicFlat"]),
        ("vmdk", "vmdk", vec!["-o", "subformat=twoGbMaxExtentSparse"]),
        ("vmdk", "vmdk", vec!["-b", p(&base_vmdk), "-F", "vmdk"]),
    ];
    let tmp = s.tmp.clone();
    for (i, (target, fmt, args)) in refused.iter().enumerate() {
        let img = s.path(&format!("r{i}.{fmt}"));
        run(Command::new("qemu-img")
            .current_dir(&tmp)
            .args(["create", "-q", "-f", fmt])
            .args(args)
            .args([p(&img), "64K"]));
        let bytes = fs::read(&img).expect("read image");
        s.add(target, &format!("refused-{i}"), &bytes);
        if *fmt == "vmdk" {
            s.add(
                "vmdk_descriptor",
                &format!("qemu-file-{i}"),
                &embedded_text(&bytes),
            );
        }
    }
}

/// The descriptor text of a VMDK file: the whole file when it is a descriptor file, the embedded
/// descriptor (sector 1 up to the first NUL) of a sparse extent.
fn embedded_text(file: &[u8]) -> Vec<u8> {
    let text = if file.starts_with(b"KDMV") {
        file.get(512..).unwrap_or(&[])
    } else {
        file
    };
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    text[..end].to_vec()
}

/// Images written by IMS's writers (the only ZVHD/ZVHD2 source; other formats for their layouts).
fn ims_seeds(s: &mut Seeds, disk: &[u8]) {
    let tiny = {
        let mut t = vec![0u8; 5000];
        t[100..300].fill(0x42);
        t[4500..].fill(0x43);
        t
    };
    let disks: [(&str, Vec<u8>); 3] = [
        ("1m", disk.to_vec()),
        ("5000b", tiny),
        ("zero64k", vec![0u8; 65536]),
    ];
    let zv = |block_size: u64| WriteOptions {
        threads: 1,
        zvhd: ZvhdOptions {
            block_size,
            level: None,
            threads: 1,
            max_index_bytes: Limits::default().max_table_bytes,
        },
        ..WriteOptions::default()
    };
    let variants: Vec<(&str, Format, WriteOptions)> = vec![
        ("zvhd", Format::Zvhd, zv(4096)),
        ("zvhd", Format::Zvhd, zv(65536)),
        ("zvhd2", Format::Zvhd2, zv(4096)),
        ("zvhd2", Format::Zvhd2, zv(65536)),
        (
            "qcow2",
            Format::Qcow2,
            WriteOptions {
                threads: 1,
                qcow2_cluster_size: 4096,
                ..Default::default()
            },
        ),
        (
            "qcow2",
            Format::Qcow2,
            WriteOptions {
                threads: 1,
                qcow2_cluster_size: 4096,
                qcow2_compression: Some(Qcow2Compression::Zstd),
                ..Default::default()
            },
        ),
        (
            "vmdk",
            Format::Vmdk,
            WriteOptions {
                threads: 1,
                ..Default::default()
            },
        ),
        (
            "vmdk",
            Format::Vmdk,
            WriteOptions {
                threads: 1,
                vmdk_subformat: VmdkSubformat::MonolithicSparse,
                ..Default::default()
            },
        ),
        (
            "vhd",
            Format::Vhd,
            WriteOptions {
                threads: 1,
                ..Default::default()
            },
        ),
        (
            "vhd",
            Format::Vhd,
            WriteOptions {
                threads: 1,
                vhd_subformat: VhdSubformat::Fixed,
                ..Default::default()
            },
        ),
        (
            "vhdx",
            Format::Vhdx,
            WriteOptions {
                threads: 1,
                vhdx_block_size: Some(1 << 20),
                ..Default::default()
            },
        ),
    ];
    for (dname, bytes) in &disks {
        let src = ims_formats::open(Arc::new(bytes.clone()), Format::Raw, &Limits::default())
            .expect("open raw");
        for (i, (target, format, opts)) in variants.iter().enumerate() {
            if *format != Format::Zvhd && *format != Format::Zvhd2 && *dname != "1m" {
                continue;
            }
            let path = s.path(&format!("ims{i}-{dname}"));
            let file = File::create(&path).expect("create");
            write_image(&*src, *format, Target::Seekable(&file), opts, &|_| {})
                .expect("write image");
            drop(file);
            s.add(
                target,
                &format!("ims-{i}-{dname}"),
                &fs::read(&path).expect("read image"),
            );
        }
    }
}

/// Hand-made files: ISO and UDF volume descriptors, raw disks with partition tables, VMDK
/// descriptors.
fn handmade_seeds(s: &mut Seeds) {
    // ISO 9660: primary volume descriptor at 32 KiB, set terminator after it.
    let mut iso = vec![0u8; 40 * KIB];
    let pvd = 32 * KIB;
    iso[pvd] = 1;
    iso[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    iso[pvd + 6] = 1;
    iso[pvd + 40..pvd + 72].fill(b' ');
    iso[pvd + 40..pvd + 48].copy_from_slice(b"IMS_FUZZ");
    iso[pvd + 80..pvd + 84].copy_from_slice(&20u32.to_le_bytes());
    iso[pvd + 84..pvd + 88].copy_from_slice(&20u32.to_be_bytes());
    iso[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    iso[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
    let term = pvd + 2048;
    iso[term] = 255;
    iso[term + 1..term + 6].copy_from_slice(b"CD001");
    iso[term + 6] = 1;
    s.add("iso", "iso9660", &iso);
    // The same with an MBR (a hybrid ISO, as distributions ship).
    let mut hybrid = iso.clone();
    hybrid[..512].copy_from_slice(&mbr(&[(0x80, 0x17, [0, 1, 1], 0)]));
    s.add("iso", "iso9660-hybrid", &hybrid);
    // UDF: BEA01, NSR02, TEA01 volume recognition sequence.
    let mut udf = vec![0u8; 40 * KIB];
    for (i, id) in [b"BEA01", b"NSR02", b"TEA01"].iter().enumerate() {
        let at = pvd + i * 2048;
        udf[at + 1..at + 6].copy_from_slice(*id);
        udf[at + 6] = 1;
    }
    s.add("iso", "udf", &udf);
    // File systems for the ISO reader: one written by IMS's writer (Joliet and primary trees),
    // and the bare primary volume descriptor above.
    let mut tree = ims_formats::iso::IsoTree::new();
    tree.add_file("user-data", 14, b"#cloud-config\n".to_vec()).expect("tree");
    tree.add_file("app/bin/Run Me.sh", 10, b"echo hello".to_vec()).expect("tree");
    tree.add_dir("app/empty").expect("tree");
    let mut options = ims_formats::iso::IsoOptions::new("cidata");
    options.recorded_at = 1_700_000_000;
    let layout = ims_formats::iso::IsoLayout::new(tree, &options).expect("layout");
    let mut written = Vec::new();
    std::io::Read::read_to_end(&mut layout.into_stream(), &mut written).expect("write the ISO");
    s.add("iso_fs", "joliet", &written);
    s.add("iso_fs", "iso9660", &iso);

    // Raw disks: partition tables the inspector checks, magics it refuses.
    let mut raw = |name: &str, first: &[u8]| {
        let mut d = vec![0u8; 8 * KIB];
        d[..first.len()].copy_from_slice(first);
        s.put("inspect_any", &format!("raw-{name}"), &d);
    };
    raw("zeros", &[]);
    raw(
        "mbr",
        &mbr(&[(0x80, 0x83, [0, 1, 1], 2048), (0, 0x82, [0, 1, 1], 4096)]),
    );
    raw("gpt", &mbr(&[(0, 0xEE, [0, 2, 0], 1)]));
    let mut fat = mbr(&[]);
    fat[0x10] = 2;
    fat[0x15] = 0xF8;
    raw("fat", &fat);
    raw("luks", b"LUKS\xba\xbe\x00\x01");
    raw("parallels", b"WithoutFreeSpace");
    raw("bochs", b"Bochs Virtual HD Image");
    let mut dmg = vec![0u8; 8 * KIB];
    dmg[8 * KIB - 512..8 * KIB - 508].copy_from_slice(b"koly");
    s.put("inspect_any", "raw-dmg", &dmg);

    // VMDK descriptors.
    let flat = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n# Extent description\nRW 2048 FLAT \"disk-flat.vmdk\" 0\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"2\"\nddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n";
    let sparse = "# Disk DescriptorFile\r\nversion=1\r\nCID=12345678\r\nparentCID=ffffffff\r\ncreateType=\"streamOptimized\"\r\n\r\n# Extent description\r\nRDONLY 2048 SPARSE \"disk.vmdk\"\r\n\r\nddb.toolsVersion = \"2147483647\"\r\nddb.uuid.image = \"caf\u{e9}\"\r\n";
    let parent = "version=1\ncreateType=\"monolithicSparse\"\nparentFileNameHint=\"/etc/passwd\"\nRW 2048 SPARSE \"x.vmdk\"\n";
    let others = "version=3\ncreateType=\"vmfs\"\nRW 100 VMFS \"/dev/sda\"\nRW 100 ZERO \"z\" 7\nNOACCESS 5 VMFSRDM \"a:b\"\n";
    for (name, text) in [
        ("flat", flat),
        ("sparse", sparse),
        ("parent", parent),
        ("others", others),
    ] {
        s.put("vmdk_descriptor", name, text.as_bytes());
        s.put("vmdk", &format!("descriptor-{name}"), text.as_bytes());
        s.put(
            "vmdk",
            &format!("embedded-{name}"),
            &ims_fuzz::embed_descriptor(text.as_bytes()),
        );
    }
}

/// A first sector with an MBR signature and `entries` (boot flag, type, start CHS, start LBA).
fn mbr(entries: &[(u8, u8, [u8; 3], u32)]) -> Vec<u8> {
    let mut sector = vec![0u8; 512];
    for (i, (boot, kind, chs, lba)) in entries.iter().enumerate() {
        let at = 446 + 16 * i;
        sector[at] = *boot;
        sector[at + 1..at + 4].copy_from_slice(chs);
        sector[at + 4] = *kind;
        sector[at + 8..at + 12].copy_from_slice(&lba.to_le_bytes());
        sector[at + 12..at + 16].copy_from_slice(&2048u32.to_le_bytes());
    }
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let tmp = std::env::temp_dir().join(format!("ims-fuzz-seeds-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("create scratch directory");
    let mut s = Seeds {
        out,
        tmp: tmp.clone(),
        written: Vec::new(),
    };

    let disk = source_disk();
    let src = s.path("source.raw");
    fs::write(&src, &disk).expect("write source disk");
    s.add("inspect_any", "raw-1m", &disk);
    if Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        qemu_seeds(&mut s, &src);
    } else {
        eprintln!("seeds: qemu-img not found: no seeds from qemu-img (only IMS-written and hand-made ones)");
    }
    ims_seeds(&mut s, &disk);
    handmade_seeds(&mut s);

    // Every seed must go through its target without failing (a failure here is a bug already);
    // count how many pass the inspector with the targets' limits (the others exercise refusals).
    println!("{} seeds in {}", s.written.len(), s.out.display());
    for (target, f) in ims_fuzz::TARGETS {
        let (mut total, mut ok) = (0, 0);
        for (_, path) in s.written.iter().filter(|(t, _)| t == target) {
            let bytes = fs::read(path).expect("read seed");
            f(&bytes);
            let file = Arc::new(ims_fuzz::file_from_input(&bytes));
            total += 1;
            ok += usize::from(ims_formats::inspect(file, None, &ims_fuzz::LIMITS).is_ok());
        }
        println!("  {target:16} {total:3} seeds, {ok:3} pass inspection");
    }
    let _ = fs::remove_dir_all(&tmp);
}
