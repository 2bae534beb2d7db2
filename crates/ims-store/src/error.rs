//! The one error type of the blob layer.

/// Errors returned by the chunk store.
///
/// Callers map these once at their own edge: `NotFound` is "the thing you named does not exist",
/// `Corrupt` is "stored data failed verification" (a server-side fault, never the caller's),
/// `Backend` is "the object store failed" (often transient), `Invalid` is "the request itself was wrong".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object (manifest) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data is damaged or missing: hash mismatch, undecodable chunk, unparsable manifest.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The object store backend failed (I/O, network, permissions, ...).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The request was invalid (bad URL, bad id, range outside the file, invalid manifest, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => StoreError::NotFound(path),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

impl StoreError {
    /// Maps a failed blocking task (panic or cancellation) to a backend error.
    pub(crate) fn from_join(what: &str, e: tokio::task::JoinError) -> Self {
        StoreError::Backend(format!("{what} task failed: {e}"))
    }
}
