//! The hash chain over the audit trail, and how the trail is queried.
//!
//! Every stored event has a `position` (1, 2, 3, ... without gaps, in the order events were chained), the
//! hash of the event before it (`prev_hash`, [`GENESIS_HASH`] for the first) and its own `hash`: SHA-256
//! over [`canonical_encoding`] of its position, `prev_hash` and every field of the event. Changing any
//! field of a stored row, deleting or inserting a row in the middle, or renumbering rows breaks the chain
//! at that row, which [`ChainCheck`] finds. Removing rows from the end leaves a shorter valid chain: the
//! head hash ([`ChainVerification::head_hash`]) is what an operator records elsewhere to detect that.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditEvent;

/// The `prev_hash` of the first event of a trail.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event as stored: the event and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1-based place in the chain; later events have larger positions.
    pub position: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// Chains `event` after the event at `position - 1` whose hash is `prev_hash`.
    pub fn chain(position: u64, prev_hash: &str, event: AuditEvent) -> AuditRecord {
        let hash = chain_hash(position, prev_hash, &event);
        AuditRecord { position, event, prev_hash: prev_hash.to_string(), hash }
    }
}

/// The bytes the hash of an event covers: a version tag, then every field in a fixed order, each as a
/// presence byte (0 for a missing optional field) followed by its UTF-8 length (u32, big-endian) and bytes.
/// The time is RFC 3339 UTC with nine fraction digits. No two different (position, prev_hash, event)
/// triples have the same encoding.
pub fn canonical_encoding(position: u64, prev_hash: &str, event: &AuditEvent) -> Vec<u8> {
    let mut out = b"ims-audit-v1\0".to_vec();
    out.extend_from_slice(&position.to_be_bytes());
    let at = event.at.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let fields: [Option<&str>; 11] = [
        Some(prev_hash),
        Some(&at),
        Some(&event.request_id),
        event.project_id.as_deref(),
        event.user_id.as_deref(),
        event.source_address.as_deref(),
        Some(&event.action),
        Some(&event.resource),
        Some(&event.result),
        event.error.as_deref(),
        event.detail.as_deref(),
    ];
    for field in fields {
        match field {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

/// Lower-case hex SHA-256 of [`canonical_encoding`].
pub fn chain_hash(position: u64, prev_hash: &str, event: &AuditEvent) -> String {
    hex::encode(Sha256::digest(canonical_encoding(position, prev_hash, event)))
}

/// Which events [`crate::AuditRepository::list`] returns. Every filter present must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events strictly before this time.
    pub until: Option<DateTime<Utc>>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    /// Exact action (`image.delete`), or a prefix ending in `.` followed by `*` (`image.*`).
    pub action: Option<String>,
    pub resource: Option<String>,
    /// `success` or `failure`.
    pub result: Option<String>,
    /// Only events after this position (before it when `newest_first`).
    pub marker: Option<u64>,
    /// At most this many events.
    pub limit: u32,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl AuditQuery {
    /// Every event, oldest first, `limit` at a time.
    pub fn all(limit: u32) -> AuditQuery {
        AuditQuery { limit, ..AuditQuery::default() }
    }

    /// The action filter as a SQL `LIKE`-free pair: `(exact, prefix)`, one of them set.
    pub fn action_match(&self) -> (Option<&str>, Option<&str>) {
        match self.action.as_deref() {
            Some(a) if a.ends_with(".*") => (None, Some(&a[..a.len() - 1])),
            Some(a) => (Some(a), None),
            None => (None, None),
        }
    }
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainVerification {
    /// Events checked (up to and excluding the first broken one).
    pub events: u64,
    /// Hash of the last intact event ([`GENESIS_HASH`] for an empty trail): record it to detect truncation.
    pub head_hash: String,
    /// The first event that does not continue the chain, if any.
    pub broken: Option<BrokenLink>,
}

impl ChainVerification {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// Position of the offending row (or the position that was expected there).
    pub position: u64,
    pub reason: String,
}

/// Checks stored records one at a time, in position order.
#[derive(Debug)]
pub struct ChainCheck {
    expected_position: u64,
    head_hash: String,
    broken: Option<BrokenLink>,
}

impl Default for ChainCheck {
    fn default() -> ChainCheck {
        ChainCheck { expected_position: 1, head_hash: GENESIS_HASH.to_string(), broken: None }
    }
}

impl ChainCheck {
    /// Checks the next record; returns false once the chain is broken (later records are not checked).
    pub fn push(&mut self, record: &AuditRecord) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let reason = if record.position != self.expected_position {
            Some(format!("expected position {}, found {}", self.expected_position, record.position))
        } else if record.prev_hash != self.head_hash {
            Some("prev_hash does not match the hash of the event before it (a row was removed or replaced)".into())
        } else if chain_hash(record.position, &record.prev_hash, &record.event) != record.hash {
            Some("hash does not match the event's contents (the row was modified)".into())
        } else {
            None
        };
        if let Some(reason) = reason {
            self.broken = Some(BrokenLink { position: self.expected_position, reason });
            return false;
        }
        self.head_hash = record.hash.clone();
        self.expected_position += 1;
        true
    }

    pub fn finish(self) -> ChainVerification {
        ChainVerification { events: self.expected_position - 1, head_hash: self.head_hash, broken: self.broken }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> AuditEvent {
        AuditEvent::new("req-1", action, "image:x".into())
    }

    #[test]
    fn a_chain_verifies_and_any_change_breaks_it() {
        let a = AuditRecord::chain(1, GENESIS_HASH, event("image.create"));
        let b = AuditRecord::chain(2, &a.hash, event("image.upload"));
        let c = AuditRecord::chain(3, &b.hash, event("image.delete"));
        let mut check = ChainCheck::default();
        assert!([&a, &b, &c].into_iter().all(|r| check.push(r)));
        let v = check.finish();
        assert_eq!((v.events, v.head_hash.as_str(), v.broken), (3, c.hash.as_str(), None));

        let mut modified = b.clone();
        modified.event.result = "failure".into();
        let mut check = ChainCheck::default();
        assert!(check.push(&a));
        assert!(!check.push(&modified));
        assert_eq!(check.finish().broken.unwrap().position, 2);

        let mut check = ChainCheck::default();
        assert!(check.push(&a));
        assert!(!check.push(&c), "a removed row is found");
    }

    #[test]
    fn optional_fields_cannot_be_shifted() {
        let mut one = event("x");
        one.project_id = Some("p".into());
        let mut other = event("x");
        other.user_id = Some("p".into());
        assert_ne!(chain_hash(1, GENESIS_HASH, &one), chain_hash(1, GENESIS_HASH, &other));
    }

    #[test]
    fn action_filter_takes_a_prefix() {
        let q = AuditQuery { action: Some("image.*".into()), ..AuditQuery::default() };
        assert_eq!(q.action_match(), (None, Some("image.")));
        let q = AuditQuery { action: Some("image.delete".into()), ..AuditQuery::default() };
        assert_eq!(q.action_match(), (Some("image.delete"), None));
    }
}
