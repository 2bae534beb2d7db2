//! Running a batch of fallible jobs so that a failure leaves nothing in flight.
//!
//! `futures`' `try_collect` returns at the first error and drops the jobs still running. A dropped job may
//! still act: an object store put handed to a blocking thread (a local store's) or a request already sent
//! lands anyway. When the caller cleans up after the failure (deletes a pending manifest the jobs write
//! segments of), such a late write would outlive the clean-up. [`try_collect_settled`] waits for them.

use std::future::Future;

use futures::stream::FuturesOrdered;
use futures::StreamExt;

use crate::StoreError;

/// Runs `jobs`, at most `limit` at once, and returns their results in order, or the first error.
///
/// Guarantee: when this returns, no job is running. After the first error no further job starts; the ones
/// already started run to their end (their results are dropped) before the error is returned.
pub(crate) async fn try_collect_settled<T, F>(jobs: impl IntoIterator<Item = F>, limit: usize) -> Result<Vec<T>, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    // (A loop rather than stream adapters: closures taking references here make the callers' futures fail
    // to be `Send` for every lifetime.)
    let mut jobs = jobs.into_iter();
    let mut running = FuturesOrdered::new();
    let mut results = Vec::new();
    let mut first_error = None;
    loop {
        while first_error.is_none() && running.len() < limit.max(1) {
            match jobs.next() {
                Some(job) => running.push_back(job),
                None => break,
            }
        }
        match running.next().await {
            None => break,
            Some(Ok(value)) => results.push(value),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn results_come_in_order() {
        let jobs = (0..20u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(20 - i)).await;
            Ok(i)
        });
        assert_eq!(try_collect_settled(jobs, 4).await.unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failure_starts_nothing_more_and_lets_the_started_jobs_end() {
        let (started, ended) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let jobs = (0..100u64).map(|i| {
            let (started, ended) = (&started, &ended);
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                if i == 2 {
                    return Err(StoreError::Backend("job 2 failed".into()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                ended.fetch_add(1, Ordering::SeqCst);
                Ok(i)
            }
        });
        let error = try_collect_settled(jobs, 4).await.unwrap_err();
        assert!(matches!(&error, StoreError::Backend(m) if m == "job 2 failed"), "{error:?}");
        let started = started.load(Ordering::SeqCst);
        assert!(started < 10, "{started} jobs started");
        assert_eq!(ended.load(Ordering::SeqCst), started - 1, "every started job but the failed one ran to its end");
    }
}
