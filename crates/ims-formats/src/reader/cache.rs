//! A small least-recently-used cache of metadata tables (L2 tables, grain tables), bounded in bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::Result;

/// Default byte budget of one reader's table cache.
pub(crate) const DEFAULT_CACHE_BYTES: usize = 16 << 20;

struct Entry {
    table: Arc<Vec<u8>>,
    last_used: u64,
}

struct Inner {
    entries: HashMap<u64, Entry>,
    bytes: usize,
    clock: u64,
}

/// Tables keyed by their file offset. Holds at most `max_bytes` of tables (and always at least the
/// most recent one), so memory stays bounded whatever the image asks for. Thread-safe.
pub(crate) struct TableCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

impl TableCache {
    /// An empty cache holding at most `max_bytes` of tables.
    pub(crate) fn new(max_bytes: usize) -> TableCache {
        TableCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
            max_bytes,
        }
    }

    /// The table at `key`, loading it with `load` on a miss. `load` runs without the lock held, so
    /// two threads may load the same table at once; both get equal contents.
    pub(crate) fn get_or_load(&self, key: u64, load: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
        {
            let mut inner = self.lock();
            inner.clock = inner.clock.wrapping_add(1);
            let now = inner.clock;
            if let Some(e) = inner.entries.get_mut(&key) {
                e.last_used = now;
                return Ok(Arc::clone(&e.table));
            }
        }
        let table = Arc::new(load()?);
        let mut inner = self.lock();
        let len = table.len();
        while !inner.entries.is_empty() && inner.bytes.saturating_add(len) > self.max_bytes {
            let oldest = inner.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k);
            match oldest.and_then(|k| inner.entries.remove(&k)) {
                Some(e) => inner.bytes = inner.bytes.saturating_sub(e.table.len()),
                None => break,
            }
        }
        inner.clock = inner.clock.wrapping_add(1);
        let now = inner.clock;
        if let Some(old) = inner.entries.insert(
            key,
            Entry {
                table: Arc::clone(&table),
                last_used: now,
            },
        ) {
            inner.bytes = inner.bytes.saturating_sub(old.table.len());
        }
        inner.bytes = inner.bytes.saturating_add(len);
        Ok(table)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert/remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A one-entry cache of the last decoded unit (a decompressed cluster or grain), keyed by a
/// format-specific descriptor.
pub(crate) struct LastDecoded {
    slot: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

impl LastDecoded {
    pub(crate) fn new() -> LastDecoded {
        LastDecoded { slot: Mutex::new(None) }
    }

    /// The decoded unit for `key`, decoding it with `decode` on a miss.
    pub(crate) fn get_or_decode(&self, key: u64, decode: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
        if let Some((k, v)) = self.slot.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if *k == key {
                return Ok(Arc::clone(v));
            }
        }
        let v = Arc::new(decode()?);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, Arc::clone(&v)));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c = TableCache::new(20);
        let mut loads = 0;
        for k in [1u64, 2, 1, 3, 1, 2] {
            let t = c
                .get_or_load(k, || {
                    loads += 1;
                    Ok(vec![k as u8; 10])
                })
                .ok();
            assert_eq!(t.map(|t| t[0]), Some(k as u8));
        }
        // 1,2 loaded; 1 hit; 3 evicts 2; 1 hit; 2 evicts 3.
        assert_eq!(loads, 4);
    }

    #[test]
    fn oversized_table_still_served() {
        let c = TableCache::new(4);
        assert_eq!(c.get_or_load(7, || Ok(vec![1; 100])).map(|t| t.len()).ok(), Some(100));
        assert_eq!(c.get_or_load(8, || Ok(vec![2; 100])).map(|t| t.len()).ok(), Some(100));
    }
}
