//! Operations of the IMS API that need what this deployment does not have yet: compute (images from
//! servers and volumes, whole-server images) and import/export (images from object storage, copies,
//! export). They authenticate the caller, then answer 501 `IMG.0501`. The issues that bring compute and
//! import/export replace these handlers.

use crate::auth::ImsCtx;
use crate::error::{ims_codes, ImsError};

fn not_available(what: &str, needs: &str) -> ImsError {
    ImsError::new(
        ims_codes::NOT_AVAILABLE,
        axum::http::StatusCode::NOT_IMPLEMENTED,
        format!("{what} is not available in this deployment yet: it needs {needs}."),
    )
}

pub async fn create_image(_ctx: ImsCtx) -> ImsError {
    not_available("CreateImage (from a server, a volume or an image file)", "compute and image import")
}

pub async fn create_whole_image(_ctx: ImsCtx) -> ImsError {
    not_available("CreateWholeImage", "compute")
}

pub async fn create_data_image(_ctx: ImsCtx) -> ImsError {
    not_available("CreateDataImage", "image import")
}

pub async fn import_quick(_ctx: ImsCtx) -> ImsError {
    not_available("ImportImageQuick", "image import")
}

pub async fn register(_ctx: ImsCtx) -> ImsError {
    not_available("RegisterImage", "image import")
}

pub async fn copy(_ctx: ImsCtx) -> ImsError {
    not_available("CopyImageInRegion", "image copy")
}

pub async fn copy_cross_region(_ctx: ImsCtx) -> ImsError {
    not_available("CopyImageCrossRegion", "image copy across regions")
}

pub async fn export(_ctx: ImsCtx) -> ImsError {
    not_available("ExportImage", "image export")
}
