//! Every writer, checked by qemu-img: `compare` against the raw source says identical, `check` is
//! clean, `info` names the right format, subformat and virtual size.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use ims_formats::write::{
    write_image, Qcow2Compression, Target, VhdSubformat, VmdkSubformat, WriteOptions,
};
use ims_formats::{BlockExtent, BlockStatus, DiskImage, Format, FormatError, ImageDetails};
use rand::{RngCore, SeedableRng};

/// A guest disk held in memory. Block status is computed from the bytes at 64 KiB granularity
/// (`honest`), or claims everything is data, like a plain raw file.
struct MemDisk {
    data: Vec<u8>,
    honest: bool,
}

const GRAIN: u64 = 64 << 10;

impl DiskImage for MemDisk {
    fn format(&self) -> Format {
        Format::Raw
    }
    fn virtual_size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> ims_formats::Result<()> {
        let start = offset as usize;
        let src = self.data.get(start..start + buf.len()).ok_or_else(|| {
            FormatError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "past end"))
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn block_status(&self, offset: u64, length: u64) -> ims_formats::Result<Vec<BlockExtent>> {
        let end = offset + length;
        assert!(end <= self.virtual_size());
        let mut out: Vec<BlockExtent> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let next = ((pos / GRAIN + 1) * GRAIN).min(end);
            let status = if !self.honest
                || self.data[pos as usize..next as usize]
                    .iter()
                    .any(|&b| b != 0)
            {
                BlockStatus::Data
            } else {
                BlockStatus::Unallocated
            };
            match out.last_mut() {
                Some(last) if last.status == status => last.length += next - pos,
                _ => out.push(BlockExtent {
                    offset: pos,
                    length: next - pos,
                    status,
                }),
            }
            pos = next;
        }
        Ok(out)
    }
    fn details(&self) -> ImageDetails {
        ImageDetails::default()
    }
}

/// A disk with known patterns at scattered offsets and holes between them.
fn pattern(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut d = vec![0u8; size];
    let mut put = |at: usize, len: usize, random: bool| {
        if at >= size {
            return;
        }
        let end = (at + len).min(size);
        if random {
            rng.fill_bytes(&mut d[at..end]);
        } else {
            for (i, b) in d[at..end].iter_mut().enumerate() {
                *b = b"writers test: compressible text "[i % 32];
            }
        }
    };
    put(0, 4096, true); // boot sector area
    put(70_000, 5000, true); // inside the second 64 KiB cluster
    put(1 << 20, 3 << 20, false); // compressible, several clusters and VHD blocks
    put((9 << 20) - 1000, 2000, true); // straddles a 1 MiB and 64 KiB boundary
    put(17 << 20, 1 << 20, true); // incompressible MiB
    put((33 << 20) + 512, 512, true); // past a VHDX 32 MiB block boundary
    put(size.saturating_sub(700), 700, true); // the very end
    d
}

struct Case {
    name: &'static str,
    format: Format,
    opts: WriteOptions,
    qemu: &'static str,
    stream: bool,
    check: bool,
    info: &'static [&'static str],
}

fn with(f: impl FnOnce(&mut WriteOptions)) -> WriteOptions {
    let mut o = WriteOptions::default();
    f(&mut o);
    o
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "raw",
            format: Format::Raw,
            opts: WriteOptions::default(),
            qemu: "raw",
            stream: false,
            check: false,
            info: &[],
        },
        Case {
            name: "raw-stream",
            format: Format::Raw,
            opts: WriteOptions::default(),
            qemu: "raw",
            stream: true,
            check: false,
            info: &[],
        },
        Case {
            name: "qcow2",
            format: Format::Qcow2,
            opts: WriteOptions::default(),
            qemu: "qcow2",
            stream: false,
            check: true,
            info: &[r#""compat": "1.1""#, r#""cluster-size": 65536"#],
        },
        Case {
            name: "qcow2-4k",
            format: Format::Qcow2,
            opts: with(|o| o.qcow2_cluster_size = 4096),
            qemu: "qcow2",
            stream: false,
            check: true,
            info: &[r#""cluster-size": 4096"#],
        },
        Case {
            name: "qcow2-512-zlib",
            format: Format::Qcow2,
            opts: with(|o| {
                o.qcow2_cluster_size = 512;
                o.qcow2_compression = Some(Qcow2Compression::Deflate);
            }),
            qemu: "qcow2",
            stream: false,
            check: true,
            info: &[r#""cluster-size": 512"#],
        },
        Case {
            name: "qcow2-zlib",
            format: Format::Qcow2,
            opts: with(|o| o.qcow2_compression = Some(Qcow2Compression::Deflate)),
            qemu: "qcow2",
            stream: false,
            check: true,
            info: &[r#""compression-type": "zlib""#],
        },
        Case {
            name: "qcow2-zstd",
            format: Format::Qcow2,
            opts: with(|o| o.qcow2_compression = Some(Qcow2Compression::Zstd)),
            qemu: "qcow2",
            stream: false,
            check: true,
            info: &[r#""compression-type": "zstd""#],
        },
        Case {
            name: "qcow2-zstd-2m",
            format: Format::Qcow2,
            opts: with(|o| {
                o.qcow2_compression = Some(Qcow2Compression::Zstd);
                o.qcow2_cluster_size = 2 << 20;
            }),
            qemu: "qcow2",
            stream: false,
            check: true,
            info: &[r#""cluster-size": 2097152"#],
        },
        Case {
            name: "vmdk-stream",
            format: Format::Vmdk,
            opts: WriteOptions::default(),
            qemu: "vmdk",
            stream: true,
            check: true,
            info: &[
                r#""create-type": "streamOptimized""#,
                r#""compressed": true"#,
            ],
        },
        Case {
            name: "vmdk-stream-to-file",
            format: Format::Vmdk,
            opts: WriteOptions::default(),
            qemu: "vmdk",
            stream: false,
            check: true,
            info: &[r#""create-type": "streamOptimized""#],
        },
        Case {
            name: "vmdk-sparse",
            format: Format::Vmdk,
            opts: with(|o| o.vmdk_subformat = VmdkSubformat::MonolithicSparse),
            qemu: "vmdk",
            stream: false,
            check: true,
            info: &[r#""create-type": "monolithicSparse""#],
        },
        Case {
            name: "vhd-dynamic",
            format: Format::Vhd,
            opts: WriteOptions::default(),
            qemu: "vpc",
            stream: false,
            check: false,
            info: &[],
        },
        Case {
            name: "vhd-fixed",
            format: Format::Vhd,
            opts: with(|o| o.vhd_subformat = VhdSubformat::Fixed),
            qemu: "vpc",
            stream: false,
            check: false,
            info: &[],
        },
        Case {
            name: "vhd-fixed-stream",
            format: Format::Vhd,
            opts: with(|o| o.vhd_subformat = VhdSubformat::Fixed),
            qemu: "vpc",
            stream: true,
            check: false,
            info: &[],
        },
        Case {
            name: "vhdx",
            format: Format::Vhdx,
            opts: WriteOptions::default(),
            qemu: "vhdx",
            stream: false,
            check: true,
            info: &[],
        },
        Case {
            name: "vhdx-1m",
            format: Format::Vhdx,
            opts: with(|o| o.vhdx_block_size = Some(1 << 20)),
            qemu: "vhdx",
            stream: false,
            check: true,
            info: &[r#""cluster-size": 1048576"#],
        },
    ]
}

fn qemu_img(args: &[&str]) -> (bool, String) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `disk` with `case`, then has qemu-img verify it.
fn write_and_verify(dir: &Path, case: &Case, disk: &MemDisk, raw: &Path) -> PathBuf {
    let out_path = dir.join(format!("{}.img", case.name));
    let progress_seen = std::cell::Cell::new(0u64);
    let progress = |n: u64| {
        assert!(n >= progress_seen.get(), "progress went backwards");
        progress_seen.set(n);
    };
    let written = if case.stream {
        let mut bytes = Vec::new();
        let n = write_image(
            disk,
            case.format,
            Target::Stream(&mut bytes),
            &case.opts,
            &progress,
        )
        .unwrap();
        assert_eq!(n, bytes.len() as u64, "{}", case.name);
        std::fs::write(&out_path, &bytes).unwrap();
        n
    } else {
        let file = File::create(&out_path).unwrap();
        write_image(
            disk,
            case.format,
            Target::Seekable(&file),
            &case.opts,
            &progress,
        )
        .unwrap()
    };
    assert_eq!(
        progress_seen.get(),
        disk.virtual_size(),
        "{}: progress did not reach the end",
        case.name
    );
    assert_eq!(
        written,
        std::fs::metadata(&out_path).unwrap().len(),
        "{}: returned length",
        case.name
    );

    let out = path_str(&out_path);
    let (ok, text) = qemu_img(&["compare", "-f", "raw", path_str(raw), "-F", case.qemu, out]);
    assert!(
        ok && text.contains("Images are identical"),
        "{}: qemu-img compare: {text}",
        case.name
    );
    if case.check {
        let (ok, text) = qemu_img(&["check", "-f", case.qemu, out]);
        assert!(
            ok && text.contains("No errors were found"),
            "{}: qemu-img check: {text}",
            case.name
        );
    }
    let (ok, info) = qemu_img(&["info", "--output=json", "-f", case.qemu, out]);
    assert!(ok, "{}: qemu-img info: {info}", case.name);
    let expect_format = format!(r#""format": "{}""#, case.qemu);
    assert!(info.contains(&expect_format), "{}: {info}", case.name);
    let vsize = disk.virtual_size().next_multiple_of(512);
    assert!(
        info.contains(&format!(r#""virtual-size": {vsize}"#)),
        "{}: virtual size: {info}",
        case.name
    );
    for want in case.info {
        assert!(
            info.contains(want),
            "{}: expected {want} in {info}",
            case.name
        );
    }
    out_path
}

fn source(dir: &Path, size: usize, seed: u64, honest: bool) -> (MemDisk, PathBuf) {
    let disk = MemDisk {
        data: pattern(size, seed),
        honest,
    };
    let raw = dir.join("src.raw");
    std::fs::write(&raw, &disk.data).unwrap();
    (disk, raw)
}

#[test]
fn every_writer_is_identical_for_qemu() {
    let dir = tempfile::tempdir().unwrap();
    // 40 MiB + 3 sectors: not a multiple of any cluster or block size.
    let (disk, raw) = source(dir.path(), (40 << 20) + 1536, 1, true);
    for case in cases() {
        write_and_verify(dir.path(), &case, &disk, &raw);
    }
}

#[test]
fn zeros_are_found_by_reading_when_block_status_says_data() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, raw) = source(dir.path(), 24 << 20, 2, false);
    for case in cases() {
        let out = write_and_verify(dir.path(), &case, &disk, &raw);
        // Bytes actually allocated: holes in sparse files do not count.
        let meta = std::fs::metadata(&out).unwrap();
        let len = meta
            .len()
            .min(std::os::unix::fs::MetadataExt::blocks(&meta) * 512);
        // The data is about 6 MiB; sparse layouts must not store the zeros.
        let sparse = !matches!(case.name, "raw-stream" | "vhd-fixed-stream");
        if sparse {
            assert!(
                len < 12 << 20,
                "{}: {len} bytes for about 6 MiB of data",
                case.name
            );
        }
    }
}

#[test]
fn sizes_that_are_not_sector_multiples_round_up() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, raw) = source(dir.path(), (3 << 20) + 1001, 3, true);
    for case in cases() {
        write_and_verify(dir.path(), &case, &disk, &raw);
    }
}

#[test]
fn single_threaded_output_is_the_same() {
    let disk = MemDisk {
        data: pattern(8 << 20, 4),
        honest: true,
    };
    for compression in [Qcow2Compression::Deflate, Qcow2Compression::Zstd] {
        let mut outs = Vec::new();
        for threads in [1, 2, 5] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.qcow2");
            let file = File::create(&path).unwrap();
            let opts = WriteOptions {
                threads,
                qcow2_compression: Some(compression),
                ..WriteOptions::default()
            };
            write_image(
                &disk,
                Format::Qcow2,
                Target::Seekable(&file),
                &opts,
                &|_| {},
            )
            .unwrap();
            outs.push(std::fs::read(&path).unwrap());
        }
        assert!(
            outs.windows(2).all(|w| w[0] == w[1]),
            "{compression:?}: output depends on the thread count"
        );
    }
}

#[test]
fn seekable_only_formats_refuse_streams() {
    let disk = MemDisk {
        data: vec![1; 4096],
        honest: true,
    };
    for (format, opts) in [
        (Format::Qcow2, WriteOptions::default()),
        (Format::Vhdx, WriteOptions::default()),
        (Format::Vhd, WriteOptions::default()),
        (
            Format::Vmdk,
            with(|o| o.vmdk_subformat = VmdkSubformat::MonolithicSparse),
        ),
    ] {
        let mut sink = Vec::new();
        let r = write_image(&disk, format, Target::Stream(&mut sink), &opts, &|_| {});
        assert!(
            matches!(r, Err(FormatError::Unsupported(_))),
            "{format}: {r:?}"
        );
    }
    for format in [Format::Qcow, Format::Qed, Format::Vdi, Format::Iso] {
        let mut sink = Vec::new();
        let r = write_image(
            &disk,
            format,
            Target::Stream(&mut sink),
            &WriteOptions::default(),
            &|_| {},
        );
        assert!(
            matches!(r, Err(FormatError::Unsupported(_))),
            "{format}: {r:?}"
        );
    }
}

#[test]
fn bad_options_are_refused() {
    let disk = MemDisk {
        data: vec![1; 4096],
        honest: true,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = File::create(dir.path().join("x")).unwrap();
    for opts in [
        with(|o| o.qcow2_cluster_size = 3000),
        with(|o| o.qcow2_cluster_size = 4 << 20),
    ] {
        assert!(write_image(
            &disk,
            Format::Qcow2,
            Target::Seekable(&file),
            &opts,
            &|_| {}
        )
        .is_err());
    }
    let opts = with(|o| o.vhdx_block_size = Some(3 << 20));
    assert!(write_image(&disk, Format::Vhdx, Target::Seekable(&file), &opts, &|_| {}).is_err());
}

/// A source whose reads fail after a while: the error comes back, no hang, no panic.
struct Failing(MemDisk);

impl DiskImage for Failing {
    fn format(&self) -> Format {
        Format::Raw
    }
    fn virtual_size(&self) -> u64 {
        self.0.virtual_size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> ims_formats::Result<()> {
        if offset >= 5 << 20 {
            return Err(FormatError::Corrupt("damaged source at 5 MiB".into()));
        }
        self.0.read_at(buf, offset)
    }
    fn block_status(&self, offset: u64, length: u64) -> ims_formats::Result<Vec<BlockExtent>> {
        self.0.block_status(offset, length)
    }
    fn details(&self) -> ImageDetails {
        ImageDetails::default()
    }
}

#[test]
fn source_errors_are_reported() {
    let src = Failing(MemDisk {
        data: vec![7; 16 << 20],
        honest: true,
    });
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let file = File::create(dir.path().join(case.name)).unwrap();
        let mut sink = Vec::new();
        let target = if case.stream {
            Target::Stream(&mut sink)
        } else {
            Target::Seekable(&file)
        };
        match write_image(&src, case.format, target, &case.opts, &|_| {}) {
            Err(FormatError::Corrupt(m)) => assert!(m.contains("5 MiB")),
            other => panic!("{}: {other:?}", case.name),
        }
    }
}

/// Opens a file with IMS's reader for `format`.
fn ims_open(path: &Path, format: Format) -> Box<dyn DiskImage> {
    let file = File::open(path).unwrap();
    ims_formats::open(
        std::sync::Arc::new(file),
        format,
        &ims_formats::Limits::default(),
    )
    .unwrap_or_else(|e| panic!("IMS cannot open {} as {format}: {e}", path.display()))
}

/// Converts `src` to `format` in memory (a stream) and opens the result.
fn via_stream(src: &dyn DiskImage, format: Format) -> Box<dyn DiskImage> {
    let mut bytes = Vec::new();
    write_image(
        src,
        format,
        Target::Stream(&mut bytes),
        &WriteOptions::default(),
        &|_| {},
    )
    .unwrap();
    let open = match format {
        Format::Zvhd => ims_formats::zvhd::open,
        _ => ims_formats::zvhd2::open,
    };
    open(std::sync::Arc::new(bytes), &ims_formats::Limits::default()).unwrap()
}

#[test]
fn qemu_images_round_trip_through_zvhd2_and_zvhd() {
    let dir = tempfile::tempdir().unwrap();
    let (_, raw) = source(dir.path(), (20 << 20) + 1536, 5, true);
    let inputs: &[(&str, &[&str], Format)] = &[
        ("raw", &[], Format::Raw),
        ("qcow2", &[], Format::Qcow2),
        (
            "qcow2",
            &["-c", "-o", "compression_type=zstd"],
            Format::Qcow2,
        ),
        ("qcow", &[], Format::Qcow),
        ("qed", &[], Format::Qed),
        ("vmdk", &[], Format::Vmdk),
        ("vmdk", &["-o", "subformat=streamOptimized"], Format::Vmdk),
        ("vpc", &[], Format::Vhd),
        ("vpc", &["-o", "subformat=fixed"], Format::Vhd),
        ("vhdx", &[], Format::Vhdx),
        ("vdi", &[], Format::Vdi),
    ];
    for (i, (qemu, extra, format)) in inputs.iter().enumerate() {
        let input = dir.path().join(format!("in{i}.{qemu}"));
        let mut args = vec!["convert", "-f", "raw", "-O", qemu];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[path_str(&raw), path_str(&input)]);
        let (ok, text) = qemu_img(&args);
        assert!(ok, "qemu-img {args:?}: {text}");
        let src = ims_open(&input, *format);
        let z2 = via_stream(src.as_ref(), Format::Zvhd2);
        let z1 = via_stream(z2.as_ref(), Format::Zvhd);
        let out = dir.path().join(format!("out{i}.qcow2"));
        let file = File::create(&out).unwrap();
        write_image(
            z1.as_ref(),
            Format::Qcow2,
            Target::Seekable(&file),
            &WriteOptions::default(),
            &|_| {},
        )
        .unwrap();
        let (ok, text) = qemu_img(&[
            "compare",
            "-f",
            "raw",
            path_str(&raw),
            "-F",
            "qcow2",
            path_str(&out),
        ]);
        assert!(
            ok && text.contains("Images are identical"),
            "{qemu} {extra:?} -> zvhd2 -> zvhd -> qcow2: {text}"
        );
    }
}

#[test]
fn ims_readers_read_what_ims_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, raw) = source(dir.path(), (12 << 20) + 512, 6, true);
    for case in cases() {
        let out = write_and_verify(dir.path(), &case, &disk, &raw);
        let img = ims_open(&out, case.format);
        assert_eq!(img.virtual_size(), disk.virtual_size(), "{}", case.name);
        let mut back = vec![0u8; disk.data.len()];
        img.read_at(&mut back, 0).unwrap();
        assert!(
            back == disk.data,
            "{}: IMS reads back different bytes",
            case.name
        );
        // And through ZVHD2, in memory.
        let z2 = via_stream(img.as_ref(), Format::Zvhd2);
        let mut again = vec![0u8; disk.data.len()];
        z2.read_at(&mut again, 0).unwrap();
        assert!(again == disk.data, "{} -> zvhd2 differs", case.name);
    }
}

#[test]
fn empty_and_all_zero_disks() {
    let dir = tempfile::tempdir().unwrap();
    // An all-zero disk: every writer stores no data, and qemu agrees it is all zeros.
    let (disk, raw) = source(dir.path(), 0, 0, true);
    let zero = MemDisk {
        data: vec![0; 4 << 20],
        honest: false,
    };
    std::fs::write(&raw, &zero.data).unwrap();
    for case in cases() {
        let out = write_and_verify(dir.path(), &case, &zero, &raw);
        let meta = std::fs::metadata(&out).unwrap();
        let stored = meta
            .len()
            .min(std::os::unix::fs::MetadataExt::blocks(&meta) * 512);
        if !case.name.starts_with("raw-stream") && !case.name.starts_with("vhd-fixed-stream") {
            assert!(
                stored < 1 << 20,
                "{}: {stored} bytes stored for an all-zero disk",
                case.name
            );
        }
    }
    // A zero-length disk: every writer succeeds (qemu has no use for such images, so no oracle).
    for case in cases() {
        let mut sink = Vec::new();
        let file = File::create(dir.path().join("empty")).unwrap();
        let target = if case.stream {
            Target::Stream(&mut sink)
        } else {
            Target::Seekable(&file)
        };
        write_image(&disk, case.format, target, &case.opts, &|_| {})
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}
