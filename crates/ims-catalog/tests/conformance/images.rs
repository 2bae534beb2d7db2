//! Create, get, save (compare-and-set), delete, usage and live manifests.

use std::collections::{BTreeMap, BTreeSet};

use ims_catalog::{ImageStatus, Visibility};
use uuid::Uuid;

use crate::support::*;
use crate::Backend;

/// An image with every optional field set.
fn full_image(owner: &str) -> ims_catalog::Image {
    let mut img = image(owner, "full");
    img.status = ImageStatus::Active;
    img.visibility = Visibility::Private;
    img.protected = true;
    img.os_hidden = true;
    img.disk_format = Some("qcow2".into());
    img.container_format = Some("bare".into());
    img.min_disk = 10;
    img.min_ram = 512;
    img.size = Some(1 << 33);
    img.virtual_size = Some(1 << 34);
    img.checksum = Some("d41d8cd98f00b204e9800998ecf8427e".into());
    img.os_hash_algo = Some("sha512".into());
    img.os_hash_value = Some("cf83e1357eefb8bd".into());
    img.manifest_id = Some("manifest-1".into());
    img.tags = BTreeSet::from(["a".to_string(), "b c".to_string()]);
    img.properties = BTreeMap::from([
        ("__os_version".to_string(), "Ubuntu 24.04".to_string()),
        ("hw_firmware_type".to_string(), "uefi".to_string()),
    ]);
    img.created_at = t(5);
    img.updated_at = t(7);
    img
}

pub async fn check_create_and_get_round_trip(b: &Backend) {
    let c = &b.catalog;
    let full = full_image("p1");
    create(c, &full).await;
    assert_eq!(c.images.get(full.id).await.unwrap(), full, "every field, exactly (nanoseconds included)");

    let bare = ims_catalog::Image::new(Uuid::new_v4(), "p1", t(1));
    create(c, &bare).await;
    assert_eq!(c.images.get(bare.id).await.unwrap(), bare, "NULLs, no tags, no properties");
}

pub async fn check_create_refuses_existing_id(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "one");
    create(c, &img).await;
    let mut again = image("p2", "two");
    again.id = img.id;
    expect_conflict(c.images.create(&again, &image_event(img.id)).await);
    assert_eq!(c.images.get(img.id).await.unwrap(), img, "the first image is untouched");
}

pub async fn check_get_missing_is_not_found(b: &Backend) {
    expect_not_found(b.catalog.images.get(Uuid::new_v4()).await);
}

pub async fn check_save_replaces_everything(b: &Backend) {
    let c = &b.catalog;
    let mut img = image("p1", "before");
    img.tags = BTreeSet::from(["old".to_string(), "kept".to_string()]);
    img.properties = BTreeMap::from([("gone".to_string(), "1".to_string()), ("k".to_string(), "v".to_string())]);
    create(c, &img).await;

    let mut changed = full_image("p2");
    changed.id = img.id;
    changed.tags = BTreeSet::from(["kept".to_string(), "new".to_string()]);
    changed.properties = BTreeMap::from([("k".to_string(), "w".to_string()), ("added".to_string(), "x".to_string())]);
    c.images.save(&changed, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap(), changed);

    // Saving empty tags and properties clears them.
    let mut cleared = changed.clone();
    cleared.tags.clear();
    cleared.properties.clear();
    cleared.name = None;
    cleared.size = None;
    cleared.updated_at = t(100);
    c.images.save(&cleared, &[ImageStatus::Active], &image_event(img.id)).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap(), cleared);
}

pub async fn check_save_is_compare_and_set(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "cas");
    create(c, &img).await;

    let mut next = img.clone();
    next.status = ImageStatus::Saving;
    next.name = Some("changed".into());
    next.tags.insert("t".into());
    expect_conflict(c.images.save(&next, &[ImageStatus::Active, ImageStatus::Deactivated], &image_event(img.id)).await);
    expect_conflict(c.images.save(&next, &[], &image_event(img.id)).await);
    assert_eq!(c.images.get(img.id).await.unwrap(), img, "a failed compare-and-set changes nothing");

    c.images.save(&next, &[ImageStatus::Uploading, ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap(), next);
    // The same expectation no longer holds.
    expect_conflict(c.images.save(&next, &[ImageStatus::Queued], &image_event(img.id)).await);
    // Staying in a state is allowed when the caller expects it.
    c.images.save(&next, &[ImageStatus::Saving], &image_event(img.id)).await.unwrap();
}

pub async fn check_save_missing_is_not_found(b: &Backend) {
    let img = image("p1", "ghost");
    expect_not_found(b.catalog.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await);
    expect_not_found(b.catalog.images.save(&img, &[], &image_event(img.id)).await);
}

pub async fn check_concurrent_saves_one_wins(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "race");
    create(c, &img).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let c = c.clone();
        let mut next = img.clone();
        next.status = ImageStatus::Saving;
        next.name = Some(format!("winner-{n}"));
        tasks.push(tokio::spawn(async move {
            let r = c.images.save(&next, &[ImageStatus::Queued], &image_event(next.id)).await;
            (next.name.clone(), r)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (name, r) = task.await.unwrap();
        match r {
            Ok(()) => winners.push(name),
            Err(e) => assert!(matches!(e, ims_catalog::CatalogError::Conflict(_)), "loser got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one save wins: {winners:?}");
    let stored = c.images.get(img.id).await.unwrap();
    assert_eq!(stored.name, winners[0]);
    assert_eq!(stored.status, ImageStatus::Saving);
}

pub async fn check_delete_hides_image_and_retires_id(b: &Backend) {
    let c = &b.catalog;
    let mut img = image("p1", "doomed");
    img.visibility = Visibility::Public;
    img.size = Some(100);
    img.manifest_id = Some("m-doomed".into());
    img.tags.insert("t".into());
    create(c, &img).await;
    let other = image("p1", "other");
    create(c, &other).await;

    let mut deleted = img.clone();
    deleted.status = ImageStatus::Deleted;
    deleted.updated_at = t(50);
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();

    expect_not_found(c.images.get(img.id).await);
    for v in [viewer("p1"), admin("admin"), anonymous()] {
        let mut q = query(v);
        q.visibility = Some(ims_catalog::query::VisibilityFilter::All);
        assert!(!ids(&list(c, &q).await).contains(&img.id), "a deleted image is never listed");
    }
    let mut q = query(admin("admin"));
    q.ids = vec![img.id];
    q.statuses = vec![ImageStatus::Deleted];
    assert!(list(c, &q).await.is_empty(), "not even when asked for by id and status");
    let usage = c.images.usage("p1").await.unwrap();
    assert_eq!((usage.image_count, usage.total_size), (1, 0));
    assert!(c.images.live_manifests().await.unwrap().is_empty());

    // A deleted image cannot be saved again, and its id is never reused.
    expect_not_found(c.images.save(&img, &[ImageStatus::Deleted, ImageStatus::Queued], &image_event(img.id)).await);
    let mut reuse = image("p2", "reuse");
    reuse.id = img.id;
    expect_conflict(c.images.create(&reuse, &image_event(img.id)).await);
    assert_eq!(c.images.get(other.id).await.unwrap(), other);
}

pub async fn check_usage_counts_live_images(b: &Backend) {
    let c = &b.catalog;
    assert_eq!(c.images.usage("p1").await.unwrap(), Default::default(), "no images: zeros");
    let statuses = [
        (ImageStatus::Active, Some(100)),
        (ImageStatus::Queued, None),
        (ImageStatus::Saving, Some(7)),
        (ImageStatus::Uploading, None),
        (ImageStatus::Importing, Some(3)),
        (ImageStatus::Deactivated, Some(1000)),
    ];
    for (status, size) in statuses {
        let mut img = image("p1", status.as_str());
        img.status = status;
        img.size = size;
        create(c, &img).await;
    }
    let mut foreign = image("p2", "foreign");
    foreign.size = Some(1 << 20);
    create(c, &foreign).await;
    let mut gone = image("p1", "gone");
    gone.size = Some(5000);
    gone.status = ImageStatus::Deleted;
    create(c, &gone).await;

    let usage = c.images.usage("p1").await.unwrap();
    assert_eq!(usage.image_count, 6);
    assert_eq!(usage.total_size, 1110);
    assert_eq!(usage.uploading_count, 3);
    assert_eq!(c.images.usage("p2").await.unwrap().total_size, 1 << 20);
}

pub async fn check_live_manifests(b: &Backend) {
    let c = &b.catalog;
    for (name, manifest, status) in [
        ("a", Some("m1"), ImageStatus::Active),
        ("b", Some("m2"), ImageStatus::Deactivated),
        ("c", Some("m1"), ImageStatus::Active),
        ("d", None, ImageStatus::Queued),
        ("e", Some("m3"), ImageStatus::Deleted),
        ("f", Some("m4"), ImageStatus::PendingDelete),
    ] {
        let mut img = image("p1", name);
        img.manifest_id = manifest.map(str::to_string);
        img.status = status;
        create(c, &img).await;
    }
    let mut live = c.images.live_manifests().await.unwrap();
    live.sort();
    assert_eq!(live, vec!["m1", "m2", "m4"], "each referenced manifest once, none of deleted images");
}
