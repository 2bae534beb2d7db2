//! `GET /v1/cloudimages/{image_id}/ancestry` (our extension of the IMS API): the image's lineage up to
//! its root.
//!
//! → `{"image_id", "ancestry": [Link], "complete": bool, "stopped": null|"hidden"|"missing"|"cycle"|"depth"}`,
//! the image first. A link the caller may see is `{"id", "visible": true, "name", "status", "state":
//! "live"|"binned"|"deleted", "owner", "source_type", "source_ref", "parent_id", "created_at"}`; one it may
//! not see is only `{"id", "visible": false}` and ends the walk; a parent without record is
//! `{"id", "visible": false, "state": "missing"}`.

use axum::extract::{Path, State};
use axum::Json;
use ims_core::lineage::Ancestor;
use serde_json::{json, Value};

use super::image_id;
use crate::auth::ImsCtx;
use crate::error::ImsResult;
use crate::glance::render::timestamp;
use crate::state::AppState;

fn link(ancestor: &Ancestor) -> Value {
    match ancestor {
        Ancestor::Visible { image, standing } => json!({
            "id": image.id,
            "visible": true,
            "name": image.name,
            "status": image.status.as_str(),
            "state": standing.as_str(),
            "owner": image.owner,
            "source_type": image.lineage.source_type.map(|t| t.as_str()),
            "source_ref": image.lineage.source_ref,
            "parent_id": image.lineage.parent_id,
            "created_at": timestamp(&image.created_at),
        }),
        Ancestor::Hidden { id } => json!({"id": id, "visible": false}),
        Ancestor::Missing { id } => json!({"id": id, "visible": false, "state": "missing"}),
    }
}

pub async fn show(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(raw): Path<String>) -> ImsResult<Json<Value>> {
    let id = image_id(&raw)?;
    let ancestry = state.services.images.ancestry(&ctx, id).await?;
    Ok(Json(json!({
        "image_id": id,
        "ancestry": ancestry.chain.iter().map(link).collect::<Vec<_>>(),
        "complete": ancestry.stopped.is_none(),
        "stopped": ancestry.stopped,
    })))
}
