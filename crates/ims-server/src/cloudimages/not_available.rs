//! Operations of the IMS API that need what this deployment does not have yet: compute (images from
//! servers and volumes, whole-server images) and copies to other regions. They authenticate the caller,
//! then answer 501 `IMG.0501`. The issues that bring compute replace these handlers.

use crate::auth::ImsCtx;
use crate::error::{ims_codes, ImsError};

fn not_available(what: &str, needs: &str) -> ImsError {
    ImsError::new(
        ims_codes::NOT_AVAILABLE,
        axum::http::StatusCode::NOT_IMPLEMENTED,
        format!("{what} is not available in this deployment yet: it needs {needs}."),
    )
}

/// CreateImage from a server or a volume (images from bucket files are made in `import.rs`).
pub fn compute_needed() -> ImsError {
    not_available("CreateImage from a server or a volume", "compute")
}

pub async fn create_whole_image(_ctx: ImsCtx) -> ImsError {
    not_available("CreateWholeImage", "compute")
}

pub async fn copy_cross_region(_ctx: ImsCtx) -> ImsError {
    not_available("CopyImageCrossRegion", "image copy across regions")
}
