use std::io;

use thiserror::Error;

/// Why a connection ended abnormally. Errors the protocol can report to the client (unknown
/// export, bad request, failed read) are sent to it and are not `NbdError`s; these are the cases
/// where the server hangs up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NbdError {
    /// Reading from or writing to the client failed (including the client hanging up mid-message).
    #[error("connection I/O error: {0}")]
    Io(#[from] io::Error),
    /// The client broke a rule of the protocol that leaves no way to answer (bad magic, unknown
    /// client flags, an unknown export in `NBD_OPT_EXPORT_NAME`, an absurd option length).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The TLS handshake after `NBD_OPT_STARTTLS` failed: the client's credentials were refused
    /// (unknown identity, wrong key) or the handshake broke.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The client did not finish negotiating within the configured time.
    #[error("handshake timed out")]
    HandshakeTimeout,
}
