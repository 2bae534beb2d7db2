//! `ims image delete [--force]`, `ims image restore`, `ims bin list|show|purge` and `ims image lineage`
//! against a real `ims serve` with its default settings (the recycle bin on, 7 days): an owner project
//! deletes and restores, a member project sees its share come back, the admin sees every bin.

mod common;

use common::{disk_bytes, md5_hex, str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|i| str_of(i, "id")).collect()
}

#[test]
fn delete_restore_and_purge_through_the_cli() {
    let s = Server::start();
    let (_, owner) = s.tenant("bin-owner", "bin-owner-user");
    let (member_project, member) = s.tenant("bin-member", "bin-member-user");
    let data = disk_bytes(2 << 20, 7);
    let file = s.path("disk.raw");
    std::fs::write(&file, &data).unwrap();
    let created = s.json(&owner, &[
        "image", "create", "kept", "--disk-format", "raw", "--container-format", "bare", "--visibility", "shared",
        "--file", file.to_str().unwrap(),
    ]);
    let id = str_of(&created, "id");
    assert_eq!(str_of(&created, "checksum"), md5_hex(&data));
    s.json(&owner, &["image", "member", "add", &id, &member_project]);
    s.json(&member, &["image", "member", "accept", &id]);

    s.ims(Some(&owner), &["image", "delete", &id]).ok();
    assert!(s.ims(Some(&owner), &["image", "show", &id]).fails().contains("404"));
    assert!(s.ims(Some(&member), &["image", "show", &id]).fails().contains("404"));
    let bin = s.json(&owner, &["bin", "list"]);
    assert_eq!(ids(&bin), std::slice::from_ref(&id));
    assert_eq!(bin[0]["status"], "active");
    assert!(bin[0]["purge_after"].as_str().unwrap() > bin[0]["binned_at"].as_str().unwrap(), "{bin}");
    let table = s.ims(Some(&owner), &["bin", "list"]).ok().stdout();
    assert!(table.contains("| ID ") && table.contains(&id) && table.contains("Purge After"), "{table}");
    assert!(ids(&s.json(&member, &["bin", "list"])).is_empty(), "another project's bin is its own");
    assert!(s.ims(Some(&member), &["image", "restore", &id]).fails().contains("404"));
    assert!(s.ims(Some(&owner), &["bin", "list", "--all-projects"]).fails().contains("403"));
    assert!(ids(&s.json(ADMIN_TOKEN, &["bin", "list", "--all-projects"])).contains(&id));
    assert_eq!(str_of(&s.json(&owner, &["bin", "show", &id]), "id"), id);

    // Restored: same id and checksum, the data downloads byte for byte, the member sees it again.
    let restored = s.json(&owner, &["image", "restore", &id]);
    assert_eq!((str_of(&restored, "id"), str_of(&restored, "checksum")), (id.clone(), md5_hex(&data)));
    let out = s.path("out.raw");
    s.ims(Some(&member), &["image", "download", &id, "-o", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(str_of(&s.json(&member, &["image", "show", &id]), "checksum"), md5_hex(&data));

    // Lineage of an uploaded image: one link, no parent.
    let lineage = s.json(&owner, &["image", "lineage", &id]);
    assert_eq!(lineage["ancestry"].as_array().unwrap().len(), 1, "{lineage}");
    assert_eq!(lineage["ancestry"][0]["source_type"], "upload");
    assert_eq!(lineage["complete"], true);
    let table = s.ims(Some(&owner), &["image", "lineage", &id]).ok().stdout();
    assert!(table.contains("Source Type") && table.contains("upload"), "{table}");

    // Purge: final. A forced delete never reaches the bin.
    s.ims(Some(&owner), &["image", "delete", &id]).ok();
    s.ims(Some(&owner), &["bin", "purge", &id]).ok();
    assert!(ids(&s.json(&owner, &["bin", "list"])).is_empty());
    assert!(s.ims(Some(&owner), &["image", "restore", &id]).fails().contains("404"));
    let other = str_of(&s.json(&owner, &["image", "create", "other"]), "id");
    s.ims(Some(&owner), &["image", "delete", "--force", &other]).ok();
    assert!(ids(&s.json(&owner, &["bin", "list"])).is_empty(), "forced: not binned");
    assert!(s.ims(Some(&owner), &["bin", "purge", &other]).fails().contains("404"));
}

#[test]
fn protected_images_cannot_be_deleted_into_the_bin() {
    let s = Server::start();
    let (_, owner) = s.tenant("guard-owner", "guard-owner-user");
    let id = str_of(&s.json(&owner, &["image", "create", "guarded", "--protected"]), "id");
    let err = s.ims(Some(&owner), &["image", "delete", &id]).fails();
    assert!(err.contains("403") && err.contains("protected"), "{err}");
    assert!(ids(&s.json(&owner, &["bin", "list"])).is_empty());
    s.json(&owner, &["image", "show", &id]);
}
