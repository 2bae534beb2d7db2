//! The marketplace: listings (active images only, unique product codes), shelf state, subscriptions, and
//! their effect on the image list (subscribers see the image; `market_on_shelf` browses on-shelf listings).

use std::sync::Arc;

use ims_catalog::{
    CatalogError, Image, ImageStatus, ListingFilter, MarketListing, MarketSubscription, Project, Visibility,
};
use uuid::Uuid;

use crate::support::*;
use crate::Backend;

async fn project(b: &Backend, id: &str) {
    let p = Project { id: id.into(), name: format!("name-{id}"), created_at: t(0) };
    b.catalog.identity.create_project(&p, &event("project.create", id)).await.unwrap();
}

fn ev() -> ims_catalog::AuditEvent {
    event("market.update", "market")
}

/// An active private image `name` of `owner`.
async fn active_image(b: &Backend, owner: &str, name: &str) -> Image {
    let mut img = image(owner, name);
    img.status = ImageStatus::Active;
    img.visibility = Visibility::Private;
    img.disk_format = Some("raw".into());
    img.container_format = Some("bare".into());
    create(&b.catalog, &img).await;
    img
}

fn listing(image: &Image, publisher: &str, code: &str, at: i64) -> MarketListing {
    MarketListing {
        id: Uuid::new_v4(),
        image_id: image.id,
        publisher: publisher.into(),
        product_code: code.into(),
        version: "1.0".into(),
        description: format!("{code} on {}", image.name.clone().unwrap_or_default()),
        offshelved: false,
        created_at: t(at),
        updated_at: t(at),
    }
}

pub async fn check_market_listings(b: &Backend) {
    let c = &b.catalog;
    for p in ["pub", "other"] {
        project(b, p).await;
    }
    let a = active_image(b, "pub", "a").await;
    let z = active_image(b, "pub", "z").await;
    let queued = image("pub", "queued");
    create(c, &queued).await;

    let la = listing(&a, "pub", "code-a", 1);
    let before = b.audit.count().await;
    c.market.create_listing(&la, &ev()).await.unwrap();
    assert_eq!(b.audit.count().await, before + 1, "a listing is audited");
    assert_eq!(c.market.get_listing(la.id).await.unwrap(), la, "round trip, nanoseconds included");

    // Refusals store nothing.
    expect_conflict(c.market.create_listing(&listing(&a, "pub", "code-a2", 2), &ev()).await);
    expect_conflict(c.market.create_listing(&listing(&z, "pub", "code-a", 2), &ev()).await);
    expect_invalid(c.market.create_listing(&listing(&queued, "pub", "code-q", 2), &ev()).await);
    expect_not_found(c.market.create_listing(&listing(&image("pub", "ghost"), "pub", "code-g", 2), &ev()).await);
    expect_not_found(c.market.create_listing(&listing(&z, "nobody", "code-n", 2), &ev()).await);
    expect_not_found(c.market.get_listing(Uuid::new_v4()).await);
    assert_eq!(b.audit.count().await, before + 1, "refused listings are not audited");

    let lz = listing(&z, "other", "code-z", 3);
    c.market.create_listing(&lz, &ev()).await.unwrap();
    let all = c.market.list_listings(&ListingFilter::default()).await.unwrap();
    assert_eq!(all, vec![lz.clone(), la.clone()], "newest first");
    let by_publisher = ListingFilter { publisher: Some("other".into()), ..Default::default() };
    assert_eq!(c.market.list_listings(&by_publisher).await.unwrap(), vec![lz.clone()]);
    let mut of_images = c.market.listings_of_images(&[a.id, queued.id]).await.unwrap();
    of_images.sort_by_key(|l| l.id);
    assert_eq!(of_images, vec![la.clone()]);
    assert!(c.market.listings_of_images(&[]).await.unwrap().is_empty());

    // Off shelf and back; a repeated change is not audited.
    let off = c.market.set_offshelved(la.id, true, t(10), &ev()).await.unwrap();
    assert!(off.offshelved);
    assert_eq!(off.updated_at, t(10));
    let count = b.audit.count().await;
    assert_eq!(c.market.set_offshelved(la.id, true, t(11), &ev()).await.unwrap().updated_at, t(10));
    assert_eq!(b.audit.count().await, count, "an unchanged shelf state stores no event");
    let on_shelf = ListingFilter { on_shelf_only: true, ..Default::default() };
    assert_eq!(c.market.list_listings(&on_shelf).await.unwrap(), vec![lz.clone()]);
    assert!(!c.market.set_offshelved(la.id, false, t(12), &ev()).await.unwrap().offshelved);
    expect_not_found(c.market.set_offshelved(Uuid::new_v4(), true, t(12), &ev()).await);

    // A deleted image's listing is gone from every read.
    let mut deleted = z.clone();
    deleted.status = ImageStatus::Deleted;
    c.images.save(&deleted, &[ImageStatus::Active], &image_event(z.id)).await.unwrap();
    expect_not_found(c.market.get_listing(lz.id).await);
    assert_eq!(c.market.list_listings(&ListingFilter::default()).await.unwrap().len(), 1);
}

pub async fn check_market_subscriptions(b: &Backend) {
    let c = &b.catalog;
    for p in ["pub", "m1", "m2"] {
        project(b, p).await;
    }
    let img = active_image(b, "pub", "listed").await;
    let l = listing(&img, "pub", "code-1", 1);
    c.market.create_listing(&l, &ev()).await.unwrap();

    assert!(!c.market.is_subscribed(img.id, "m1").await.unwrap());
    assert!(c.market.subscribe(l.id, "m1", t(2), &ev()).await.unwrap());
    let count = b.audit.count().await;
    assert!(!c.market.subscribe(l.id, "m1", t(3), &ev()).await.unwrap(), "subscribing twice changes nothing");
    assert_eq!(b.audit.count().await, count);
    assert!(c.market.is_subscribed(img.id, "m1").await.unwrap());
    expect_not_found(c.market.subscribe(l.id, "nobody", t(3), &ev()).await);
    expect_not_found(c.market.subscribe(Uuid::new_v4(), "m2", t(3), &ev()).await);

    // Off shelf: no new subscribers, existing ones stay (and re-subscribing is still idempotent).
    c.market.set_offshelved(l.id, true, t(4), &ev()).await.unwrap();
    match c.market.subscribe(l.id, "m2", t(5), &ev()).await {
        Err(CatalogError::Conflict(_)) => {}
        other => panic!("subscribing to an off-shelf listing: expected Conflict, got {other:?}"),
    }
    assert!(!c.market.subscribe(l.id, "m1", t(5), &ev()).await.unwrap());
    assert_eq!(
        c.market.subscriptions(l.id).await.unwrap(),
        vec![MarketSubscription { listing_id: l.id, project_id: "m1".into(), since: t(2) }]
    );
    let mine = ListingFilter { subscriber: Some("m1".into()), ..Default::default() };
    assert_eq!(c.market.list_listings(&mine).await.unwrap().len(), 1);
    c.market.set_offshelved(l.id, false, t(6), &ev()).await.unwrap();
    c.market.subscribe(l.id, "m2", t(7), &ev()).await.unwrap();
    c.market.unsubscribe(l.id, "m2", &ev()).await.unwrap();
    expect_not_found(c.market.unsubscribe(l.id, "m2", &ev()).await);

    // Delisting with a subscriber needs force, which removes the subscriptions.
    expect_conflict(c.market.delete_listing(l.id, false, &ev()).await);
    assert!(c.market.get_listing(l.id).await.is_ok(), "a refused delisting changes nothing");
    assert_eq!(c.market.delete_listing(l.id, true, &ev()).await.unwrap(), 1);
    expect_not_found(c.market.get_listing(l.id).await);
    assert!(!c.market.is_subscribed(img.id, "m1").await.unwrap());
    expect_not_found(c.market.delete_listing(l.id, false, &ev()).await);

    // Without subscribers no force is needed.
    let again = listing(&img, "pub", "code-1", 8);
    c.market.create_listing(&again, &ev()).await.unwrap();
    assert_eq!(c.market.delete_listing(again.id, false, &ev()).await.unwrap(), 0);
}

pub async fn check_market_images_in_lists(b: &Backend) {
    let c = &b.catalog;
    for p in ["pub", "m1", "m2"] {
        project(b, p).await;
    }
    let listed = active_image(b, "pub", "listed").await;
    let _unlisted = active_image(b, "pub", "unlisted").await;
    let l = listing(&listed, "pub", "code-1", 1);
    c.market.create_listing(&l, &ev()).await.unwrap();

    let mut browse = query(viewer("m1"));
    browse.market_on_shelf = true;
    assert_eq!(names(c, &browse).await, set(&["listed"]), "any project browses on-shelf listings");
    let mut browse_admin = query(admin("admin"));
    browse_admin.market_on_shelf = true;
    assert_eq!(names(c, &browse_admin).await, set(&["listed"]));
    assert!(names(c, &query(viewer("m1"))).await.is_empty(), "browsing does not make the image readable");

    c.market.subscribe(l.id, "m1", t(2), &ev()).await.unwrap();
    assert_eq!(names(c, &query(viewer("m1"))).await, set(&["listed"]), "a subscriber sees the image");
    assert!(names(c, &query(viewer("m2"))).await.is_empty());
    let mut page = query(viewer("m1"));
    page.marker = Some(listed.id);
    assert!(list(c, &page).await.is_empty(), "a subscribed image is a valid marker");

    c.market.set_offshelved(l.id, true, t(3), &ev()).await.unwrap();
    assert!(names(c, &browse).await.is_empty(), "off-shelf listings are not browsed");
    assert_eq!(names(c, &query(viewer("m1"))).await, set(&["listed"]), "subscribers keep the image");

    c.market.delete_listing(l.id, true, &ev()).await.unwrap();
    assert!(names(c, &query(viewer("m1"))).await.is_empty(), "a forced delisting ends access");
}

pub async fn check_market_concurrent_subscribe_and_offshelf(b: &Backend) {
    let c = Arc::new(b.catalog.clone());
    project(b, "pub").await;
    for i in 0..8 {
        project(b, &format!("m{i}")).await;
    }
    let img = active_image(b, "pub", "raced").await;
    let l = listing(&img, "pub", "code-race", 1);
    c.market.create_listing(&l, &ev()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.market.subscribe(l.id, &format!("m{i}"), t(2), &ev()).await }));
    }
    let off = c.market.set_offshelved(l.id, true, t(3), &ev()).await.unwrap();
    assert!(off.offshelved);
    let mut added = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(true) => added += 1,
            Err(CatalogError::Conflict(_)) => {}
            other => panic!("unexpected subscribe outcome {other:?}"),
        }
    }
    assert_eq!(c.market.subscriptions(l.id).await.unwrap().len(), added, "every success is stored, nothing else");
}
