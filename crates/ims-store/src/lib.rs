//! IMS blob layer: the content-defined, content-addressed chunk store.
//!
//! A file streams in through a [`ManifestWriter`], is cut into content-defined chunks (FastCDC, ~1 MiB),
//! and each chunk is stored once under the blake3 hash of its plaintext (zstd compressed when that helps;
//! all-zero chunks are not stored at all). The resulting [`Manifest`] maps file offsets to chunks and gives
//! verified random access through [`ChunkStore::read_range`]. A store view made with
//! [`ChunkStore::in_domain`] encrypts what it writes and decrypts what it reads (see [`crypto`]).

mod backend;
pub mod cdc;
pub mod chunk;
mod chunk_cache;
pub mod cow_volume;
mod cpu;
pub mod crypto;
mod error;
pub mod file_read;
pub mod frames;
mod gc;
mod journal;
mod manifest;
mod migration;
mod prefetch;
mod random_access;
mod reader;
mod settle;
mod store;
mod store_copy;
mod writer;

pub use backend::StoreOptions;
pub use chunk::ChunkId;
pub use cow_volume::{CowStats, CowVolume, FlushedVolume};
pub use crypto::EncryptionDomain;
pub use error::StoreError;
pub use gc::{PendingManifest, StoredChunk, StoredManifest};
pub use journal::PendingRelease;
pub use manifest::{Extent, Manifest, MANIFEST_VERSION};
pub use migration::{MigrationProgress, MigrationReport, ObjectFailure};
pub use chunk_cache::{CacheResidency, CacheStats, CacheUse, ChunkCache, DEFAULT_CHUNK_CACHE_BYTES, FILL_FRACTION};
pub use random_access::RandomAccess;
pub use store::{ChunkReads, ChunkStore, DEFAULT_GC_GRACE};
pub use store_copy::CopySummary;
pub use writer::{ManifestWriter, WriteSummary};
