//! `ims img ...` end to end: the built binary against qemu-img / qemu-io as the oracle.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const MIB: u64 = 1 << 20;

fn ims(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ims"))
        .args(args)
        .output()
        .expect("run ims")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs ims and asserts success; returns stdout.
fn ims_ok(args: &[&str]) -> String {
    let o = ims(args);
    assert!(
        o.status.success(),
        "ims {args:?} failed ({:?}): {}",
        o.status.code(),
        text(&o)
    );
    stdout(&o)
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(o.status.success(), "{cmd} {args:?} failed: {}", text(&o));
    stdout(&o)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().expect("tempdir"))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Patterns at scattered offsets (some unaligned, one across a 2 MiB boundary, a zeroed range, one
/// at the end), those that fit in a disk of `size` bytes.
fn pattern_cmds(size: u64) -> Vec<String> {
    let writes: [(Option<u8>, u64, u64); 8] = [
        (Some(0xab), 0, 64 << 10),
        (Some(0x11), MIB, MIB),
        (Some(0x22), 2 * MIB - 4096, 8192),
        (Some(0x33), 7 * MIB + 1536, 512),
        (Some(0x44), 13 * MIB, 192 << 10),
        (None, 20 * MIB, MIB),
        (Some(0x55), 21 * MIB, 4096),
        (Some(0x66), size - (64 << 10), 64 << 10),
    ];
    writes
        .iter()
        .filter(|(_, off, len)| off + len <= size)
        .map(|(pat, off, len)| match pat {
            Some(p) => format!("write -P {p:#x} {off} {len}"),
            None => format!("write -z {off} {len}"),
        })
        .collect()
}

/// A `fmt` image of `size` bytes made by qemu-img with the patterns written by qemu-io.
fn qemu_image(s: &Scratch, name: &str, fmt: &str, size: u64, opts: &[&str]) -> PathBuf {
    let path = s.path(name);
    let size_arg = size.to_string();
    let mut args = vec!["create", "-q", "-f", fmt];
    for o in opts {
        args.extend(["-o", o]);
    }
    args.extend([p(&path), size_arg.as_str()]);
    run_ok("qemu-img", &args);
    // VHD sizes are rounded to a CHS geometry: write the last pattern at the real end.
    let info = json(&run_ok(
        "qemu-img",
        &["info", "--output=json", "-f", fmt, p(&path)],
    ));
    let cmds = pattern_cmds(info["virtual-size"].as_u64().expect("virtual-size"));
    let mut args = vec!["-f", fmt];
    for c in &cmds {
        args.extend(["-c", c.as_str()]);
    }
    args.push(p(&path));
    run_ok("qemu-io", &args);
    path
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// qemu-img's format name for one of ours.
fn qemu_name(fmt: &str) -> &str {
    if fmt == "vhd" {
        "vpc"
    } else {
        fmt
    }
}

fn qemu_compare(a: &Path, afmt: &str, b: &Path, bfmt: &str) {
    let o = run("qemu-img", &["compare", "-f", afmt, "-F", bfmt, p(a), p(b)]);
    assert!(
        o.status.success(),
        "qemu-img compare {} {}: {}",
        a.display(),
        b.display(),
        text(&o)
    );
    assert!(stdout(&o).contains("Images are identical."));
}

#[test]
fn info_agrees_with_qemu_img() {
    let s = Scratch::new();
    let size = 48 * MIB;
    for fmt in ["raw", "qcow2", "qcow", "qed", "vmdk", "vpc", "vhdx", "vdi"] {
        let img = qemu_image(&s, &format!("i.{fmt}"), fmt, size, &[]);
        let ours = json(&ims_ok(&["img", "info", "--output", "json", p(&img)]));
        let theirs = json(&run_ok(
            "qemu-img",
            &["info", "--output=json", "-f", fmt, p(&img)],
        ));
        assert_eq!(
            qemu_name(ours["format"].as_str().unwrap()),
            theirs["format"].as_str().unwrap(),
            "{fmt}"
        );
        assert_eq!(ours["virtual-size"], theirs["virtual-size"], "{fmt}");
        assert_eq!(ours["actual-size"], theirs["actual-size"], "{fmt}");
        assert_eq!(ours["safe"], Value::Bool(true), "{fmt}: {ours}");
        assert_eq!(ours["refusal"], Value::Null, "{fmt}");
        assert_eq!(ours["filename"].as_str(), Some(p(&img)));
        if let Some(c) = theirs.get("cluster-size") {
            assert_eq!(&ours["cluster-size"], c, "{fmt}");
        }
        assert!(ours["features"].is_object(), "{fmt}");
        // The declared format is accepted under qemu's name and checked.
        let declared = json(&ims_ok(&[
            "img",
            "info",
            "-f",
            fmt,
            "--output",
            "json",
            p(&img),
        ]));
        assert_eq!(declared["safe"], Value::Bool(true), "{fmt}: {declared}");
        // Human output.
        let human = ims_ok(&["img", "info", p(&img)]);
        assert!(human.contains("virtual size: "), "{human}");
        assert!(human.contains("safety: safe"), "{human}");
    }
    // A declared format the content does not match is refused, with exit code 0.
    let q = s.path("i.qcow2");
    let r = json(&ims_ok(&[
        "img",
        "info",
        "-f",
        "raw",
        "--output",
        "json",
        p(&q),
    ]));
    assert_eq!(r["safe"], Value::Bool(false));
    assert_eq!(r["refusal"], "image content is qcow2, not the declared raw");
}

#[test]
fn info_refuses_a_backing_file() {
    let s = Scratch::new();
    let base = qemu_image(&s, "base.qcow2", "qcow2", 16 * MIB, &[]);
    let top = s.path("top.qcow2");
    run_ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            p(&base),
            "-F",
            "qcow2",
            p(&top),
        ],
    );
    let o = ims(&["img", "info", "--output", "json", p(&top)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["safe"], Value::Bool(false));
    let refusal = v["refusal"].as_str().unwrap();
    assert!(refusal.contains("backing file"), "{refusal}");
    assert_eq!(v["format"], "qcow2");
    assert_eq!(v["virtual-size"], 16 * MIB);
    assert_eq!(v["backing-filename"].as_str(), Some(p(&base)));
    let human = ims_ok(&["img", "info", p(&top)]);
    assert!(
        human.contains("safety: refused: qcow2: backing file"),
        "{human}"
    );

    // Converting it is refused, and no destination is created.
    let dst = s.path("out.raw");
    let o = ims(&["img", "convert", "-O", "raw", p(&top), p(&dst)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("backing file"), "{}", text(&o));
    assert!(!dst.exists());
    // So is a source whose content is not the declared format.
    let o = ims(&[
        "img",
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        p(&base),
        p(&dst),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("image content is qcow2, not the declared raw"),
        "{}",
        text(&o)
    );
    assert!(!dst.exists());
}

#[test]
fn convert_to_every_output_format() {
    let s = Scratch::new();
    let size = 64 * MIB;
    let src = qemu_image(&s, "src.qcow2", "qcow2", size, &[]);
    // (name, ims -O, extra ims args, qemu format to compare as, qemu-img check supports it)
    let cases: [(&str, &str, &[&str], &str, bool); 12] = [
        ("raw", "raw", &[], "raw", false),
        ("qcow2", "qcow2", &[], "qcow2", true),
        ("qcow2-zlib", "qcow2", &["-c"], "qcow2", true),
        (
            "qcow2-zstd",
            "qcow2",
            &["-c", "-o", "compression_type=zstd"],
            "qcow2",
            true,
        ),
        (
            "qcow2-4k",
            "qcow2",
            &["-o", "cluster_size=4k"],
            "qcow2",
            true,
        ),
        (
            "vmdk-stream",
            "vmdk",
            &["-o", "subformat=streamOptimized"],
            "vmdk",
            true,
        ),
        (
            "vmdk-sparse",
            "vmdk",
            &["-o", "subformat=monolithicSparse"],
            "vmdk",
            true,
        ),
        (
            "vpc-dynamic",
            "vpc",
            &["-o", "subformat=dynamic"],
            "vpc",
            false,
        ),
        ("vhd-fixed", "vhd", &["-o", "subformat=fixed"], "vpc", false),
        ("vhdx", "vhdx", &[], "vhdx", true),
        ("zvhd", "zvhd", &[], "", false),
        ("zvhd2", "zvhd2", &["-o", "block_size=256k"], "", false),
    ];
    for (name, fmt, extra, qfmt, qcheck) in cases {
        let dst = s.path(&format!("out.{name}"));
        let mut args = vec!["img", "convert", "-f", "qcow2", "-O", fmt, "-t", "2"];
        args.extend(extra);
        args.extend([p(&src), p(&dst)]);
        let o = ims(&args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert!(
            o.stdout.is_empty(),
            "{name}: convert prints nothing on stdout"
        );
        if qfmt.is_empty() {
            // Our own formats: back to raw with ims, then the oracle.
            let back = s.path(&format!("back.{name}.raw"));
            ims_ok(&["img", "convert", "-O", "raw", p(&dst), p(&back)]);
            qemu_compare(&src, "qcow2", &back, "raw");
            let info = json(&ims_ok(&["img", "info", "--output", "json", p(&dst)]));
            assert_eq!(info["format"], fmt);
            assert_eq!(info["virtual-size"], size);
        } else {
            qemu_compare(&src, "qcow2", &dst, qfmt);
            if qcheck {
                run_ok("qemu-img", &["check", "-q", "-f", qfmt, p(&dst)]);
            }
        }
        // Our own check and compare agree.
        assert!(
            ims_ok(&["img", "check", p(&dst)]).contains("No errors were found on the image."),
            "{name}"
        );
        assert!(
            ims_ok(&["img", "compare", p(&src), p(&dst)]).contains("Images are identical."),
            "{name}"
        );
        // The bytes written say what was asked.
        let qinfo = |f: &str| {
            json(&run_ok(
                "qemu-img",
                &["info", "--output=json", "-f", f, p(&dst)],
            ))
        };
        match name {
            "qcow2-zstd" => {
                assert_eq!(
                    qinfo("qcow2")["format-specific"]["data"]["compression-type"],
                    "zstd"
                );
            }
            "qcow2-4k" => assert_eq!(qinfo("qcow2")["cluster-size"], 4096),
            "vmdk-stream" | "vmdk-sparse" => {
                let want = if name == "vmdk-stream" {
                    "streamOptimized"
                } else {
                    "monolithicSparse"
                };
                assert_eq!(
                    qinfo("vmdk")["format-specific"]["data"]["create-type"],
                    want
                );
            }
            "vhd-fixed" => {
                let len = std::fs::metadata(&dst).unwrap().len();
                assert_eq!(len, size + 512, "a fixed VHD is the disk and a footer");
            }
            _ => {}
        }
    }
    // Compression really compresses: the zlib output is smaller than the plain one.
    let plain = std::fs::metadata(s.path("out.qcow2")).unwrap().len();
    let zlib = std::fs::metadata(s.path("out.qcow2-zlib")).unwrap().len();
    assert!(zlib < plain, "zlib {zlib} vs plain {plain}");
    // -c on a format without compression is an error.
    let o = ims(&[
        "img",
        "convert",
        "-c",
        "-O",
        "raw",
        p(&src),
        p(&s.path("x.raw")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // An unknown -o option is an error.
    let o = ims(&[
        "img",
        "convert",
        "-O",
        "qcow2",
        "-o",
        "bogus=1",
        p(&src),
        p(&s.path("x.qcow2")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!s.path("x.qcow2").exists());
    // The source cannot be its own destination.
    let o = ims(&["img", "convert", "-O", "qcow2", p(&src), p(&src)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    qemu_compare(&src, "qcow2", &s.path("out.raw"), "raw");
}

#[test]
fn convert_progress_goes_to_stderr() {
    let s = Scratch::new();
    let src = qemu_image(&s, "src.qcow2", "qcow2", 8 * MIB, &[]);
    let dst = s.path("dst.vhdx");
    let o = ims(&["img", "convert", "-p", "-O", "vhdx", p(&src), p(&dst)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("100%"), "{err}");
    qemu_compare(&src, "qcow2", &dst, "vhdx");
}

/// Host offset of the first L2 entry of `file` (a qcow2 image with one L2 table in use) for which
/// `pick(entry)` holds, with the entry and its position.
fn qcow2_l2_entry(data: &[u8], pick: impl Fn(u64) -> bool) -> (usize, u64) {
    let be64 = |at: usize| u64::from_be_bytes(data[at..at + 8].try_into().unwrap());
    let cluster_bits = u32::from_be_bytes(data[20..24].try_into().unwrap());
    let l1 = be64(40) as usize;
    let l2 = (be64(l1) & 0x00ff_ffff_ffff_fe00) as usize;
    assert_ne!(l2, 0, "L1 entry 0 has an L2 table");
    let entries = 1usize << (cluster_bits - 3);
    (0..entries)
        .map(|i| (l2 + 8 * i, be64(l2 + 8 * i)))
        .find(|&(_, e)| pick(e))
        .expect("an L2 entry")
}

#[test]
fn check_finds_corruption() {
    let s = Scratch::new();
    let good = qemu_image(&s, "good.qcow2", "qcow2", 32 * MIB, &[]);
    let out = ims_ok(&["img", "check", p(&good)]);
    assert!(out.contains("No errors were found on the image."), "{out}");
    let v = json(&ims_ok(&["img", "check", "--output", "json", p(&good)]));
    assert_eq!(v["corruptions"], 0);
    assert_eq!(v["check-errors"], 0);
    assert_eq!(v["format"], "qcow2");

    // A compressed cluster whose deflate stream is damaged.
    let comp = s.path("comp.qcow2");
    run_ok(
        "qemu-img",
        &["convert", "-c", "-O", "qcow2", p(&good), p(&comp)],
    );
    assert!(ims_ok(&["img", "check", p(&comp)]).contains("No errors were found"));
    let mut data = std::fs::read(&comp).unwrap();
    let (_, entry) = qcow2_l2_entry(&data, |e| e & (1 << 62) != 0);
    let cluster_bits = u32::from_be_bytes(data[20..24].try_into().unwrap());
    let host = (entry & ((1u64 << (62 - (cluster_bits - 8))) - 1)) as usize;
    data[host..host + 16].fill(0xff);
    let bad1 = s.path("bad-compressed.qcow2");
    std::fs::write(&bad1, &data).unwrap();
    let o = ims(&["img", "check", p(&bad1)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("compressed cluster"), "{out}");
    assert!(out.contains("1 errors were found on the image."), "{out}");

    // A standard L2 entry pointing past the end of the file.
    let mut data = std::fs::read(&good).unwrap();
    let (at, _) = qcow2_l2_entry(&data, |e| e & 0x00ff_ffff_ffff_fe00 != 0);
    data[at..at + 8].copy_from_slice(&((1u64 << 63) | (1u64 << 40)).to_be_bytes());
    let bad2 = s.path("bad-l2.qcow2");
    std::fs::write(&bad2, &data).unwrap();
    let o = ims(&["img", "check", "--output", "json", p(&bad2)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v = json(&stdout(&o));
    // The read of the cluster fails, and the refcount check finds the reference past the end of
    // the file, the COPIED flag without a refcount, and the cluster the entry no longer uses.
    assert!(v["corruptions"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("past the end of the file")),
        "{v}"
    );
    // qemu-img agrees that both are damaged.
    assert_eq!(run("qemu-img", &["check", p(&bad2)]).status.code(), Some(2));

    // A file the reader cannot even open: corruption too.
    let mut data = std::fs::read(&good).unwrap();
    data.truncate(4096);
    let bad3 = s.path("truncated.qcow2");
    std::fs::write(&bad3, &data).unwrap();
    let o = ims(&["img", "check", p(&bad3)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A missing file: the check cannot be done.
    let o = ims(&["img", "check", p(&s.path("missing.qcow2"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn compare_reports_identical_and_first_mismatch() {
    let s = Scratch::new();
    let size = 32 * MIB;
    let a = qemu_image(&s, "a.qcow2", "qcow2", size, &[]);
    let b = s.path("b.vmdk");
    run_ok("qemu-img", &["convert", "-O", "vmdk", p(&a), p(&b)]);
    let o = ims(&["img", "compare", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stdout(&o), "Images are identical.\n");
    let o = ims(&["img", "compare", "-f", "qcow2", "-F", "vmdk", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Change one byte in a data region, then one in a region that is a hole in `a`.
    for (name, offset) in [("data", 13 * MIB + 4097), ("hole", 17 * MIB + 3)] {
        let raw = s.path(&format!("m-{name}.raw"));
        run_ok("qemu-img", &["convert", "-O", "raw", p(&a), p(&raw)]);
        run_ok(
            "qemu-io",
            &[
                "-f",
                "raw",
                "-c",
                &format!("write -P 0x99 {offset} 1"),
                p(&raw),
            ],
        );
        let want = format!("Content mismatch at offset {}!\n", offset / 512 * 512);
        let o = ims(&["img", "compare", p(&a), p(&raw)]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert_eq!(stdout(&o), want);
        let q = run("qemu-img", &["compare", p(&a), p(&raw)]);
        assert_eq!(stdout(&q), want, "qemu-img agrees");
        // Either order.
        let o = ims(&["img", "compare", p(&raw), p(&a)]);
        assert_eq!(stdout(&o), want);
    }

    // A longer disk is the same if its extra part is zero, different otherwise; -s is strict.
    let long = s.path("long.raw");
    run_ok("qemu-img", &["convert", "-O", "raw", p(&a), p(&long)]);
    run_ok(
        "qemu-img",
        &[
            "resize",
            "-q",
            "-f",
            "raw",
            p(&long),
            &(size + 8 * MIB).to_string(),
        ],
    );
    let o = ims(&["img", "compare", p(&a), p(&long)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "Warning: Image size mismatch!\nImages are identical.\n"
    );
    let o = ims(&["img", "compare", "-s", p(&a), p(&long)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    run_ok(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            &format!("write -P 1 {} 1", size + 5 * MIB + 600),
            p(&long),
        ],
    );
    let o = ims(&["img", "compare", p(&long), p(&a)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "Warning: Image size mismatch!\nContent mismatch at offset {}!\n",
            size + 5 * MIB + 512
        )
    );

    // Errors exit 2.
    let o = ims(&["img", "compare", p(&a), p(&s.path("missing"))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
