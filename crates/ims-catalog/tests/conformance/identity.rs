//! Projects, users, roles and tokens.

use ims_catalog::{ImageStatus, Project, Role, Token, User};

use crate::support::*;
use crate::Backend;

fn ev() -> ims_catalog::AuditEvent {
    event("identity.update", "identity")
}

fn project(id: &str, name: &str) -> Project {
    Project { id: id.into(), name: name.into(), created_at: t(1) }
}

fn user(id: &str, name: &str) -> User {
    User { id: id.into(), name: name.into(), created_at: t(2) }
}

fn token(id: &str, hash: &str, user: &str, project: &str) -> Token {
    Token {
        id: id.into(),
        secret_hash: hash.into(),
        user_id: user.into(),
        project_id: project.into(),
        created_at: t(3),
        expires_at: Some(t(3600)),
        revoked: false,
    }
}

pub async fn check_projects(b: &Backend) {
    let id = &b.catalog.identity;
    assert!(id.is_empty().await.unwrap());
    let zeta = project("p-z", "zeta");
    let alpha = project("p-a2", "alpha");
    id.create_project(&zeta, &ev()).await.unwrap();
    assert!(!id.is_empty().await.unwrap());
    id.create_project(&alpha, &ev()).await.unwrap();
    expect_conflict(id.create_project(&project("p-z", "other name"), &ev()).await);
    expect_conflict(id.create_project(&project("p-new", "zeta"), &ev()).await);

    assert_eq!(id.get_project("p-z").await.unwrap(), zeta);
    assert_eq!(id.find_project("alpha").await.unwrap(), alpha);
    expect_not_found(id.get_project("zeta").await);
    expect_not_found(id.find_project("p-z").await);
    expect_not_found(id.find_project("Alpha").await);
    assert_eq!(id.list_projects().await.unwrap(), vec![alpha, zeta], "ordered by name");
}

pub async fn check_users(b: &Backend) {
    let id = &b.catalog.identity;
    let bob = user("u-b", "bob");
    let ann = user("u-z", "ann");
    id.create_user(&bob, &ev()).await.unwrap();
    id.create_user(&ann, &ev()).await.unwrap();
    expect_conflict(id.create_user(&user("u-b", "carl"), &ev()).await);
    expect_conflict(id.create_user(&user("u-c", "bob"), &ev()).await);
    assert_eq!(id.get_user("u-b").await.unwrap(), bob);
    assert_eq!(id.find_user("ann").await.unwrap(), ann);
    expect_not_found(id.get_user("bob").await);
    expect_not_found(id.find_user("nobody").await);
    assert_eq!(id.list_users().await.unwrap(), vec![ann, bob], "ordered by name");
    assert!(id.is_empty().await.unwrap(), "users alone do not make the catalog non-empty");
}

pub async fn check_roles(b: &Backend) {
    let id = &b.catalog.identity;
    id.create_user(&user("u1", "one"), &ev()).await.unwrap();
    for p in ["p2", "p1", "p3"] {
        id.create_project(&project(p, p), &ev()).await.unwrap();
    }
    assert_eq!(id.role_of("u1", "p1").await.unwrap(), None);
    assert!(id.roles_of_user("u1").await.unwrap().is_empty());

    id.assign_role("u1", "p1", Role::Member, &ev()).await.unwrap();
    assert_eq!(id.role_of("u1", "p1").await.unwrap(), Some(Role::Member));
    id.assign_role("u1", "p1", Role::Admin, &ev()).await.unwrap();
    assert_eq!(id.role_of("u1", "p1").await.unwrap(), Some(Role::Admin), "a new role replaces the old");
    id.assign_role("u1", "p1", Role::Admin, &ev()).await.unwrap();
    id.assign_role("u1", "p2", Role::Reader, &ev()).await.unwrap();
    assert_eq!(
        id.roles_of_user("u1").await.unwrap(),
        vec![("p1".to_string(), Role::Admin), ("p2".to_string(), Role::Reader)]
    );
    assert_eq!(id.role_of("u1", "p3").await.unwrap(), None);
    assert_eq!(id.role_of("nobody", "p1").await.unwrap(), None);

    expect_not_found(id.assign_role("nobody", "p1", Role::Reader, &ev()).await);
    expect_not_found(id.assign_role("u1", "nowhere", Role::Reader, &ev()).await);
}

pub async fn check_tokens(b: &Backend) {
    let id = &b.catalog.identity;
    id.create_user(&user("u1", "one"), &ev()).await.unwrap();
    id.create_project(&project("p1", "p1"), &ev()).await.unwrap();
    let tok = token("t1", "hash-1", "u1", "p1");
    id.create_token(&tok, &ev()).await.unwrap();
    let mut forever = token("t2", "hash-2", "u1", "p1");
    forever.expires_at = None;
    id.create_token(&forever, &ev()).await.unwrap();
    expect_conflict(id.create_token(&token("t1", "hash-3", "u1", "p1"), &ev()).await);
    expect_conflict(id.create_token(&token("t3", "hash-1", "u1", "p1"), &ev()).await);

    assert_eq!(id.find_token("hash-1").await.unwrap(), tok);
    assert_eq!(id.find_token("hash-2").await.unwrap(), forever);
    expect_not_found(id.find_token("t1").await);
    expect_not_found(id.find_token("hash-3").await);

    id.revoke_token("t1", &ev()).await.unwrap();
    let revoked = id.find_token("hash-1").await.unwrap();
    assert!(revoked.revoked, "a revoked token is still found, marked revoked");
    assert_eq!(Token { revoked: false, ..revoked }, tok);
    id.revoke_token("t1", &ev()).await.unwrap();
    assert!(!id.find_token("hash-2").await.unwrap().revoked);
    expect_not_found(id.revoke_token("hash-2", &ev()).await);
}

pub async fn check_delete_project(b: &Backend) {
    let c = &b.catalog;
    let id = &c.identity;
    expect_not_found(id.delete_project("p1", &ev()).await);

    id.create_project(&project("p1", "one"), &ev()).await.unwrap();
    id.create_project(&project("p2", "two"), &ev()).await.unwrap();
    id.create_user(&user("u1", "user"), &ev()).await.unwrap();
    id.assign_role("u1", "p1", Role::Admin, &ev()).await.unwrap();
    id.assign_role("u1", "p2", Role::Member, &ev()).await.unwrap();
    id.create_token(&token("t1", "h1", "u1", "p1"), &ev()).await.unwrap();
    id.create_token(&token("t2", "h2", "u1", "p2"), &ev()).await.unwrap();
    let img = image("p1", "keeps the project alive");
    create(c, &img).await;

    expect_conflict(id.delete_project("p1", &ev()).await);
    assert_eq!(id.role_of("u1", "p1").await.unwrap(), Some(Role::Admin), "a refused delete changes nothing");
    id.find_token("h1").await.unwrap();

    let mut deleted = img.clone();
    deleted.status = ImageStatus::Deleted;
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    id.delete_project("p1", &ev()).await.unwrap();

    expect_not_found(id.get_project("p1").await);
    expect_not_found(id.find_project("one").await);
    assert_eq!(id.role_of("u1", "p1").await.unwrap(), None);
    expect_not_found(id.find_token("h1").await);
    assert_eq!(id.roles_of_user("u1").await.unwrap(), vec![("p2".to_string(), Role::Member)]);
    id.find_token("h2").await.unwrap();
    id.get_user("u1").await.unwrap();
    expect_not_found(id.delete_project("p1", &ev()).await);

    // The name is free again.
    id.create_project(&project("p1-new", "one"), &ev()).await.unwrap();
    id.delete_project("p1-new", &ev()).await.unwrap();
    id.delete_project("p2", &ev()).await.unwrap();
    assert!(id.is_empty().await.unwrap());
}
