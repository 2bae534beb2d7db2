//! The nodes of a deployment as operators see them: list them, drain one before stopping it.
//!
//! Each node's job runner registers the node in the catalog and follows its state (see
//! [`crate::jobs::JobRunner`]); draining is a change of that state, so any node can drain any other.

use ims_catalog::{Catalog, Node};

use crate::{ImageService, Policy, RequestContext, Result};

/// Node administration (admins only).
#[derive(Clone)]
pub struct NodeService {
    catalog: Catalog,
}

impl NodeService {
    pub fn new(images: &ImageService) -> NodeService {
        NodeService { catalog: images.catalog.clone() }
    }

    /// Every registered node, oldest start first. Nodes that stopped cleanly are gone; a node that died
    /// stays (with its last heartbeat) until it has been silent for an hour.
    pub async fn list(&self, ctx: &RequestContext) -> Result<Vec<Node>> {
        Policy::check_admin(ctx)?;
        Ok(self.catalog.nodes.list().await?)
    }

    /// Drains node `id`: within one heartbeat it claims no new job and hands its running jobs back to the
    /// queue for the other nodes; it reports `drained` once it runs none. Idempotent (a draining or
    /// drained node is returned as it is); `NotFound` if no such node is registered. Audited.
    pub async fn drain(&self, ctx: &RequestContext, id: &str) -> Result<Node> {
        Policy::check_admin(ctx)?;
        let node = self.catalog.nodes.drain(id).await?;
        let event = ctx.event("node.drain", format!("node:{id}"));
        if let Err(e) = self.catalog.audit.record(&event).await {
            tracing::error!(node = %id, error = %e, "cannot record the drain in the audit trail");
        }
        Ok(node)
    }
}
