//! The query string of the audit endpoints.

use chrono::{DateTime, Utc};
use ims_catalog::AuditQuery;

use crate::error::{ApiError, ApiResult};

/// Parses `since`, `until` (RFC 3339), `project_id`, `user_id`, `action` (exact, or `prefix.*`),
/// `resource`, `result`, and with `paged` also `marker` (a position), `limit` and `sort` (`asc`/`desc`).
/// Unknown or repeated parameters and malformed values are a 400.
pub fn parse(raw: Option<&str>, paged: bool) -> ApiResult<AuditQuery> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let mut query = AuditQuery::default();
    let mut seen = std::collections::HashSet::new();
    for (key, value) in pairs {
        if !seen.insert(key.clone()) {
            return Err(ApiError::bad_request(format!("query parameter {key} is given more than once")));
        }
        let text = || (!value.is_empty()).then(|| value.clone());
        match key.as_str() {
            "since" => query.since = Some(time(&key, &value)?),
            "until" => query.until = Some(time(&key, &value)?),
            "project_id" => query.project_id = text(),
            "user_id" => query.user_id = text(),
            "action" => query.action = text(),
            "resource" => query.resource = text(),
            "result" => query.result = text(),
            "marker" if paged => {
                query.marker = Some(value.parse().map_err(|_| {
                    ApiError::bad_request(format!("marker must be an event position, not {value:?}"))
                })?)
            }
            "limit" if paged => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ApiError::bad_request(format!("limit must be a positive integer, not {value:?}")))?
            }
            "sort" if paged => {
                query.newest_first = match value.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(ApiError::bad_request(format!("sort must be asc or desc, not {value:?}"))),
                }
            }
            _ => return Err(ApiError::bad_request(format!("unknown query parameter {key}"))),
        }
    }
    Ok(query)
}

fn time(key: &str, value: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::bad_request(format!("{key} must be an RFC 3339 time ({e}): {value:?}")))
}
