//! Activating images within a project's byte quota (`save_within_size_quota`).

use std::sync::Arc;

use ims_catalog::{CatalogError, Image, ImageStatus};

use crate::support::*;
use crate::Backend;

const MIB: u64 = 1 << 20;

/// `img` as it is once `size` bytes of data are stored: active.
fn activated(img: &Image, size: u64) -> Image {
    let mut done = img.clone();
    done.status = ImageStatus::Active;
    done.size = Some(size as i64);
    done.manifest_id = Some(format!("manifest-{}", img.id));
    done.updated_at = t(5);
    done
}

/// A queued image of `owner`, stored and then moved to `saving` (as an upload does).
async fn saving(b: &Backend, owner: &str, name: &str) -> Image {
    let mut img = image(owner, name);
    create(&b.catalog, &img).await;
    img.status = ImageStatus::Saving;
    b.catalog.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.expect("saving");
    img
}

pub async fn check_save_within_size_quota(b: &Backend) {
    let c = &b.catalog;
    let first = saving(b, "p1", "first").await;
    c.images.save_within_size_quota(&activated(&first, 3 * MIB), &[ImageStatus::Saving], 5 * MIB, &image_event(first.id))
        .await
        .unwrap();
    // Another project's bytes never count.
    let foreign = saving(b, "p2", "foreign").await;
    c.images.save_within_size_quota(&activated(&foreign, 4 * MIB), &[ImageStatus::Saving], 5 * MIB, &image_event(foreign.id))
        .await
        .unwrap();

    let second = saving(b, "p1", "second").await;
    let before = b.audit.count().await;
    match c.images.save_within_size_quota(&activated(&second, 2 * MIB + 1), &[ImageStatus::Saving], 5 * MIB, &image_event(second.id)).await {
        Err(CatalogError::LimitExceeded(_)) => {}
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(b.audit.count().await, before, "a refused activation stores nothing");
    let stored = c.images.get(second.id).await.unwrap();
    assert_eq!((stored.status, stored.size, stored.manifest_id), (ImageStatus::Saving, None, None));
    assert_eq!(c.images.usage("p1").await.unwrap().total_size, 3 * MIB);

    // Exactly at the limit is within it; the status compare-and-set still applies.
    c.images.save_within_size_quota(&activated(&second, 2 * MIB), &[ImageStatus::Saving], 5 * MIB, &image_event(second.id))
        .await
        .unwrap();
    expect_conflict(
        c.images.save_within_size_quota(&activated(&second, 0), &[ImageStatus::Saving], 5 * MIB, &image_event(second.id)).await,
    );
    let missing = image("p1", "missing");
    expect_not_found(
        c.images.save_within_size_quota(&activated(&missing, 1), &[ImageStatus::Saving], 5 * MIB, &image_event(missing.id)).await,
    );
    assert_eq!(c.images.usage("p1").await.unwrap().total_size, 5 * MIB);
}

pub async fn check_size_quota_holds_under_concurrency(b: &Backend) {
    let c = &b.catalog;
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(saving(b, "p1", &format!("upload-{i}")).await);
    }
    let tasks: Vec<_> = pending
        .into_iter()
        .map(|img| {
            let images = Arc::clone(&c.images);
            tokio::spawn(async move {
                images.save_within_size_quota(&activated(&img, MIB), &[ImageStatus::Saving], 5 * MIB, &image_event(img.id)).await
            })
        })
        .collect();
    let mut activated_count = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => activated_count += 1,
            Err(CatalogError::LimitExceeded(_)) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(activated_count, 5);
    assert_eq!(c.images.usage("p1").await.unwrap().total_size, 5 * MIB);
}
