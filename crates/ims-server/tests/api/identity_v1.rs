use ims_client::Role;

use crate::common::{status, TestServer};

#[tokio::test]
async fn admin_manages_projects_users_and_tokens() {
    let s = TestServer::start().await;
    let me = s.admin.whoami().await.unwrap();
    assert_eq!(me.project.name, "admin");
    assert!(me.is_admin);

    let team = s.admin.create_project("team-a").await.unwrap();
    assert_eq!(s.admin.get_project("team-a").await.unwrap().id, team.id);
    assert_eq!(status(s.admin.create_project("team-a").await), 409, "names are unique");
    assert_eq!(status(s.admin.create_project("bad name!").await), 400);
    assert!(s.admin.list_projects().await.unwrap().iter().any(|p| p.name == "team-a"));

    let alice = s.admin.create_user("alice", "team-a", Role::Member).await.unwrap();
    let alice_client = s.admin.with_token(alice.token.token.clone().unwrap());
    let who = alice_client.whoami().await.unwrap();
    assert_eq!((who.user.name.as_str(), who.project.id.as_str(), who.role.as_str()), ("alice", team.id.as_str(), "member"));
    assert!(!who.is_admin);

    let second = s.admin.create_token("alice", "team-a").await.unwrap();
    let second_client = s.admin.with_token(second.token.clone().unwrap());
    second_client.whoami().await.unwrap();
    s.admin.revoke_token(&second.id).await.unwrap();
    assert_eq!(status(second_client.whoami().await), 401, "a revoked token is refused");
    alice_client.whoami().await.unwrap();

    let users = s.admin.list_users().await.unwrap();
    let listed = users.iter().find(|u| u.name == "alice").unwrap();
    assert_eq!(listed.roles[0].project_id, team.id);
}

#[tokio::test]
async fn only_admins_reach_the_identity_api() {
    let s = TestServer::start().await;
    let t = s.tenant("team-b", Role::Member).await;
    assert_eq!(status(t.client.create_project("mine").await), 403);
    assert_eq!(status(t.client.list_users().await), 403);
    assert_eq!(status(t.client.create_token("admin", "admin").await), 403);
}

#[tokio::test]
async fn a_project_that_owns_images_cannot_be_deleted() {
    let s = TestServer::start().await;
    let t = s.tenant("team-c", Role::Member).await;
    let img = t.client.create_image(&crate::common::raw_image("x")).await.unwrap();
    assert_eq!(status(s.admin.delete_project("team-c").await), 409);
    t.client.delete_image(&img.id).await.unwrap();
    s.admin.delete_project("team-c").await.unwrap();
    assert_eq!(status(s.admin.get_project("team-c").await), 404);
    assert_eq!(status(t.client.whoami().await), 401, "the project's tokens go with it");
}

#[tokio::test]
async fn bootstrap_writes_a_private_admin_token_file_when_none_is_given() {
    let s = TestServer::start_with(|settings| settings.admin_token = None).await;
    let path = s.data_dir.join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let client = s.admin.with_token(token.trim());
    assert!(client.whoami().await.unwrap().is_admin);
}
