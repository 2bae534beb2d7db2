//! End-of-life warnings for deprecated images (`ims image show` and `ims image download`).

use chrono::{DateTime, Duration, Utc};
use ims_client::Image;

/// How far ahead a coming deprecation is announced.
pub const WARN_AHEAD_DAYS: i64 = 30;

/// The warning for `image` at `now`: one for an image already deprecated, one for an image deprecated
/// within [`WARN_AHEAD_DAYS`], none otherwise (or when the server sent a time this client cannot read).
pub fn warning(image: &Image, now: DateTime<Utc>) -> Option<String> {
    let at = DateTime::parse_from_rfc3339(image.deprecate_at.as_deref()?).ok()?.with_timezone(&Utc);
    let when = at.format("%Y-%m-%d %H:%M:%S UTC");
    if at <= now {
        Some(format!(
            "warning: image {} is deprecated since {when} (end of life); it is hidden from default lists",
            image.id
        ))
    } else if at - now <= Duration::days(WARN_AHEAD_DAYS) {
        Some(format!("warning: image {} reaches end of life on {when}, when it becomes deprecated", image.id))
    } else {
        None
    }
}

/// Prints the [`warning`] for `image`, if any, to stderr.
pub fn warn(image: &Image) {
    if let Some(message) = warning(image, Utc::now()) {
        eprintln!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn image(deprecate_at: Option<&str>) -> Image {
        serde_json::from_value(json!({"id": "i1", "deprecate_at": deprecate_at})).unwrap()
    }

    #[test]
    fn warns_for_past_and_near_deprecation_only() {
        let now = DateTime::parse_from_rfc3339("2030-06-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let past = warning(&image(Some("2030-05-01T12:00:00Z")), now).unwrap();
        assert!(past.contains("deprecated since 2030-05-01 12:00:00 UTC"), "{past}");
        let soon = warning(&image(Some("2030-06-20T00:00:00+02:00")), now).unwrap();
        assert!(soon.contains("end of life on 2030-06-19 22:00:00 UTC"), "{soon}");
        assert_eq!(warning(&image(Some("2030-08-01T00:00:00Z")), now), None);
        assert_eq!(warning(&image(None), now), None);
        assert_eq!(warning(&image(Some("garbage")), now), None);
    }
}
