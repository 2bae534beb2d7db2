//! Parsing `GET /v2/images` query strings into an [`ImageQuery`], with Glance's rules.

use chrono::{DateTime, NaiveDateTime, Utc};
use ims_catalog::query::{MemberStatusFilter, VisibilityFilter};
use ims_catalog::{ImageQuery, ImageStatus, MemberStatus, SortDir, SortKey, TimeFilter, TimeOp, Viewer, Visibility};
use uuid::Uuid;

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: u32 = 25;
/// Largest page served.
pub const MAX_LIMIT: u32 = 1000;

/// A query string that cannot be served; becomes 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

type Result<T> = std::result::Result<T, QueryError>;

fn bad(msg: impl Into<String>) -> QueryError {
    QueryError(msg.into())
}

/// Parses the decoded `(key, value)` pairs of the query string.
pub fn parse(pairs: &[(String, String)]) -> Result<ImageQuery> {
    let mut q = ImageQuery::new(Viewer { project_id: None, is_admin: false }, DEFAULT_LIMIT);
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    let mut sort = None;
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                let n: i64 = value.parse().map_err(|_| bad(format!("limit param must be an integer: {value:?}")))?;
                if n < 0 {
                    return Err(bad("limit param must be positive"));
                }
                q.limit = n.min(MAX_LIMIT as i64) as u32;
            }
            "marker" => q.marker = Some(Uuid::parse_str(value).map_err(|_| bad(format!("Invalid marker {value:?}")))?),
            "sort_key" => sort_keys.push(sort_key(value)?),
            "sort_dir" => sort_dirs.push(sort_dir(value)?),
            "sort" => sort = Some(parse_sort(value)?),
            "name" => q.names.extend(values(value)?),
            "id" => {
                for v in values(value)? {
                    q.ids.push(Uuid::parse_str(&v).map_err(|_| bad(format!("Invalid id {v:?}")))?);
                }
            }
            "owner" => q.owner = Some(value.clone()),
            "status" => {
                for v in values(value)? {
                    q.statuses.push(v.parse::<ImageStatus>().map_err(|_| bad(format!("Invalid status value: {v}")))?);
                }
            }
            "visibility" => {
                q.visibility = Some(if value == "all" {
                    VisibilityFilter::All
                } else {
                    VisibilityFilter::Only(value.parse::<Visibility>().map_err(|_| {
                        bad(format!("Invalid visibility value: {value}"))
                    })?)
                })
            }
            "member_status" => {
                q.member_status = Some(if value == "all" {
                    MemberStatusFilter::All
                } else {
                    MemberStatusFilter::Only(value.parse::<MemberStatus>().map_err(|_| {
                        bad(format!("Invalid status value: {value}"))
                    })?)
                })
            }
            "os_hidden" => q.os_hidden = Some(boolean(key, value)?),
            "deprecated" => q.deprecated = Some(boolean(key, value)?),
            "protected" => q.protected = Some(boolean(key, value)?),
            "disk_format" => q.disk_formats.extend(values(value)?),
            "container_format" => q.container_formats.extend(values(value)?),
            "tag" => q.tags.push(value.clone()),
            "size_min" => q.size_min = Some(integer(key, value)?),
            "size_max" => q.size_max = Some(integer(key, value)?),
            "created_at" => q.created_at.push(time_filter(value)?),
            "updated_at" => q.updated_at.push(time_filter(value)?),
            "changes-since" => return Err(bad("The 'changes-since' filter is no longer available on v2.")),
            _ => q.properties.push((key.clone(), value.clone())),
        }
    }
    if let (Some(min), Some(max)) = (q.size_min, q.size_max) {
        if min > max {
            return Err(bad("size_min must be less than or equal to size_max"));
        }
    }
    q.sort = match sort {
        Some(s) if !sort_keys.is_empty() || !sort_dirs.is_empty() => {
            let _ = s;
            return Err(bad("The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'"));
        }
        Some(s) => s,
        None => legacy_sort(sort_keys, sort_dirs)?,
    };
    Ok(q)
}

fn sort_key(s: &str) -> Result<SortKey> {
    SortKey::parse(s).ok_or_else(|| bad(format!("Invalid sort key: {s}. It should be one of: name, status, container_format, disk_format, size, id, created_at, updated_at")))
}

fn sort_dir(s: &str) -> Result<SortDir> {
    match s {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        _ => Err(bad(format!("Invalid sort direction: {s}"))),
    }
}

/// `sort=name:asc,status:desc` (a key without a direction sorts descending, as Glance does).
fn parse_sort(s: &str) -> Result<Vec<(SortKey, SortDir)>> {
    s.split(',')
        .map(|part| {
            let mut it = part.trim().splitn(2, ':');
            let key = sort_key(it.next().unwrap_or("").trim())?;
            let dir = match it.next() {
                Some(d) => sort_dir(d.trim())?,
                None => SortDir::Desc,
            };
            Ok((key, dir))
        })
        .collect()
}

/// `sort_key`/`sort_dir` pairs: one direction applies to every key, or one per key.
fn legacy_sort(keys: Vec<SortKey>, dirs: Vec<SortDir>) -> Result<Vec<(SortKey, SortDir)>> {
    if keys.is_empty() {
        return match dirs.as_slice() {
            [] => Ok(vec![]),
            [d] => Ok(vec![(SortKey::CreatedAt, *d)]),
            _ => Err(bad("Number of sort dirs does not match the number of sort keys")),
        };
    }
    match dirs.len() {
        0 => Ok(keys.into_iter().map(|k| (k, SortDir::Desc)).collect()),
        1 => Ok(keys.into_iter().map(|k| (k, dirs[0])).collect()),
        n if n == keys.len() => Ok(keys.into_iter().zip(dirs).collect()),
        _ => Err(bad("Number of sort dirs does not match the number of sort keys")),
    }
}

/// A filter value: one value, or `in:a,b,"c,d"` for several.
fn values(value: &str) -> Result<Vec<String>> {
    let Some(list) = value.strip_prefix("in:") else { return Ok(vec![value.to_string()]) };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in list.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut current));
                was_quoted = false;
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(bad(format!("Invalid 'in' filter: unbalanced quotes in {value:?}")));
    }
    if !current.is_empty() || was_quoted || out.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(format!("Invalid value for {key}: {value:?} is not a boolean"))),
    }
}

fn integer(key: &str, value: &str) -> Result<i64> {
    value.parse().map_err(|_| bad(format!("Invalid value for {key}: {value:?} is not an integer")))
}

/// `gt:2024-01-01T00:00:00Z`; a bare time means `eq`.
fn time_filter(value: &str) -> Result<TimeFilter> {
    let (op, time) = match value.split_once(':') {
        Some((op, rest)) if matches!(op, "gt" | "gte" | "eq" | "neq" | "lt" | "lte") => (op, rest),
        _ => ("eq", value),
    };
    let op = match op {
        "gt" => TimeOp::Gt,
        "gte" => TimeOp::Gte,
        "neq" => TimeOp::Neq,
        "lt" => TimeOp::Lt,
        "lte" => TimeOp::Lte,
        _ => TimeOp::Eq,
    };
    Ok(TimeFilter { op, at: parse_time(time)? })
}

/// ISO 8601 with an offset, or without one (taken as UTC).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(bad(format!("Invalid time value {s:?}: expected ISO 8601, e.g. 2024-01-31T12:00:00Z")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(s).unwrap()
    }

    #[test]
    fn defaults() {
        let q = parse(&[]).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(q.sort.is_empty());
        assert_eq!(q.os_hidden, None);
    }

    #[test]
    fn limit_is_capped_and_validated() {
        assert_eq!(parse(&pairs("limit=5000")).unwrap().limit, MAX_LIMIT);
        assert!(parse(&pairs("limit=-1")).is_err());
        assert!(parse(&pairs("limit=ten")).is_err());
    }

    #[test]
    fn sort_forms() {
        let q = parse(&pairs("sort=name:asc,status:desc")).unwrap();
        assert_eq!(q.sort, vec![(SortKey::Name, SortDir::Asc), (SortKey::Status, SortDir::Desc)]);
        let q = parse(&pairs("sort_key=name&sort_key=size&sort_dir=asc")).unwrap();
        assert_eq!(q.sort, vec![(SortKey::Name, SortDir::Asc), (SortKey::Size, SortDir::Asc)]);
        let q = parse(&pairs("sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc")).unwrap();
        assert_eq!(q.sort, vec![(SortKey::Name, SortDir::Asc), (SortKey::Size, SortDir::Desc)]);
        assert!(parse(&pairs("sort=name:asc&sort_key=size")).is_err(), "mixing forms");
        assert!(parse(&pairs("sort_key=bogus")).is_err());
        assert!(parse(&pairs("sort=name:sideways")).is_err());
        assert!(parse(&pairs("sort_key=a&sort_key=name&sort_dir=asc&sort_dir=desc&sort_dir=asc")).is_err());
    }

    #[test]
    fn filters() {
        let q = parse(&pairs(
            "name=in:a,%22b,c%22&status=active&tag=x&tag=y&size_min=1&size_max=10&os_distro=debian&protected=true&visibility=all",
        ))
        .unwrap();
        assert_eq!(q.names, vec!["a".to_string(), "b,c".to_string()]);
        assert_eq!(q.statuses, vec![ImageStatus::Active]);
        assert_eq!(q.tags, vec!["x".to_string(), "y".to_string()]);
        assert_eq!((q.size_min, q.size_max), (Some(1), Some(10)));
        assert_eq!(q.properties, vec![("os_distro".to_string(), "debian".to_string())]);
        assert_eq!(q.protected, Some(true));
        assert_eq!(q.visibility, Some(VisibilityFilter::All));
        assert!(parse(&pairs("status=bogus")).is_err());
        assert!(parse(&pairs("visibility=bogus")).is_err());
        assert!(parse(&pairs("member_status=bogus")).is_err());
        assert!(parse(&pairs("os_hidden=maybe")).is_err());
        assert!(parse(&pairs("deprecated=maybe")).is_err());
        assert_eq!(parse(&pairs("deprecated=true")).unwrap().deprecated, Some(true));
        assert!(parse(&pairs("deprecated=false")).unwrap().properties.is_empty());
        assert!(parse(&pairs("size_min=big")).is_err());
        assert!(parse(&pairs("size_min=10&size_max=1")).is_err());
        assert!(parse(&pairs("changes-since=2020-01-01")).is_err());
        assert!(parse(&pairs("marker=not-a-uuid")).is_err());
    }

    #[test]
    fn time_filters() {
        let q = parse(&pairs("created_at=gte:2024-01-01T00:00:00Z&updated_at=lt:2025-01-01T00:00:00%2B02:00")).unwrap();
        assert_eq!(q.created_at[0].op, TimeOp::Gte);
        assert_eq!(q.updated_at[0].op, TimeOp::Lt);
        assert_eq!(q.updated_at[0].at.to_rfc3339(), "2024-12-31T22:00:00+00:00");
        assert_eq!(parse(&pairs("created_at=2024-01-01T00:00:00")).unwrap().created_at[0].op, TimeOp::Eq);
        assert!(parse(&pairs("created_at=gt:yesterday")).is_err());
    }
}
