//! The `deprecate_at` column and the `deprecated` list filter.

use ims_catalog::{Image, ImageStatus};

use crate::support::*;
use crate::Backend;

pub async fn check_deprecate_at_round_trips(b: &Backend) {
    let c = &b.catalog;
    let mut img = image("p1", "old");
    img.deprecate_at = Some(t(5));
    create(c, &img).await;
    let got = c.images.get(img.id).await.expect("get");
    assert_eq!(got.deprecate_at, Some(t(5)), "deprecate_at keeps its nanoseconds");
    assert_eq!(got, img);

    img.deprecate_at = Some(t(7));
    c.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.expect("save a later time");
    assert_eq!(c.images.get(img.id).await.expect("get").deprecate_at, Some(t(7)));

    img.deprecate_at = None;
    c.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.expect("clear");
    assert_eq!(c.images.get(img.id).await.expect("get").deprecate_at, None);
}

pub async fn check_filter_deprecated(b: &Backend) {
    let c = &b.catalog;
    let specs: [(&str, Option<chrono::DateTime<chrono::Utc>>); 5] = [
        ("never", None),
        ("past", Some(t(9))),
        ("exactly-now", Some(t(10))),
        ("one-ns-later", Some(t(10) + chrono::Duration::nanoseconds(1))),
        ("future", Some(t(11))),
    ];
    for (name, at) in specs {
        let mut img: Image = image("p1", name);
        img.deprecate_at = at;
        create(c, &img).await;
    }
    let mut q = query(viewer("p1"));
    q.deprecated_as_of = t(10);
    assert_eq!(names(c, &q).await, set(&["never", "one-ns-later", "future"]), "default hides deprecated");
    q.deprecated = Some(false);
    assert_eq!(names(c, &q).await, set(&["never", "one-ns-later", "future"]));
    q.deprecated = Some(true);
    assert_eq!(names(c, &q).await, set(&["past", "exactly-now"]), "deprecated=true lists only deprecated");

    // Paging walks the deprecated list like any other.
    let walked: Vec<String> = walk(c, &q, 1).await.into_iter().map(|i| i.name.unwrap_or_default()).collect();
    assert_eq!(walked.len(), 2);

    // The time moves on: everything with a deprecate_at is deprecated.
    q.deprecated_as_of = t(100);
    assert_eq!(names(c, &q).await, set(&["past", "exactly-now", "one-ns-later", "future"]));
    q.deprecated = None;
    assert_eq!(names(c, &q).await, set(&["never"]));
}
