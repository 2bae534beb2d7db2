//! The nodes of a deployment: every `ims serve` sharing this catalog registers, heartbeats, and can be
//! drained so that its jobs move to the other nodes.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{CatalogError, Result};

/// Where a node is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Claims and runs jobs.
    Active,
    /// Claims no new jobs and hands its running jobs back to the queue.
    Draining,
    /// Drained and running no job: it can be stopped without interrupting any work.
    Drained,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Drained => "drained",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeState {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<NodeState> {
        match s {
            "active" => Ok(NodeState::Active),
            "draining" => Ok(NodeState::Draining),
            "drained" => Ok(NodeState::Drained),
            other => Err(CatalogError::Invalid(format!("unknown node state {other:?}"))),
        }
    }
}

/// One registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's id, new at every start; its job workers are named `<id>/<n>`.
    pub id: String,
    /// Where the node's API listens (`host:port`), as the node reported it.
    pub address: String,
    pub started_at: DateTime<Utc>,
    /// The node's last sign of life.
    pub heartbeat_at: DateTime<Utc>,
    pub state: NodeState,
}

/// The nodes sharing this catalog.
#[async_trait]
pub trait NodeRepository: Send + Sync {
    /// Stores `node` (whatever its `state` says). `Conflict` (and nothing changes) if a node with its id is
    /// already registered.
    async fn register(&self, node: &Node) -> Result<()>;

    /// Records a sign of life of node `id` at `now` and returns its state afterwards. When the node is
    /// draining and reports `idle` (it runs no job), it becomes drained in the same statement. `NotFound`
    /// (and nothing changes) if no such node is registered.
    async fn heartbeat(&self, id: &str, now: DateTime<Utc>, idle: bool) -> Result<NodeState>;

    /// The node `id`; `NotFound` if no such node is registered.
    async fn get(&self, id: &str) -> Result<Node>;

    /// Every registered node, oldest start first (ties by id).
    async fn list(&self) -> Result<Vec<Node>>;

    /// Asks node `id` to drain: an active node becomes draining; a draining or drained node is left as it
    /// is (idempotent). Returns the node afterwards; `NotFound` if no such node is registered.
    async fn drain(&self, id: &str) -> Result<Node>;

    /// Removes node `id` (a node stopping cleanly). Idempotent: removing a missing node is no error.
    async fn deregister(&self, id: &str) -> Result<()>;

    /// Removes every node whose last heartbeat is older than `before` (nodes that died long ago) and returns
    /// their ids. Idempotent.
    async fn forget_silent(&self, before: DateTime<Utc>) -> Result<Vec<String>>;
}
