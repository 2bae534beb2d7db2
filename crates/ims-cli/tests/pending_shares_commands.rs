//! `ims image member pending`: a member project's list of shares waiting for its answer.

mod common;

use common::{str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|i| str_of(i, "id")).collect()
}

#[test]
fn pending_shares_leave_the_list_once_answered() {
    let s = Server::start();
    let (_, owner) = s.tenant("share-owner", "share-owner-user");
    let (member_project, member) = s.tenant("share-member", "share-member-user");
    let create = |name: &str| {
        str_of(&s.json(&owner, &["image", "create", "--disk-format", "raw", "--container-format", "bare", "--visibility", "shared", name]), "id")
    };
    let (first, second) = (create("first"), create("second"));
    let mut public = vec!["image", "create", "--disk-format", "raw", "--container-format", "bare"];
    public.extend(["--visibility", "public", "gold"]);
    s.json(ADMIN_TOKEN, &public);
    assert!(ids(&s.json(&member, &["image", "member", "pending"])).is_empty());

    s.json(&owner, &["image", "member", "add", &first, &member_project]);
    s.json(&owner, &["image", "member", "add", &second, &member_project]);
    let mut pending = ids(&s.json(&member, &["image", "member", "pending"]));
    pending.sort();
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    assert_eq!(pending, both);
    let table = s.ims(Some(&member), &["image", "member", "pending"]).ok().stdout();
    assert!(table.contains(&first) && table.contains(&second), "{table}");
    assert!(ids(&s.json(&owner, &["image", "member", "pending"])).is_empty(), "the owner has nothing to answer");

    s.json(&member, &["image", "member", "accept", &first]);
    assert_eq!(ids(&s.json(&member, &["image", "member", "pending"])), [second.clone()]);
    s.json(&member, &["image", "member", "reject", &second]);
    assert!(ids(&s.json(&member, &["image", "member", "pending"])).is_empty());
}

#[test]
fn auto_accepted_shares_never_wait() {
    let s = Server::start();
    let (owner_project, owner) = s.tenant("trusted-owner", "trusted-owner-user");
    let (member_project, member) = s.tenant("trusting-member", "trusting-member-user");
    let added = s.json(&member, &["image", "member", "auto-accept", "add", "trusted-owner"]);
    assert_eq!(added, serde_json::json!([owner_project.clone()]));
    assert_eq!(s.json(&member, &["image", "member", "auto-accept", "list"]), serde_json::json!([owner_project.clone()]));
    let table = s.ims(Some(&member), &["image", "member", "auto-accept", "list"]).ok().stdout();
    assert!(table.contains("| Project") && table.contains(&owner_project), "{table}");

    let image = str_of(
        &s.json(&owner, &["image", "create", "--disk-format", "raw", "--container-format", "bare", "--visibility", "shared", "trusted"]),
        "id",
    );
    let share = s.json(&owner, &["image", "member", "add", &image, &member_project]);
    assert_eq!(share["status"], "accepted");
    assert!(ids(&s.json(&member, &["image", "member", "pending"])).is_empty());
    assert!(ids(&s.json(&member, &["image", "list"])).contains(&image));

    s.ims(Some(&member), &["image", "member", "auto-accept", "remove", &owner_project]).ok();
    let err = s.ims(Some(&member), &["image", "member", "auto-accept", "remove", &owner_project]).fails();
    assert!(err.contains("404"), "{err}");
    let err = s.ims(Some(&member), &["image", "member", "auto-accept", "add", "no-such-project"]).fails();
    assert!(err.contains("404"), "{err}");
    assert_eq!(s.json(ADMIN_TOKEN, &["image", "member", "auto-accept", "list"]), serde_json::json!([]));
}
