//! `ims audit list|export` and `ims admin audit verify` against a real `ims serve`, as an admin, an image
//! owner and a member of another project.

mod common;

use common::{str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

#[test]
fn audit_commands_show_each_project_its_events_and_verify_the_chain() {
    let s = Server::start();
    let (owner_project, owner) = s.tenant("audit-owner", "audit-owner-user");
    let (member_project, member) = s.tenant("audit-member", "audit-member-user");
    let image = s.json(&owner, &["image", "create", "--disk-format", "raw", "--container-format", "bare", "audited"]);
    let id = str_of(&image, "id");
    let err = s.ims(Some(&member), &["image", "delete", &id]).fails();
    assert!(err.contains("404") || err.contains("403"), "{err}");

    // The owner sees its own events, newest first.
    let events = s.json(&owner, &["audit", "list"]);
    let events = events.as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["project_id"] == owner_project.as_str()), "{events:?}");
    let positions: Vec<u64> = events.iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "newest first: {positions:?}");
    assert!(events.iter().any(|e| e["action"] == "image.create" && e["resource"] == format!("image:{id}").as_str()));
    let table = s.ims(Some(&owner), &["audit", "list"]).ok().stdout();
    assert!(table.contains("| Position ") && table.contains("image.create"), "{table}");

    // The member project sees its refused delete, with the error, and not the owner's events.
    let failures = s.json(&member, &["audit", "list", "--result", "failure"]);
    let failures = failures.as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["action"], "http.delete");
    assert_eq!(failures[0]["project_id"], member_project.as_str());
    assert!(failures[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    let err = s.ims(Some(&member), &["audit", "list", "--project", &owner_project]).fails();
    assert!(err.contains("403"), "{err}");

    // The admin exports everything as JSON lines, oldest first, and filters by project and action.
    let export = s.admin(&["audit", "export"]).ok().stdout();
    let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let positions: Vec<u64> = lines.iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, (1..=lines.len() as u64).collect::<Vec<_>>());
    assert!(lines.iter().any(|e| e["project_id"] == member_project.as_str()));
    let created = s.json(ADMIN_TOKEN, &["audit", "list", "--project", &owner_project, "--action", "image.*"]);
    assert_eq!(created.as_array().unwrap().len(), 1, "{created}");
    let limited = s.json(ADMIN_TOKEN, &["audit", "list", "--limit", "2"]);
    assert_eq!(limited.as_array().unwrap().len(), 2);
    let err = s.admin(&["audit", "list", "--since", "yesterday"]).fails();
    assert!(err.contains("400") && err.contains("since"), "{err}");

    // Verification: admins only; a modified row fails it.
    let verified = s.json(ADMIN_TOKEN, &["admin", "audit", "verify"]);
    assert_eq!(verified["intact"], true);
    assert_eq!(verified["events"].as_u64(), Some(lines.len() as u64), "reads add no events");
    let err = s.ims(Some(&owner), &["admin", "audit", "verify"]).fails();
    assert!(err.contains("403"), "{err}");
    let db = s.dir.path().join("data").join("ims.db");
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE audit_events SET action = 'image.update' WHERE chain_position = 3;")
        .status()
        .expect("run sqlite3");
    assert!(status.success());
    let run = s.admin(&["admin", "audit", "verify"]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stdout().contains("BROKEN") && run.stderr().contains("broken at event 3"), "{}", run.stderr());
}
