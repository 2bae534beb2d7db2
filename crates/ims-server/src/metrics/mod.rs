//! `GET /metrics`: the node's metrics in the Prometheus text format (0.0.4).
//!
//! HTTP series are recorded as requests pass ([`http::record`]); job durations as this node's workers end
//! jobs ([`Metrics::job_observer`]); the rest is read at scrape time: the job queue from the catalog, the
//! chunk cache and store reads from the store, garbage collection totals, the dedup ratio (from store
//! statistics at most [`STORE_STATS_MAX_AGE`] old) and the process's resident memory.
//!
//! Access: the bearer token `metrics_token`, or an admin's credentials (`X-Auth-Token`, a signed request,
//! or the token as bearer); anyone when `metrics_public` is set. The series are described in
//! `docs/operations.md`.

pub mod http;
mod scrape;
mod text;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use ims_catalog::{Catalog, Job, JobStatus};
use ims_core::store_admin::StoreStats;

use crate::state::AppState;
use text::{Histogram, JOB_SECONDS};

/// Longest time store statistics (dedup ratio, logical and physical bytes) are reused before a scrape
/// computes them again: they scan the store's listing and every manifest.
pub const STORE_STATS_MAX_AGE: Duration = Duration::from_secs(300);

/// Everything the node records for `/metrics`.
pub struct Metrics {
    http: http::HttpMetrics,
    /// Durations of jobs this node ended, by job type and final status.
    jobs: RwLock<HashMap<(String, &'static str), Arc<Histogram>>>,
    catalog: Catalog,
    /// The last store statistics and when they were computed; the lock makes concurrent scrapes share one scan.
    store_stats: tokio::sync::Mutex<Option<(Instant, StoreStats)>>,
    started: Instant,
}

impl Metrics {
    pub fn new(catalog: Catalog) -> Metrics {
        Metrics {
            http: Default::default(),
            jobs: Default::default(),
            catalog,
            store_stats: Default::default(),
            started: Instant::now(),
        }
    }

    /// What the job runner calls at every job end: records the duration of finished jobs.
    pub fn job_observer(self: &Arc<Self>) -> ims_core::jobs::JobObserver {
        let metrics = Arc::clone(self);
        Arc::new(move |job: &Job| metrics.job_ended(job))
    }

    fn job_ended(&self, job: &Job) {
        let status = match job.status {
            JobStatus::Success => "SUCCESS",
            JobStatus::Fail => "FAIL",
            // Handed back for a retry: it has not ended.
            JobStatus::Init | JobStatus::Running => return,
        };
        let (Some(begin), Some(end)) = (job.begin_time, job.end_time) else { return };
        let duration = (end - begin).to_std().unwrap_or_default();
        let key = (job.job_type.clone(), status);
        let histogram = {
            let found = self.jobs.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
            match found {
                Some(h) => h,
                None => Arc::clone(
                    self.jobs.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert_with(|| Arc::new(Histogram::new(JOB_SECONDS))),
                ),
            }
        };
        histogram.observe(duration);
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape::scrape))
}
