//! `ims market ...` against a real `ims serve`: a publisher project lists an image, a member project
//! browses, subscribes and downloads it, the listing goes off shelf, and only an admin forces the
//! delisting of a listing in use.

mod common;

use common::{disk_bytes, md5_hex, str_of, Server};
use serde_json::Value;

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|i| str_of(i, key)).collect()
}

#[test]
fn publish_subscribe_offshelf_delist() {
    let s = Server::start();
    let (publisher_project, publisher) = s.tenant("mkt-publisher", "mkt-publisher-user");
    let (member_project, member) = s.tenant("mkt-member", "mkt-member-user");
    let (_, late) = s.tenant("mkt-late", "mkt-late-user");

    let data = disk_bytes(200_000, 3);
    let file = s.path("app.raw");
    std::fs::write(&file, &data).unwrap();
    let image = s.json(&publisher, &["image", "create", "--file", file.to_str().unwrap(), "app"]);
    let image_id = str_of(&image, "id");

    let publish = ["market", "publish", &image_id, "--product-code", "app-1", "--product-version", "1.0"];
    let listing = s.json(&publisher, &[&publish[..], &["--description", "An app server"]].concat());
    let listing_id = str_of(&listing, "id");
    assert_eq!((str_of(&listing, "publisher"), listing["offshelved"].as_bool()), (publisher_project, Some(false)));
    let err = s.ims(Some(&publisher), &publish).fails();
    assert!(err.contains("already listed"), "{err}");

    // Browse (JSON and table), subscribe, then the image is listed and downloadable.
    assert_eq!(ids(&s.json(&member, &["market", "list"]), "id"), [listing_id.clone()]);
    let table = s.ims(Some(&member), &["market", "list"]).ok().stdout();
    assert!(table.contains("app-1") && table.contains("| Product Code"), "{table}");
    assert!(s.ims(Some(&member), &["image", "show", &image_id]).fails().contains("404"));
    let subscription = s.json(&member, &["market", "subscribe", &listing_id]);
    assert_eq!(ids(&subscription, "project_id"), [member_project.clone()]);
    assert_eq!(ids(&s.json(&member, &["image", "list"]), "id"), [image_id.clone()]);
    let out = s.path("copy.raw");
    s.ims(Some(&member), &["image", "download", &image_id, "--file", out.to_str().unwrap()]).ok();
    assert_eq!(md5_hex(&std::fs::read(&out).unwrap()), md5_hex(&data));
    assert_eq!(
        ids(&s.json(&publisher, &["market", "subscribers", &listing_id]), "project_id"),
        [member_project.clone()]
    );

    // Off shelf: gone from browsing and closed to newcomers; the subscriber keeps the image.
    assert!(s.ims(Some(&member), &["market", "offshelf", &listing_id]).fails().contains("403"));
    assert_eq!(s.json(&publisher, &["market", "offshelf", &listing_id])["offshelved"], true);
    assert!(s.json(&late, &["market", "list"]).as_array().unwrap().is_empty());
    s.ims(Some(&late), &["market", "subscribe", &listing_id]).fails();
    assert_eq!(ids(&s.json(&member, &["market", "list", "--scope", "subscribed"]), "id"), [listing_id.clone()]);
    assert_eq!(str_of(&s.json(&member, &["image", "show", &image_id]), "id"), image_id);
    assert_eq!(s.json(&publisher, &["market", "onshelf", &listing_id])["offshelved"], false);

    // Delisting a listing in use needs an admin's --force; unsubscribing first frees it.
    let err = s.ims(Some(&publisher), &["market", "delist", &listing_id]).fails();
    assert!(err.contains("subscriber"), "{err}");
    assert!(s.ims(Some(&publisher), &["market", "delist", "--force", &listing_id]).fails().contains("403"));
    s.ims(Some(&member), &["market", "unsubscribe", &listing_id]).ok();
    assert!(s.ims(Some(&member), &["image", "show", &image_id]).fails().contains("404"));
    s.json(&member, &["market", "subscribe", &listing_id]);
    s.admin(&["market", "delist", "--force", &listing_id]).ok();
    assert!(s.ims(Some(&member), &["market", "show", &listing_id]).fails().contains("404"));
    assert!(s.ims(Some(&member), &["image", "show", &image_id]).fails().contains("404"));
}
