//! Throwaway services for IMS tests, started on loopback from what the machine has installed.
//!
//! Nothing is assumed to be running beforehand. When the test command (`scripts/test`) has already started a
//! shared service it exports its address in the environment and the helpers here reuse it, giving each test
//! its own database or bucket; otherwise they start a private one for the calling process.

pub mod garage;
pub mod keystone;
pub mod postgres;
