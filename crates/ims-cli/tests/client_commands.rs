//! The `ims` client commands against a real `ims serve`: admin (projects, users, tokens, whoami)
//! and images (create, list, show, update, delete, upload, download, tags, members,
//! deactivation), asserting on the `--output json` records and on error messages.

mod common;

use common::{disk_bytes, md5_hex, run_ims, str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

const MIB: usize = 1 << 20;

/// The `name`s of a JSON array of records, in order.
#[track_caller]
fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap_or_else(|| panic!("not an array: {list:#}")).iter().map(|r| str_of(r, "name")).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn admin_projects_users_and_tokens() {
    let s = Server::start();

    // Projects.
    let project = s.json(ADMIN_TOKEN, &["admin", "project", "create", "team"]);
    assert_eq!(project["name"], "team");
    let project_id = str_of(&project, "id");
    assert!(!project_id.is_empty());

    let projects = s.json(ADMIN_TOKEN, &["admin", "project", "list"]);
    let team: Vec<&Value> = projects.as_array().unwrap().iter().filter(|p| p["name"] == "team").collect();
    assert_eq!(team.len(), 1, "{projects:#}");
    assert_eq!(team[0]["id"], project_id.as_str());
    assert!(names(&projects).contains(&"admin".to_string()), "the bootstrap admin project is listed: {projects:#}");
    let table = s.admin(&["admin", "project", "list"]).ok().stdout();
    assert!(table.contains("| ID ") && table.contains(" team ") && table.contains(&project_id), "{table}");

    for key in [project_id.as_str(), "team"] {
        let shown = s.json(ADMIN_TOKEN, &["admin", "project", "show", key]);
        assert_eq!((shown["id"].as_str(), shown["name"].as_str()), (Some(project_id.as_str()), Some("team")));
    }
    let err = s.admin(&["admin", "project", "create", "team"]).fails();
    assert!(err.contains("team"), "a duplicate project names it: {err}");

    // Users: the first token is printed once, and works.
    let user = s.json(ADMIN_TOKEN, &["admin", "user", "create", "--project", "team", "--role", "member", "alice"]);
    assert_eq!(user["name"], "alice");
    assert_eq!(user["project_id"], project_id.as_str());
    assert_eq!(user["role"], "member");
    let user_id = str_of(&user, "id");
    let alice_token = str_of(&user, "token");
    assert!(!alice_token.is_empty() && alice_token != ADMIN_TOKEN);

    let me = s.json(&alice_token, &["whoami"]);
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["user_name"], "alice");
    assert_eq!(me["project_id"], project_id.as_str());
    assert_eq!(me["project_name"], "team");
    assert_eq!(me["role"], "member");
    assert_eq!(me["is_admin"], false);
    let admin_me = s.json(ADMIN_TOKEN, &["whoami"]);
    assert_eq!(admin_me["is_admin"], true);
    assert_eq!(admin_me["project_name"], "admin");

    let users = s.json(ADMIN_TOKEN, &["admin", "user", "list"]);
    let alice: Vec<&Value> = users.as_array().unwrap().iter().filter(|u| u["name"] == "alice").collect();
    assert_eq!(alice.len(), 1, "{users:#}");
    assert_eq!(alice[0]["id"], user_id.as_str());
    assert!(users.to_string().contains(&project_id), "alice's role in team is listed: {users:#}");
    assert!(!users.to_string().contains(&alice_token), "user list must not leak token secrets");

    let err = s.admin(&["admin", "user", "create", "--project", "no-such-project", "--role", "member", "bob"]).fails();
    assert!(err.contains("no-such-project"), "{err}");
    let err = s.admin(&["admin", "user", "create", "--project", "team", "--role", "reader", "alice"]).fails();
    assert!(err.contains("alice") && err.contains("409"), "a duplicate user names it: {err}");
    let run = s.admin(&["admin", "user", "create", "--project", "team", "--role", "root", "bob"]);
    assert_eq!(run.code(), Some(2), "an unknown role is a usage error: {}", run.stderr());

    // Tokens: mint one, use it, revoke it.
    let token = s.json(ADMIN_TOKEN, &["admin", "token", "create", "--user", "alice", "--project", "team"]);
    let token_id = str_of(&token, "id");
    let secret = str_of(&token, "token");
    assert_eq!(token["user_id"], user_id.as_str());
    assert_eq!(token["project_id"], project_id.as_str());
    assert_ne!(secret, alice_token);
    let err = s.admin(&["admin", "token", "create", "--user", "alice", "--project", "admin"]).fails();
    assert!(err.contains("alice") && err.contains("admin"), "no role there: {err}");
    assert_eq!(s.json(&secret, &["whoami"])["user_name"], "alice");

    let revoke = s.admin(&["admin", "token", "revoke", &token_id]).ok();
    assert!(revoke.stdout().is_empty(), "revoke prints nothing: {}", revoke.stdout());
    let err = s.ims(Some(&secret), &["whoami", "--output", "json"]).fails();
    assert!(err.contains("401"), "a revoked token is unauthenticated: {err}");
    assert_eq!(s.json(&alice_token, &["whoami"])["user_name"], "alice", "other tokens keep working");
    s.admin(&["admin", "token", "revoke", "no-such-token"]).fails();

    // A non-admin cannot administer, and is told why.
    let err = s.ims(Some(&alice_token), &["admin", "project", "create", "sneaky"]).fails();
    assert!(err.to_lowercase().contains("admin") && err.contains("403"), "clear message: {err}");
    let err = s.ims(Some(&alice_token), &["admin", "user", "list"]).fails();
    assert!(err.to_lowercase().contains("admin"), "{err}");
    let err = s.ims(Some(&alice_token), &["admin", "token", "create", "--user", "alice", "--project", "admin"]).fails();
    assert!(err.contains("403"), "{err}");
    assert!(!names(&s.json(ADMIN_TOKEN, &["admin", "project", "list"])).contains(&"sneaky".to_string()));

    // Deleting projects.
    s.json(ADMIN_TOKEN, &["admin", "project", "create", "scratch"]);
    s.admin(&["admin", "project", "delete", "scratch"]).ok();
    let err = s.admin(&["admin", "project", "show", "scratch"]).fails();
    assert!(err.contains("scratch") && err.contains("404"), "{err}");
    let owned = s.json(&alice_token, &["image", "create", "keeps-team-alive"]);
    let err = s.admin(&["admin", "project", "delete", "team"]).fails();
    assert!(err.contains("cannot delete project team") && err.contains("409"), "a project with images stays: {err}");
    assert_eq!(s.json(ADMIN_TOKEN, &["admin", "project", "show", "team"])["id"], project_id.as_str());
    s.ims(Some(&alice_token), &["image", "delete", &str_of(&owned, "id")]).ok();
    let err = s.admin(&["admin", "project", "delete", "never-existed"]).fails();
    assert!(err.contains("cannot delete project never-existed"), "{err}");
    assert!(err.contains("1 of 1 project(s) not deleted"), "{err}");
}

#[test]
fn admin_quota_show_set_reset() {
    let s = Server::start();
    s.json(ADMIN_TOKEN, &["admin", "project", "create", "quota-team"]);
    let shown = s.json(ADMIN_TOKEN, &["admin", "quota", "show", "quota-team"]);
    assert_eq!(shown["private_images"]["limit"], 50, "{shown:#}");
    assert_eq!(shown["private_images"]["default"], true);

    let set = s.json(ADMIN_TOKEN, &["admin", "quota", "set", "quota-team", "--private-images", "7"]);
    assert_eq!((set["private_images"]["limit"].as_u64(), set["private_images"]["used"].as_u64()), (Some(7), Some(0)));
    let table = s.admin(&["admin", "quota", "show", "quota-team"]).ok().stdout();
    assert!(table.contains("0 of 7 used (project)"), "{table}");

    let reset = s.json(ADMIN_TOKEN, &["admin", "quota", "reset", "quota-team"]);
    assert_eq!(reset["private_images"]["limit"], 50);
    let err = s.admin(&["admin", "quota", "set", "quota-team", "--private-images", "20000"]).fails();
    assert!(err.contains("out of range"), "{err}");
    let err = s.admin(&["admin", "quota", "show", "no-such-project"]).fails();
    assert!(err.contains("no-such-project"), "{err}");
}

#[test]
fn image_data_round_trips_byte_for_byte() {
    let s = Server::start();
    let (project_id, token) = s.tenant("team", "alice");

    let data = disk_bytes(3 * MIB + 12_345, 1);
    let md5 = md5_hex(&data);
    let disk = s.path("disk.raw");
    std::fs::write(&disk, &data).unwrap();

    // create --file: created, uploaded, shown.
    let img = s.json(&token, &["image", "create", "web", "--file", disk.to_str().unwrap()]);
    let id = str_of(&img, "id");
    assert_eq!(img["name"], "web");
    assert_eq!(img["status"], "active");
    assert_eq!(img["size"], data.len() as u64);
    assert_eq!(img["checksum"], md5.as_str());
    assert_eq!(img["disk_format"], "raw");
    assert_eq!(img["container_format"], "bare");
    assert_eq!(img["owner"], project_id.as_str());
    assert_eq!(img["os_hash_algo"], "sha512");
    assert_eq!(img["os_hash_value"].as_str().map(str::len), Some(128), "{img:#}");

    let shown = s.json(&token, &["image", "show", &id]);
    assert_eq!(shown["checksum"], md5.as_str());
    assert_eq!(shown["status"], "active");
    let table = s.ims(Some(&token), &["image", "show", &id]).ok().stdout();
    assert!(table.contains("| checksum ") && table.contains(&md5), "{table}");

    // download -o FILE.
    let out = s.path("out.raw");
    let dl = s.json(&token, &["image", "download", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(dl["id"], id.as_str());
    assert_eq!(dl["size"], data.len() as u64);
    assert_eq!(dl["checksum"], md5.as_str());
    let got = std::fs::read(&out).unwrap();
    assert!(got == data, "downloaded file differs ({} bytes vs {})", got.len(), data.len());

    // download to stdout.
    let run = s.ims(Some(&token), &["image", "download", &id]).ok();
    assert!(run.output.stdout == data, "stdout differs ({} bytes vs {})", run.output.stdout.len(), data.len());

    // upload into a queued image.
    let queued = s.json(&token, &["image", "create", "later", "--disk-format", "raw", "--container-format", "bare"]);
    let queued_id = str_of(&queued, "id");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["size"], Value::Null);
    let err = s.ims(Some(&token), &["image", "download", &queued_id]).fails();
    assert!(err.contains(&queued_id), "download of an image without data names it: {err}");

    let other = disk_bytes(MIB + 7, 2);
    let other_path = s.path("other.raw");
    std::fs::write(&other_path, &other).unwrap();
    let uploaded = s.json(&token, &["image", "upload", &queued_id, other_path.to_str().unwrap()]);
    assert_eq!(uploaded["id"], queued_id.as_str());
    assert_eq!(uploaded["status"], "active");
    assert_eq!(uploaded["size"], other.len() as u64);
    assert_eq!(uploaded["checksum"], md5_hex(&other).as_str());
    let run = s.ims(Some(&token), &["image", "download", &queued_id]).ok();
    assert!(run.output.stdout == other, "uploaded data differs on download");

    // Uploading again to an active image is refused with the server's message. (A small file: with a
    // body of a MiB or more the server's early 409 races the client's write and the CLI sometimes
    // reports "Broken pipe" instead of the 409.)
    let small = s.path("small.raw");
    std::fs::write(&small, b"not again").unwrap();
    let err = s.ims(Some(&token), &["image", "upload", &queued_id, small.to_str().unwrap()]).fails();
    assert!(err.contains("409") && err.contains("active"), "{err}");
    assert_eq!(s.json(&token, &["image", "show", &queued_id])["checksum"], md5_hex(&other).as_str(), "data unchanged");

    // upload from stdin (`-`).
    let piped = s.json(&token, &["image", "create", "piped", "--disk-format", "raw", "--container-format", "bare"]);
    let piped_id = str_of(&piped, "id");
    let run = run_ims(
        Some(&s.url),
        Some(&token),
        &["image", "upload", &piped_id, "-", "--output", "json"],
        Some(&other_path),
    )
    .ok();
    let piped = run.json();
    assert_eq!(piped["status"], "active");
    assert_eq!(piped["checksum"], md5_hex(&other).as_str());
    assert_eq!(piped["size"], other.len() as u64);
}

#[test]
fn image_list_filters_sorts_and_limits() {
    let s = Server::start();
    let (_, token) = s.tenant("team", "alice");
    let (_, other_token) = s.tenant("elsewhere", "eve");

    let create = |args: &[&str]| str_of(&s.json(&token, &[&["image", "create"], args].concat()), "id");
    let alpha = create(&["alpha", "--property", "os_distro=ubuntu", "--tag", "blue"]);
    let beta = create(&["beta", "--property", "os_distro=debian", "--tag", "blue", "--tag", "green"]);
    let gamma = create(&["gamma", "--property", "os_distro=ubuntu", "--min-disk", "3"]);
    let _delta = create(&["delta"]);
    s.json(&other_token, &["image", "create", "not-mine"]);

    let list = |args: &[&str]| s.json(&token, &[&["image", "list"], args].concat());

    let all = list(&[]);
    assert_eq!(sorted(names(&all)), ["alpha", "beta", "delta", "gamma"], "only my images: {all:#}");
    let g = all.as_array().unwrap().iter().find(|i| i["id"] == gamma.as_str()).unwrap();
    assert_eq!(g["os_distro"], "ubuntu");
    assert_eq!(g["min_disk"], 3);

    let by_name = list(&["--name", "beta"]);
    assert_eq!(names(&by_name), ["beta"]);
    assert_eq!(by_name[0]["id"], beta.as_str());
    assert_eq!(
        sorted(by_name[0]["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()),
        ["blue", "green"]
    );
    assert_eq!(list(&["--name", "nothing-by-that-name"]), Value::Array(vec![]));

    assert_eq!(sorted(names(&list(&["--tag", "blue"]))), ["alpha", "beta"]);
    assert_eq!(names(&list(&["--tag", "blue", "--tag", "green"])), ["beta"]);
    assert_eq!(sorted(names(&list(&["--property", "os_distro=ubuntu"]))), ["alpha", "gamma"]);
    assert_eq!(names(&list(&["--property", "os_distro=ubuntu", "--tag", "blue"])), ["alpha"]);
    assert_eq!(list(&["--property", "os_distro=ubuntu", "--name", "beta"]), Value::Array(vec![]));

    assert_eq!(names(&list(&["--sort", "name:asc"])), ["alpha", "beta", "delta", "gamma"]);
    assert_eq!(names(&list(&["--sort", "name:desc"])), ["gamma", "delta", "beta", "alpha"]);
    assert_eq!(names(&list(&["--sort", "name:asc", "--limit", "2"])), ["alpha", "beta"]);
    assert_eq!(names(&list(&["--sort", "name:desc", "--limit", "1"])), ["gamma"]);
    let first = list(&["--sort", "name:asc", "--limit", "1"]);
    assert_eq!(first[0]["id"], alpha.as_str());

    // Table output: one row per image.
    let table = s.ims(Some(&token), &["image", "list", "--sort", "name:asc"]).ok().stdout();
    for n in ["alpha", "beta", "gamma", "delta"] {
        assert!(table.contains(&format!(" {n} ")), "{table}");
    }
    assert!(!table.contains("not-mine"), "{table}");

    // Without --limit every page is followed (the server's default page is 25 images).
    for i in 0..24 {
        create(&[&format!("page-{i:02}")]);
    }
    let everything = list(&["--sort", "name:asc"]);
    assert_eq!(everything.as_array().unwrap().len(), 28, "all pages: {:?}", names(&everything));
    let ids: std::collections::BTreeSet<&str> =
        everything.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 28, "no image twice across pages");
    assert_eq!(list(&["--limit", "5"]).as_array().unwrap().len(), 5);

    // Bad sort keys are refused before any request.
    let run = s.ims(Some(&token), &["image", "list", "--sort", "colour:asc"]);
    assert_eq!(run.code(), Some(2), "clap usage error");
    assert!(run.stderr().contains("unknown sort key"), "{}", run.stderr());
}

#[test]
fn image_update_protection_delete_and_tags() {
    let s = Server::start();
    let (_, token) = s.tenant("team", "alice");
    let img = s.json(&token, &["image", "create", "old", "--property", "keep=1", "--property", "drop=2"]);
    let id = str_of(&img, "id");
    assert_eq!((img["keep"].as_str(), img["drop"].as_str()), (Some("1"), Some("2")));
    assert_eq!(img["protected"], false);

    let updated = s.json(
        &token,
        &[
            "image",
            "update",
            &id,
            "--name",
            "new",
            "--property",
            "keep=changed",
            "--property",
            "added=3",
            "--remove-property",
            "drop",
            "--protected",
            "true",
            "--min-ram",
            "512",
        ],
    );
    assert_eq!(updated["name"], "new");
    assert_eq!(updated["keep"], "changed");
    assert_eq!(updated["added"], "3");
    assert!(updated.get("drop").is_none(), "drop was removed: {updated:#}");
    assert_eq!(updated["protected"], true);
    assert_eq!(updated["min_ram"], 512);
    let shown = s.json(&token, &["image", "show", &id]);
    assert_eq!(
        (shown["name"].as_str(), shown["keep"].as_str(), shown["protected"].as_bool()),
        (Some("new"), Some("changed"), Some(true))
    );

    let err = s.ims(Some(&token), &["image", "update", &id, "--visibility", "public"]).fails();
    assert!(err.contains("public") && err.contains("403"), "members cannot publish: {err}");
    let err = s.ims(Some(&token), &["image", "update", &id]).fails();
    assert!(err.contains("nothing to update"), "{err}");
    let err = s.ims(Some(&token), &["image", "update", &id, "--remove-property", "never-set"]).fails();
    assert!(err.contains("never-set"), "removing a missing property names it: {err}");

    // Tags.
    s.ims(Some(&token), &["image", "tag", "add", &id, "t1"]).ok();
    s.ims(Some(&token), &["image", "tag", "add", &id, "t2"]).ok();
    s.ims(Some(&token), &["image", "tag", "add", &id, "t2"]).ok(); // idempotent, as in Glance
    let tags =
        |v: &Value| sorted(v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect());
    assert_eq!(tags(&s.json(&token, &["image", "show", &id])), ["t1", "t2"]);
    s.ims(Some(&token), &["image", "tag", "remove", &id, "t1"]).ok();
    assert_eq!(tags(&s.json(&token, &["image", "show", &id])), ["t2"]);
    let err = s.ims(Some(&token), &["image", "tag", "remove", &id, "t1"]).fails();
    assert!(err.contains("t1"), "{err}");
    assert_eq!(names(&s.json(&token, &["image", "list", "--tag", "t2"])), ["new"]);

    // Protected: delete fails and the image stays.
    let err = s.ims(Some(&token), &["image", "delete", &id]).fails();
    assert!(err.contains("protected"), "{err}");
    assert!(err.contains(&format!("cannot delete image {id}")), "{err}");
    assert_eq!(s.json(&token, &["image", "show", &id])["status"], "queued");

    // Unprotected: delete works; show then fails with exit 1, naming the id.
    assert_eq!(s.json(&token, &["image", "update", &id, "--protected", "false"])["protected"], false);
    let run = s.ims(Some(&token), &["image", "delete", &id]).ok();
    assert!(run.stdout().is_empty());
    let err = s.ims(Some(&token), &["image", "show", &id]).fails();
    assert!(err.contains(&id) && err.contains("404"), "{err}");
    assert_eq!(s.json(&token, &["image", "list"]), Value::Array(vec![]));

    // Deleting several: the good ones go, the bad one is reported, exit 1.
    let a = str_of(&s.json(&token, &["image", "create", "a"]), "id");
    let b = str_of(&s.json(&token, &["image", "create", "b"]), "id");
    let missing = "00000000-0000-4000-8000-000000000000";
    let err = s.ims(Some(&token), &["image", "delete", &a, missing, &b]).fails();
    assert!(err.contains(&format!("cannot delete image {missing}")), "{err}");
    assert!(err.contains("1 of 3 image(s) not deleted"), "{err}");
    assert_eq!(s.json(&token, &["image", "list"]), Value::Array(vec![]));
}

#[test]
fn image_sharing_and_deactivation() {
    let s = Server::start();
    let (owner_project, owner) = s.tenant("owner", "olive");
    let (guest_project, guest) = s.tenant("guest", "gus");

    let data = disk_bytes(MIB + 999, 3);
    let disk = s.path("shared.raw");
    std::fs::write(&disk, &data).unwrap();
    let img =
        s.json(&owner, &["image", "create", "shared-disk", "--visibility", "shared", "--file", disk.to_str().unwrap()]);
    let id = str_of(&img, "id");
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["status"], "active");

    // Not shared yet: the guest neither lists nor sees it.
    assert_eq!(s.json(&guest, &["image", "list"]), Value::Array(vec![]));
    let err = s.ims(Some(&guest), &["image", "show", &id]).fails();
    assert!(err.contains("404"), "{err}");

    // Share: pending until accepted.
    let m = s.json(&owner, &["image", "member", "add", &id, &guest_project]);
    assert_eq!(m["image_id"], id.as_str());
    assert_eq!(m["member_id"], guest_project.as_str());
    assert_eq!(m["status"], "pending");
    let err = s.ims(Some(&owner), &["image", "member", "add", &id, &guest_project]).fails();
    assert!(err.contains("409"), "a second add conflicts: {err}");
    assert_eq!(s.json(&guest, &["image", "list"]), Value::Array(vec![]), "pending shares are not in the default list");
    assert_eq!(s.json(&guest, &["image", "member", "show", &id])["status"], "pending");
    let err = s.ims(Some(&owner), &["image", "member", "accept", &id, &guest_project]).fails();
    assert!(err.contains("403"), "only the member answers: {err}");

    let accepted = s.json(&guest, &["image", "member", "accept", &id]);
    assert_eq!(accepted["member_id"], guest_project.as_str());
    assert_eq!(accepted["status"], "accepted");
    let seen = s.json(&guest, &["image", "list"]);
    assert_eq!(names(&seen), ["shared-disk"]);
    assert_eq!(seen[0]["id"], id.as_str());
    assert_eq!(seen[0]["owner"], owner_project.as_str());

    let members = s.json(&owner, &["image", "member", "list", &id]);
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["member_id"], guest_project.as_str());
    assert_eq!(members[0]["status"], "accepted");
    assert_eq!(s.json(&owner, &["image", "member", "show", &id, &guest_project])["status"], "accepted");

    let got = s.ims(Some(&guest), &["image", "download", &id]).ok().output.stdout;
    assert!(got == data, "the member downloads the owner's bytes");

    // The member may not change the image.
    let err = s.ims(Some(&guest), &["image", "update", &id, "--name", "mine-now"]).fails();
    assert!(err.contains("403"), "{err}");
    let err = s.ims(Some(&guest), &["image", "delete", &id]).fails();
    assert!(err.contains("403"), "{err}");

    // Deactivation is for the image's own project and admins (Glance's policy), not for members it is
    // shared with; a deactivated image's data is for admins only.
    let err = s.ims(Some(&guest), &["image", "deactivate", &id]).fails();
    assert!(err.contains("403"), "{err}");
    let run = s.ims(Some(&owner), &["image", "deactivate", &id]).ok();
    assert!(run.stdout().is_empty());
    assert_eq!(s.json(&owner, &["image", "show", &id])["status"], "deactivated");
    let err = s.ims(Some(&guest), &["image", "download", &id]).fails();
    assert!(err.contains("deactivated") && err.contains("403"), "{err}");
    let err = s.ims(Some(&owner), &["image", "download", &id, "-o", s.path("nope.raw").to_str().unwrap()]).fails();
    assert!(err.contains("deactivated"), "{err}");
    assert!(!s.path("nope.raw").exists(), "a failed download leaves no file");
    let admin_copy = s.admin(&["image", "download", &id]).ok().output.stdout;
    assert!(admin_copy == data, "admins still download deactivated images");

    s.admin(&["image", "reactivate", &id]).ok();
    assert_eq!(s.json(&guest, &["image", "show", &id])["status"], "active");
    let got = s.ims(Some(&guest), &["image", "download", &id]).ok().output.stdout;
    assert!(got == data);

    // Rejecting hides it from the default list again; removing the member hides it entirely.
    assert_eq!(s.json(&guest, &["image", "member", "reject", &id])["status"], "rejected");
    assert_eq!(s.json(&guest, &["image", "list"]), Value::Array(vec![]));
    s.ims(Some(&owner), &["image", "member", "remove", &id, &guest_project]).ok();
    assert_eq!(s.json(&owner, &["image", "member", "list", &id]), Value::Array(vec![]));
    let err = s.ims(Some(&guest), &["image", "show", &id]).fails();
    assert!(err.contains("404"), "{err}");

    // Only shared images have members.
    let private = str_of(&s.json(&owner, &["image", "create", "private-disk", "--visibility", "private"]), "id");
    let err = s.ims(Some(&owner), &["image", "member", "add", &private, &guest_project]).fails();
    assert!(err.contains("Only shared images have members"), "{err}");
}

#[test]
fn errors_are_reported_clearly() {
    let s = Server::start();
    let (_, token) = s.tenant("team", "alice");

    // No token: exit non-zero, with a hint on how to get one.
    for args in [&["image", "list"][..], &["whoami"], &["admin", "project", "list"]] {
        let run = s.ims(None, args);
        assert_ne!(run.code(), Some(0));
        let err = run.fails();
        assert!(err.contains("IMS_TOKEN") && err.contains("--token"), "hint: {err}");
    }
    // The token is also accepted as a flag.
    let me = run_ims(Some(&s.url), None, &["whoami", "--token", &token, "--output", "json"], None).ok().json();
    assert_eq!(me["user_name"], "alice");

    // A wrong token.
    let err = s.ims(Some("not-a-token"), &["image", "list"]).fails();
    assert!(err.contains("401"), "{err}");

    // Unknown image id: exit 1, `error:` naming it.
    let missing = "11111111-2222-4333-8444-555555555555";
    for args in [
        &["image", "show", missing][..],
        &["image", "download", missing],
        &["image", "update", missing, "--name", "x"],
        &["image", "tag", "add", missing, "t"],
        &["image", "member", "list", missing],
    ] {
        let err = s.ims(Some(&token), args).fails();
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(missing), "`ims {}` names the id: {err}", args.join(" "));
    }

    // Bad disk format: the server's message.
    let err = s.ims(Some(&token), &["image", "create", "x", "--disk-format", "floppy"]).fails();
    assert!(err.contains("Invalid disk format 'floppy'"), "{err}");
    assert!(err.contains("400"), "{err}");
    let q = str_of(&s.json(&token, &["image", "create", "q"]), "id");
    let err = s.ims(Some(&token), &["image", "update", &q, "--disk-format", "floppy"]).fails();
    assert!(err.contains("floppy"), "{err}");

    // A missing file: refused before any image is created.
    let err =
        s.ims(Some(&token), &["image", "create", "ghost", "--file", s.path("missing.raw").to_str().unwrap()]).fails();
    assert!(err.contains("cannot open") && err.contains("missing.raw"), "{err}");
    assert!(names(&s.json(&token, &["image", "list"])).iter().all(|n| n != "ghost"));

    // Bytes that are not the declared format are refused, and the image is not active.
    let raw = s.path("not-qcow2.raw");
    std::fs::write(&raw, disk_bytes(256 * 1024, 4)).unwrap();
    let run = s.ims(
        Some(&token),
        &["image", "create", "liar", "--disk-format", "qcow2", "--file", raw.to_str().unwrap(), "--output", "json"],
    );
    let err = run.fails();
    assert!(err.contains("was created but its upload failed"), "{err}");
    assert!(err.to_lowercase().contains("qcow2"), "the server says why: {err}");
    let liar = s.json(&token, &["image", "list", "--name", "liar"]);
    assert_eq!(liar.as_array().unwrap().len(), 1);
    assert_ne!(liar[0]["status"], "active", "{liar:#}");

    // Server unreachable.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let err = run_ims(Some(&dead), Some(&token), &["image", "list"], None).fails();
    assert!(err.contains("cannot talk to the server"), "{err}");
}
