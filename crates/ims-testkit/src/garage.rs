//! A Garage S3 cluster on loopback (filled in by the S3 backend work).
