//! The scrape handler: access control, then every family in the text format.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ims_catalog::{JobFilter, JobStatus};
use sha2::{Digest, Sha256};

use super::text::{Exposition, Kind, CONTENT_TYPE};
use super::{Metrics, STORE_STATS_MAX_AGE};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most queued or running jobs counted per state at one scrape (the gauges stop there).
const QUEUE_COUNT_CAP: u32 = 10_000;

pub async fn scrape(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    authorize(&state, request).await?;
    let metrics = &state.metrics;
    let mut out = Exposition::default();
    metrics.http.render(&mut out);
    metrics.render_job_durations(&mut out);
    render_job_queue(metrics, &mut out).await?;
    render_store(&state, &mut out).await;
    render_process(metrics, &mut out);
    let mut response = out.finish().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

/// Lets in anyone when `metrics_public`, the bearer of `metrics_token`, and admins; 401 without
/// credentials, 403 for credentials of someone else.
async fn authorize(state: &AppState, request: Request) -> ApiResult<()> {
    if state.settings.metrics_public {
        return Ok(());
    }
    let (mut parts, _) = request.into_parts();
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if let Some(bearer) = bearer {
        if let Some(token) = state.settings.metrics_token.as_deref() {
            // Digests compared, so the time taken says nothing about the token.
            if Sha256::digest(bearer.as_bytes()) == Sha256::digest(token.as_bytes()) {
                return Ok(());
            }
        }
        // Not the metrics token: perhaps an admin's token.
        let value = HeaderValue::from_str(&bearer).map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "The bearer token is malformed."))?;
        parts.headers.insert("x-auth-token", value);
    }
    let Ctx(ctx) = Ctx::from_request_parts(&mut parts, state).await?;
    if !ctx.is_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Metrics are for admins and the holder of the metrics token."));
    }
    Ok(())
}

impl Metrics {
    fn render_job_durations(&self, out: &mut Exposition) {
        let mut series: Vec<_> = self.jobs.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        out.family("ims_job_duration_seconds", Kind::Histogram, "Run time of the jobs this node's workers ended, by job type and final status.");
        for ((job_type, status), histogram) in &series {
            out.histogram("ims_job_duration_seconds", &[("type", job_type), ("status", status)], histogram);
        }
    }
}

/// Queued (`INIT`) and running jobs of the whole deployment, from the catalog.
async fn render_job_queue(metrics: &Metrics, out: &mut Exposition) -> ApiResult<()> {
    let mut by_type: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    let mut by_state: Vec<(&'static str, u64)> = Vec::new();
    for (status, label) in [(JobStatus::Init, "INIT"), (JobStatus::Running, "RUNNING")] {
        let filter = JobFilter { project_id: None, statuses: vec![status], parent_id: None, limit: QUEUE_COUNT_CAP };
        let jobs = metrics.catalog.jobs.list(&filter).await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("The catalog cannot list jobs: {e}"))
        })?;
        by_state.push((label, jobs.len() as u64));
        for job in jobs {
            *by_type.entry((label, job.job_type)).or_default() += 1;
        }
    }
    out.family("ims_job_queue_depth", Kind::Gauge, "Jobs waiting (INIT) or running (RUNNING) in the whole deployment (counted up to 10000).");
    for (state, count) in by_state {
        out.sample("ims_job_queue_depth", &[("state", state)], count as f64);
    }
    out.family("ims_job_queue_depth_by_type", Kind::Gauge, "Jobs waiting or running, by state and job type.");
    for ((state, job_type), count) in &by_type {
        out.sample("ims_job_queue_depth_by_type", &[("state", state), ("type", job_type)], *count as f64);
    }
    Ok(())
}

async fn render_store(state: &AppState, out: &mut Exposition) {
    let admin = &state.services.store_admin;
    let (cache, reads) = admin.node_reads();
    let counters = [
        ("ims_chunk_cache_hits_total", "Chunk frame lookups this node's chunk cache answered from memory.", cache.hits),
        ("ims_chunk_cache_misses_total", "Chunk frame lookups that had to fetch from the store.", cache.misses),
        ("ims_chunk_cache_evictions_total", "Chunk frames dropped from the cache to stay within its budget.", cache.evictions),
        ("ims_store_chunk_reads_total", "Chunk objects this node fetched from the store.", reads.chunks),
        ("ims_store_chunk_read_bytes_total", "Stored (compressed, encrypted) bytes of the chunk objects fetched.", reads.bytes),
    ];
    for (name, help, value) in counters {
        out.family(name, Kind::Counter, help);
        out.sample(name, &[], value as f64);
    }
    out.family("ims_chunk_cache_bytes", Kind::Gauge, "Bytes of decoded chunk frames the cache holds now.");
    out.sample("ims_chunk_cache_bytes", &[], cache.bytes as f64);
    out.family("ims_chunk_cache_budget_bytes", Kind::Gauge, "The cache's byte budget (chunk_cache_bytes).");
    out.sample("ims_chunk_cache_budget_bytes", &[], state.settings.chunk_cache_bytes as f64);

    let gc = admin.gc_totals();
    let counters = [
        ("ims_gc_runs_total", "Garbage collections this node completed.", gc.runs),
        ("ims_gc_failures_total", "Garbage collections this node ended with an error.", gc.failures),
        ("ims_gc_chunks_deleted_total", "Chunk objects garbage collection deleted.", gc.chunks_deleted),
        ("ims_gc_reclaimed_bytes_total", "Stored bytes garbage collection deleted.", gc.bytes_reclaimed),
    ];
    for (name, help, value) in counters {
        out.family(name, Kind::Counter, help);
        out.sample(name, &[], value as f64);
    }

    let mut cached = state.metrics.store_stats.lock().await;
    let fresh = cached.as_ref().is_some_and(|(at, _)| at.elapsed() < STORE_STATS_MAX_AGE);
    if !fresh {
        match admin.stats_for_node().await {
            Ok(stats) => *cached = Some((Instant::now(), stats)),
            Err(e) => tracing::warn!(error = %e, "store statistics for /metrics failed; serving the previous ones"),
        }
    }
    let Some((at, stats)) = cached.as_ref() else { return };
    let gauges = [
        ("ims_store_dedup_ratio", "Logical bytes of images over the stored bytes of the chunks they reference.", stats.dedup_ratio),
        ("ims_store_images", "Images with data.", stats.images as f64),
        ("ims_store_logical_bytes", "Sum of the sizes of images with data.", stats.logical_bytes as f64),
        ("ims_store_physical_bytes", "Stored bytes of all chunks and manifests.", stats.physical_bytes as f64),
        ("ims_store_unreferenced_bytes", "Stored bytes of chunks no image references (in-progress uploads, garbage).", stats.unreferenced_bytes as f64),
        ("ims_store_stats_age_seconds", "Age of the store statistics above (recomputed every 300 s at most).", at.elapsed().as_secs_f64()),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help);
        out.sample(name, &[], value);
    }
}

fn render_process(metrics: &Metrics, out: &mut Exposition) {
    if let Some(rss) = resident_memory_bytes() {
        out.family("process_resident_memory_bytes", Kind::Gauge, "Resident memory of the server process.");
        out.sample("process_resident_memory_bytes", &[], rss as f64);
    }
    out.family("ims_uptime_seconds", Kind::Gauge, "Seconds since the node started.");
    out.sample("ims_uptime_seconds", &[], metrics.started.elapsed().as_secs_f64());
}

/// `VmRSS` of `/proc/self/status` (none where there is no procfs).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
