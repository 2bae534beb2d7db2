//! The recycle bin: binning, listing, restoring, purging, and what a binned image keeps.

use ims_catalog::{BinQuery, CatalogError, ImageStatus, Visibility};

use crate::support::*;
use crate::Backend;

/// An active image with data, owned by `owner`.
fn active(owner: &str, name: &str, manifest: &str) -> ims_catalog::Image {
    let mut img = image(owner, name);
    img.status = ImageStatus::Active;
    img.disk_format = Some("raw".into());
    img.container_format = Some("bare".into());
    img.size = Some(42);
    img.checksum = Some(format!("md5-{name}"));
    img.os_hash_algo = Some("sha512".into());
    img.os_hash_value = Some(format!("sha512-{name}"));
    img.manifest_id = Some(manifest.to_string());
    img.tags.insert("keep".into());
    img.properties.insert("os_distro".into(), "debian".into());
    img
}

fn bin_query(owner: Option<&str>) -> BinQuery {
    BinQuery { owner: owner.map(str::to_string), purge_due_by: None, marker: None, limit: 100 }
}

pub async fn check_bin_hides_image_keeps_data_and_restores_it(b: &Backend) {
    let c = &b.catalog;
    let img = active("p1", "a", "m-a");
    create(c, &img).await;
    c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, t(10), t(20), &image_event(img.id)).await.expect("bin");

    expect_not_found(c.images.get(img.id).await);
    assert!(names(c, &query(viewer("p1"))).await.is_empty(), "a binned image is not listed");
    assert_eq!(c.images.usage("p1").await.unwrap().image_count, 0, "a binned image does not count");
    assert_eq!(c.images.live_manifests().await.unwrap(), vec!["m-a"], "its manifest stays live");

    let binned = c.recycle_bin.get(img.id).await.expect("in the bin");
    assert_eq!(binned.image.status, ImageStatus::Active, "the status a restore brings back");
    // The binned time is kept to the microsecond (the service uses whole seconds).
    assert_eq!(binned.binned_at.timestamp_micros(), t(10).timestamp_micros());
    assert_eq!(binned.purge_after, t(20));
    assert_eq!(binned.image.checksum, img.checksum);
    assert_eq!(binned.image.tags, img.tags);
    assert_eq!(binned.image.properties, img.properties);

    // Binning again, or saving the binned image, finds nothing live.
    expect_not_found(c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, t(11), t(21), &image_event(img.id)).await);
    expect_not_found(c.images.save(&img, &[ImageStatus::Active], &image_event(img.id)).await);

    let restored = c.recycle_bin.restore(img.id, None, t(30), &image_event(img.id)).await.expect("restore");
    let mut expected = img.clone();
    expected.updated_at = t(30);
    assert_eq!(restored, expected, "same id, data, checksums, tags and properties; status as before");
    assert_eq!(c.images.get(img.id).await.expect("live again"), expected);
    expect_not_found(c.recycle_bin.get(img.id).await);
    expect_not_found(c.recycle_bin.restore(img.id, None, t(31), &image_event(img.id)).await);
}

pub async fn check_bin_refuses_protected_and_wrong_status(b: &Backend) {
    let c = &b.catalog;
    let mut img = active("p1", "guarded", "m-g");
    img.protected = true;
    create(c, &img).await;
    let r = c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, t(1), t(2), &image_event(img.id)).await;
    assert!(matches!(r, Err(CatalogError::Conflict(_))), "protected images are not binned: {r:?}");
    let r = c.recycle_bin.move_to_bin(img.id, ImageStatus::Queued, t(1), t(2), &image_event(img.id)).await;
    assert!(matches!(r, Err(CatalogError::Conflict(_))), "status mismatch: {r:?}");
    assert_eq!(c.images.get(img.id).await.unwrap(), img, "nothing changed");
    expect_not_found(c.recycle_bin.move_to_bin(uuid::Uuid::new_v4(), ImageStatus::Active, t(1), t(2), &image_event(img.id)).await);
}

pub async fn check_bin_list_per_owner_in_binned_order_with_marker(b: &Backend) {
    let c = &b.catalog;
    let mut binned = Vec::new();
    for (i, owner) in ["p1", "p2", "p1", "p1"].into_iter().enumerate() {
        let img = active(owner, &format!("i{i}"), &format!("m{i}"));
        create(c, &img).await;
        let at = t(100 - i as i64);
        c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, at, at + chrono::Duration::seconds(60), &image_event(img.id))
            .await
            .unwrap();
        binned.push((owner, img.id));
    }
    let live = active("p1", "live", "m-live");
    create(c, &live).await;

    let p1 = c.recycle_bin.list(&bin_query(Some("p1"))).await.unwrap();
    let got: Vec<_> = p1.iter().map(|b| b.image.name.clone().unwrap()).collect();
    assert_eq!(got, ["i3", "i2", "i0"], "only p1's, oldest binned first, live images never");
    let all = c.recycle_bin.list(&bin_query(None)).await.unwrap();
    assert_eq!(all.len(), 4);

    let page = c.recycle_bin.list(&BinQuery { marker: Some(p1[0].image.id), ..bin_query(Some("p1")) }).await.unwrap();
    assert_eq!(page.iter().map(|b| b.image.id).collect::<Vec<_>>(), [p1[1].image.id, p1[2].image.id]);
    let one = c.recycle_bin.list(&BinQuery { limit: 1, ..bin_query(Some("p1")) }).await.unwrap();
    assert_eq!(one.len(), 1);
    let r = c.recycle_bin.list(&BinQuery { marker: Some(live.id), ..bin_query(Some("p1")) }).await;
    expect_invalid(r);
    let p2_marker = binned[1].1;
    expect_invalid(c.recycle_bin.list(&BinQuery { marker: Some(p2_marker), ..bin_query(Some("p1")) }).await);

    // Due for purging by t(100) + 59 s: the two binned earliest (purge_after t(97..98) + 60 s).
    let due = c
        .recycle_bin
        .list(&BinQuery { purge_due_by: Some(t(98) + chrono::Duration::seconds(60)), ..bin_query(None) })
        .await
        .unwrap();
    assert_eq!(due.iter().map(|b| b.image.name.clone().unwrap()).collect::<Vec<_>>(), ["i3", "i2"]);
}

pub async fn check_purge_is_final_and_releases_data(b: &Backend) {
    let c = &b.catalog;
    let img = active("p1", "gone", "m-gone");
    create(c, &img).await;
    c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, t(1), t(50), &image_event(img.id)).await.unwrap();

    expect_not_found(c.recycle_bin.purge(img.id, Some(t(49)), &image_event(img.id)).await);
    assert!(c.recycle_bin.get(img.id).await.is_ok(), "not due yet: still binned");
    c.recycle_bin.purge(img.id, Some(t(50)), &image_event(img.id)).await.expect("due at purge_after");

    expect_not_found(c.recycle_bin.get(img.id).await);
    expect_not_found(c.images.get(img.id).await);
    assert!(c.images.live_manifests().await.unwrap().is_empty(), "a purged image's manifest is garbage");
    expect_not_found(c.recycle_bin.restore(img.id, None, t(60), &image_event(img.id)).await);
    expect_not_found(c.recycle_bin.purge(img.id, None, &image_event(img.id)).await);
    expect_conflict(c.images.create(&img, &image_event(img.id)).await);
}

pub async fn check_restore_respects_quota(b: &Backend) {
    let c = &b.catalog;
    let img = active("p1", "back", "m-back");
    create(c, &img).await;
    c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, t(1), t(2), &image_event(img.id)).await.unwrap();
    let other = active("p1", "taken", "m-taken");
    create(c, &other).await;

    let r = c.recycle_bin.restore(img.id, Some(1), t(3), &image_event(img.id)).await;
    assert!(matches!(r, Err(CatalogError::LimitExceeded(_))), "quota 1 is used by the other image: {r:?}");
    assert!(c.recycle_bin.get(img.id).await.is_ok(), "still binned");
    let restored = c.recycle_bin.restore(img.id, Some(2), t(3), &image_event(img.id)).await.expect("room for two");
    assert_eq!(restored.status, ImageStatus::Active);
    assert_eq!(c.images.usage("p1").await.unwrap().image_count, 2);
}

pub async fn check_bin_writes_are_audited(b: &Backend) {
    let c = &b.catalog;
    let mut img = active("p1", "audited", "m-au");
    img.visibility = Visibility::Private;
    create(c, &img).await;
    for (action, step) in [("image.delete", 0), ("image.restore", 1), ("image.delete", 2), ("image.purge", 3)] {
        let e = event(action, &format!("image:{}", img.id));
        match step {
            0 | 2 => c.recycle_bin.move_to_bin(img.id, ImageStatus::Active, t(5), t(6), &e).await.unwrap(),
            1 => drop(c.recycle_bin.restore(img.id, None, t(5), &e).await.unwrap()),
            _ => c.recycle_bin.purge(img.id, None, &e).await.unwrap(),
        }
        let latest = b.audit.latest().await.expect("an audit row");
        assert_eq!(latest.action, action);
        assert_eq!(latest.request_id, e.request_id);
    }
}
