//! `POST /v2/images/{id}/import`: starts an interoperable import (a job; see `/v2/images/{id}/tasks`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ims_core::glance_import::{ImportMethod, ImportRequest, ImportSettings, Stores, WebDownloadPolicy};
use ims_store::ChunkStore;
use serde_json::Value;

use super::body;
use super::images::image_id;
use crate::auth::Ctx;
use crate::config::Settings;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The import settings of a node, from its configuration; an unknown method name is an error.
pub fn import_settings(settings: &Settings) -> anyhow::Result<ImportSettings> {
    let config = &settings.glance_import;
    let methods = config
        .methods
        .iter()
        .map(|name| {
            ImportMethod::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "glance_import.methods: unknown import method {name:?} (glance-direct, web-download, copy-image)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ImportSettings {
        methods,
        stores: stores(settings)?,
        stage_host: settings.public_url.clone(),
        web_download: WebDownloadPolicy {
            allowed_hosts: config.web_download_allowed_hosts.clone(),
            allow_private_addresses: config.web_download_allow_private_addresses,
            max_size: config.web_download_max_size.unwrap_or(settings.image_size_cap),
            ..WebDownloadPolicy::default()
        },
    })
}

/// The Glance stores of a node: its chunk store (`local`) and those of `[stores.<id>]`, each opened.
fn stores(settings: &Settings) -> anyhow::Result<Stores> {
    let kind = |url: &str| url.split_once("://").map_or("file", |(scheme, _)| scheme).to_string();
    let mut stores = Stores::new("Deduplicated, compressed chunk store", &kind(&settings.store_url()?));
    let options = ims_store::StoreOptions {
        s3_access_key_id: settings.s3_access_key_id.clone(),
        s3_secret_access_key: settings.s3_secret_access_key.clone(),
    };
    for (id, config) in &settings.stores {
        let url = crate::config::without_password(&config.url);
        let chunks = ChunkStore::open_with(&config.url, &options)
            .map_err(|e| anyhow::anyhow!("stores.{id}: opening store {url}: {e}"))?;
        chunks.set_gc_grace(std::time::Duration::from_secs(settings.gc_grace));
        stores.add(id, &config.description, &kind(&config.url), chunks).map_err(|e| anyhow::anyhow!("stores.{id}: {e}"))?;
    }
    Ok(stores)
}

/// `POST`: 202 once the import job is enqueued. `X-Image-Meta-Store` names the store when `stores` is absent.
pub async fn import(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = image_id(&id)?;
    let request = import_request(&headers, body::object(&headers, &body)?)?;
    state.glance_import.import(&ctx, id, request).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn import_request(headers: &HeaderMap, body: serde_json::Map<String, Value>) -> ApiResult<ImportRequest> {
    let method = body
        .get("method")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'method' object"))?;
    let name = method
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Import request requires the method's 'name'"))?;
    let uri = match method.get("uri") {
        None | Some(Value::Null) => None,
        Some(Value::String(uri)) => Some(uri.clone()),
        Some(_) => return Err(ApiError::bad_request("The method's 'uri' must be a string")),
    };
    let flag = |key: &str, default: bool| match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!("'{key}' must be a boolean"))),
    };
    let stores = match body.get("stores") {
        None | Some(Value::Null) => headers
            .get("x-image-meta-store")
            .and_then(|v| v.to_str().ok())
            .map(|s| vec![s.trim().to_string()]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::bad_request("'stores' must be a list of store ids"))?,
        ),
        Some(_) => return Err(ApiError::bad_request("'stores' must be a list of store ids")),
    };
    Ok(ImportRequest {
        method: name.to_string(),
        uri,
        stores,
        all_stores: flag("all_stores", false)?,
        // Glance's default: a copy to several stores fails as a whole when one store fails.
        all_stores_must_succeed: flag("all_stores_must_succeed", true)?,
    })
}
