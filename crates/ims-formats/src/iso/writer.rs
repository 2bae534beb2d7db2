//! The streaming ISO 9660 writer: [`IsoLayout`] places every directory and file from the sizes
//! alone, then [`IsoStream`] emits the image front to back, reading one file at a time.
//!
//! Image layout (2048-byte sectors): system area (0-15), primary volume descriptor (16), Joliet
//! supplementary volume descriptor (17), terminator (18), the four path tables (L and M for each
//! hierarchy), the ISO 9660 directories, the Joliet directories, then the file contents in tree
//! order, each starting on a sector. File contents are shared by both hierarchies.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};

use super::names::{compare_ids, joliet_id, primary_ids};
use super::record::{
    put_both_u16, put_both_u32, put_record, record_len, IsoTime, FIRST_DESCRIPTOR_SECTOR, FLAG_DIRECTORY, SECTOR,
};
use super::tree::{FileSource, IsoTree, Node};
use crate::{FormatError, Result};

/// Settings of a written image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoOptions {
    /// Volume label, written as given (case kept, like `genisoimage -V`): 1 to 32 characters of
    /// `A-Z a-z 0-9 _ - .` and space. Joliet holds its first 16. `cidata` makes a NoCloud
    /// cloud-init seed, `config-2` an OpenStack config drive.
    pub volume_id: String,
    /// Recording time of every record and descriptor, in seconds since the Unix epoch.
    pub recorded_at: u64,
}

impl IsoOptions {
    /// Options with label `volume_id`, recorded now.
    pub fn new(volume_id: impl Into<String>) -> IsoOptions {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        IsoOptions { volume_id: volume_id.into(), recorded_at: now }
    }
}

/// Hierarchies: ISO 9660 names (0) and Joliet names (1).
const PRIMARY: usize = 0;
const JOLIET: usize = 1;

struct Item {
    parent: usize,
    is_dir: bool,
    size: u64,
    path: String,
    children: Vec<usize>,
    /// Identifier per hierarchy.
    ids: [Vec<u8>; 2],
    /// Children in record order, per hierarchy.
    order: [Vec<usize>; 2],
    /// Extent (sector) of a file, or of a directory per hierarchy; directory size per hierarchy.
    extent: [u32; 2],
    dir_size: [u32; 2],
    source: Option<Box<dyn FileSource>>,
}

/// An image planned from an [`IsoTree`]: every position is known, nothing has been read yet.
pub struct IsoLayout {
    /// Everything before the first file's content: descriptors, path tables, directories.
    metadata: Vec<u8>,
    files: Vec<PlannedFile>,
    size: u64,
}

struct PlannedFile {
    path: String,
    size: u64,
    source: Box<dyn FileSource>,
}

impl std::fmt::Debug for IsoLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsoLayout").field("size", &self.size).field("files", &self.files.len()).finish()
    }
}

impl IsoLayout {
    /// Plans the image of `tree`. `Unsupported` for an invalid volume label, a file of 4 GiB or
    /// more (ISO 9660 extents are 32-bit; multi-extent files are not written), more than 65535
    /// directories, or an image of more than 2^32 sectors.
    pub fn new(tree: IsoTree, options: &IsoOptions) -> Result<IsoLayout> {
        check_volume_id(&options.volume_id)?;
        let time = IsoTime::from_unix(options.recorded_at);
        let mut items = Vec::new();
        flatten(&mut items, tree.root, 0, String::new());
        name_and_order(&mut items)?;
        let dirs = [bfs(&items, PRIMARY), bfs(&items, JOLIET)];
        if dirs[PRIMARY].len() > usize::from(u16::MAX) {
            return Err(FormatError::Unsupported(format!(
                "iso: {} directories; path tables number at most 65535",
                dirs[PRIMARY].len()
            )));
        }
        let tables = [path_table_len(&items, &dirs[PRIMARY], PRIMARY), path_table_len(&items, &dirs[JOLIET], JOLIET)];

        // Sectors: descriptors, path tables, directories, files.
        let mut next = FIRST_DESCRIPTOR_SECTOR + 3;
        let mut table_at = [[0u64; 2]; 2];
        for h in [PRIMARY, JOLIET] {
            for at in &mut table_at[h] {
                *at = next;
                next += (tables[h] as u64).div_ceil(SECTOR);
            }
        }
        for h in [PRIMARY, JOLIET] {
            for &d in &dirs[h] {
                let size = dir_len(&items, d, h);
                items[d].extent[h] = sector_u32(next)?;
                items[d].dir_size[h] = size;
                next += u64::from(size) / SECTOR;
            }
        }
        let metadata_sectors = next;
        for item in items.iter_mut().filter(|i| !i.is_dir) {
            if item.size > u64::from(u32::MAX) {
                return Err(FormatError::Unsupported(format!(
                    "iso: {} is {} bytes; files of 4 GiB or more are not written",
                    item.path, item.size
                )));
            }
            if item.size > 0 {
                item.extent = [sector_u32(next)?; 2];
                next += item.size.div_ceil(SECTOR);
            }
        }
        let total = sector_u32(next)?;

        let mut metadata = vec![0u8; (metadata_sectors * SECTOR) as usize];
        for h in [PRIMARY, JOLIET] {
            for (endian, &at) in table_at[h].iter().enumerate() {
                let table = path_table(&items, &dirs[h], h, endian == 1);
                let start = (at * SECTOR) as usize;
                metadata[start..start + table.len()].copy_from_slice(&table);
            }
            for &d in &dirs[h] {
                let bytes = directory(&items, d, h, &time);
                let start = items[d].extent[h] as usize * SECTOR as usize;
                metadata[start..start + bytes.len()].copy_from_slice(&bytes);
            }
        }
        for h in [PRIMARY, JOLIET] {
            let d = descriptor(&items, h, &options.volume_id, total, tables[h] as u32, table_at[h], &time);
            let start = ((FIRST_DESCRIPTOR_SECTOR + h as u64) * SECTOR) as usize;
            metadata[start..start + d.len()].copy_from_slice(&d);
        }
        let term = ((FIRST_DESCRIPTOR_SECTOR + 2) * SECTOR) as usize;
        metadata[term] = 255;
        metadata[term + 1..term + 6].copy_from_slice(b"CD001");
        metadata[term + 6] = 1;

        let files = items
            .into_iter()
            .filter(|i| !i.is_dir && i.size > 0)
            .map(|i| PlannedFile { path: i.path, size: i.size, source: i.source.expect("files have a source") })
            .collect();
        Ok(IsoLayout { metadata, files, size: u64::from(total) * SECTOR })
    }

    /// The exact length of the image in bytes (a multiple of 2048).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The image as a byte stream, produced as it is read: metadata first, then each file's
    /// content read from its source (one open at a time) and padded to a sector.
    pub fn into_stream(self) -> IsoStream {
        IsoStream { metadata: self.metadata, at: 0, files: self.files.into(), current: None }
    }
}

fn check_volume_id(id: &str) -> Result<()> {
    let ok = (1..=32).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '));
    if ok {
        Ok(())
    } else {
        Err(FormatError::Unsupported(format!(
            "iso: volume label {id:?} must be 1 to 32 characters of A-Z, a-z, 0-9, '_', '-', '.' and space"
        )))
    }
}

fn sector_u32(sector: u64) -> Result<u32> {
    u32::try_from(sector).map_err(|_| FormatError::Unsupported("iso: the image would exceed 2^32 sectors".into()))
}

fn flatten(items: &mut Vec<Item>, children: BTreeMap<String, Node>, parent: usize, path: String) {
    let me = items.len();
    items.push(Item {
        parent,
        is_dir: true,
        size: 0,
        path: path.clone(),
        children: Vec::new(),
        ids: [vec![0], vec![0]],
        order: [Vec::new(), Vec::new()],
        extent: [0; 2],
        dir_size: [0; 2],
        source: None,
    });
    for (name, node) in children {
        let child_path = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
        let child = items.len();
        items[me].children.push(child);
        match node {
            Node::Dir(grandchildren) => flatten(items, grandchildren, me, child_path),
            Node::File { size, source } => items.push(Item {
                parent: me,
                is_dir: false,
                size,
                path: child_path,
                children: Vec::new(),
                ids: [Vec::new(), Vec::new()],
                order: [Vec::new(), Vec::new()],
                extent: [0; 2],
                dir_size: [0; 2],
                source: Some(source),
            }),
        }
    }
}

/// Gives every entry its identifier in both hierarchies and every directory its record orders.
fn name_and_order(items: &mut [Item]) -> Result<()> {
    for d in 0..items.len() {
        if !items[d].is_dir || items[d].children.is_empty() {
            continue;
        }
        let children = items[d].children.clone();
        let names: Vec<(String, bool)> = children
            .iter()
            .map(|&c| (items[c].path.rsplit('/').next().unwrap_or_default().to_string(), items[c].is_dir))
            .collect();
        let refs: Vec<(&str, bool)> = names.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        for ((&c, primary), (name, _)) in children.iter().zip(primary_ids(&refs)).zip(&names) {
            items[c].ids = [primary, joliet_id(name)?];
        }
        for h in [PRIMARY, JOLIET] {
            let mut order = children.clone();
            order.sort_by(|&a, &b| compare_ids(&items[a].ids[h], &items[b].ids[h], h == JOLIET));
            items[d].order[h] = order;
        }
    }
    Ok(())
}

/// Directories in path table order: breadth first, each level in parent order then record order.
fn bfs(items: &[Item], h: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut queue = VecDeque::from([0usize]);
    while let Some(d) = queue.pop_front() {
        out.push(d);
        queue.extend(items[d].order[h].iter().copied().filter(|&c| items[c].is_dir));
    }
    out
}

fn path_table_len(items: &[Item], dirs: &[usize], h: usize) -> usize {
    dirs.iter().map(|&d| 8 + items[d].ids[h].len() + items[d].ids[h].len() % 2).sum()
}

fn path_table(items: &[Item], dirs: &[usize], h: usize, big_endian: bool) -> Vec<u8> {
    let number: BTreeMap<usize, u16> =
        dirs.iter().enumerate().map(|(i, &d)| (d, (i + 1) as u16)).collect();
    let mut out = Vec::new();
    for &d in dirs {
        let id = &items[d].ids[h];
        let parent = number[&items[d].parent];
        out.push(id.len() as u8);
        out.push(0);
        let (extent, parent) = if big_endian {
            (items[d].extent[h].to_be_bytes(), parent.to_be_bytes())
        } else {
            (items[d].extent[h].to_le_bytes(), parent.to_le_bytes())
        };
        out.extend_from_slice(&extent);
        out.extend_from_slice(&parent);
        out.extend_from_slice(id);
        if id.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

/// Record lengths of directory `d` in hierarchy `h`: `.`, `..`, then the children in order.
fn record_lengths(items: &[Item], d: usize, h: usize) -> impl Iterator<Item = usize> + '_ {
    [34, 34].into_iter().chain(items[d].order[h].iter().map(move |&c| record_len(items[c].ids[h].len())))
}

/// Offsets of the records of a directory: records never cross a sector boundary.
fn pack(lengths: impl Iterator<Item = usize>) -> (Vec<usize>, usize) {
    let sector = SECTOR as usize;
    let mut at = 0;
    let offsets = lengths
        .map(|len| {
            if at % sector + len > sector {
                at = at.next_multiple_of(sector);
            }
            let here = at;
            at += len;
            here
        })
        .collect();
    (offsets, at.next_multiple_of(sector))
}

fn dir_len(items: &[Item], d: usize, h: usize) -> u32 {
    pack(record_lengths(items, d, h)).1 as u32
}

fn directory(items: &[Item], d: usize, h: usize, time: &IsoTime) -> Vec<u8> {
    let (offsets, len) = pack(record_lengths(items, d, h));
    let mut out = vec![0u8; len];
    let me = &items[d];
    let parent = &items[me.parent];
    let mut records: Vec<(u32, u32, u8, &[u8])> = vec![
        (me.extent[h], me.dir_size[h], FLAG_DIRECTORY, &[0]),
        (parent.extent[h], parent.dir_size[h], FLAG_DIRECTORY, &[1]),
    ];
    for &c in &me.order[h] {
        let child = &items[c];
        records.push(if child.is_dir {
            (child.extent[h], child.dir_size[h], FLAG_DIRECTORY, &child.ids[h])
        } else {
            (child.extent[h], child.size as u32, 0, &child.ids[h])
        });
    }
    for ((extent, size, flags, id), at) in records.into_iter().zip(offsets) {
        let mut rec = Vec::with_capacity(record_len(id.len()));
        put_record(&mut rec, extent, size, time, flags, id);
        out[at..at + rec.len()].copy_from_slice(&rec);
    }
    out
}

/// The primary (h = 0) or Joliet supplementary (h = 1) volume descriptor.
fn descriptor(
    items: &[Item],
    h: usize,
    volume_id: &str,
    total_sectors: u32,
    table_len: u32,
    table_at: [u64; 2],
    time: &IsoTime,
) -> Vec<u8> {
    let mut d = vec![0u8; SECTOR as usize];
    d[0] = if h == JOLIET { 2 } else { 1 };
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    let text = |field: &mut [u8], s: &str| {
        if h == JOLIET {
            for (i, pair) in field.chunks_mut(2).enumerate() {
                let unit = s.encode_utf16().nth(i).unwrap_or(u16::from(b' '));
                let be = unit.to_be_bytes();
                pair.copy_from_slice(&be[..pair.len()]);
            }
        } else {
            field.fill(b' ');
            field[..s.len()].copy_from_slice(s.as_bytes());
        }
    };
    text(&mut d[8..40], "");
    let label: String = if h == JOLIET { volume_id.chars().take(16).collect() } else { volume_id.to_string() };
    text(&mut d[40..72], &label);
    put_both_u32(&mut d[80..88], total_sectors);
    if h == JOLIET {
        d[88..91].copy_from_slice(b"%/E");
    }
    put_both_u16(&mut d[120..124], 1);
    put_both_u16(&mut d[124..128], 1);
    put_both_u16(&mut d[128..132], SECTOR as u16);
    put_both_u32(&mut d[132..140], table_len);
    d[140..144].copy_from_slice(&(table_at[0] as u32).to_le_bytes());
    d[148..152].copy_from_slice(&(table_at[1] as u32).to_be_bytes());
    let root = &items[0];
    let mut rec = Vec::new();
    put_record(&mut rec, root.extent[h], root.dir_size[h], time, FLAG_DIRECTORY, &[0]);
    d[156..156 + rec.len()].copy_from_slice(&rec);
    text(&mut d[190..318], "");
    text(&mut d[318..446], "");
    text(&mut d[446..574], "");
    text(&mut d[574..702], "IMS");
    text(&mut d[702..813], "");
    d[813..830].copy_from_slice(&time.descriptor_bytes());
    d[830..847].copy_from_slice(&time.descriptor_bytes());
    d[847..863].fill(b'0');
    d[864..880].fill(b'0');
    d[881] = 1;
    d
}

/// An ISO image being produced: implements [`Read`], yielding exactly [`IsoLayout::size`] bytes.
///
/// A file whose source yields fewer or more bytes than its planned size (it changed after the
/// layout) fails the read with `UnexpectedEof` or `InvalidData` naming it; the stream is then
/// unusable.
pub struct IsoStream {
    metadata: Vec<u8>,
    at: usize,
    files: VecDeque<PlannedFile>,
    current: Option<OpenFile>,
}

struct OpenFile {
    path: String,
    reader: Box<dyn Read + Send>,
    remaining: u64,
    end_checked: bool,
    padding: u64,
}

impl Read for IsoStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.at < self.metadata.len() {
                let n = buf.len().min(self.metadata.len() - self.at);
                buf[..n].copy_from_slice(&self.metadata[self.at..self.at + n]);
                self.at += n;
                if self.at == self.metadata.len() {
                    self.metadata = Vec::new();
                    self.at = 0;
                }
                return Ok(n);
            }
            if let Some(file) = &mut self.current {
                if file.remaining > 0 {
                    let want = buf.len().min(usize::try_from(file.remaining).unwrap_or(usize::MAX));
                    let n = file.reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("iso: {} ended {} bytes early (it changed after the layout)", file.path, file.remaining),
                        ));
                    }
                    file.remaining -= n as u64;
                    return Ok(n);
                }
                if !file.end_checked {
                    let mut one = [0u8; 1];
                    if file.reader.read(&mut one)? != 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("iso: {} grew after the layout", file.path),
                        ));
                    }
                    file.end_checked = true;
                }
                if file.padding > 0 {
                    let n = buf.len().min(usize::try_from(file.padding).unwrap_or(usize::MAX));
                    buf[..n].fill(0);
                    file.padding -= n as u64;
                    return Ok(n);
                }
                self.current = None;
            }
            let Some(next) = self.files.pop_front() else { return Ok(0) };
            let reader = next
                .source
                .open()
                .map_err(|e| io::Error::new(e.kind(), format!("iso: cannot open {}: {e}", next.path)))?;
            self.current = Some(OpenFile {
                padding: next.size.next_multiple_of(SECTOR) - next.size,
                path: next.path,
                reader,
                remaining: next.size,
                end_checked: false,
            });
        }
    }
}
