//! `ims image favorite add|remove|list` against a real `ims serve`, and favourites first in
//! `ims image list`: an admin publishes, an owner project shares, a member project keeps favourites.

mod common;

use common::{str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|i| str_of(i, "id")).collect()
}

fn favorite_ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|f| str_of(f, "image_id")).collect()
}

#[test]
fn favorites_are_kept_per_user_and_listed_first() {
    let s = Server::start();
    let (_, owner) = s.tenant("fav-owner", "fav-owner-user");
    let (member_project, member) = s.tenant("fav-member", "fav-member-user");
    let create = |token: &str, name: &str, visibility: &str| {
        str_of(&s.json(token, &["image", "create", "--disk-format", "raw", "--container-format", "bare", "--visibility", visibility, name]), "id")
    };
    let gold = create(ADMIN_TOKEN, "gold", "public");
    let shared = create(&owner, "shared", "shared");
    s.json(&owner, &["image", "member", "add", &shared, &member_project]);
    s.json(&member, &["image", "member", "accept", &shared]);
    let own = create(&member, "own", "private");

    // Without favourites, the server's order (images made within one second tie on their time).
    let server_order = ids(&s.json(&member, &["image", "list"]));
    let mut sorted = server_order.clone();
    sorted.sort();
    let mut all = vec![own.clone(), shared.clone(), gold.clone()];
    all.sort();
    assert_eq!(sorted, all);

    let added = s.json(&member, &["image", "favorite", "add", &gold]);
    assert_eq!(str_of(&added, "id"), gold);
    assert_eq!(added["__imagetype"], "gold");
    s.json(&member, &["image", "favorite", "add", &shared]);
    let favorites = s.json(&member, &["image", "favorite", "list"]);
    assert_eq!(favorite_ids(&favorites), [shared.clone(), gold.clone()]);
    assert_eq!(favorites[0]["image"]["__imagetype"], "shared");
    let table = s.ims(Some(&member), &["image", "favorite", "list"]).ok().stdout();
    assert!(table.contains("| ID ") && table.contains(&gold) && table.contains(" gold "), "{table}");

    // `image list` puts favourites first, unless a sort order or a page size is asked for.
    assert_eq!(ids(&s.json(&member, &["image", "list"])), [shared.clone(), gold.clone(), own.clone()]);
    let by_name = ids(&s.json(&member, &["image", "list", "--sort", "name:asc"]));
    assert_eq!(by_name, [gold.clone(), own.clone(), shared.clone()], "an explicit sort order is kept");
    assert_eq!(ids(&s.json(&member, &["image", "list", "--limit", "1"])), server_order[..1]);

    // Lists are per user; a private image of another project cannot be added.
    assert!(favorite_ids(&s.json(&owner, &["image", "favorite", "list"])).is_empty());
    let err = s.ims(Some(&owner), &["image", "favorite", "add", &own]).fails();
    assert!(err.contains("404"), "{err}");

    // The owner withdraws the share: the image drops out of the member's list.
    s.ims(Some(&owner), &["image", "member", "remove", &shared, &member_project]).ok();
    assert_eq!(favorite_ids(&s.json(&member, &["image", "favorite", "list"])), [gold.clone()]);

    s.ims(Some(&member), &["image", "favorite", "remove", &gold]).ok();
    let err = s.ims(Some(&member), &["image", "favorite", "remove", &gold]).fails();
    assert!(err.contains("404"), "{err}");
    let rest: Vec<String> = server_order.into_iter().filter(|id| *id != shared).collect();
    assert_eq!(ids(&s.json(&member, &["image", "list"])), rest, "back to the server's order");
}
