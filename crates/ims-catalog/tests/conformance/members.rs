//! Image memberships.

use chrono::Utc;
use ims_catalog::{ImageStatus, Member, MemberStatus, Visibility};
use uuid::Uuid;

use crate::support::*;
use crate::Backend;

fn member(image_id: Uuid, project: &str, status: MemberStatus, at: i64) -> Member {
    Member { image_id, member: project.into(), status, created_at: t(at), updated_at: t(at) }
}

fn ev() -> ims_catalog::AuditEvent {
    event("member.update", "member")
}

pub async fn check_members_lifecycle(b: &Backend) {
    let c = &b.catalog;
    let mut img = image("owner", "shared");
    img.visibility = Visibility::Shared;
    create(c, &img).await;
    let other = image("owner", "other");
    create(c, &other).await;

    let m1 = member(img.id, "p1", MemberStatus::Pending, 1);
    let m2 = member(img.id, "p2", MemberStatus::Accepted, 2);
    let m0 = member(img.id, "p0", MemberStatus::Rejected, 0);
    for m in [&m1, &m2, &m0] {
        c.members.add(m, &ev()).await.unwrap();
    }
    c.members.add(&member(other.id, "p1", MemberStatus::Pending, 5), &ev()).await.unwrap();

    expect_conflict(c.members.add(&member(img.id, "p1", MemberStatus::Accepted, 9), &ev()).await);
    assert_eq!(c.members.get(img.id, "p1").await.unwrap(), m1, "a refused duplicate changes nothing");
    expect_not_found(c.members.get(img.id, "p9").await);
    expect_not_found(c.members.get(Uuid::new_v4(), "p1").await);
    assert_eq!(c.members.list(img.id).await.unwrap(), vec![m0.clone(), m1.clone(), m2.clone()], "by creation time");
    assert!(c.members.list(Uuid::new_v4()).await.unwrap().is_empty());

    let before = Utc::now();
    let updated = c.members.set_status(img.id, "p1", MemberStatus::Accepted, &ev()).await.unwrap();
    assert_eq!(updated.status, MemberStatus::Accepted);
    assert_eq!((updated.image_id, updated.member.as_str(), updated.created_at), (img.id, "p1", m1.created_at));
    assert!(updated.updated_at >= before, "updated_at is set to now");
    assert_eq!(c.members.get(img.id, "p1").await.unwrap(), updated);
    assert_eq!(c.members.get(other.id, "p1").await.unwrap().status, MemberStatus::Pending, "other images untouched");
    expect_not_found(c.members.set_status(img.id, "p9", MemberStatus::Accepted, &ev()).await);

    c.members.remove(img.id, "p1", &ev()).await.unwrap();
    expect_not_found(c.members.get(img.id, "p1").await);
    expect_not_found(c.members.remove(img.id, "p1", &ev()).await);
    assert_eq!(c.members.list(img.id).await.unwrap(), vec![m0, m2]);
    assert_eq!(c.members.list(other.id).await.unwrap().len(), 1);
}

pub async fn check_member_add_needs_live_image(b: &Backend) {
    let c = &b.catalog;
    expect_not_found(c.members.add(&member(Uuid::new_v4(), "p1", MemberStatus::Pending, 0), &ev()).await);

    let img = image("owner", "soon deleted");
    create(c, &img).await;
    let mut deleted = img.clone();
    deleted.status = ImageStatus::Deleted;
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    expect_not_found(c.members.add(&member(img.id, "p1", MemberStatus::Pending, 0), &ev()).await);
}

/// An image deleted for good loses its members, whether saved as deleted or purged from the recycle bin; a
/// binned image keeps them for its restore.
pub async fn check_members_go_with_final_deletion(b: &Backend) {
    let c = &b.catalog;
    let mut saved = image("owner", "saved");
    saved.visibility = Visibility::Shared;
    let mut binned = image("owner", "binned");
    binned.visibility = Visibility::Shared;
    for img in [&saved, &binned] {
        create(c, img).await;
        c.members.add(&member(img.id, "p1", MemberStatus::Accepted, 1), &ev()).await.unwrap();
    }

    saved.status = ImageStatus::Deleted;
    saved.updated_at = t(5);
    c.images.save(&saved, &[ImageStatus::Queued], &image_event(saved.id)).await.unwrap();
    assert!(c.members.list(saved.id).await.unwrap().is_empty(), "deleted for good: no members left");

    c.recycle_bin.move_to_bin(binned.id, ImageStatus::Queued, t(5), t(6), &image_event(binned.id)).await.unwrap();
    assert_eq!(c.members.list(binned.id).await.unwrap().len(), 1, "a binned image keeps its members");
    c.recycle_bin.purge(binned.id, None, &image_event(binned.id)).await.unwrap();
    assert!(c.members.list(binned.id).await.unwrap().is_empty(), "purged: no members left");
}
