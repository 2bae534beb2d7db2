//! NBD export names: stored by hash, found, revoked per image, purged once expired, gone with their image.

use ims_catalog::{ImageStatus, NbdExport};

use crate::support::*;
use crate::Backend;

fn export(hash: &str, image_id: uuid::Uuid, expires: i64) -> NbdExport {
    NbdExport {
        name_hash: hash.into(),
        image_id,
        created_by: "u1".into(),
        created_at: t(1),
        expires_at: t(expires),
    }
}

pub async fn check_nbd_exports_lifecycle(b: &Backend) {
    let c = &b.catalog;
    let (a, z) = (image("p1", "a"), image("p2", "z"));
    create(c, &a).await;
    create(c, &z).await;

    let first = export("aa01", a.id, 100);
    c.nbd_exports.create(&first).await.unwrap();
    c.nbd_exports.create(&export("aa02", a.id, 10)).await.unwrap();
    expect_conflict(c.nbd_exports.create(&export("aa01", z.id, 100)).await);
    expect_not_found(c.nbd_exports.create(&export("aa03", uuid::Uuid::new_v4(), 100)).await);

    assert_eq!(c.nbd_exports.find("aa01").await.unwrap(), Some(first.clone()), "a stored name round-trips");
    assert_eq!(c.nbd_exports.find("ffff").await.unwrap(), None);

    expect_not_found(c.nbd_exports.revoke(z.id, "aa01").await);
    assert!(c.nbd_exports.find("aa01").await.unwrap().is_some(), "revoking through another image changes nothing");
    c.nbd_exports.revoke(a.id, "aa01").await.unwrap();
    assert_eq!(c.nbd_exports.find("aa01").await.unwrap(), None);
    expect_not_found(c.nbd_exports.revoke(a.id, "aa01").await);

    assert_eq!(c.nbd_exports.purge_expired(t(50)).await.unwrap(), 1, "only the name expired at 10 goes");
    assert_eq!(c.nbd_exports.find("aa02").await.unwrap(), None);
    assert_eq!(c.nbd_exports.purge_expired(t(50)).await.unwrap(), 0, "purging is idempotent");
}

pub async fn check_nbd_exports_need_a_live_image(b: &Backend) {
    let c = &b.catalog;
    let img = image("p1", "going");
    create(c, &img).await;
    let mut deleted = img.clone();
    deleted.status = ImageStatus::Deleted;
    deleted.updated_at = t(5);
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    expect_not_found(c.nbd_exports.create(&export("bb01", img.id, 100)).await);
    assert_eq!(c.nbd_exports.find("bb01").await.unwrap(), None);
}
