//! ZVHD and ZVHD2: round trips, random access that reads only what it needs, and refusal of
//! damaged files (never a panic).

use std::io;
use std::sync::{Arc, Mutex};

use ims_formats::{
    zvhd, zvhd2, BlockExtent, BlockStatus, DiskImage, Format, FormatError, ImageDetails, Limits,
    ReadAt,
};
use rand::{Rng, RngCore, SeedableRng};

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

/// A disk of `size` bytes with random, compressible and zero regions at scattered offsets.
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
                *b = b"IMS zvhd test pattern "[i % 22];
            }
        }
    };
    put(0, 4096, true);
    put(100_000, 5000, true);
    put(1 << 20, 2 << 20, false); // compressible
    put((3 << 20) + 17, 700_000, true); // random, crosses blocks
    put(size.saturating_sub(300), 300, true); // the very end
    d
}

fn write_zvhd(fmt: Format, disk: &MemDisk, opts: &zvhd::ZvhdOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let n = match fmt {
        Format::Zvhd => zvhd::write(disk, &mut out, opts).unwrap(),
        _ => zvhd2::write(disk, &mut out, opts).unwrap(),
    };
    assert_eq!(n, out.len() as u64);
    out
}

fn open(fmt: Format, file: Vec<u8>) -> ims_formats::Result<Box<dyn DiskImage>> {
    open_src(fmt, Arc::new(file))
}

fn open_src(fmt: Format, src: Arc<dyn ReadAt>) -> ims_formats::Result<Box<dyn DiskImage>> {
    match fmt {
        Format::Zvhd => zvhd::open(src, &Limits::default()),
        _ => zvhd2::open(src, &Limits::default()),
    }
}

fn read_all(img: &dyn DiskImage) -> Vec<u8> {
    let mut v = vec![0u8; img.virtual_size() as usize];
    img.read_at(&mut v, 0).unwrap();
    v
}

fn opts(block_size: u64) -> zvhd::ZvhdOptions {
    zvhd::ZvhdOptions {
        block_size,
        ..Default::default()
    }
}

#[test]
fn round_trips() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        for (size, block, honest, threads) in [
            (8 << 20, 1 << 20, true, 0),
            ((5 << 20) + 12345, 1 << 20, false, 1), // not a multiple of the block size
            ((4 << 20) + 1, 64 << 10, true, 3),
            (100, 4096, true, 2), // smaller than one block
        ] {
            let disk = MemDisk {
                data: pattern(size, size as u64),
                honest,
            };
            let file = write_zvhd(
                fmt,
                &disk,
                &zvhd::ZvhdOptions {
                    threads,
                    ..opts(block)
                },
            );
            assert!(probe(fmt, &file));
            let img = open(fmt, file).unwrap();
            assert_eq!(img.format(), fmt);
            assert_eq!(img.virtual_size(), size as u64);
            assert_eq!(
                read_all(img.as_ref()),
                disk.data,
                "{fmt} size {size} block {block}"
            );
            assert_eq!(img.details().cluster_size, Some(block));
            // Unaligned reads.
            let mut buf = vec![0u8; 70_000];
            let at = (size as u64).saturating_sub(70_000) / 3;
            if at as usize + buf.len() <= size {
                img.read_at(&mut buf, at).unwrap();
                assert_eq!(buf, disk.data[at as usize..at as usize + buf.len()]);
            }
            // Reads past the end fail.
            assert!(img.read_at(&mut [0u8; 2], size as u64 - 1).is_err());
        }
    }
}

fn probe(fmt: Format, file: &[u8]) -> bool {
    match fmt {
        Format::Zvhd => zvhd::probe(file) && !zvhd2::probe(file),
        _ => zvhd2::probe(file) && !zvhd::probe(file),
    }
}

#[test]
fn zero_runs_are_not_stored_and_report_unallocated() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        let mut data = vec![0u8; 16 << 20];
        data[(5 << 20) + 3] = 7; // one byte in block 5
        let disk = MemDisk {
            data,
            honest: false,
        }; // claims all data: zeros found by reading
        let file = write_zvhd(fmt, &disk, &opts(1 << 20));
        assert!(
            file.len() < 64 << 10,
            "{fmt}: {} bytes for one non-zero block",
            file.len()
        );
        let img = open(fmt, file).unwrap();
        assert_eq!(read_all(img.as_ref()), disk.data);
        let status = img.block_status(0, 16 << 20).unwrap();
        assert_eq!(
            status,
            vec![
                BlockExtent {
                    offset: 0,
                    length: 5 << 20,
                    status: BlockStatus::Unallocated
                },
                BlockExtent {
                    offset: 5 << 20,
                    length: 1 << 20,
                    status: BlockStatus::Data
                },
                BlockExtent {
                    offset: 6 << 20,
                    length: 10 << 20,
                    status: BlockStatus::Unallocated
                },
            ]
        );
        let part = img.block_status((5 << 20) + 10, 100).unwrap();
        assert_eq!(
            part,
            vec![BlockExtent {
                offset: (5 << 20) + 10,
                length: 100,
                status: BlockStatus::Data
            }]
        );
        assert!(img.block_status(15 << 20, 2 << 20).is_err());
    }
}

#[test]
fn empty_disks() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        for size in [0usize, 10 << 20] {
            let disk = MemDisk {
                data: vec![0; size],
                honest: true,
            };
            let file = write_zvhd(fmt, &disk, &opts(1 << 20));
            assert!(file.len() <= 64 + 64 + 40);
            let img = open(fmt, file).unwrap();
            assert_eq!(img.virtual_size(), size as u64);
            assert_eq!(read_all(img.as_ref()), disk.data);
            let status = img.block_status(0, size as u64).unwrap();
            if size > 0 {
                assert_eq!(
                    status,
                    vec![BlockExtent {
                        offset: 0,
                        length: size as u64,
                        status: BlockStatus::Unallocated
                    }]
                );
            } else {
                assert!(status.is_empty());
            }
        }
    }
}

#[test]
fn incompressible_blocks_are_stored_raw() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        let mut data = vec![0u8; 1 << 20];
        rand::rngs::StdRng::seed_from_u64(9).fill_bytes(&mut data);
        let disk = MemDisk { data, honest: true };
        let file = write_zvhd(fmt, &disk, &opts(256 << 10));
        assert!(
            file.len() < (1 << 20) + 4096,
            "{fmt}: random data grew to {}",
            file.len()
        );
        assert_eq!(read_all(open(fmt, file).unwrap().as_ref()), disk.data);
    }
}

/// A source that records every byte range read from it.
struct Counting {
    data: Vec<u8>,
    reads: Mutex<Vec<(u64, u64)>>,
}

impl ReadAt for Counting {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.data.as_slice().read_at(buf, offset)?;
        self.reads.lock().unwrap().push((offset, n as u64));
        Ok(n)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.data.len() as u64)
    }
}

#[test]
fn zvhd2_random_reads_touch_only_the_blocks_asked_for() {
    const BLOCK: u64 = 256 << 10;
    let mut data = vec![0u8; 8 << 20];
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    rng.fill_bytes(&mut data[..4 << 20]);
    for (i, b) in data[4 << 20..].iter_mut().enumerate() {
        *b = (i % 13) as u8 + 1;
    }
    let disk = MemDisk { data, honest: true };
    let file = write_zvhd(Format::Zvhd2, &disk, &opts(BLOCK));
    let file_len = file.len() as u64;
    let src = Arc::new(Counting {
        data: file,
        reads: Mutex::new(Vec::new()),
    });
    let img = zvhd2::open(src.clone(), &Limits::default()).unwrap();

    // Opening reads the header, the footer and the index: all outside the data area except the
    // header, and nothing in between.
    let opened: Vec<(u64, u64)> = std::mem::take(&mut *src.reads.lock().unwrap());
    let index_start = opened
        .iter()
        .map(|r| r.0)
        .filter(|&o| o > 0 && o < file_len - 64)
        .min()
        .unwrap();
    for &(off, len) in &opened {
        assert!(
            off == 0 && len <= 64 || off >= index_start,
            "open read {off}+{len} inside the data area"
        );
    }
    let blocks: Vec<(u64, u64)> = block_ranges(&src.data, file_len);

    for _ in 0..50 {
        let len = rng.gen_range(1..100_000u64);
        let at = rng.gen_range(0..disk.data.len() as u64 - len);
        let mut buf = vec![0u8; len as usize];
        img.read_at(&mut buf, at).unwrap();
        assert_eq!(buf, disk.data[at as usize..(at + len) as usize]);
        let reads = std::mem::take(&mut *src.reads.lock().unwrap());
        let first = at / BLOCK;
        let last = (at + len - 1) / BLOCK;
        for (off, n) in reads {
            let hit = blocks
                .iter()
                .position(|&(b_off, b_len)| off == b_off && n == b_len);
            let b = hit.unwrap_or_else(|| panic!("read {off}+{n} is not exactly one stored block"));
            assert!(
                (first..=last).contains(&(b as u64)),
                "read block {b} for a read of blocks {first}..={last}"
            );
        }
    }
}

/// The (offset, length) of each stored block of a ZVHD2 file, from its index, in block order.
fn block_ranges(file: &[u8], file_len: u64) -> Vec<(u64, u64)> {
    let footer = &file[file.len() - 64..];
    let index_at = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let count = u64::from_le_bytes(footer[24..32].try_into().unwrap()) as usize;
    assert!(index_at as u64 <= file_len);
    (0..count)
        .map(|i| {
            let e = &file[index_at + 32 * i..index_at + 32 * (i + 1)];
            let off = u64::from_le_bytes(e[8..16].try_into().unwrap());
            let len = u64::from(u32::from_le_bytes(e[16..20].try_into().unwrap()));
            (off, len)
        })
        .collect()
}

fn sample(fmt: Format) -> (MemDisk, Vec<u8>) {
    let disk = MemDisk {
        data: pattern(3 << 20, 77),
        honest: true,
    };
    let file = write_zvhd(fmt, &disk, &opts(256 << 10));
    (disk, file)
}

/// Opens `file` and, if that works, reads the whole disk: the first error, if any.
fn open_and_read(fmt: Format, file: Vec<u8>) -> Option<FormatError> {
    let img = match open(fmt, file) {
        Ok(img) => img,
        Err(e) => return Some(e),
    };
    let mut buf = vec![0u8; img.virtual_size() as usize];
    img.read_at(&mut buf, 0).err()
}

fn expect_corrupt(fmt: Format, file: Vec<u8>, words: &str) {
    match open_and_read(fmt, file) {
        Some(FormatError::Corrupt(msg)) => assert!(
            msg.contains(words),
            "{fmt}: {msg:?} should mention {words:?}"
        ),
        other => panic!("{fmt}: expected a Corrupt error mentioning {words:?}, got {other:?}"),
    }
}

fn put_u32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_magic_and_header_damage_are_refused() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        let (_, mut file) = sample(fmt);
        file[0] = b'X';
        expect_corrupt(fmt, file, "magic");
        let (_, mut file) = sample(fmt);
        file[30] ^= 1; // virtual size
        expect_corrupt(fmt, file, "header checksum");
        // Another major version, with a valid checksum: refused as unsupported.
        let (_, mut file) = sample(fmt);
        file[8] = 9;
        let crc = crc32fast::hash(&[&file[..60], &[0u8; 4][..]].concat());
        put_u32(&mut file, 60, crc);
        assert!(
            matches!(open(fmt, file), Err(FormatError::Unsupported(m)) if m.contains("major version 9"))
        );
        // Unknown required flag.
        let (_, mut file) = sample(fmt);
        put_u32(&mut file, 16, 1 << 5);
        let crc = crc32fast::hash(&[&file[..60], &[0u8; 4][..]].concat());
        put_u32(&mut file, 60, crc);
        assert!(
            matches!(open(fmt, file), Err(FormatError::Unsupported(m)) if m.contains("required"))
        );
        // The other format's reader refuses it.
        let (_, file) = sample(fmt);
        let other = if fmt == Format::Zvhd {
            Format::Zvhd2
        } else {
            Format::Zvhd
        };
        assert!(open(other, file).is_err());
    }
}

#[test]
fn truncated_files_are_refused() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        let (_, file) = sample(fmt);
        for cut in [
            0,
            10,
            63,
            64,
            100,
            file.len() / 2,
            file.len() - 41,
            file.len() - 1,
        ] {
            let what = open_and_read(fmt, file[..cut].to_vec());
            assert!(
                matches!(what, Some(FormatError::Corrupt(_))),
                "{fmt} cut at {cut}: {what:?}"
            );
        }
        // Trailing garbage too.
        let mut longer = file.clone();
        longer.extend_from_slice(&[0u8; 10]);
        assert!(matches!(
            open_and_read(fmt, longer),
            Some(FormatError::Corrupt(_))
        ));
    }
}

#[test]
fn damaged_payloads_fail_their_checksum() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        // Flip one byte inside the compressible region's payload: a checksum or decompression error,
        // reported as corruption, never wrong data.
        let (_, file) = sample(fmt);
        let mut seen_error = 0;
        for at in (200..file.len() - 200).step_by(997) {
            let mut bad = file.clone();
            bad[at] ^= 0x40;
            match open_and_read(fmt, bad) {
                Some(FormatError::Corrupt(_)) => seen_error += 1,
                None => panic!("{fmt}: byte {at} flipped and the disk still read fine"),
                Some(other) => panic!("{fmt}: unexpected error {other:?}"),
            }
        }
        assert!(seen_error > 0);
    }
}

/// Rewrites a ZVHD2 file's index entry `i` with `edit`, fixing the index and footer checksums so
/// that only the semantic checks can catch it.
fn edit_index(file: &mut [u8], i: usize, edit: impl Fn(&mut [u8])) {
    let n = file.len();
    let index_at = u64::from_le_bytes(file[n - 56..n - 48].try_into().unwrap()) as usize;
    let index_len = u64::from_le_bytes(file[n - 48..n - 40].try_into().unwrap()) as usize;
    edit(&mut file[index_at + 32 * i..index_at + 32 * (i + 1)]);
    let crc = crc32fast::hash(&file[index_at..index_at + index_len]);
    file[n - 20..n - 16].copy_from_slice(&crc.to_le_bytes());
    let fcrc = crc32fast::hash(&file[n - 64..n - 4]);
    file[n - 4..].copy_from_slice(&fcrc.to_le_bytes());
}

#[test]
fn zvhd2_index_lies_are_refused() {
    let (_, file) = sample(Format::Zvhd2);
    // Index checksum.
    let mut bad = file.clone();
    let n = bad.len();
    bad[n - 100] ^= 1;
    expect_corrupt(Format::Zvhd2, bad, "index checksum");
    // Footer checksum.
    let mut bad = file.clone();
    bad[n - 30] ^= 1;
    expect_corrupt(Format::Zvhd2, bad, "footer checksum");
    // An offset past the end of the file.
    let mut bad = file.clone();
    edit_index(&mut bad, 0, |e| {
        e[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes())
    });
    expect_corrupt(Format::Zvhd2, bad, "outside the data area");
    // Overlapping payloads.
    let mut bad = file.clone();
    edit_index(&mut bad, 1, |e| {
        e[8..16].copy_from_slice(&64u64.to_le_bytes())
    });
    expect_corrupt(Format::Zvhd2, bad, "overlaps");
    // Blocks out of order.
    let mut bad = file.clone();
    edit_index(&mut bad, 1, |e| {
        e[0..8].copy_from_slice(&0u64.to_le_bytes())
    });
    expect_corrupt(Format::Zvhd2, bad, "increasing order");
    // A wrong uncompressed length.
    let mut bad = file.clone();
    edit_index(&mut bad, 0, |e| {
        e[20..24].copy_from_slice(&1000u32.to_le_bytes())
    });
    expect_corrupt(Format::Zvhd2, bad, "uncompressed length");
    // A compressed length longer than the block.
    let mut bad = file.clone();
    edit_index(&mut bad, 0, |e| {
        e[16..20].copy_from_slice(&(1u32 << 30).to_le_bytes())
    });
    expect_corrupt(Format::Zvhd2, bad, "compressed length");
    // A shorter compressed length: the frame no longer decodes to the exact block length.
    let mut bad = file.clone();
    edit_index(&mut bad, 1, |e| {
        let len = u32::from_le_bytes(e[16..20].try_into().unwrap());
        e[16..20].copy_from_slice(&(len - 5).to_le_bytes());
    });
    expect_corrupt(Format::Zvhd2, bad, "file offset");
    // Unknown entry flags.
    let mut bad = file.clone();
    edit_index(&mut bad, 0, |e| {
        e[24..28].copy_from_slice(&8u32.to_le_bytes())
    });
    expect_corrupt(Format::Zvhd2, bad, "unknown flags");
}

#[test]
fn zvhd_record_lies_are_refused() {
    let (_, file) = sample(Format::Zvhd);
    // The first record header starts at 64.
    let mut bad = file.clone();
    bad[64 + 10] ^= 1;
    expect_corrupt(Format::Zvhd, bad, "checksum");
    // A record whose length runs past the end, with its header checksum fixed.
    let mut bad = file.clone();
    put_u32(&mut bad, 64 + 16, 1 << 30);
    let crc = crc32fast::hash(&bad[64..64 + 28]);
    put_u32(&mut bad, 64 + 28, crc);
    let err = open_and_read(Format::Zvhd, bad);
    assert!(matches!(err, Some(FormatError::Corrupt(_))), "{err:?}");
    // A wrong decompressed length (block 0 claims fewer bytes).
    let mut bad = file.clone();
    put_u32(&mut bad, 64 + 20, 1000);
    let crc = crc32fast::hash(&bad[64..64 + 28]);
    put_u32(&mut bad, 64 + 28, crc);
    expect_corrupt(Format::Zvhd, bad, "uncompressed length");
    // Trailer damage.
    let mut bad = file.clone();
    let n = bad.len();
    bad[n - 30] ^= 1;
    expect_corrupt(Format::Zvhd, bad, "trailer");
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1234);
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        let (_, file) = sample(fmt);
        for _ in 0..300 {
            let mut bad = file.clone();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..bad.len());
                bad[at] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                bad.truncate(rng.gen_range(0..bad.len()));
            }
            let _ = open_and_read(fmt, bad);
        }
        for len in [0usize, 1, 8, 64, 128, 200] {
            let mut junk = vec![0u8; len];
            rng.fill_bytes(&mut junk);
            if len >= 8 {
                junk[..8].copy_from_slice(if fmt == Format::Zvhd {
                    zvhd::MAGIC
                } else {
                    zvhd2::MAGIC
                });
            }
            assert!(open(fmt, junk).is_err());
        }
    }
}

#[test]
fn limits_are_enforced() {
    for fmt in [Format::Zvhd, Format::Zvhd2] {
        let (_, file) = sample(fmt);
        let tiny = Limits {
            max_virtual_size: 1 << 20,
            ..Limits::default()
        };
        let r = match fmt {
            Format::Zvhd => zvhd::open(Arc::new(file.clone()), &tiny),
            _ => zvhd2::open(Arc::new(file.clone()), &tiny),
        };
        assert!(matches!(r, Err(FormatError::Unsupported(_))));
        let small_table = Limits {
            max_table_bytes: 64,
            ..Limits::default()
        };
        let r = match fmt {
            Format::Zvhd => zvhd::open(Arc::new(file), &small_table),
            _ => zvhd2::open(Arc::new(file), &small_table),
        };
        assert!(matches!(r, Err(FormatError::Unsupported(_))));
        // The writer refuses to make what default readers would refuse.
        let disk = MemDisk {
            data: pattern(2 << 20, 5),
            honest: true,
        };
        let o = zvhd::ZvhdOptions {
            max_index_bytes: 64,
            ..opts(64 << 10)
        };
        let mut out = Vec::new();
        let r = match fmt {
            Format::Zvhd => zvhd::write(&disk, &mut out, &o),
            _ => zvhd2::write(&disk, &mut out, &o),
        };
        assert!(matches!(r, Err(FormatError::Unsupported(_))));
        let o = opts(3000);
        assert!(zvhd2::write(&disk, &mut Vec::new(), &o).is_err());
    }
}

#[test]
fn zvhd_decodes_front_to_back_from_a_stream() {
    let disk = MemDisk {
        data: pattern((6 << 20) + 777, 11),
        honest: true,
    };
    let file = write_zvhd(Format::Zvhd, &disk, &opts(256 << 10));
    // To a sequential sink: the whole disk, zeros included.
    let mut raw = Vec::new();
    let n = zvhd::decode_stream(
        &mut file.as_slice(),
        ims_formats::Target::Stream(&mut raw),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(n, disk.data.len() as u64);
    assert!(raw == disk.data);
    // To a file: sparse, same bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.raw");
    let out = std::fs::File::create(&path).unwrap();
    zvhd::decode_stream(
        &mut file.as_slice(),
        ims_formats::Target::Seekable(&out),
        &Limits::default(),
    )
    .unwrap();
    assert!(std::fs::read(&path).unwrap() == disk.data);
    // Damage anywhere is refused, never decoded silently, never a panic.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..200 {
        let mut bad = file.clone();
        let at = rng.gen_range(0..bad.len());
        bad[at] ^= 1 << rng.gen_range(0..8);
        let mut sink = Vec::new();
        let r = zvhd::decode_stream(
            &mut bad.as_slice(),
            ims_formats::Target::Stream(&mut sink),
            &Limits::default(),
        );
        assert!(
            matches!(
                r,
                Err(FormatError::Corrupt(_)) | Err(FormatError::Unsupported(_))
            ),
            "flip at {at}: {r:?}"
        );
    }
    for cut in [0, 30, 64, 100, file.len() - 1] {
        let r = zvhd::decode_stream(
            &mut &file[..cut],
            ims_formats::Target::Stream(&mut Vec::new()),
            &Limits::default(),
        );
        assert!(
            matches!(r, Err(FormatError::Corrupt(_))),
            "cut at {cut}: {r:?}"
        );
    }
    let mut longer = file.clone();
    longer.push(0);
    let r = zvhd::decode_stream(
        &mut longer.as_slice(),
        ims_formats::Target::Stream(&mut Vec::new()),
        &Limits::default(),
    );
    assert!(matches!(r, Err(FormatError::Corrupt(_))));
}
