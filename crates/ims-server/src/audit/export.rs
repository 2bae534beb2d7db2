//! `GET /audit/v1/events/export`: every event matching the filters (the same as `/audit/v1/events`
//! without paging), oldest first, as JSON lines (`application/x-ndjson`). The trail is read and sent one
//! page at a time, so an export of any size holds one page in memory. A failure after the first page
//! ends the body early (the client sees an incomplete transfer, never a silently short export).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ims_catalog::{AuditQuery, AuditRecord};
use ims_core::{AuditService, CoreError, RequestContext};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

/// Events read per page.
const PAGE: u32 = ims_core::audit::MAX_PAGE;

struct Export {
    page: Result<Vec<AuditRecord>, CoreError>,
    query: AuditQuery,
    audit: AuditService,
    ctx: RequestContext,
}

pub async fn export(State(state): State<AppState>, Ctx(ctx): Ctx, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let mut query = super::query::parse(raw.as_deref(), false)?;
    query.limit = PAGE;
    let audit = state.services.audit.clone();
    // The first page is read before answering, so that a refused or malformed request gets its error.
    let first = audit.list(&ctx, query.clone()).await?;
    let start = Export { page: Ok(first), query, audit, ctx };
    let lines = futures::stream::unfold(Some(start), |export| async move {
        let mut export = export?;
        let page = match export.page {
            Ok(page) if page.is_empty() => return None,
            Ok(page) => page,
            Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
        };
        let mut buf = Vec::with_capacity(page.len() * 512);
        for record in &page {
            if let Err(e) = serde_json::to_writer(&mut buf, record) {
                return Some((Err(std::io::Error::other(e)), None));
            }
            buf.push(b'\n');
        }
        let next = match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                export.query.marker = Some(last.position);
                export.page = export.audit.list(&export.ctx, export.query.clone()).await;
                Some(export)
            }
            _ => None,
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(buf)), next))
    });
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
