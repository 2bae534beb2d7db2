//! Deprecation from the CLI against a real `ims serve`: `--deprecate-at` on create and update, `image list
//! --deprecated`, and the end-of-life warnings of `image show` and `image download`, for an owner project, a
//! member project the image is shared with, and the admin.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::{disk_bytes, str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|i| str_of(i, "id")).collect()
}

fn time_from_now(delta: Duration) -> String {
    (Utc::now() + delta).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[test]
fn deprecated_images_warn_and_hide_from_default_lists() {
    let s = Server::start();
    let (_, owner) = s.tenant("dep-owner", "dep-owner-user");
    let (member_project, member) = s.tenant("dep-member", "dep-member-user");
    let data = disk_bytes(300_000, 3);
    let file = s.path("disk.raw");
    std::fs::write(&file, &data).unwrap();
    let past = time_from_now(-Duration::days(2));
    let file_arg = file.to_str().unwrap();
    let created = s.json(&owner, &["image", "create", "--file", file_arg, "--deprecate-at", &past, "old"]);
    let id = str_of(&created, "id");
    assert_eq!(str_of(&created, "deprecate_at"), past);
    let fresh = str_of(&s.json(&owner, &["image", "create", "fresh"]), "id");
    s.json(&owner, &["image", "member", "add", &id, &member_project]);
    s.json(&member, &["image", "member", "accept", &id]);

    // Lists: hidden by default for every project, shown with --deprecated.
    assert_eq!(ids(&s.json(&owner, &["image", "list"])), [fresh.clone()]);
    assert_eq!(ids(&s.json(&owner, &["image", "list", "--deprecated"])), [id.clone()]);
    assert!(ids(&s.json(&member, &["image", "list"])).is_empty());
    assert_eq!(ids(&s.json(&member, &["image", "list", "--deprecated"])), [id.clone()]);
    assert!(!ids(&s.json(ADMIN_TOKEN, &["image", "list"])).contains(&id));
    assert_eq!(ids(&s.json(ADMIN_TOKEN, &["image", "list", "--deprecated"])), [id.clone()]);

    // show and download still work, with a warning on stderr (stdout stays clean JSON / data).
    let show = s.ims(Some(&member), &["image", "show", &id, "--output", "json"]).ok();
    assert_eq!(str_of(&show.json(), "id"), id);
    assert!(show.stderr().contains(&format!("image {id} is deprecated since")), "{}", show.stderr());
    let table = s.ims(Some(&member), &["image", "show", &id]).ok().stdout();
    assert!(table.contains("deprecate_at") && table.contains(&past), "{table}");
    let out = s.path("copy.raw");
    let download = s.ims(Some(&member), &["image", "download", &id, "--file", out.to_str().unwrap()]).ok();
    assert!(download.stderr().contains("is deprecated since"), "{}", download.stderr());
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let to_stdout = s.ims(Some(&member), &["image", "download", &id]).ok();
    assert_eq!(to_stdout.output.stdout, data);

    // Within 30 days: an end-of-life notice; further out: nothing.
    let soon = time_from_now(Duration::days(10));
    s.json(&owner, &["image", "update", &id, "--deprecate-at", &soon]);
    let show = s.ims(Some(&member), &["image", "show", &id]).ok();
    assert!(show.stderr().contains("end of life on"), "{}", show.stderr());
    assert!(ids(&s.json(&member, &["image", "list"])).contains(&id));
    let later = time_from_now(Duration::days(90));
    s.json(&owner, &["image", "update", &id, "--deprecate-at", &later]);
    assert_eq!(s.ims(Some(&member), &["image", "show", &id]).ok().stderr(), "");

    // --undeprecate clears it; the member cannot change it.
    let cleared = s.json(&owner, &["image", "update", &id, "--undeprecate"]);
    assert!(cleared["deprecate_at"].is_null(), "{cleared}");
    let err = s.ims(Some(&member), &["image", "update", &id, "--deprecate-at", &past]).fails();
    assert!(err.contains("403"), "{err}");

    // A bad time is refused before anything is sent.
    let bad = s.ims(Some(&owner), &["image", "update", &id, "--deprecate-at", "tomorrow"]);
    assert_ne!(bad.code(), Some(0));
    assert!(bad.stderr().contains("RFC 3339"), "{}", bad.stderr());
    assert!(s.json(&owner, &["image", "show", &id])["deprecate_at"].is_null());
}
