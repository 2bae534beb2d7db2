use thiserror::Error;

/// Errors of the formats layer. Each names its reason in words a user can act on.
#[derive(Debug, Error)]
pub enum FormatError {
    /// Reading or writing the underlying file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file is damaged or not of the format it claims (truncated, bad magic, tables out of range).
    #[error("{0}")]
    Corrupt(String),
    /// The file is well-formed but refused for safety (backing file, external data, differencing parent,
    /// unknown incompatible feature, content that does not match the declared format).
    #[error("{0}")]
    Unsafe(String),
    /// A feature or format this build does not handle.
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
