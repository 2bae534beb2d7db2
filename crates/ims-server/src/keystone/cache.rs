//! Tokens Keystone has validated, remembered so that each request does not cost a round trip.
//!
//! An entry lives until its token expires or for the cache's maximum TTL, whichever comes first: the TTL
//! bounds how long a token revoked in Keystone keeps working here. The cache holds at most `capacity`
//! entries; when full it first drops expired ones, then the one closest to expiry. Keys are SHA-256
//! digests of the tokens: the cache never holds a usable token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ims_core::Caller;
use sha2::{Digest, Sha256};

pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    capacity: usize,
    max_ttl: Duration,
}

struct Entry {
    caller: Caller,
    until: Instant,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    /// An empty cache of at most `capacity` (at least 1) tokens, each kept at most `max_ttl`.
    pub fn new(capacity: usize, max_ttl: Duration) -> TokenCache {
        TokenCache { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1), max_ttl }
    }

    /// The caller of `token` if it was validated and its entry is still live at `now`; a dead entry is dropped.
    pub fn get(&self, token: &str, now: Instant) -> Option<Caller> {
        let mut entries = self.entries.lock().unwrap();
        let k = key(token);
        match entries.get(&k) {
            Some(entry) if entry.until > now => Some(entry.caller.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Remembers that `token`, valid for `expires_in` more, stands for `caller`. Nothing is kept for a token
    /// that has expired or a cache with a zero TTL.
    pub fn insert(&self, token: &str, caller: Caller, expires_in: Duration, now: Instant) {
        let lifetime = expires_in.min(self.max_ttl);
        if lifetime.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap();
        let k = key(token);
        if !entries.contains_key(&k) && entries.len() >= self.capacity {
            entries.retain(|_, entry| entry.until > now);
            if entries.len() >= self.capacity {
                let soonest = entries.iter().min_by_key(|(_, entry)| entry.until).map(|(k, _)| *k);
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        entries.insert(k, Entry { caller, until: now + lifetime });
    }

    /// Number of entries, live or not yet dropped.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use ims_catalog::Role;

    use super::*;

    fn caller(project: &str) -> Caller {
        Caller {
            user_id: "u".into(),
            user_name: "u".into(),
            project_id: project.into(),
            project_name: project.into(),
            role: Role::Member,
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn entries_live_until_the_token_expires_or_the_ttl_ends() {
        let cache = TokenCache::new(10, MINUTE);
        let t0 = Instant::now();
        cache.insert("short", caller("a"), Duration::from_secs(5), t0);
        cache.insert("long", caller("b"), 10 * MINUTE, t0);
        assert_eq!(cache.get("short", t0 + Duration::from_secs(4)).unwrap().project_id, "a");
        assert!(cache.get("short", t0 + Duration::from_secs(5)).is_none(), "gone when the token expires");
        assert!(cache.get("long", t0 + MINUTE - Duration::from_millis(1)).is_some());
        assert!(cache.get("long", t0 + MINUTE).is_none(), "gone after the TTL though the token lives on");
        assert_eq!(cache.len(), 0, "dead entries are dropped when looked up");
        assert!(cache.get("never-seen", t0).is_none());
    }

    #[test]
    fn expired_tokens_and_a_zero_ttl_keep_nothing() {
        let t0 = Instant::now();
        let cache = TokenCache::new(10, MINUTE);
        cache.insert("expired", caller("a"), Duration::ZERO, t0);
        assert!(cache.get("expired", t0).is_none());
        let uncached = TokenCache::new(10, Duration::ZERO);
        uncached.insert("t", caller("a"), MINUTE, t0);
        assert_eq!(uncached.len(), 0);
    }

    #[test]
    fn a_full_cache_drops_dead_entries_then_the_one_closest_to_expiry() {
        let t0 = Instant::now();
        let cache = TokenCache::new(3, 10 * MINUTE);
        cache.insert("a", caller("a"), Duration::from_secs(30), t0);
        cache.insert("b", caller("b"), Duration::from_secs(10), t0);
        cache.insert("c", caller("c"), Duration::from_secs(20), t0);
        cache.insert("d", caller("d"), Duration::from_secs(40), t0);
        assert_eq!(cache.len(), 3, "bounded");
        assert!(cache.get("b", t0).is_none(), "the entry closest to expiry made room");
        for kept in ["a", "c", "d"] {
            assert!(cache.get(kept, t0).is_some(), "{kept} kept");
        }
        // Later, once a and c have expired, one insert drops both dead entries.
        let later = t0 + Duration::from_secs(35);
        cache.insert("e", caller("e"), MINUTE, later);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("d", later).is_some() && cache.get("e", later).is_some());
        // Refreshing a present token needs no room.
        cache.insert("e", caller("e2"), MINUTE, later);
        assert_eq!(cache.get("e", later).unwrap().project_id, "e2");
    }
}
