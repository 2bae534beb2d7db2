//! Nodes: registered once, heartbeating, drained (active -> draining -> drained once idle), removed when they
//! stop or after a long silence.

use chrono::Duration;
use ims_catalog::{Node, NodeState};

use crate::support::*;
use crate::Backend;

fn node(id: &str, started: i64) -> Node {
    Node {
        id: id.into(),
        address: format!("10.0.0.{started}:9292"),
        // A sub-second part, to check that times round-trip exactly.
        started_at: t(started) + Duration::nanoseconds(123_456_789),
        heartbeat_at: t(started),
        state: NodeState::Active,
    }
}

pub async fn check_nodes_register_list_and_heartbeat(b: &Backend) {
    let nodes = &b.catalog.nodes;
    assert_eq!(nodes.list().await.unwrap(), vec![]);
    let (n1, n2) = (node("n1", 20), node("n2", 10));
    nodes.register(&n1).await.unwrap();
    nodes.register(&n2).await.unwrap();
    expect_conflict(nodes.register(&Node { address: "elsewhere:1".into(), ..n1.clone() }).await);
    assert_eq!(nodes.get("n1").await.unwrap(), n1, "a registered node round-trips");
    assert_eq!(nodes.list().await.unwrap(), vec![n2.clone(), n1.clone()], "oldest start first");
    expect_not_found(nodes.get("n3").await);

    assert_eq!(nodes.heartbeat("n1", t(30), true).await.unwrap(), NodeState::Active, "idle active nodes stay active");
    assert_eq!(nodes.get("n1").await.unwrap().heartbeat_at, t(30));
    expect_not_found(nodes.heartbeat("n3", t(30), true).await);
    assert_eq!(nodes.list().await.unwrap().len(), 2, "a heartbeat of an unknown node registers nothing");

    nodes.deregister("n2").await.unwrap();
    nodes.deregister("n2").await.unwrap();
    assert_eq!(nodes.list().await.unwrap(), vec![Node { heartbeat_at: t(30), ..n1 }]);
}

pub async fn check_nodes_drain_until_idle(b: &Backend) {
    let nodes = &b.catalog.nodes;
    nodes.register(&node("busy", 1)).await.unwrap();
    nodes.register(&node("other", 2)).await.unwrap();
    expect_not_found(nodes.drain("nobody").await);

    let drained = nodes.drain("busy").await.unwrap();
    assert_eq!((drained.id.as_str(), drained.state), ("busy", NodeState::Draining));
    assert_eq!(nodes.drain("busy").await.unwrap().state, NodeState::Draining, "draining again changes nothing");
    assert_eq!(nodes.get("other").await.unwrap().state, NodeState::Active, "only the named node drains");

    assert_eq!(nodes.heartbeat("busy", t(5), false).await.unwrap(), NodeState::Draining, "still running jobs");
    assert_eq!(nodes.heartbeat("busy", t(6), true).await.unwrap(), NodeState::Drained, "idle: drained");
    assert_eq!(nodes.heartbeat("busy", t(7), false).await.unwrap(), NodeState::Drained, "drained stays drained");
    assert_eq!(nodes.drain("busy").await.unwrap().state, NodeState::Drained, "draining a drained node changes nothing");
    assert_eq!(nodes.get("busy").await.unwrap().heartbeat_at, t(7));
}

pub async fn check_nodes_silent_ones_are_forgotten(b: &Backend) {
    let nodes = &b.catalog.nodes;
    nodes.register(&node("dead", 1)).await.unwrap();
    nodes.register(&node("alive", 2)).await.unwrap();
    nodes.heartbeat("alive", t(100), true).await.unwrap();

    assert_eq!(nodes.forget_silent(t(1)).await.unwrap(), Vec::<String>::new(), "a heartbeat at the bound stays");
    assert_eq!(nodes.forget_silent(t(50)).await.unwrap(), vec!["dead".to_string()]);
    assert_eq!(nodes.forget_silent(t(50)).await.unwrap(), Vec::<String>::new(), "idempotent");
    assert_eq!(nodes.list().await.unwrap().iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["alive"]);
}
