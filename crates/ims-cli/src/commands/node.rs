//! `ims admin node list|drain`: the nodes sharing the catalog, and draining one before it is stopped.

use std::time::{Duration, Instant};

use clap::Subcommand;
use ims_client::NodeInfo;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the nodes: id, address, state (active, draining, drained), start and last heartbeat.
    List,
    /// Drain a node: it claims no new job and hands its running jobs to the other nodes.
    Drain {
        /// The node's id (from `ims admin node list`).
        node: String,
        /// Wait until the node reports drained, at most this many seconds (0: do not wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
}

pub async fn run(ctx: &Ctx, command: NodeCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        NodeCommand::List => ctx.print(&list(&c.list_nodes().await?, ctx.output)),
        NodeCommand::Drain { node, wait } => {
            let mut shown = c.drain_node(&node).await?;
            let deadline = Instant::now() + Duration::from_secs(wait);
            while wait > 0 && shown.state != "drained" {
                if Instant::now() >= deadline {
                    anyhow::bail!("node {node} is still {} after {wait} s", shown.state);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                shown = c.list_nodes().await?.into_iter().find(|n| n.id == node).ok_or_else(|| {
                    anyhow::anyhow!("node {node} left the node list while draining (it stopped)")
                })?;
            }
            ctx.print(&one(&shown, ctx.output))
        }
    }
}

fn list(nodes: &[NodeInfo], format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return output::json(nodes);
    }
    let mut t = Table::new(["ID", "Address", "State", "Started", "Heartbeat"]);
    for n in nodes {
        t.row([n.id.clone(), n.address.clone(), n.state.clone(), n.started_at.clone(), n.heartbeat_at.clone()]);
    }
    t.render()
}

fn one(n: &NodeInfo, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return output::json(n);
    }
    output::fields([
        ("id", n.id.clone()),
        ("address", n.address.clone()),
        ("state", n.state.clone()),
        ("started_at", n.started_at.clone()),
        ("heartbeat_at", n.heartbeat_at.clone()),
    ])
}
