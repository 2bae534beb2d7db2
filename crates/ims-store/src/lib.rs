//! IMS blob layer: the content-defined, content-addressed chunk store.
//!
//! A file streams in through a [`ManifestWriter`], is cut into content-defined chunks (FastCDC, ~1 MiB),
//! and each chunk is stored once under the blake3 hash of its plaintext (zstd compressed when that helps;
//! all-zero chunks are not stored at all). The resulting [`Manifest`] maps file offsets to chunks and gives
//! verified random access through [`ChunkStore::read_range`].

pub mod cdc;
pub mod chunk;
mod cpu;
mod error;
mod manifest;
mod reader;
mod store;
mod writer;

pub use chunk::ChunkId;
pub use error::StoreError;
pub use manifest::{Extent, Manifest, MANIFEST_VERSION};
pub use store::ChunkStore;
pub use writer::{ManifestWriter, WriteSummary};
