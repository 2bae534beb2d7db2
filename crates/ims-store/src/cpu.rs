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
///
/// The permit is taken and given back by a task of its own, not by the caller's future: a caller that stops
/// polling (a read stream whose consumer stalls) must not hold a permit, nor be handed one while queued,
/// and so hold up every other read and write of the process. Dropping the returned future stops the wait for
/// a permit; a job already running finishes in the background.
pub(crate) async fn run<R, F>(what: &str, job: F) -> Result<R, StoreError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let task = tokio::spawn(async move {
        let permit = permits().acquire().await.expect("the CPU semaphore is never closed");
        let result = tokio::task::spawn_blocking(job).await;
        drop(permit);
        result
    });
    let mut task = AbortOnDrop(task);
    match (&mut task.0).await {
        Ok(result) => result.map_err(|e| StoreError::from_join(what, e)),
        Err(e) => Err(StoreError::from_join(what, e)),
    }
}

/// Aborts the task when dropped (its caller went away).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
