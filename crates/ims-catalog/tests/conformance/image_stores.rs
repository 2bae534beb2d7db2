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

pub async fn check_live_manifests_in_store_name_whole_store_ids(b: &Backend) {
    let c = &b.catalog;
    let with = |name: &str, manifest: &str, stores: &[&str]| {
        let mut img = image("p1", name);
        img.status = ImageStatus::Active;
        img.manifest_id = Some(manifest.to_string());
        img.extra_stores = stores.iter().map(|s| s.to_string()).collect();
        img
    };
    let copied = with("copied", "m-copied", &["second", "third-site"]);
    let also = with("also", "m-also", &["second"]);
    let similar = with("similar", "m-similar", &["second_b", "xsecond"]);
    let binned = with("binned", "m-binned", &["second"]);
    let purged = with("purged", "m-purged", &["second"]);
    for img in [&copied, &also, &similar, &binned, &purged] {
        create(c, img).await;
    }
    c.recycle_bin.move_to_bin(binned.id, ImageStatus::Active, t(1), t(50), &image_event(binned.id)).await.unwrap();
    c.recycle_bin.move_to_bin(purged.id, ImageStatus::Active, t(1), t(50), &image_event(purged.id)).await.unwrap();
    c.recycle_bin.purge(purged.id, None, &image_event(purged.id)).await.unwrap();

    let second = c.images.live_manifests_in_store("second").await.unwrap();
    assert_eq!(second, ["m-also", "m-binned", "m-copied"], "binned images count, purged ones and look-alike ids do not");
    assert_eq!(c.images.live_manifests_in_store("third-site").await.unwrap(), ["m-copied"]);
    assert_eq!(c.images.live_manifests_in_store("second_b").await.unwrap(), ["m-similar"]);
    assert!(c.images.live_manifests_in_store("second_%").await.unwrap().is_empty(), "no pattern matching");
    assert!(c.images.live_manifests_in_store("nowhere").await.unwrap().is_empty());
}

pub async fn check_images_out_of_the_default_store_are_not_its_roots(b: &Backend) {
    let c = &b.catalog;
    let mut moved = image("p1", "moved");
    moved.status = ImageStatus::Active;
    moved.manifest_id = Some("m-moved".into());
    moved.extra_stores = vec!["second".into()];
    create(c, &moved).await;
    let mut kept = image("p1", "kept");
    kept.status = ImageStatus::Active;
    kept.manifest_id = Some("m-kept".into());
    create(c, &kept).await;
    assert!(c.images.get(moved.id).await.unwrap().in_default_store, "held by the default store by default");
    assert!(c.images.live_manifests().await.unwrap().contains(&"m-moved".to_string()));

    moved.in_default_store = false;
    c.images.save(&moved, &[ImageStatus::Active], &image_event(moved.id)).await.unwrap();
    let stored = c.images.get(moved.id).await.unwrap();
    assert!(!stored.in_default_store, "saved");
    let listed = list(c, &query(viewer("p1"))).await;
    assert!(listed.iter().any(|i| i.id == moved.id && !i.in_default_store), "lists carry it");
    let roots = c.images.live_manifests().await.unwrap();
    assert!(!roots.contains(&"m-moved".to_string()) && roots.contains(&"m-kept".to_string()), "{roots:?}");
    assert_eq!(c.images.live_manifests_in_store("second").await.unwrap(), ["m-moved"], "its copy stays a root there");

    let mut created = image("p1", "created-elsewhere");
    created.status = ImageStatus::Active;
    created.manifest_id = Some("m-created".into());
    created.extra_stores = vec!["second".into()];
    created.in_default_store = false;
    create(c, &created).await;
    assert!(!c.images.get(created.id).await.unwrap().in_default_store);
    assert!(!c.images.live_manifests().await.unwrap().contains(&"m-created".to_string()));
}
