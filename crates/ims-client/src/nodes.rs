//! Nodes (`/admin/v1/nodes`): the `ims serve` processes sharing a catalog, and their drain. Admin.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, Result};

/// A node as `/admin/v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// New at every start; the node's job workers are named `<id>/<n>`.
    pub id: String,
    /// Where the node's API listens: `ip:port`, or `hostname:port` when it listens on every address.
    pub address: String,
    /// `active`, `draining` or `drained`.
    pub state: String,
    pub started_at: String,
    /// The node's last sign of life.
    pub heartbeat_at: String,
}

#[derive(Deserialize)]
struct Nodes {
    nodes: Vec<NodeInfo>,
}

#[derive(Deserialize)]
struct OneNode {
    node: NodeInfo,
}

impl Client {
    /// `GET /admin/v1/nodes`: every registered node, oldest start first.
    pub async fn list_nodes(&self) -> Result<Vec<NodeInfo>> {
        let url = self.url(&["admin", "v1", "nodes"]);
        Ok(self.execute_json::<Nodes>(self.request(Method::GET, url)).await?.nodes)
    }

    /// `POST /admin/v1/nodes/{id}/drain`: the node claims no new job and hands its running jobs back; it
    /// shows `drained` once it runs none. Idempotent; 404 for an unknown node.
    pub async fn drain_node(&self, id: &str) -> Result<NodeInfo> {
        let url = self.url(&["admin", "v1", "nodes", id, "drain"]);
        Ok(self.execute_json::<OneNode>(self.request(Method::POST, url)).await?.node)
    }
}
