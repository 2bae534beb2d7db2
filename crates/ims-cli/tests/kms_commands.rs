//! `ims admin kms ...` against a real `ims serve`: master keys created, listed, disabled and enabled, and
//! what disabling does to an image encrypted under the key.

mod common;

use common::{disk_bytes, md5_hex, str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

#[test]
fn admin_kms_commands_manage_keys() {
    let s = Server::start();
    let key = s.json(ADMIN_TOKEN, &["admin", "kms", "create-key", "--description", "disk keys", "disks"]);
    assert_eq!((key["alias"].as_str(), key["state"].as_str()), (Some("disks"), Some("enabled")));
    assert_eq!(key["description"], "disk keys");
    let id = str_of(&key, "id");
    let other = str_of(&s.json(ADMIN_TOKEN, &["admin", "kms", "create-key", "backups"]), "id");

    let listed = s.json(ADMIN_TOKEN, &["admin", "kms", "list-keys"]);
    let ids: Vec<String> = listed.as_array().unwrap().iter().map(|k| str_of(k, "id")).collect();
    assert_eq!(ids, vec![id.clone(), other.clone()]);
    let table = s.admin(&["admin", "kms", "list-keys"]).ok().stdout();
    assert!(table.contains("| ID ") && table.contains(" disks ") && table.contains(&id), "{table}");

    let disabled = s.json(ADMIN_TOKEN, &["admin", "kms", "disable-key", &id, &other]);
    let states: Vec<&str> = disabled.as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["disabled", "disabled"]);
    let shown = s.json(ADMIN_TOKEN, &["admin", "kms", "show-key", &id]);
    assert_eq!(shown["state"], "disabled");
    let enabled = s.json(ADMIN_TOKEN, &["admin", "kms", "enable-key", &other]);
    assert_eq!(enabled[0]["state"], "enabled");
    assert_eq!(s.json(ADMIN_TOKEN, &["admin", "kms", "show-key", &other])["state"], "enabled");

    let err = s.admin(&["admin", "kms", "create-key", "disks"]).fails();
    assert!(err.contains("409") && err.contains("disks"), "{err}");
    let err = s.admin(&["admin", "kms", "disable-key", "no-such-key"]).fails();
    assert!(err.contains("404"), "{err}");
    let (_, member_token) = s.tenant("kms-team", "kms-user");
    let err = s.ims(Some(&member_token), &["admin", "kms", "list-keys", "--output", "json"]).fails();
    assert!(err.contains("403"), "{err}");
}

#[test]
fn a_disabled_key_blocks_downloads_of_its_images_until_enabled() {
    let s = Server::start();
    let key = str_of(&s.json(ADMIN_TOKEN, &["admin", "kms", "create-key", "images"]), "id");
    let data = disk_bytes(3 << 20, 4);
    let disk = s.path("disk.raw");
    std::fs::write(&disk, &data).unwrap();
    let property = format!("__system__cmkid={key}");
    let image = s.json(
        ADMIN_TOKEN,
        &["image", "create", "--disk-format", "raw", "--container-format", "bare", "--property", &property, "--file", disk.to_str().unwrap(), "enc"],
    );
    let id = str_of(&image, "id");
    let image: Value = s.json(ADMIN_TOKEN, &["image", "show", &id]);
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], md5_hex(&data).as_str());

    let out = s.path("out.raw");
    s.json(ADMIN_TOKEN, &["admin", "kms", "disable-key", &key]);
    let err = s.admin(&["image", "download", "--file", out.to_str().unwrap(), &id]).fails();
    assert!(err.contains("403") && err.contains("disabled"), "{err}");
    s.json(ADMIN_TOKEN, &["admin", "kms", "enable-key", &key]);
    s.admin(&["image", "download", "--file", out.to_str().unwrap(), &id]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}
