//! The audit trail as users see it: queries (admins see every project's events, everyone else only their
//! own project's), the chain check (admins), and the events that accompany no catalog change: refused or
//! failed requests and the outcomes of jobs.

use chrono::Utc;
use ims_catalog::{AuditEvent, AuditQuery, AuditRecord, Catalog, ChainVerification, Job, JobStatus};

use crate::{CoreError, Policy, RequestContext, Result};

/// Events per page when the caller names no limit.
pub const DEFAULT_PAGE: u32 = 100;
/// The most events one page may hold.
pub const MAX_PAGE: u32 = 1000;

#[derive(Clone)]
pub struct AuditService {
    catalog: Catalog,
}

impl AuditService {
    pub fn new(catalog: Catalog) -> AuditService {
        AuditService { catalog }
    }

    /// The events matching `query` that the caller may see. A caller who is not an admin sees only
    /// events of their own project: asking for another project is `Forbidden`. `limit` 0 means
    /// [`DEFAULT_PAGE`]; above [`MAX_PAGE`] is `Invalid`.
    pub async fn list(&self, ctx: &RequestContext, mut query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.is_admin() {
            match &query.project_id {
                Some(p) if *p != caller.project_id => {
                    return Err(CoreError::Forbidden(format!(
                        "Only admins may read the audit events of another project ({p})."
                    )))
                }
                _ => query.project_id = Some(caller.project_id.clone()),
            }
        }
        if query.limit == 0 {
            query.limit = DEFAULT_PAGE;
        }
        if query.limit > MAX_PAGE {
            return Err(CoreError::Invalid(format!("limit must be at most {MAX_PAGE}")));
        }
        if let (Some(since), Some(until)) = (&query.since, &query.until) {
            if since >= until {
                return Err(CoreError::Invalid("since must be before until".into()));
            }
        }
        if let Some(result) = query.result.as_deref() {
            if !matches!(result, "success" | "failure") {
                return Err(CoreError::Invalid(format!("result must be success or failure, not {result:?}")));
            }
        }
        Ok(self.catalog.audit.list(&query).await?)
    }

    /// Walks the whole chain (admins only). Reading only; a broken chain is a result, not an error.
    pub async fn verify(&self, ctx: &RequestContext) -> Result<ChainVerification> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.is_admin() {
            return Err(CoreError::Forbidden("Only admins may verify the audit trail.".into()));
        }
        Ok(self.catalog.audit.verify().await?)
    }

    /// Records a request that changed nothing because it failed: `event` marked as a failure with
    /// `error`. Never fails the request it describes: a catalog error is logged and dropped.
    pub async fn record_failure(&self, event: AuditEvent, error: &str) {
        if let Err(e) = self.catalog.audit.record(&event.failed(error)).await {
            tracing::error!(error = %e, "cannot record a failed request in the audit trail");
        }
    }
}

/// Records the end of `job` (`job.succeeded` or `job.failed` on `job:<id>`, with the job's error code and
/// reason as the error, and the `worker` that ended it in the detail) when its status is final; otherwise
/// does nothing. Logged, never fails.
pub async fn record_job_outcome(catalog: &Catalog, job: &Job, worker: &str) {
    let (action, error) = match job.status {
        JobStatus::Success => ("job.succeeded", None),
        JobStatus::Fail => (
            "job.failed",
            Some(format!(
                "{}: {}",
                job.error_code.as_deref().unwrap_or("unknown"),
                job.fail_reason.as_deref().unwrap_or("no reason given")
            )),
        ),
        _ => return,
    };
    let mut event = AuditEvent::new(&format!("job-{}", job.id), action, format!("job:{}", job.id));
    event.at = Utc::now();
    event.project_id = Some(job.project_id.clone());
    event.detail = Some(format!("type {}, attempts {}, worker {worker}", job.job_type, job.attempts));
    if let Some(error) = error {
        event = event.failed(error);
    }
    if let Err(e) = catalog.audit.record(&event).await {
        tracing::error!(job = %job.id, error = %e, "cannot record the end of a job in the audit trail");
    }
}
