//! `GET /v2/cloudimages` query strings: the Glance filters plus IMS's.

use ims_catalog::query::VisibilityFilter;
use ims_catalog::{ImageQuery, Visibility};

use super::render::DEFAULTS;
use crate::error::ImsError;
use crate::glance::list_query;

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: u32 = 500;

/// Parses the decoded pairs for a caller of project `project`.
///
/// `__imagetype`: `gold` public images, `private` the project's own non-public images, `shared` shared
/// images of other projects (with `member_status`, default accepted), `market` the marketplace listings
/// that are on shelf (any project browses them; reading one's image needs a subscription).
/// Properties with a default (`__isregistered=true`, `__os_type=Linux`, `virtual_env_type=FusionCompute`,
/// `enterprise_project_id=0`, ...) also match images that do not have the property. `__deprecated=true`
/// lists only deprecated images (whose `deprecate_at` has passed), which default lists leave out. `min_disk` and
/// `min_ram` are exact. `flavor_id` is accepted and does not filter yet (no flavors before compute).
/// Every other key is a Glance filter (unknown keys are exact property matches).
pub fn parse(pairs: &[(String, String)], project: Option<&str>) -> Result<ImageQuery, ImsError> {
    let mut glance_pairs = Vec::new();
    let mut image_type = None;
    let mut or_absent = Vec::new();
    let (mut min_disk, mut min_ram) = (None, None);
    let mut has_limit = false;
    for (key, value) in pairs {
        let default = if key == "__os_type" { Some("Linux") } else { DEFAULTS.iter().find(|(k, _)| k == key).map(|(_, v)| *v) };
        match key.as_str() {
            "__imagetype" => image_type = Some(value.clone()),
            // Deprecated images (deprecate_at passed) show only when asked for, as Glance's `deprecated`.
            "__deprecated" => glance_pairs.push(("deprecated".into(), value.clone())),
            "flavor_id" => {}
            "min_disk" | "min_ram" => {
                let n: i64 = value.parse().map_err(|_| ImsError::invalid(format!("{key} must be an integer: {value:?}")))?;
                if key == "min_disk" {
                    min_disk = Some(n);
                } else {
                    min_ram = Some(n);
                }
            }
            _ if default == Some(value.as_str()) => or_absent.push((key.clone(), value.clone())),
            _ => {
                has_limit |= key == "limit";
                glance_pairs.push((key.clone(), value.clone()));
            }
        }
    }
    let mut q = list_query::parse(&glance_pairs).map_err(|e| ImsError::invalid(e.0))?;
    if !has_limit {
        q.limit = DEFAULT_LIMIT;
    }
    q.properties_or_absent = or_absent;
    q.min_disk = min_disk;
    q.min_ram = min_ram;
    match image_type.as_deref() {
        None => {}
        Some("gold") => q.visibility = Some(VisibilityFilter::Only(Visibility::Public)),
        Some("private") => {
            q.owner = Some(project.unwrap_or_default().to_string());
            q.exclude_visibilities.push(Visibility::Public);
        }
        Some("shared") => {
            q.exclude_owner = Some(project.unwrap_or_default().to_string());
            q.exclude_visibilities.extend([Visibility::Public, Visibility::Private]);
        }
        Some("market") => q.market_on_shelf = true,
        Some(other) => {
            return Err(ImsError::invalid(format!(
                "Invalid __imagetype {other:?}: use gold, private, shared or market"
            )))
        }
    }
    // `__imagetype` is derived, never a stored property to match.
    q.properties_or_absent.retain(|(k, _)| k != "__imagetype");
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(s).unwrap()
    }

    #[test]
    fn image_types_and_defaults() {
        let q = parse(&pairs("__imagetype=private&__isregistered=true&__platform=Ubuntu"), Some("p1")).unwrap();
        assert_eq!(q.owner.as_deref(), Some("p1"));
        assert_eq!(q.exclude_visibilities, vec![Visibility::Public]);
        assert_eq!(q.properties_or_absent, vec![("__isregistered".to_string(), "true".to_string())]);
        assert_eq!(q.properties, vec![("__platform".to_string(), "Ubuntu".to_string())]);
        assert_eq!(q.limit, DEFAULT_LIMIT);
        let q = parse(&pairs("__imagetype=shared&member_status=pending&limit=3&__isregistered=false"), Some("p1")).unwrap();
        assert_eq!(q.exclude_owner.as_deref(), Some("p1"));
        assert_eq!(q.limit, 3);
        assert_eq!(q.properties, vec![("__isregistered".to_string(), "false".to_string())]);
        let q = parse(&pairs("__imagetype=gold&min_disk=40&flavor_id=s3.small"), Some("p1")).unwrap();
        assert_eq!(q.visibility, Some(VisibilityFilter::Only(Visibility::Public)));
        assert_eq!(q.min_disk, Some(40));
        assert!(parse(&pairs("__imagetype=bogus"), None).is_err());
        assert!(parse(&pairs("min_ram=lots"), None).is_err());
        assert!(parse(&pairs("sort_key=bogus"), None).is_err());
    }

    #[test]
    fn market_browses_on_shelf_listings_and_imagetype_is_never_a_stored_property() {
        let q = parse(&pairs("__imagetype=market&__platform=Ubuntu"), Some("p1")).unwrap();
        assert!(q.market_on_shelf);
        assert!(q.properties.iter().all(|(k, _)| k != "__imagetype"));
        assert!(!parse(&pairs("__imagetype=gold"), Some("p1")).unwrap().market_on_shelf);
    }

    #[test]
    fn deprecated_images_show_only_when_asked() {
        assert_eq!(parse(&pairs(""), Some("p1")).unwrap().deprecated, None);
        let q = parse(&pairs("__deprecated=true"), Some("p1")).unwrap();
        assert_eq!(q.deprecated, Some(true));
        assert!(q.properties.is_empty());
        assert!(parse(&pairs("__deprecated=soon"), Some("p1")).is_err());
    }
}
