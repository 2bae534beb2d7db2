//! The IMS image pipelines, run as jobs: each operation checks its request and enqueues a job; the job's
//! [`JobHandler`](crate::jobs::JobHandler) does the work on whichever node claims it.

mod convert;
mod copy;
mod cross_region;
mod export;
mod import;
mod sink;

use std::sync::Arc;

use ims_catalog::Image;

use crate::buckets::BucketStore;
use crate::jobs::{JobError, JobHandlers, JobService};
use crate::{CoreError, ImageService, Services};

pub(crate) use convert::convert_stored;
pub use copy::COPY_JOB;
pub use cross_region::{CrossRegionCopy, CROSS_REGION_COPY_JOB};
pub use export::{ExportFormat, EXPORT_JOB};
pub use import::{
    hold_imports_of, parse_conversions, source_format, ImportConversions, ImportHold, ImportRequest, IMPORT_JOB,
};

/// Error codes of failed pipeline jobs (the job's `error_code`), each with a human `fail_reason`.
pub mod codes {
    /// The bucket object to import does not exist (or the caller may not read it).
    pub const SOURCE_MISSING: &str = "IMG.0102";
    /// The source file is not a valid image of its format.
    pub const SOURCE_CORRUPT: &str = "IMG.0103";
    /// A format that this operation does not support.
    pub const UNSUPPORTED_FORMAT: &str = "IMG.0104";
    /// The image is not (or no longer) in a state the operation needs.
    pub const WRONG_STATE: &str = "IMG.0105";
    /// Past a configured size limit.
    pub const TOO_LARGE: &str = "IMG.0106";
    /// The region named by a cross-region copy is not configured.
    pub const REGION_UNKNOWN: &str = "IMG.0107";
    /// The target region refused the credentials configured for it.
    pub const REGION_CREDENTIALS: &str = "IMG.0108";
    /// The target region has no project of the name a cross-region copy gave.
    pub const REGION_PROJECT: &str = "IMG.0109";
    /// The (target) project's private image quota is used up.
    pub const QUOTA_EXCEEDED: &str = "IMG.0010";
    /// The image the job works on was deleted.
    pub const IMAGE_GONE: &str = "IMG.0004";
    /// A backend failed repeatedly.
    pub const UNAVAILABLE: &str = "IMG.0503";
    /// Anything else.
    pub const INTERNAL: &str = "IMG.0500";
}

/// Size limits of the pipelines (operator settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineLimits {
    /// Largest source file of a standard import (with conversion), default 128 GiB.
    pub max_import_size: u64,
    /// Largest source file of a quick import, default 1 TiB.
    pub max_quick_import_size: u64,
    /// Exports are refused for images whose virtual size is this or more, default 1 TiB.
    pub max_export_size: u64,
}

impl Default for PipelineLimits {
    fn default() -> PipelineLimits {
        PipelineLimits { max_import_size: 128 << 30, max_quick_import_size: 1 << 40, max_export_size: 1 << 40 }
    }
}

/// The pipeline use cases (export, import, copy).
#[derive(Clone)]
pub struct PipelineService {
    pub(crate) images: ImageService,
    pub(crate) buckets: BucketStore,
    pub(crate) jobs: JobService,
    pub(crate) limits: PipelineLimits,
    pub(crate) conversions: Arc<ImportConversions>,
    pub(crate) regions: crate::regions::Regions,
}

impl Services {
    /// The same services with these pipeline limits and import conversions (operator settings).
    pub fn with_pipelines(mut self, limits: PipelineLimits, conversions: ImportConversions) -> Services {
        self.pipeline_limits = limits;
        self.import_conversions = Arc::new(conversions);
        self
    }

    /// The pipeline use cases over these services.
    pub fn pipelines(&self) -> PipelineService {
        PipelineService {
            images: self.images.clone(),
            buckets: self.buckets.clone(),
            jobs: self.jobs.clone(),
            limits: self.pipeline_limits,
            conversions: Arc::clone(&self.import_conversions),
            regions: self.regions.clone(),
        }
    }

    /// Every job type this node's runner runs, with its handler.
    pub fn job_handlers(&self) -> JobHandlers {
        let pipelines = Arc::new(self.pipelines());
        let mut handlers = JobHandlers::new();
        handlers.register(EXPORT_JOB, Arc::new(export::ExportHandler(Arc::clone(&pipelines))));
        handlers.register(IMPORT_JOB, Arc::new(import::ImportHandler(Arc::clone(&pipelines))));
        handlers.register(CROSS_REGION_COPY_JOB, Arc::new(cross_region::CrossRegionCopyHandler(Arc::clone(&pipelines))));
        handlers.register(COPY_JOB, Arc::new(copy::CopyHandler(pipelines)));
        let compute = Arc::new(self.compute.clone());
        handlers.register(crate::compute::SERVER_IMAGE_JOB, Arc::new(crate::compute::ServerImageHandler(compute)));
        handlers
    }
}

/// The job error for a use-case error met while a job runs: backend trouble is transient, the rest final.
pub(crate) fn job_error(e: CoreError) -> JobError {
    match e {
        CoreError::Unavailable(m) => JobError::transient(codes::UNAVAILABLE, m),
        CoreError::NotFound(m) => JobError::failed(codes::IMAGE_GONE, m),
        CoreError::Conflict(m) => JobError::failed(codes::WRONG_STATE, m),
        CoreError::Invalid(m) => JobError::failed(codes::SOURCE_CORRUPT, m),
        CoreError::TooLarge(m) => JobError::failed(codes::TOO_LARGE, m),
        CoreError::QuotaExceeded(m) => JobError::failed(codes::QUOTA_EXCEEDED, m),
        CoreError::Corrupt(m) => JobError::failed(codes::INTERNAL, format!("stored data failed verification: {m}")),
        other => JobError::failed(codes::INTERNAL, other.to_string()),
    }
}

/// The image a job works on, read from the catalog (the job carries no request context).
pub(crate) async fn job_image(images: &ImageService, id: &str) -> Result<Image, JobError> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| JobError::failed(codes::INTERNAL, format!("bad image id {id:?}")))?;
    images.catalog.images.get(id).await.map_err(|e| match e {
        ims_catalog::CatalogError::NotFound(_) => JobError::failed(codes::IMAGE_GONE, format!("image {id} was deleted")),
        other => job_error(other.into()),
    })
}
