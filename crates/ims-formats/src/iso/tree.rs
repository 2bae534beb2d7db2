//! The directory tree an ISO image is written from: directories and regular files, each file known
//! by its size and a source that is opened only when the image stream reaches it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use super::names::joliet_id;
use crate::{FormatError, Result};

/// Where a file's content comes from.
pub trait FileSource: Send + Sync {
    /// Opens the content for reading from its first byte. Called once per image stream, when the
    /// stream reaches the file; the reader must yield exactly the size the file was added with (the
    /// stream fails otherwise).
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
}

/// A file on the local file system.
impl FileSource for PathBuf {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self)?))
    }
}

/// Bytes in memory (small generated files such as cloud-init `meta-data`).
impl FileSource for Vec<u8> {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(Cursor::new(self.clone())))
    }
}

pub(crate) enum Node {
    Dir(BTreeMap<String, Node>),
    File { size: u64, source: Box<dyn FileSource> },
}

/// A tree of directories and files to lay out as an ISO 9660 image (see [`super::IsoLayout`]).
///
/// Paths are `/`-separated and relative to the root; every name must be a valid Joliet name
/// (at most 103 UTF-16 units, none of `* / : ; ? \` or control characters).
pub struct IsoTree {
    pub(crate) root: BTreeMap<String, Node>,
}

impl fmt::Debug for IsoTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsoTree").field("entries", &self.root.len()).finish()
    }
}

impl Default for IsoTree {
    fn default() -> IsoTree {
        IsoTree::new()
    }
}

impl IsoTree {
    /// An empty tree (an image of it holds only the root directory).
    pub fn new() -> IsoTree {
        IsoTree { root: BTreeMap::new() }
    }

    /// Adds directory `path` and any missing parents. Adding an existing directory is a no-op;
    /// `Unsupported` when a file is in the way or a name is not valid.
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        let parts = components(path)?;
        self.dir_mut(&parts, path).map(|_| ())
    }

    /// Adds file `path` of `size` bytes, read from `source` when the image is written, creating
    /// missing parent directories. `Unsupported` when the path exists already or a name is not
    /// valid; nothing is added then.
    pub fn add_file(&mut self, path: &str, size: u64, source: impl FileSource + 'static) -> Result<()> {
        let parts = components(path)?;
        let (name, parents) = parts.split_last().expect("components are never empty");
        let dir = self.dir_mut(parents, path)?;
        if dir.contains_key(*name) {
            return Err(FormatError::Unsupported(format!("iso: {path:?} is in the tree already")));
        }
        dir.insert(name.to_string(), Node::File { size, source: Box::new(source) });
        Ok(())
    }

    /// The tree of local directory `dir`: its subdirectories and regular files, sizes taken now,
    /// contents read when the image is written. `Unsupported` for symbolic links, special files and
    /// names that are not UTF-8 or not valid Joliet names; `Io` when the directory cannot be read.
    pub fn from_directory(dir: &Path) -> Result<IsoTree> {
        let mut tree = IsoTree::new();
        tree.root = read_local_dir(dir)?;
        Ok(tree)
    }

    fn dir_mut(&mut self, parts: &[&str], path: &str) -> Result<&mut BTreeMap<String, Node>> {
        let mut dir = &mut self.root;
        for part in parts {
            let node = dir.entry(part.to_string()).or_insert_with(|| Node::Dir(BTreeMap::new()));
            dir = match node {
                Node::Dir(children) => children,
                Node::File { .. } => {
                    return Err(FormatError::Unsupported(format!(
                        "iso: a file named {part:?} is in the way of {path:?}"
                    )))
                }
            };
        }
        Ok(dir)
    }
}

/// The names of `path`, each checked to be a valid Joliet name.
fn components(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    for part in &parts {
        joliet_id(part).map_err(|e| FormatError::Unsupported(format!("{e} (in {path:?})")))?;
    }
    Ok(parts)
}

fn read_local_dir(dir: &Path) -> Result<BTreeMap<String, Node>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| {
            FormatError::Unsupported(format!("iso: the name of {} is not UTF-8", path.display()))
        })?;
        joliet_id(&name).map_err(|e| FormatError::Unsupported(format!("{e} ({})", path.display())))?;
        let meta = std::fs::symlink_metadata(&path)?;
        let node = if meta.is_dir() {
            Node::Dir(read_local_dir(&path)?)
        } else if meta.is_file() {
            Node::File { size: meta.len(), source: Box::new(path.clone()) }
        } else {
            return Err(FormatError::Unsupported(format!(
                "iso: {} is not a regular file or directory (links and special files are not copied)",
                path.display()
            )));
        };
        out.insert(name, node);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_build_directories_and_refuse_conflicts() {
        let mut t = IsoTree::new();
        t.add_file("a/b/c.txt", 3, b"abc".to_vec()).unwrap();
        t.add_dir("a/b").unwrap();
        t.add_dir("/x/").unwrap();
        assert!(t.add_file("a/b/c.txt", 1, b"z".to_vec()).is_err());
        assert!(t.add_file("a/b/c.txt/d", 1, b"z".to_vec()).is_err());
        assert!(t.add_dir("a/../b").is_err());
        assert!(t.add_file("a//b", 1, b"z".to_vec()).is_err());
        assert!(t.add_file("", 1, b"z".to_vec()).is_err());
        assert_eq!(t.root.len(), 2);
    }
}
