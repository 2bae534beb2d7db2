use thiserror::Error;

/// Errors of the catalog layer. Backends map their driver errors into these.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The record does not exist (or is deleted).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique key already exists, or a compare-and-set guard did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A quota or count limit checked inside the write's transaction would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The request cannot be expressed (bad URL, bad marker, ...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed or returned data this version cannot read.
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot serve the request now: the connection was refused or lost, the pool is
    /// exhausted, the server is shutting down, or it aborted the transaction (deadlock). Nothing was
    /// applied, except when the connection broke during the commit (then the outcome is unknown).
    /// Retrying may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
