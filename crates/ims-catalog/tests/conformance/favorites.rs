//! Each user's favourite images: adding (idempotent, capped), removing, listing without deleted images.

use std::sync::Arc;

use ims_catalog::{CatalogError, Favorite, ImageStatus, User};

use crate::support::*;
use crate::Backend;

async fn user(b: &Backend, id: &str) {
    let u = User { id: id.into(), name: format!("name-{id}"), created_at: t(0) };
    b.catalog.identity.create_user(&u, &event("user.create", id)).await.unwrap();
}

fn ev() -> ims_catalog::AuditEvent {
    event("favorite.update", "favorites")
}

pub async fn check_favorites_lifecycle(b: &Backend) {
    let c = &b.catalog;
    user(b, "u1").await;
    user(b, "u2").await;
    let (a, z) = (image("p1", "a"), image("p2", "z"));
    create(c, &a).await;
    create(c, &z).await;

    let before = b.audit.count().await;
    assert!(c.favorites.add("u1", a.id, t(1), 10, &ev()).await.unwrap());
    assert!(c.favorites.add("u1", z.id, t(2), 10, &ev()).await.unwrap());
    assert_eq!(b.audit.count().await, before + 2, "each addition is audited");
    assert!(!c.favorites.add("u1", a.id, t(3), 10, &ev()).await.unwrap(), "adding twice changes nothing");
    assert_eq!(b.audit.count().await, before + 2, "a repeated addition stores no event");
    assert_eq!(
        c.favorites.list("u1").await.unwrap(),
        vec![Favorite { image_id: z.id, added_at: t(2) }, Favorite { image_id: a.id, added_at: t(1) }],
        "newest first, first addition time kept"
    );
    assert!(c.favorites.list("u2").await.unwrap().is_empty(), "lists are per user");
    assert!(c.favorites.list("nobody").await.unwrap().is_empty());

    expect_not_found(c.favorites.add("nobody", a.id, t(4), 10, &ev()).await);
    expect_not_found(c.favorites.add("u2", uuid::Uuid::new_v4(), t(4), 10, &ev()).await);

    c.favorites.remove("u1", a.id, &ev()).await.unwrap();
    expect_not_found(c.favorites.remove("u1", a.id, &ev()).await);
    expect_not_found(c.favorites.remove("u2", z.id, &ev()).await);
    assert_eq!(c.favorites.list("u1").await.unwrap(), vec![Favorite { image_id: z.id, added_at: t(2) }]);
}

pub async fn check_favorites_skip_deleted_images(b: &Backend) {
    let c = &b.catalog;
    user(b, "u1").await;
    let img = image("p1", "going");
    create(c, &img).await;
    c.favorites.add("u1", img.id, t(1), 10, &ev()).await.unwrap();
    let mut deleted = img.clone();
    deleted.status = ImageStatus::Deleted;
    deleted.updated_at = t(5);
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();

    assert!(c.favorites.list("u1").await.unwrap().is_empty(), "a deleted image drops out");
    expect_not_found(c.favorites.add("u1", img.id, t(6), 10, &ev()).await);
    // The stale entry can still be removed.
    c.favorites.remove("u1", img.id, &ev()).await.unwrap();
}

pub async fn check_favorites_limit_holds_under_concurrency(b: &Backend) {
    let c = &b.catalog;
    user(b, "u1").await;
    let mut images = Vec::new();
    for i in 0..12 {
        let img = image("p1", &format!("i{i}"));
        create(c, &img).await;
        images.push(img);
    }
    let favorites = Arc::clone(&c.favorites);
    let tasks: Vec<_> = images
        .iter()
        .map(|img| {
            let (favorites, id) = (Arc::clone(&favorites), img.id);
            tokio::spawn(async move { favorites.add("u1", id, t(1), 5, &ev()).await })
        })
        .collect();
    let (mut added, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(true) => added += 1,
            Err(CatalogError::LimitExceeded(_)) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((added, refused), (5, 7));
    assert_eq!(c.favorites.list("u1").await.unwrap().len(), 5);
}
