//! `ims admin node list|drain` against a real `ims serve`: the node lists itself, drains (an idle node is
//! drained within a heartbeat, which `--wait` waits for), and unknown nodes or non-admins are refused.

mod common;

use common::{str_of, Server, ADMIN_TOKEN};

#[test]
fn node_list_and_drain() {
    let s = Server::start();
    let listed = s.json(ADMIN_TOKEN, &["admin", "node", "list"]);
    let nodes = listed.as_array().expect("a JSON list");
    assert_eq!(nodes.len(), 1, "{listed:#}");
    let id = str_of(&nodes[0], "id");
    assert_eq!(nodes[0]["state"], "active");
    assert_eq!(format!("http://{}", str_of(&nodes[0], "address")), s.url);
    let table = s.admin(&["admin", "node", "list"]).ok().stdout();
    assert!(table.contains(&id) && table.contains("active"), "{table}");

    let (_, member) = s.tenant("nosy", "nosy-user");
    let refused = s.ims(Some(&member), &["admin", "node", "drain", &id]).fails();
    assert!(refused.contains("403") || refused.to_lowercase().contains("admin"), "{refused}");
    let unknown = s.admin(&["admin", "node", "drain", "no-such-node"]).fails();
    assert!(unknown.contains("404") || unknown.contains("not found"), "{unknown}");
    assert_eq!(s.json(ADMIN_TOKEN, &["admin", "node", "list"])[0]["state"], "active", "refusals change nothing");

    // The node runs no job: drained at its next heartbeat (every 5 s at most with the default settings).
    let drained = s.json(ADMIN_TOKEN, &["admin", "node", "drain", &id, "--wait", "30"]);
    assert_eq!((drained["id"].as_str(), drained["state"].as_str()), (Some(id.as_str()), Some("drained")), "{drained:#}");
    let table = s.admin(&["admin", "node", "drain", &id]).ok().stdout();
    assert!(table.contains("drained"), "draining again changes nothing: {table}");
}
