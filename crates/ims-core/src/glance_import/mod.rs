//! Glance interoperable import: staging data (`PUT /v2/images/{id}/stage`), and the import methods
//! `glance-direct` (activate staged data) and `web-download` (fetch a URI), each run as a durable job on
//! whichever node claims it. Staged data is a manifest in the chunk store recorded on the image, so any
//! node can finish an import staged on another. `copy-image` copies an active image's data to other
//! configured stores (see [`stores`]). Jobs of this type are Glance's import tasks.

mod handler;
mod legacy_task;
mod location_job;
pub mod locations;
mod stage;
pub mod stores;
mod tasks;
pub mod web;

use std::sync::Arc;

use ims_catalog::{Image, ImageChange, ImageStatus, Job};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::jobs::{JobHandlers, JobService};
use crate::{CoreError, ImageService, Policy, RequestContext, Result, Services};

pub use stores::{image_stores, StoreInfo, Stores, DEFAULT_STORE_ID};
pub use locations::{HashAlgo, ImageLocation, LocationRequest, ValidationData, GLANCE_LOCATION_JOB};
pub use legacy_task::LegacyImportTask;
pub use tasks::GlanceTask;
pub use web::WebDownloadPolicy;

/// The job type of Glance import tasks.
pub const GLANCE_IMPORT_JOB: &str = "glance_import";

/// Image property naming the stores an import is writing to.
pub const IMPORTING_TO_STORES: &str = "os_glance_importing_to_stores";
/// Image property naming the stores an import failed to write to.
pub const FAILED_IMPORT: &str = "os_glance_failed_import";
/// Image property naming the node that took the staged data.
pub const STAGE_HOST: &str = "os_glance_stage_host";

/// Adds `stores` to the comma-separated store list of property `key` (with `subtract`, removes them), as
/// Glance keeps `os_glance_importing_to_stores` and `os_glance_failed_import`: the property stays once set,
/// empty when no store is left, and lists its stores sorted.
pub(crate) fn merge_store_list(
    properties: &mut std::collections::BTreeMap<String, String>,
    key: &str,
    stores: &[String],
    subtract: bool,
) {
    let mut merged: std::collections::BTreeSet<String> = properties
        .get(key)
        .map(|list| list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    for store in stores.iter().filter(|s| !s.is_empty()) {
        if subtract {
            merged.remove(store);
        } else {
            merged.insert(store.clone());
        }
    }
    properties.insert(key.to_string(), merged.into_iter().collect::<Vec<_>>().join(","));
}

/// An interoperable import method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMethod {
    GlanceDirect,
    WebDownload,
    /// Copies an active image's data to other stores.
    CopyImage,
}

impl ImportMethod {
    pub const ALL: [ImportMethod; 3] = [ImportMethod::GlanceDirect, ImportMethod::WebDownload, ImportMethod::CopyImage];

    pub fn as_str(self) -> &'static str {
        match self {
            ImportMethod::GlanceDirect => "glance-direct",
            ImportMethod::WebDownload => "web-download",
            ImportMethod::CopyImage => "copy-image",
        }
    }

    pub fn parse(name: &str) -> Option<ImportMethod> {
        ImportMethod::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Operator settings of interoperable import.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// The methods offered, in the order `/v2/info/import` lists them.
    pub methods: Vec<ImportMethod>,
    /// The stores: the default one images are written to, and those they can be copied to.
    pub stores: Stores,
    /// Recorded as `os_glance_stage_host` on staged images, when set (this node's public URL).
    pub stage_host: Option<String>,
    pub web_download: WebDownloadPolicy,
}

impl Default for ImportSettings {
    fn default() -> ImportSettings {
        ImportSettings {
            methods: ImportMethod::ALL.to_vec(),
            stores: Stores::default(),
            stage_host: None,
            web_download: WebDownloadPolicy::default(),
        }
    }
}

/// What `POST /v2/images/{id}/import` asks for.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// The method's name as sent.
    pub method: String,
    /// The source of `web-download`.
    pub uri: Option<String>,
    /// Stores to import to (`None`: the default store; for `copy-image`, required unless `all_stores`).
    pub stores: Option<Vec<String>>,
    pub all_stores: bool,
    pub all_stores_must_succeed: bool,
}

/// The parameters of a Glance import job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImportParams {
    pub image_id: String,
    pub method: ImportMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub stores: Vec<String>,
    pub all_stores_must_succeed: bool,
}

/// The Glance import use cases.
#[derive(Clone)]
pub struct GlanceImportService {
    pub(crate) images: ImageService,
    pub(crate) jobs: JobService,
    pub(crate) settings: Arc<ImportSettings>,
    /// The stored format per source format (the operator's `import_conversions`, shared with the pipelines).
    pub(crate) conversions: Arc<crate::pipelines::ImportConversions>,
    /// The buckets location imports read from.
    pub(crate) buckets: crate::buckets::BucketStore,
}

impl Services {
    /// The Glance import use cases over these services, with `settings`.
    /// The extra stores of `settings` become those every image service of these services knows.
    /// Imported data is converted as the import conversions of these services say
    /// ([`Services::with_pipelines`]).
    pub fn glance_import(&self, settings: Arc<ImportSettings>) -> GlanceImportService {
        self.images.extra_stores.set(&settings.stores);
        let conversions = Arc::clone(&self.import_conversions);
        let buckets = self.buckets.clone();
        GlanceImportService { images: self.images.clone(), jobs: self.jobs.clone(), settings, conversions, buckets }
    }
}

impl GlanceImportService {
    pub fn settings(&self) -> &ImportSettings {
        &self.settings
    }

    /// Registers the handlers of Glance import and location import jobs in `handlers`.
    pub fn register_handler(&self, handlers: &mut JobHandlers) {
        handlers.register(GLANCE_IMPORT_JOB, Arc::new(handler::GlanceImportHandler(self.clone())));
        handlers.register(GLANCE_LOCATION_JOB, Arc::new(location_job::LocationImportHandler(self.clone())));
    }

    /// Starts an import of image `id`: checks the request, then turns the image `importing` and enqueues the
    /// job in one transaction. `Invalid` for an unknown or disabled method, a missing or refused URI;
    /// `Conflict` for an unknown store or an image not in the state the method needs (`uploading` with
    /// staged data for `glance-direct`, `queued` for `web-download`); `Forbidden` unless the caller may
    /// change the image. Nothing changes when it fails.
    pub async fn import(&self, ctx: &RequestContext, id: Uuid, request: ImportRequest) -> Result<Job> {
        self.start_import(ctx, id, request, None).await
    }

    /// [`Self::import`], recording `legacy_input` (the input of a legacy `import` task) on the job.
    async fn start_import(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        request: ImportRequest,
        legacy_input: Option<serde_json::Value>,
    ) -> Result<Job> {
        let method = ImportMethod::parse(&request.method)
            .ok_or_else(|| CoreError::Invalid(format!("Import method {} is not supported", request.method)))?;
        if !self.settings.methods.contains(&method) {
            return Err(CoreError::Invalid(format!("Import method {} is not enabled", method.as_str())));
        }
        let stores = self.stores(&request, method)?;
        let mut image = self.images.get(ctx, id).await?;
        Policy::check_modify(ctx, &image)?;
        let expected = match method {
            ImportMethod::GlanceDirect => {
                if image.status != ImageStatus::Uploading || image.manifest_id.is_none() {
                    return Err(CoreError::Conflict(format!(
                        "Image {id} is {}: it needs to be staged before 'glance-direct' method can be used",
                        image.status
                    )));
                }
                ImageStatus::Uploading
            }
            ImportMethod::WebDownload => {
                let uri = request.uri.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
                    CoreError::Invalid("web-download needs the method's 'uri'".into())
                })?;
                if image.status != ImageStatus::Queued {
                    return Err(CoreError::Conflict(format!(
                        "Image {id} is {}: web-download needs a queued image",
                        image.status
                    )));
                }
                self.settings
                    .web_download
                    .check(uri)
                    .await
                    .map_err(|e| CoreError::Invalid(format!("URI for web-download does not pass filtering: {e}")))?;
                ImageStatus::Queued
            }
            ImportMethod::CopyImage => {
                return self.copy_image(ctx, image, stores, request.all_stores_must_succeed).await;
            }
        };
        image.status.check_transition(ImageStatus::Importing, &image)?;
        image.status = ImageStatus::Importing;
        image.updated_at = crate::now();
        merge_store_list(&mut image.properties, IMPORTING_TO_STORES, &stores, false);
        merge_store_list(&mut image.properties, FAILED_IMPORT, &stores, true);
        let params = ImportParams {
            image_id: id.to_string(),
            method,
            uri: request.uri.clone().filter(|_| method == ImportMethod::WebDownload),
            stores,
            all_stores_must_succeed: request.all_stores_must_succeed,
        };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let mut params = tasks::with_requester(params, ctx);
        if let Some(input) = legacy_input {
            params[legacy_task::LEGACY_TASK_INPUT] = input;
        }
        let job = self.jobs.new_job(ctx, GLANCE_IMPORT_JOB, params, json!({"image_id": id.to_string()}))?;
        let change = ImageChange::Save { image: &image, expected: &[expected] };
        self.jobs.enqueue_with_image(ctx, &job, change).await.map_err(|e| match e {
            CoreError::Conflict(_) => CoreError::Conflict(format!("Image {id} changed meanwhile; it is no longer {expected}")),
            other => other,
        })?;
        Ok(job)
    }

    /// `copy-image` of the active image `image` to `stores`: records them as being imported to and
    /// enqueues the job, in one transaction; the image stays active. `Conflict` unless the image is active
    /// with data, or when every store named already holds it (a store already holding it is skipped).
    async fn copy_image(&self, ctx: &RequestContext, mut image: Image, stores: Vec<String>, must_succeed: bool) -> Result<Job> {
        let id = image.id;
        if image.status != ImageStatus::Active || image.manifest_id.is_none() {
            return Err(CoreError::Conflict(format!("Image {id} is {}: copy-image needs an active image", image.status)));
        }
        let held = image_stores(&image);
        let stores: Vec<String> = stores.into_iter().filter(|s| !held.contains(s)).collect();
        if stores.is_empty() {
            return Err(CoreError::Conflict(format!("Image {id} is already present in every store named")));
        }
        if image.properties.get(IMPORTING_TO_STORES).is_some_and(|s| !s.is_empty()) {
            return Err(CoreError::Conflict(format!("Image {id} is already being copied to stores")));
        }
        image.updated_at = crate::now();
        merge_store_list(&mut image.properties, IMPORTING_TO_STORES, &stores, false);
        merge_store_list(&mut image.properties, FAILED_IMPORT, &stores, true);
        let params = ImportParams {
            image_id: id.to_string(),
            method: ImportMethod::CopyImage,
            uri: None,
            stores,
            all_stores_must_succeed: must_succeed,
        };
        let params = serde_json::to_value(&params).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let params = tasks::with_requester(params, ctx);
        let job = self.jobs.new_job(ctx, GLANCE_IMPORT_JOB, params, json!({"image_id": id.to_string()}))?;
        let change = ImageChange::Save { image: &image, expected: &[ImageStatus::Active] };
        self.jobs.enqueue_with_image(ctx, &job, change).await.map_err(|e| match e {
            CoreError::Conflict(_) => CoreError::Conflict(format!("Image {id} changed meanwhile; it is no longer active")),
            other => other,
        })?;
        Ok(job)
    }

    /// The stores the request names, all known (else `Conflict`), without repeats. `glance-direct` and
    /// `web-download` always write to the default store (put first) and copy the data to the other stores
    /// named before the image turns active; `copy-image` copies to the stores named.
    fn stores(&self, request: &ImportRequest, method: ImportMethod) -> Result<Vec<String>> {
        let registry = &self.settings.stores;
        let stores = if request.all_stores {
            if request.stores.is_some() {
                return Err(CoreError::Invalid("'stores' and 'all_stores' cannot be given together".into()));
            }
            registry.ids()
        } else {
            match (&request.stores, method) {
                (Some(stores), _) => stores.clone(),
                (None, ImportMethod::CopyImage) => {
                    return Err(CoreError::Invalid("copy-image needs 'stores' or 'all_stores'".into()))
                }
                (None, _) => vec![DEFAULT_STORE_ID.to_string()],
            }
        };
        if stores.is_empty() {
            return Err(CoreError::Invalid("'stores' names no store".into()));
        }
        if let Some(unknown) = stores.iter().find(|s| !registry.contains(s)) {
            return Err(CoreError::Conflict(format!("Unknown store {unknown}")));
        }
        let mut unique = Vec::new();
        for store in stores {
            if !unique.contains(&store) {
                unique.push(store);
            }
        }
        if method != ImportMethod::CopyImage {
            unique.retain(|s| s != DEFAULT_STORE_ID);
            unique.insert(0, DEFAULT_STORE_ID.to_string());
        }
        Ok(unique)
    }
}
