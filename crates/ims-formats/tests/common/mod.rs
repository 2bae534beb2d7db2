//! Helpers shared by the integration tests: a scratch directory, qemu-img / qemu-io as the oracle,
//! patterned guest writes, and the checks every reader must pass.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ims_formats::{BlockStatus, DiskImage, ReadAt};
use rand::{Rng, SeedableRng};

/// A temporary directory deleted at drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs a command, panicking with its stderr when it fails; returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn qemu_img(args: &[&str]) -> String {
    run("qemu-img", args)
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Runs qemu-io commands (`write -P 0x11 0 4096`, ...) on an image.
pub fn qemu_io(fmt: &str, file: &Path, cmds: &[String]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.push("-c");
        args.push(c);
    }
    args.push(p(file));
    run("qemu-io", &args);
}

/// qemu-img's view of the virtual size.
pub fn qemu_virtual_size(file: &Path, fmt: &str) -> u64 {
    let json = qemu_img(&["info", "--output=json", "-f", fmt, p(file)]);
    // The image's own virtual-size is the last one (children come first).
    let at = json.rfind("\"virtual-size\":").expect("virtual-size in qemu-img info");
    json[at + 15..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .expect("virtual-size number")
}

/// The guest disk as qemu reads it.
pub fn qemu_to_raw(scratch: &Scratch, file: &Path, fmt: &str) -> Vec<u8> {
    let out = scratch.path("oracle.raw");
    qemu_img(&["convert", "-f", fmt, "-O", "raw", p(file), p(&out)]);
    let data = std::fs::read(&out).expect("read oracle");
    std::fs::remove_file(&out).ok();
    data
}

pub fn open_file(path: &Path) -> Arc<dyn ReadAt> {
    Arc::new(File::open(path).expect("open image"))
}

/// One guest write: `len` bytes of `pattern` at `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Write {
    pub offset: u64,
    pub len: u64,
    pub pattern: u8,
}

impl Write {
    pub fn qemu_io(&self) -> String {
        format!("write -P {:#04x} {} {}", self.pattern, self.offset, self.len)
    }
}

/// Writes scattered over a disk of `size` bytes (at least 8 MiB): aligned, unaligned, spanning
/// clusters and blocks, and the last bytes of the disk.
pub fn scattered_writes(size: u64) -> Vec<Write> {
    assert!(size >= 8 << 20);
    vec![
        Write {
            offset: 0,
            len: 4096,
            pattern: 0x11,
        },
        Write {
            offset: 65536 + 512,
            len: 1000,
            pattern: 0x22,
        },
        Write {
            offset: (1 << 20) - 700,
            len: 1400,
            pattern: 0x33,
        },
        Write {
            offset: (3 << 20) + 12345,
            len: (2 << 20) + 77,
            pattern: 0x44,
        },
        Write {
            offset: size / 2 + 3,
            len: 513,
            pattern: 0x55,
        },
        Write {
            offset: size - 100,
            len: 100,
            pattern: 0x66,
        },
    ]
}

/// Applies `writes` to a zeroed buffer of `size` bytes.
pub fn apply(size: u64, writes: &[Write]) -> Vec<u8> {
    let mut v = vec![0u8; size as usize];
    for w in writes {
        v[w.offset as usize..(w.offset + w.len) as usize].fill(w.pattern);
    }
    v
}

/// Writes a raw file of `size` bytes holding `writes`.
pub fn make_raw(path: &Path, size: u64, writes: &[Write]) {
    let f = File::create(path).expect("create raw");
    f.set_len(size).expect("size raw");
    for w in writes {
        std::os::unix::fs::FileExt::write_all_at(&f, &vec![w.pattern; w.len as usize], w.offset).expect("write raw");
    }
}

/// Asserts two byte strings are equal, naming the first difference instead of dumping them.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    if got == want {
        return;
    }
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i:#x}: got {:#04x}, want {:#04x}",
            got[i], want[i]
        );
    }
}

/// The checks every reader must pass against the guest disk `expected` (as qemu reads it):
/// full and random reads equal, block status covers exactly and never calls data empty.
pub fn check_image(name: &str, img: &dyn DiskImage, expected: &[u8]) {
    let size = expected.len() as u64;
    assert_eq!(img.virtual_size(), size, "{name}: virtual size");

    let mut all = vec![0xA5u8; expected.len()];
    img.read_at(&mut all, 0)
        .unwrap_or_else(|e| panic!("{name}: full read: {e}"));
    assert_same(&format!("{name}: full read"), &all, expected);

    let mut rng = rand::rngs::StdRng::seed_from_u64(size ^ 0x5eed);
    for _ in 0..100 {
        let off = rng.gen_range(0..size);
        let len = rng.gen_range(0..=(size - off).min(300 * 1024));
        let mut buf = vec![0xA5u8; len as usize];
        img.read_at(&mut buf, off)
            .unwrap_or_else(|e| panic!("{name}: read {len} at {off}: {e}"));
        assert_same(
            &format!("{name}: read {len} at {off}"),
            &buf,
            &expected[off as usize..(off + len) as usize],
        );
    }
    let mut one = [0u8; 1];
    assert!(
        img.read_at(&mut one, size).is_err(),
        "{name}: read past the end succeeded"
    );
    assert!(
        img.read_at(&mut [], size).is_ok(),
        "{name}: empty read at the end failed"
    );

    check_status(name, img, expected, 0, size);
    for _ in 0..30 {
        let off = rng.gen_range(0..size);
        let len = rng.gen_range(0..=(size - off));
        check_status(name, img, expected, off, len);
    }
}

fn check_status(name: &str, img: &dyn DiskImage, expected: &[u8], offset: u64, length: u64) {
    let extents = img
        .block_status(offset, length)
        .unwrap_or_else(|e| panic!("{name}: block_status: {e}"));
    let mut pos = offset;
    for e in &extents {
        assert_eq!(e.offset, pos, "{name}: extents not contiguous at {pos}");
        assert!(e.length > 0, "{name}: empty extent at {pos}");
        if e.status != BlockStatus::Data {
            let bytes = &expected[e.offset as usize..(e.offset + e.length) as usize];
            if !is_zero(bytes) {
                let i = bytes.iter().position(|&b| b != 0).unwrap_or(0);
                panic!(
                    "{name}: {:?} extent {e:?} holds data at {:#x}",
                    e.status,
                    e.offset + i as u64
                );
            }
        }
        pos += e.length;
    }
    assert_eq!(
        pos,
        offset + length,
        "{name}: extents do not cover [{offset}, +{length})"
    );
}

/// True when `bytes` are all zero (compared with memcmp, fast in debug builds too).
pub fn is_zero(bytes: &[u8]) -> bool {
    static ZEROS: [u8; 65536] = [0; 65536];
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// The statuses of `[offset, offset + length)` (for asserting zero and unallocated regions).
pub fn statuses(img: &dyn DiskImage, offset: u64, length: u64) -> Vec<BlockStatus> {
    img.block_status(offset, length)
        .expect("block_status")
        .iter()
        .map(|e| e.status)
        .collect()
}

/// Builds one VHDX log entry (MS-VHDX 2.3.1) at sequence `seq`, whose tail is itself (`tail`),
/// writing the 4 KiB `sectors` and zeroing the `zeros` ranges.
pub fn vhdx_log_entry(
    log_guid: &[u8; 16],
    seq: u64,
    tail: u32,
    sectors: &[(u64, [u8; 4096])],
    zeros: &[(u64, u64)],
    file_size: u64,
) -> Vec<u8> {
    let count = (sectors.len() + zeros.len()) as u64;
    let desc_sectors = (count + 2).div_ceil(128);
    let total = (desc_sectors + sectors.len() as u64) * 4096;
    let mut b = vec![0u8; total as usize];
    b[0..4].copy_from_slice(b"loge");
    b[8..12].copy_from_slice(&(total as u32).to_le_bytes());
    b[12..16].copy_from_slice(&tail.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    b[24..28].copy_from_slice(&(count as u32).to_le_bytes());
    b[32..48].copy_from_slice(log_guid);
    b[48..56].copy_from_slice(&file_size.to_le_bytes());
    b[56..64].copy_from_slice(&file_size.to_le_bytes());
    let mut d = 0usize;
    for (i, (off, data)) in sectors.iter().enumerate() {
        let at = 64 + d * 32;
        b[at..at + 4].copy_from_slice(b"desc");
        b[at + 4..at + 8].copy_from_slice(&data[4092..]);
        b[at + 8..at + 16].copy_from_slice(&data[..8]);
        b[at + 16..at + 24].copy_from_slice(&off.to_le_bytes());
        b[at + 24..at + 32].copy_from_slice(&seq.to_le_bytes());
        let ds = (desc_sectors as usize + i) * 4096;
        b[ds..ds + 4].copy_from_slice(b"data");
        b[ds + 4..ds + 8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
        b[ds + 8..ds + 4092].copy_from_slice(&data[8..4092]);
        b[ds + 4092..ds + 4096].copy_from_slice(&(seq as u32).to_le_bytes());
        d += 1;
    }
    for (off, len) in zeros {
        let at = 64 + d * 32;
        b[at..at + 4].copy_from_slice(b"zero");
        b[at + 8..at + 16].copy_from_slice(&len.to_le_bytes());
        b[at + 16..at + 24].copy_from_slice(&off.to_le_bytes());
        b[at + 24..at + 32].copy_from_slice(&seq.to_le_bytes());
        d += 1;
    }
    let c = ims_formats::vhdx::checksum(&b);
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

/// Location of the current VHDX header (the valid one with the higher sequence number).
pub fn vhdx_current_header(file: &[u8]) -> (usize, ims_formats::vhdx::Header) {
    use ims_formats::vhdx::{parse_header, HEADER1_OFFSET, HEADER2_OFFSET};
    let h1 = parse_header(&file[HEADER1_OFFSET as usize..][..4096]);
    let h2 = parse_header(&file[HEADER2_OFFSET as usize..][..4096]);
    match (h1, h2) {
        (Ok(a), Ok(b)) if b.sequence_number > a.sequence_number => (HEADER2_OFFSET as usize, b),
        (Ok(a), _) => (HEADER1_OFFSET as usize, a),
        (_, Ok(b)) => (HEADER2_OFFSET as usize, b),
        _ => panic!("no valid vhdx header"),
    }
}

/// Re-checksums the VHDX structure of `len` bytes at `at` (checksum at offset 4).
pub fn vhdx_fix_checksum(file: &mut [u8], at: usize, len: usize) {
    file[at + 4..at + 8].fill(0);
    let c = ims_formats::vhdx::checksum(&file[at..at + len]);
    file[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
}

/// File offset of the BAT and of the metadata region of a VHDX file.
pub fn vhdx_regions(file: &[u8]) -> (u64, u64) {
    use ims_formats::vhdx::{parse_region_table, REGION_BAT, REGION_METADATA, REGION_TABLE1_OFFSET};
    let regions = parse_region_table(&file[REGION_TABLE1_OFFSET as usize..][..65536]).expect("region table");
    let find = |g| regions.iter().find(|r| r.guid == g).expect("region").file_offset;
    (find(REGION_BAT), find(REGION_METADATA))
}
