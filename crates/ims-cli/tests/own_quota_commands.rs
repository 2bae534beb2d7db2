//! `ims quota show`: a project's own quotas, as set by `ims admin quota set`.

mod common;

use common::{Server, ADMIN_TOKEN};

#[test]
fn a_project_sees_its_own_quota_and_usage() {
    let s = Server::start();
    let (project, token) = s.tenant("quota-own", "quota-own-user");
    let (_, other) = s.tenant("quota-other", "quota-other-user");
    s.json(ADMIN_TOKEN, &["admin", "quota", "set", &project, "--private-images", "2"]);
    s.json(&token, &["image", "create", "--disk-format", "raw", "--container-format", "bare", "one"]);

    let shown = s.json(&token, &["quota", "show"]);
    let image = &shown.as_array().expect("a JSON array")[0];
    assert_eq!((image["type"].as_str(), image["used"].as_u64(), image["quota"].as_u64()), (Some("image"), Some(1), Some(2)));
    let table = s.ims(Some(&token), &["quota", "show"]).ok().stdout();
    assert!(table.contains("private_images") && table.contains("| 1 ") && table.contains("| 2 "), "{table}");

    let others = s.json(&other, &["quota", "show"]);
    assert_eq!((others[0]["used"].as_u64(), others[0]["quota"].as_u64()), (Some(0), Some(50)));

    s.json(&token, &["image", "create", "--disk-format", "raw", "--container-format", "bare", "two"]);
    let err = s.ims(Some(&token), &["image", "create", "--disk-format", "raw", "--container-format", "bare", "three"]).fails();
    assert!(err.contains("413"), "{err}");
    assert_eq!(s.json(&token, &["quota", "show"])[0]["used"].as_u64(), Some(2));
    let err = s.ims(None, &["quota", "show"]).fails();
    assert!(err.contains("token"), "{err}");
}
