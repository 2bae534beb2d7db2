//! Every route of the IMS API.

use axum::routing::{delete, get, patch, post, put};
use axum::Router;

use super::{ancestry, capsules, cross_region_copy, export, favorites, images, share_auto_accept, import, jobs, members, nbd, quota, server_images, tags};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/cloudimages", get(images::list))
        .route("/v2/cloudimages/{image_id}", patch(images::update))
        .route("/v2/cloudimages/action", post(import::create_image))
        .route("/v2.1/cloudimages/action", post(import::create_image))
        .route("/v2/cloudimages/quickimport/action", post(import::import_quick))
        .route("/v2.1/cloudimages/quickimport/action", post(import::import_quick))
        .route("/v1/cloudimages/wholeimages/action", post(server_images::create_whole_image))
        .route("/v1/cloudimages/dataimages/action", post(import::create_data_image))
        .route("/v2.1/cloudimages/dataimages/action", post(import::create_data_image))
        .route("/v1/cloudimages/{image_id}/upload", put(import::register))
        .route("/v1/cloudimages/{image_id}/copy", post(import::copy))
        .route("/v2.1/cloudimages/{image_id}/copy", post(import::copy))
        .route("/v1/cloudimages/regions", get(cross_region_copy::list_regions))
        .route("/v1/cloudimages/{image_id}/cross_region_copy", post(cross_region_copy::copy_cross_region))
        .route("/v1/cloudimages/{image_id}/file", post(export::export))
        .route("/v2.1/cloudimages/{image_id}/file", post(export::export))
        .route("/v1/cloudimages/{image_id}/nbd", post(nbd::mint).delete(nbd::revoke))
        .route("/v1/cloudimages/quota", get(quota::show))
        .route("/v1/capsules", get(capsules::list).post(capsules::create))
        .route("/v1/capsules/{capsule_id}", get(capsules::show).delete(capsules::delete))
        .route("/v1/cloudimages/favorites", get(favorites::list).post(favorites::add))
        .route("/v1/cloudimages/{image_id}/ancestry", get(ancestry::show))
        .route("/v1/cloudimages/favorites/{image_id}", delete(favorites::remove))
        .route("/v1/cloudimages/share_auto_accept", get(share_auto_accept::list).post(share_auto_accept::add))
        .route("/v1/cloudimages/share_auto_accept/{project}", delete(share_auto_accept::remove))
        .route("/v1/cloudimages/os_version", get(quota::os_versions).post(quota::add_os_version))
        .route(
            "/v1/cloudimages/members",
            post(members::batch_add).put(members::batch_update).delete(members::batch_delete),
        )
        .route("/v1/{project_id}/cloudimages/{image_id}/members", get(members::list))
        .route("/v1/{project_id}/cloudimages/{image_id}/members/{member_id}", get(members::show))
        .route("/v1/{project_id}/jobs/{job_id}", get(jobs::show))
        .route("/v1/cloudimages/job/{job_id}", get(jobs::progress))
        .route("/v1/cloudimages/tags", get(tags::v1_list).put(tags::v1_put))
        .route("/v1/{project_id}/cloudimages/{image_id}/tags/delete", delete(tags::v1_delete))
        .route("/v2/{project_id}/images/tags", get(tags::project))
        .route("/v2/{project_id}/images/resource_instances/action", post(tags::query))
        .route("/v2/{project_id}/images/{image_id}/tags", get(tags::list).post(tags::add))
        .route("/v2/{project_id}/images/{image_id}/tags/action", post(tags::batch))
        .route("/v2/{project_id}/images/{image_id}/tags/{key}", delete(tags::delete))
}
