//! Uploads and stagings whose node died.
//!
//! An image is `saving` (`PUT /file`) or `uploading` without staged data (`PUT /stage`) only while one
//! request streams its data on one node; a failure returns it to `queued`. When the node dies mid-way
//! nothing would. So the node records itself on the image ([`TRANSFER_NODE`], in the same save that starts
//! the transfer; the save that ends it drops the record), and the job reaper of every node returns to
//! `queued`, without data, each image whose transfer node no longer heartbeats in the catalog's node list.
//! The staged or partial chunks are then unreferenced, and garbage collection reclaims them.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use ims_catalog::{AuditEvent, Catalog, CatalogError, ImageQuery, ImageStatus, Viewer};
use uuid::Uuid;

use crate::ImageService;

/// Image property naming the node (its id in the node list) streaming the image's data right now.
pub const TRANSFER_NODE: &str = "os_glance_transfer_node";

/// Transfers looked at per reaper round (the next round takes the rest).
const MAX_PER_ROUND: u32 = 1000;

/// The node id this process's image services record on transfers (shared by every clone); unset, no
/// transfer is recorded and none is recovered.
#[derive(Clone, Default)]
pub(crate) struct TransferNode(Arc<OnceLock<String>>);

impl ImageService {
    /// Names the node the service runs on: its id in the catalog's node list, which the node must keep
    /// heartbeating (the job runner does) for as long as its transfers run. Set once; later calls are
    /// ignored.
    pub fn set_transfer_node(&self, node_id: &str) {
        let _ = self.transfer_node.0.set(node_id.to_string());
    }

    /// Records this node on an image whose data starts streaming (before the save that starts it).
    pub(crate) fn mark_transfer(&self, image: &mut ims_catalog::Image) {
        if let Some(node) = self.transfer_node.0.get() {
            image.properties.insert(TRANSFER_NODE.to_string(), node.clone());
        }
    }
}

/// Returns to `queued`, without data, every `saving` image and every `uploading` image without staged data
/// whose recorded transfer node has not heartbeaten since `alive_after` (or is not listed) and which has not
/// changed since then either. Each change is one save (conditional on the status) with its audit event
/// `image.transfer.abandoned`. Returns the images requeued; an image changed meanwhile is left alone.
pub async fn requeue_abandoned(catalog: &Catalog, alive_after: DateTime<Utc>) -> Result<Vec<Uuid>, CatalogError> {
    let mut candidates = Vec::new();
    // Lists leave hidden and deprecated images out unless asked for them alone.
    for (os_hidden, deprecated) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut query = ImageQuery::new(Viewer { project_id: None, is_admin: true }, MAX_PER_ROUND);
        query.statuses = vec![ImageStatus::Saving, ImageStatus::Uploading];
        query.os_hidden = Some(os_hidden);
        query.deprecated = Some(deprecated);
        candidates.extend(catalog.images.list(&query).await?);
    }
    if candidates.iter().all(|i| !i.properties.contains_key(TRANSFER_NODE)) {
        return Ok(Vec::new());
    }
    let nodes = catalog.nodes.list().await?;
    let alive = |id: &str| nodes.iter().any(|n| n.id == id && n.heartbeat_at > alive_after);
    let mut requeued = Vec::new();
    for mut image in candidates {
        let Some(node) = image.properties.get(TRANSFER_NODE).cloned() else { continue };
        if alive(&node) || image.updated_at > alive_after {
            continue;
        }
        let from = image.status;
        image.status = ImageStatus::Queued;
        image.updated_at = crate::now();
        image.properties.remove(TRANSFER_NODE);
        image.properties.remove(crate::glance_import::STAGE_HOST);
        image.size = None;
        image.virtual_size = None;
        image.checksum = None;
        image.os_hash_algo = None;
        image.os_hash_value = None;
        image.manifest_id = None;
        let mut event = AuditEvent::new("transfer-reaper", "image.transfer.abandoned", format!("image:{}", image.id));
        event.project_id = Some(image.owner.clone());
        event = event.failed(format!("the node {node} streaming the image's data ({from}) stopped"));
        match catalog.images.save(&image, &[from], &event).await {
            Ok(()) => requeued.push(image.id),
            Err(CatalogError::Conflict(_) | CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(requeued)
}
