//! NBD protocol server (read-only image exports, read-write volume exports). Built with the compute issue.
