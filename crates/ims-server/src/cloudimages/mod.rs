//! The Huawei Cloud IMS API (`/v1/cloudimages...`, `/v2/cloudimages...`, `/v2.1/...`,
//! `/v1/{project_id}/...`, `/v2/{project_id}/images/...`): another rendering of the same image records
//! and use cases as the Glance API, with the IMS error form (`crate::error::ImsError`).

mod ancestry;
mod cross_region_copy;
mod capsules;
mod export;
mod favorites;
mod share_auto_accept;
mod images;
mod import;
mod jobs;
mod list_query;
mod members;
pub(crate) mod nbd;
mod server_images;
mod quota;
pub(crate) mod render;
mod router;
mod tags;

pub use router::router;

use ims_core::RequestContext;

use crate::error::{ims_codes, ImsError};

/// The `{project_id}` of a path must be the caller's project.
pub(crate) fn check_path_project(ctx: &RequestContext, project_id: &str) -> Result<(), ImsError> {
    if ctx.project_id() == Some(project_id) {
        Ok(())
    } else {
        Err(ImsError::new(
            ims_codes::FORBIDDEN,
            axum::http::StatusCode::FORBIDDEN,
            format!("The project {project_id} in the path is not the project of the credentials"),
        ))
    }
}

/// An image id of an IMS path or body; anything that is not a UUID names no image.
pub(crate) fn image_id(raw: &str) -> Result<uuid::Uuid, ImsError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ImsError::not_found(format!("No image found with ID {raw}")))
}

/// The body as a JSON value (any content type the SDK sends: JSON).
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ImsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ImsError::invalid("Body expected in request."));
    }
    serde_json::from_slice(body).map_err(|e| ImsError::invalid(format!("Malformed JSON in request body: {e}")))
}
