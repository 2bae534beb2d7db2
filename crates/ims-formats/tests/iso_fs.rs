//! The ISO 9660 writer and file system reader: trees written as a stream read back byte-identical
//! with our own reader (no mounting), qemu-img and our detector agree on the result, sources are
//! read lazily and checked against their planned sizes, and hostile images get errors.

mod common;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use common::{run, Scratch};
use ims_formats::iso::{FileSource, IsoFilesystem, IsoLayout, IsoOptions, IsoReadLimits, IsoTree};
use ims_formats::{detect, Format, FormatError};
use rand::{RngCore, SeedableRng};

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// The files of the test tree: nested directories, long and case-differing names, an empty file,
/// a file over 4 MiB, binary data.
fn sample_files() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("user-data".to_string(), b"#cloud-config\npackages: [nginx]\n".to_vec());
    files.insert("README".to_string(), b"upper".to_vec());
    files.insert("readme".to_string(), b"lower".to_vec());
    files.insert("empty.txt".to_string(), Vec::new());
    files.insert("app/bin/server.bin".to_string(), random(4 * 1024 * 1024 + 12_345, 1));
    files.insert("app/lib/exactly-one-sector.dat".to_string(), random(2048, 2));
    files.insert(format!("app/{}", "long-name-".repeat(10)), random(777, 3));
    files.insert("app/conf/Ünïcödé ✓ config.yaml".to_string(), "key: wert\n".as_bytes().to_vec());
    files.insert("a/b/c/d/e/f/g/h/i/j/deep.txt".to_string(), b"deep".to_vec());
    files
}

fn write_dir(root: &std::path::Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, data) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, data).unwrap();
    }
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
}

fn stream_all(layout: IsoLayout) -> Vec<u8> {
    let size = layout.size();
    let mut out = Vec::new();
    layout.into_stream().read_to_end(&mut out).expect("stream the image");
    assert_eq!(out.len() as u64, size, "the stream is exactly the planned size");
    out
}

/// Reads every file of `iso` with our reader.
fn read_back(iso: Vec<u8>) -> (IsoFilesystem, BTreeMap<String, Vec<u8>>, Vec<String>) {
    let fs = IsoFilesystem::open(Arc::new(iso)).expect("open the file system");
    let mut files = BTreeMap::new();
    let mut dirs = Vec::new();
    for entry in fs.walk().expect("walk the tree") {
        if entry.is_dir {
            dirs.push(entry.path);
            continue;
        }
        let mut data = Vec::new();
        fs.open_file(&entry).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, entry.size);
        files.insert(entry.path, data);
    }
    (fs, files, dirs)
}

#[test]
fn a_directory_round_trips_byte_identical() {
    let scratch = Scratch::new();
    let dir = scratch.path("app-dir");
    let files = sample_files();
    write_dir(&dir, &files);
    let tree = IsoTree::from_directory(&dir).unwrap();
    let iso = stream_all(IsoLayout::new(tree, &IsoOptions::new("cidata")).unwrap());

    let (fs, read, dirs) = read_back(iso.clone());
    assert!(fs.uses_joliet());
    assert_eq!(fs.volume_id(), "cidata");
    assert_eq!(read, files, "every file comes back byte-identical under its own name");
    for d in ["app", "app/bin", "app/conf", "a/b/c/d/e/f/g/h/i/j", "empty-dir"] {
        assert!(dirs.contains(&d.to_string()), "directory {d} listed");
    }
    let big = fs.find("/app/bin/server.bin").unwrap();
    let mut middle = vec![0u8; 5000];
    assert_eq!(fs.read_file_at(&big, &mut middle, 4 * 1024 * 1024).unwrap(), 5000);
    assert_eq!(&middle[..], &files["app/bin/server.bin"][4 * 1024 * 1024..4 * 1024 * 1024 + 5000]);
    assert_eq!(fs.read_file_at(&big, &mut middle, big.size).unwrap(), 0);
    assert!(fs.find("app/missing").is_err());

    // The same content written twice at the same time gives the same bytes.
    let mut options = IsoOptions::new("cidata");
    options.recorded_at = 1_700_000_000;
    let a = stream_all(IsoLayout::new(IsoTree::from_directory(&dir).unwrap(), &options).unwrap());
    let b = stream_all(IsoLayout::new(IsoTree::from_directory(&dir).unwrap(), &options).unwrap());
    assert_eq!(a, b);
}

#[test]
fn without_joliet_the_iso9660_names_are_read() {
    let mut tree = IsoTree::new();
    tree.add_file("user-data", 5, b"hello".to_vec()).unwrap();
    tree.add_file("Sub Dir/meta-data.json", 2, b"{}".to_vec()).unwrap();
    let mut iso = stream_all(IsoLayout::new(tree, &IsoOptions::new("CIDATA")).unwrap());
    // Turn the Joliet descriptor (sector 17) into a partition descriptor, which readers skip.
    iso[17 * 2048] = 3;
    let (fs, read, dirs) = read_back(iso);
    assert!(!fs.uses_joliet());
    assert_eq!(dirs, vec!["SUB_DIR".to_string()]);
    let names: Vec<&str> = read.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["SUB_DIR/META_DATA.JSON", "USER_DATA"]);
    assert_eq!(read["USER_DATA"], b"hello");
}

#[test]
fn qemu_img_sees_raw_and_our_detector_sees_iso() {
    let scratch = Scratch::new();
    let mut tree = IsoTree::new();
    tree.add_file("meta-data", 20, b"instance-id: iid-01\n".to_vec()).unwrap();
    let iso = stream_all(IsoLayout::new(tree, &IsoOptions::new("cidata")).unwrap());
    let path = scratch.path("seed.iso");
    std::fs::write(&path, &iso).unwrap();
    let info = run("qemu-img", &["info", path.to_str().unwrap()]);
    assert!(info.lines().any(|l| l.trim() == "file format: raw"), "{info}");
    let bytes = format!("({} bytes)", iso.len());
    assert!(info.lines().any(|l| l.starts_with("virtual size:") && l.contains(&bytes)), "{info}");
    assert_eq!(detect(&iso).unwrap(), Format::Iso);
    let opened = ims_formats::open(Arc::new(iso.clone()), Format::Iso, &Default::default()).unwrap();
    let volume = opened.details().features.into_iter().find(|(k, _)| k == "volume_id").map(|(_, v)| v);
    assert_eq!(volume.as_deref(), Some("cidata"));
}

/// A source that records when it is opened and yields `actual` bytes.
struct Recorded {
    name: &'static str,
    actual: Vec<u8>,
    opened: Arc<Mutex<Vec<&'static str>>>,
}

impl FileSource for Recorded {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        self.opened.lock().unwrap().push(self.name);
        Ok(Box::new(io::Cursor::new(self.actual.clone())))
    }
}

#[test]
fn sources_are_opened_one_at_a_time_as_the_stream_reaches_them() {
    let opened = Arc::new(Mutex::new(Vec::new()));
    let mut tree = IsoTree::new();
    for name in ["one", "two"] {
        let actual = random(10_000, name.len() as u64);
        tree.add_file(name, 10_000, Recorded { name, actual, opened: opened.clone() }).unwrap();
    }
    let layout = IsoLayout::new(tree, &IsoOptions::new("x")).unwrap();
    assert!(opened.lock().unwrap().is_empty(), "planning reads no file");
    let mut stream = layout.into_stream();
    let mut head = vec![0u8; 19 * 2048];
    stream.read_exact(&mut head).unwrap();
    assert!(opened.lock().unwrap().is_empty(), "descriptors come before any file is opened");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(*opened.lock().unwrap(), vec!["one", "two"]);
}

#[test]
fn a_file_that_changed_after_the_layout_fails_the_stream() {
    for (planned, actual, kind) in [(100, 99, io::ErrorKind::UnexpectedEof), (100, 101, io::ErrorKind::InvalidData)] {
        let mut tree = IsoTree::new();
        let source = Recorded { name: "f", actual: vec![7u8; actual], opened: Default::default() };
        tree.add_file("f", planned, source).unwrap();
        let mut out = Vec::new();
        let err = IsoLayout::new(tree, &IsoOptions::new("x")).unwrap().into_stream().read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains("iso: f"), "{err}");
    }
}

#[test]
fn bad_trees_and_labels_are_refused() {
    let mut tree = IsoTree::new();
    assert!(matches!(tree.add_file(&"x".repeat(104), 1, vec![1]), Err(FormatError::Unsupported(_))));
    assert!(tree.add_file("what?", 1, vec![1]).is_err());
    tree.add_file("big", 1 << 32, vec![]).unwrap();
    assert!(matches!(IsoLayout::new(tree, &IsoOptions::new("x")), Err(FormatError::Unsupported(m)) if m.contains("4 GiB")));
    for label in ["", "has/slash", &"L".repeat(33)] {
        assert!(IsoLayout::new(IsoTree::new(), &IsoOptions::new(label)).is_err(), "{label:?}");
    }
    let scratch = Scratch::new();
    let dir = scratch.path("links");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
    assert!(matches!(IsoTree::from_directory(&dir), Err(FormatError::Unsupported(m)) if m.contains("link")));
}

// ---------------------------------------------------------------------------------------------
// Hostile images, made by hand.

/// A 24-sector image: a primary volume descriptor at 16 whose root directory is at sector 20
/// (`root_size` bytes), a terminator at 17, and `records` written into the root directory.
fn handmade(root_size: u32, records: &[(u32, u32, u8, &[u8])]) -> Vec<u8> {
    let mut v = vec![0u8; 24 * 2048];
    let p = 16 * 2048;
    v[p] = 1;
    v[p + 1..p + 6].copy_from_slice(b"CD001");
    v[p + 6] = 1;
    v[p + 128..p + 130].copy_from_slice(&2048u16.to_le_bytes());
    put_record(&mut v[p + 156..p + 190], 20, root_size, 2, &[0]);
    let t = 17 * 2048;
    v[t] = 255;
    v[t + 1..t + 6].copy_from_slice(b"CD001");
    let mut at = 20 * 2048;
    for &(extent, size, flags, id) in records {
        let len = 33 + id.len() + usize::from(id.len() % 2 == 0);
        put_record(&mut v[at..at + len], extent, size, flags, id);
        at += len;
    }
    v
}

fn put_record(r: &mut [u8], extent: u32, size: u32, flags: u8, id: &[u8]) {
    r[0] = r.len() as u8;
    r[2..6].copy_from_slice(&extent.to_le_bytes());
    r[6..10].copy_from_slice(&extent.to_be_bytes());
    r[10..14].copy_from_slice(&size.to_le_bytes());
    r[14..18].copy_from_slice(&size.to_be_bytes());
    r[25] = flags;
    r[32] = id.len() as u8;
    r[33..33 + id.len()].copy_from_slice(id);
}

fn walk(v: Vec<u8>) -> ims_formats::Result<Vec<ims_formats::iso::IsoEntry>> {
    IsoFilesystem::open(Arc::new(v))?.walk()
}

#[test]
fn hostile_images_get_errors_not_panics_or_huge_allocations() {
    let dot: (u32, u32, u8, &[u8]) = (20, 2048, 2, &[0]);
    let dotdot: (u32, u32, u8, &[u8]) = (20, 2048, 2, &[1]);
    // A well-formed one first, so that each case below fails for its own reason.
    let ok = handmade(2048, &[dot, dotdot, (21, 3, 0, b"A.;1")]);
    assert_eq!(walk(ok).unwrap().len(), 1);

    // A file whose extent lies past the end of the image.
    let past_end = handmade(2048, &[dot, dotdot, (4_000_000, 10, 0, b"A.;1")]);
    assert!(matches!(walk(past_end), Err(FormatError::Corrupt(m)) if m.contains("past the end")));
    // A root directory of 4 GiB: refused before anything is read.
    assert!(matches!(walk(handmade(u32::MAX, &[])), Err(FormatError::Corrupt(_) | FormatError::Unsupported(_))));
    // A subdirectory that is the root again: a loop.
    let looped = handmade(2048, &[dot, dotdot, (20, 2048, 2, b"LOOP")]);
    assert!(matches!(walk(looped), Err(FormatError::Corrupt(m)) if m.contains("loops")));
    // Names that would escape a directory when extracted.
    for bad in [&b".."[..], b"a/b", b"."] {
        let v = handmade(2048, &[dot, dotdot, (21, 1, 0, bad)]);
        assert!(matches!(walk(v), Err(FormatError::Corrupt(_))), "{bad:?}");
    }
    // A record whose identifier is longer than the record.
    let mut v = handmade(2048, &[dot, dotdot, (21, 1, 0, b"A")]);
    v[20 * 2048 + 68 + 32] = 250;
    assert!(matches!(walk(v), Err(FormatError::Corrupt(_))));
    // A record running past the end of the directory's last (short) sector.
    let mut v = handmade(100, &[dot, dotdot, (21, 1, 0, b"A")]);
    v[20 * 2048 + 68] = 40;
    assert!(matches!(walk(v), Err(FormatError::Corrupt(m)) if m.contains("sector")));
    // A block size other than 2048, and no primary descriptor at all.
    let mut v = handmade(2048, &[dot, dotdot]);
    v[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&512u16.to_le_bytes());
    assert!(matches!(IsoFilesystem::open(Arc::new(v)), Err(FormatError::Unsupported(_))));
    assert!(IsoFilesystem::open(Arc::new(vec![0u8; 100])).is_err());
    assert!(IsoFilesystem::open(Arc::new(vec![0u8; 40 * 2048])).is_err());
    // More directory records than one walk may read.
    let limits = IsoReadLimits { max_walk_bytes: 2047, ..Default::default() };
    let fs = IsoFilesystem::open_with_limits(Arc::new(handmade(2048, &[dot, dotdot])), limits).unwrap();
    assert!(matches!(fs.walk(), Err(FormatError::Unsupported(m)) if m.contains("bytes of records")));
    // A tree wider than the entry limit.
    let records: Vec<(u32, u32, u8, &[u8])> =
        [dot, dotdot].into_iter().chain((0..20).map(|_| (21u32, 1u32, 0u8, &b"F"[..]))).collect();
    let limits = IsoReadLimits { max_entries: 10, ..Default::default() };
    let fs = IsoFilesystem::open_with_limits(Arc::new(handmade(2048, &records)), limits).unwrap();
    assert!(matches!(fs.walk(), Err(FormatError::Unsupported(m)) if m.contains("entries")));
}
