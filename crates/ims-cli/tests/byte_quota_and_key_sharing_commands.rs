//! `ims admin quota set --image-bytes`, `ims quota show` with the byte quota, `ims admin kms create-key
//! --shareable` / `update-key`, and `ims image member add` refused for an image whose key is not shareable.

mod common;

use common::{disk_bytes, str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

const MIB: usize = 1 << 20;

fn create_with_file(s: &Server, token: &str, name: &str, file: &std::path::Path, extra: &[&str]) -> Result<Value, String> {
    let mut args = vec!["image", "create", "--disk-format", "raw", "--container-format", "bare", "--file"];
    args.push(file.to_str().unwrap());
    args.extend_from_slice(extra);
    args.push(name);
    let mut json = args.clone();
    json.extend(["--output", "json"]);
    let run = s.ims(Some(token), &json);
    if run.code() == Some(0) {
        Ok(run.json())
    } else {
        Err(run.stderr())
    }
}

#[test]
fn the_byte_quota_is_set_shown_and_enforced() {
    let s = Server::start();
    let (project, token) = s.tenant("bytes-cli", "bytes-cli-user");
    let shown = s.json(ADMIN_TOKEN, &["admin", "quota", "show", &project]);
    assert_eq!((shown["image_bytes"]["limit"].clone(), shown["image_bytes"]["default"].clone()), (Value::Null, Value::Bool(true)));
    let table = s.admin(&["admin", "quota", "show", &project]).ok().stdout();
    assert!(table.contains("0 of no limit used (default)"), "{table}");

    let limit = (3 * MIB).to_string();
    let set = s.json(ADMIN_TOKEN, &["admin", "quota", "set", &project, "--image-bytes", &limit]);
    assert_eq!(set["image_bytes"]["limit"].as_u64(), Some(3 * MIB as u64));
    assert_eq!(set["private_images"]["limit"].as_u64(), Some(50), "the other quotas stay");
    let refused = s.admin(&["admin", "quota", "set", &project, "--image-bytes", "lots"]);
    assert_eq!(refused.code(), Some(2), "a usage error");
    assert!(refused.stderr().contains("\"lots\" is not a number of bytes"), "{}", refused.stderr());

    let disk = s.path("two.raw");
    std::fs::write(&disk, disk_bytes(2 * MIB, 5)).unwrap();
    let first = create_with_file(&s, &token, "first", &disk, &[]).unwrap();
    assert_eq!(first["status"], "active");
    let err = create_with_file(&s, &token, "second", &disk, &[]).unwrap_err();
    assert!(err.contains("413") && err.contains("quota"), "{err}");

    let own = s.json(&token, &["quota", "show"]);
    let bytes = own.as_array().unwrap().iter().find(|q| q["type"] == "image_bytes").expect("an image_bytes entry").clone();
    assert_eq!((bytes["used"].as_u64(), bytes["quota"].as_i64()), (Some(2 * MIB as u64), Some(3 * MIB as i64)));
    let table = s.ims(Some(&token), &["quota", "show"]).ok().stdout();
    assert!(table.contains("image_bytes") && table.contains(&limit), "{table}");

    s.json(ADMIN_TOKEN, &["admin", "quota", "set", &project, "--image-bytes", "none"]);
    let table = s.ims(Some(&token), &["quota", "show"]).ok().stdout();
    assert!(table.contains("no limit"), "{table}");
    let reset = s.json(ADMIN_TOKEN, &["admin", "quota", "reset", &project]);
    assert_eq!(reset["image_bytes"]["default"], true);
}

#[test]
fn images_share_only_under_a_shareable_key() {
    let s = Server::start();
    let (_, owner) = s.tenant("key-owner", "key-owner-user");
    let (guest_project, guest) = s.tenant("key-guest", "key-guest-user");
    let key = s.json(ADMIN_TOKEN, &["admin", "kms", "create-key", "team"]);
    assert_eq!(key["shareable"], false);
    let id_key = str_of(&key, "id");
    let open = s.json(ADMIN_TOKEN, &["admin", "kms", "create-key", "--shareable", "open"]);
    assert_eq!(open["shareable"], true);
    let table = s.admin(&["admin", "kms", "list-keys"]).ok().stdout();
    assert!(table.contains("Shareable") && table.contains("true") && table.contains("false"), "{table}");

    let data = disk_bytes(MIB + 3, 6);
    let disk = s.path("enc.raw");
    std::fs::write(&disk, &data).unwrap();
    let property = format!("__system__cmkid={id_key}");
    let image = create_with_file(&s, &owner, "enc", &disk, &["--visibility", "shared", "--property", &property]).unwrap();
    let id = str_of(&image, "id");

    let err = s.ims(Some(&owner), &["image", "member", "add", &id, &guest_project]).fails();
    assert!(err.contains("403") && err.contains("not shareable"), "{err}");

    let updated = s.json(ADMIN_TOKEN, &["admin", "kms", "update-key", &id_key, "--shareable", "true"]);
    assert_eq!(updated["shareable"], true);
    let member = s.json(&owner, &["image", "member", "add", &id, &guest_project]);
    assert_eq!(member["status"], "pending");
    s.json(&guest, &["image", "member", "accept", &id]);
    let out = s.path("out.raw");
    s.ims(Some(&guest), &["image", "download", "--file", out.to_str().unwrap(), &id]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), data, "the member reads the owner's encrypted data");
}
