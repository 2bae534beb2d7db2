//! Every successful write stores exactly its audit event, in the same transaction; a refused write stores
//! none.

use ims_catalog::{AuditEvent, ImageStatus, Member, MemberStatus, Project, Role, Token, User};

use crate::support::*;
use crate::Backend;

/// A distinct event with every field set.
fn ev(action: &str) -> AuditEvent {
    let mut e = event(action, &format!("{action}:{}", uuid::Uuid::new_v4()));
    e.project_id = Some("p1".into());
    e.user_id = Some("u1".into());
    e.detail = Some(format!("detail of {action}"));
    e
}

/// Runs `$call` (which uses event `$e`) and checks it added exactly `$e` to the trail.
macro_rules! audited {
    ($b:expr, $e:ident, $call:expr) => {{
        let before = $b.audit.count().await;
        let $e = ev(stringify!($e));
        let out = $call.await.unwrap_or_else(|err| panic!("{}: {err}", stringify!($call)));
        assert_eq!($b.audit.count().await, before + 1, "{} wrote one audit row", stringify!($call));
        assert_eq!($b.audit.latest().await.as_ref(), Some(&$e), "{} wrote its event", stringify!($call));
        out
    }};
}

/// Runs `$call` (which uses event `$e`), expects it to fail and checks the trail did not grow.
macro_rules! refused {
    ($b:expr, $e:ident, $call:expr) => {{
        let before = $b.audit.count().await;
        let $e = ev(stringify!($e));
        assert!($call.await.is_err(), "{} should fail", stringify!($call));
        assert_eq!($b.audit.count().await, before, "{} wrote no audit row", stringify!($call));
    }};
}

fn project(id: &str) -> Project {
    Project { id: id.into(), name: format!("name-{id}"), created_at: t(0) }
}

pub async fn check_writes_are_audited(b: &Backend) {
    let c = &b.catalog;
    let id = &c.identity;
    let img = image("p9", "audited");
    audited!(b, e, c.images.create(&img, &e));
    let mut next = img.clone();
    next.name = Some("renamed".into());
    audited!(b, e, c.images.save(&next, &[ImageStatus::Queued], &e));

    let m = Member {
        image_id: img.id,
        member: "p2".into(),
        status: MemberStatus::Pending,
        created_at: t(0),
        updated_at: t(0),
    };
    audited!(b, e, c.members.add(&m, &e));
    audited!(b, e, c.members.set_status(img.id, "p2", MemberStatus::Accepted, &e));
    audited!(b, e, c.members.remove(img.id, "p2", &e));

    audited!(b, e, id.create_project(&project("p1"), &e));
    audited!(b, e, id.create_user(&User { id: "u1".into(), name: "one".into(), created_at: t(0) }, &e));
    audited!(b, e, id.assign_role("u1", "p1", Role::Member, &e));
    let tok = Token {
        id: "t1".into(),
        secret_hash: "h1".into(),
        user_id: "u1".into(),
        project_id: "p1".into(),
        created_at: t(0),
        expires_at: None,
        revoked: false,
    };
    audited!(b, e, id.create_token(&tok, &e));
    audited!(b, e, id.revoke_token("t1", &e));
    audited!(b, e, id.delete_project("p1", &e));

    let mut deleted = next.clone();
    deleted.status = ImageStatus::Deleted;
    audited!(b, e, c.images.save(&deleted, &[ImageStatus::Queued], &e));
}

pub async fn check_failed_writes_are_not_audited(b: &Backend) {
    let c = &b.catalog;
    let id = &c.identity;
    let img = image("p1", "x");
    create(c, &img).await;
    refused!(b, e, c.images.create(&img, &e));
    refused!(b, e, c.images.save(&img, &[ImageStatus::Active], &e));
    refused!(b, e, c.images.save(&image("p1", "missing"), &[ImageStatus::Queued], &e));

    let m = Member {
        image_id: img.id,
        member: "p2".into(),
        status: MemberStatus::Pending,
        created_at: t(0),
        updated_at: t(0),
    };
    c.members.add(&m, &ev("setup")).await.unwrap();
    refused!(b, e, c.members.add(&m, &e));
    refused!(b, e, c.members.set_status(img.id, "p3", MemberStatus::Accepted, &e));
    refused!(b, e, c.members.remove(img.id, "p3", &e));

    id.create_project(&project("p1"), &ev("setup")).await.unwrap();
    refused!(b, e, id.create_project(&project("p1"), &e));
    refused!(b, e, id.delete_project("p1", &e));
    refused!(b, e, id.delete_project("nope", &e));
    refused!(b, e, id.assign_role("nobody", "p1", Role::Reader, &e));
    refused!(b, e, id.revoke_token("nope", &e));
}
