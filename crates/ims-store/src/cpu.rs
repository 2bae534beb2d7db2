//! Running CPU-heavy work (hashing, compression, decoding) off the async threads, at most one job per core.
//!
//! All writers and readers of the process share the limit: more simultaneous jobs than cores would only
//! time-slice them and thrash the caches, while holding more chunk buffers in memory.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::StoreError;

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Runs `job` on tokio's blocking pool once a CPU permit is free. `what` names the job in errors
/// (a panic in `job` becomes `StoreError::Backend`).
pub(crate) async fn run<R, F>(what: &str, job: F) -> Result<R, StoreError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let _permit = permits().acquire().await.expect("the CPU semaphore is never closed");
    tokio::task::spawn_blocking(job).await.map_err(|e| StoreError::from_join(what, e))
}
