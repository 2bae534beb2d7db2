//! The stores besides the default one that hold an image's data (`extra_stores`).

use ims_catalog::ImageStatus;

use crate::support::*;
use crate::Backend;

pub async fn check_extra_stores_round_trip_through_create_save_and_list(b: &Backend) {
    let c = &b.catalog;
    let mut img = image("p1", "copied");
    create(c, &img).await;
    assert!(c.images.get(img.id).await.unwrap().extra_stores.is_empty(), "none by default");

    img.extra_stores = vec!["second".into(), "third-site".into()];
    c.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap().extra_stores, ["second", "third-site"], "in copy order");
    let listed = list(c, &query(viewer("p1"))).await;
    assert!(listed.iter().any(|i| i.id == img.id && i.extra_stores == img.extra_stores), "lists carry them");

    img.extra_stores.retain(|s| s != "second");
    c.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap().extra_stores, ["third-site"]);

    let mut created = image("p1", "created-with-stores");
    created.extra_stores = vec!["second".into()];
    create(c, &created).await;
    assert_eq!(c.images.get(created.id).await.unwrap().extra_stores, ["second"]);
}
