//! `/v2/images/{id}/file`: upload and download of image data.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::images::image_id;
use super::range;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `PUT`: streams the body into the store; 204 when the image is active.
pub async fn upload(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let id = image_id(&id)?;
    let declared = data_headers(&headers, "image data")?;
    super::stores::check_upload_store(&state, &headers)?;
    state.services.images.upload(&ctx, id, declared, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the headers of a data body (`PUT .../file` or `.../stage`): the media type must be
/// `application/octet-stream` (415 otherwise; `what` names the body in the message), and returns the size
/// declared in `x-openstack-image-size`, if any (400 when it is not a non-negative integer).
pub(super) fn data_headers(headers: &HeaderMap, what: &str) -> ApiResult<Option<u64>> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/octet-stream") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported Content-Type {ct}: {what} must be application/octet-stream"),
            ));
        }
    }
    match headers.get("x-openstack-image-size") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("x-openstack-image-size must be a non-negative integer")),
    }
}

/// `GET`: the whole file (200), one range (206), or nothing yet (204).
pub async fn download(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = image_id(&id)?;
    let images = &state.services.images;
    let Some(data) = images.open_data(&ctx, id).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let size = data.size();
    let requested = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match requested {
        None => (StatusCode::OK, 0, size),
        Some(h) => match range::parse(h, size) {
            Ok(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end),
            Err(range::Unsatisfiable) => {
                return Err(ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("Requested range {h} not satisfiable for an image of {size} bytes"),
                )
                .with_header("content-range", &format!("bytes */{size}")));
            }
        },
    };
    // The first piece is read before the headers go out: data corrupt from the start is a clean error.
    let stream = images.read_checked(&data, start, end).await?;
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, (end - start).into());
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {}-{}/{size}", start, end.saturating_sub(1));
        h.insert(header::CONTENT_RANGE, value.parse().expect("ascii header"));
    } else if let Some(md5) = data.image.checksum.as_deref().and_then(|c| c.parse().ok()) {
        h.insert("content-md5", md5);
    }
    Ok(response)
}
