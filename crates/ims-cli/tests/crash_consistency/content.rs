//! The seeded random source of a run, and the files the rounds upload and import, with their digests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};
use sha2::Sha512;

const MIB: u64 = 1 << 20;

/// SplitMix64: small, seedable, the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A file on disk and what the service must record for it.
#[derive(Debug, Clone)]
pub struct Content {
    pub path: PathBuf,
    pub size: u64,
    pub md5: String,
    pub sha512: String,
}

/// Lowercase hex digests of a byte stream, fed piece by piece.
#[derive(Default)]
pub struct Digests {
    md5: Md5,
    sha512: Sha512,
    pub size: u64,
}

impl Digests {
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha512.update(data);
        self.size += data.len() as u64;
    }

    /// (md5, sha512).
    pub fn finish(self) -> (String, String) {
        (hex(&self.md5.finalize()), hex(&self.sha512.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `mib` MiB of seeded data to `path`, one MiB at a time: mostly incompressible, with about one
/// MiB in five all zeros (stored as zero extents). The same seed and size give the same bytes.
pub fn write_disk(path: &Path, mib: u64, seed: u64) -> Content {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create a content file"));
    let mut rng = Rng::new(seed);
    let mut digests = Digests::default();
    let mut piece = vec![0u8; MIB as usize];
    for _ in 0..mib {
        if rng.percent(20) {
            piece.fill(0);
        } else {
            for word in piece.chunks_exact_mut(8) {
                word.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
        }
        digests.update(&piece);
        file.write_all(&piece).expect("write a content file");
    }
    file.flush().expect("flush a content file");
    let size = digests.size;
    let (md5, sha512) = digests.finish();
    Content { path: path.to_path_buf(), size, md5, sha512 }
}

/// A qcow2 file of `raw` made by qemu-img; the service's conversion back to raw must give `raw` again.
pub fn qcow2_of(raw: &Content, path: &Path) -> PathBuf {
    let out = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw.path)
        .arg(path)
        .output()
        .expect("qemu-img is installed");
    assert!(out.status.success(), "qemu-img convert: {}", String::from_utf8_lossy(&out.stderr));
    path.to_path_buf()
}

/// The contents of uploads: fresh ones of 1 to 64 MiB (small sizes as likely as large size classes), and
/// now and then one uploaded before again (the chunks are then deduplicated). Every name given out maps
/// to its content for the whole run; only the last few files are kept on disk.
pub struct Uploads {
    dir: PathBuf,
    recent: std::collections::VecDeque<Content>,
    by_name: std::collections::HashMap<String, Content>,
    counter: u64,
}

/// Files kept for duplicate uploads.
const KEPT_FOR_DUPLICATES: usize = 4;

impl Uploads {
    pub fn new(dir: &Path) -> Uploads {
        std::fs::create_dir_all(dir).expect("content directory");
        Uploads { dir: dir.to_path_buf(), recent: Default::default(), by_name: Default::default(), counter: 0 }
    }

    /// A name and the content to upload under it.
    pub fn next(&mut self, rng: &mut Rng) -> (String, Content) {
        self.counter += 1;
        let name = format!("upload-{}", self.counter);
        let content = match self.recent.len() {
            n if n > 0 && rng.percent(25) => self.recent[rng.below(n as u64) as usize].clone(),
            _ => {
                let class = 1u64 << rng.below(7);
                let mib = 1 + rng.below(class).min(63);
                let path = self.dir.join(format!("{name}.raw"));
                let content = write_disk(&path, mib, rng.next_u64());
                self.recent.push_back(content.clone());
                content
            }
        };
        self.by_name.insert(name.clone(), content.clone());
        (name, content)
    }

    /// Removes the files no longer kept for duplicates (call when no upload is running).
    pub fn trim(&mut self) {
        while self.recent.len() > KEPT_FOR_DUPLICATES {
            let old = self.recent.pop_front().expect("not empty");
            let _ = std::fs::remove_file(&old.path);
        }
    }

    /// The content uploaded under `name`.
    pub fn get(&self, name: &str) -> Option<&Content> {
        self.by_name.get(name)
    }
}
