use ims_catalog::CatalogError;
use ims_store::StoreError;
use thiserror::Error;

/// Errors of the use cases. The HTTP edge maps each kind to the status code of the surface called.
#[derive(Debug, Error)]
pub enum CoreError {
    /// No valid credentials were presented.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the resource's current state (wrong status, duplicate).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or names invalid values.
    #[error("{0}")]
    Invalid(String),
    /// A size, count or quota limit would be exceeded.
    #[error("{0}")]
    TooLarge(String),
    /// A project quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The operation exists in the API but this deployment cannot perform it (yet).
    #[error("{0}")]
    NotAvailable(String),
    /// Stored data failed verification.
    #[error("{0}")]
    Corrupt(String),
    /// A backend (database, object store) failed; the request may be retried.
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<CatalogError> for CoreError {
    fn from(e: CatalogError) -> CoreError {
        match e {
            CatalogError::NotFound(m) => CoreError::NotFound(format!("{m} not found")),
            CatalogError::Conflict(m) => CoreError::Conflict(m),
            CatalogError::Invalid(m) => CoreError::Invalid(m),
            CatalogError::LimitExceeded(m) => CoreError::QuotaExceeded(m),
            CatalogError::Database(m) => CoreError::Unavailable(format!("catalog unavailable: {m}")),
            CatalogError::Unavailable(m) => CoreError::Unavailable(format!("catalog unavailable: {m}")),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> CoreError {
        match e {
            StoreError::NotFound(m) => CoreError::NotFound(m),
            StoreError::Corrupt(m) => CoreError::Corrupt(m),
            StoreError::Invalid(m) => CoreError::Invalid(m),
            StoreError::Backend(m) => CoreError::Unavailable(format!("object store unavailable: {m}")),
        }
    }
}
