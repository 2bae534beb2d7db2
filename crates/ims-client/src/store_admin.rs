//! Chunk store administration (`/admin/v1/store/...`, admin): garbage collection, verification, statistics.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Client, Result};

/// What one garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcReport {
    pub grace_seconds: f64,
    pub chunks_scanned: u64,
    pub chunks_live: u64,
    pub chunks_young: u64,
    pub chunks_deleted: u64,
    pub bytes_reclaimed: u64,
    pub manifests_scanned: u64,
    pub manifests_removed: u64,
    pub manifests_missing: u64,
    pub pending_scanned: u64,
    pub pending_removed: u64,
    pub deadline_reached: bool,
    pub duration_seconds: f64,
    /// The collections of the extra stores, by store id (the fields above are the default store's).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra_stores: std::collections::BTreeMap<String, GcReport>,
}

/// One use of a missing or corrupt chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkProblem {
    pub image_id: String,
    /// Offset of the chunk in the image's file.
    pub offset: u64,
    pub length: u32,
    pub chunk: String,
    /// `missing` or `corrupt`.
    pub kind: String,
    pub detail: String,
}

/// An image whose manifest cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestProblem {
    pub image_id: String,
    pub manifest_id: String,
    /// `missing` or `corrupt`.
    pub kind: String,
    pub detail: String,
}

/// An image whose chunks were not verified (its encryption key is disabled or gone), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedImage {
    pub image_id: String,
    pub reason: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub images_checked: u64,
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub chunk_problems: Vec<ChunkProblem>,
    pub manifest_problems: Vec<ManifestProblem>,
    /// Images not verified; a report with any is not clean.
    #[serde(default)]
    pub images_skipped: Vec<SkippedImage>,
    pub duration_seconds: f64,
}

impl VerifyReport {
    /// Whether every image was verified and nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.chunk_problems.is_empty() && self.manifest_problems.is_empty() && self.images_skipped.is_empty()
    }
}

/// What one project's images occupy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectStoreUsage {
    pub project_id: String,
    pub images: u64,
    pub logical_bytes: u64,
    pub physical_bytes: u64,
    pub chunks: u64,
}

/// What the chunk store holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    pub images: u64,
    pub logical_bytes: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub referenced_chunks: u64,
    pub referenced_bytes: u64,
    pub unreferenced_chunks: u64,
    pub unreferenced_bytes: u64,
    pub manifests: u64,
    pub manifest_bytes: u64,
    pub physical_bytes: u64,
    pub dedup_ratio: f64,
    pub projects: Vec<ProjectStoreUsage>,
    pub duration_seconds: f64,
}

impl Client {
    /// `POST /admin/v1/store/gc`: one garbage collection, with `grace_seconds` or the server's grace. Admin.
    pub async fn store_gc(&self, grace_seconds: Option<u64>) -> Result<GcReport> {
        let url = self.url(&["admin", "v1", "store", "gc"]);
        let body = match grace_seconds {
            Some(g) => json!({"grace_seconds": g}),
            None => json!({}),
        };
        self.execute_json(self.request(Method::POST, url).json(&body)).await
    }

    /// `POST /admin/v1/store/verify`: verifies every chunk of every image, or of `image_id`. Admin.
    pub async fn store_verify(&self, image_id: Option<&str>) -> Result<VerifyReport> {
        let url = self.url(&["admin", "v1", "store", "verify"]);
        let body = match image_id {
            Some(id) => json!({"image_id": id}),
            None => json!({}),
        };
        self.execute_json(self.request(Method::POST, url).json(&body)).await
    }

    /// `GET /admin/v1/store/stats`: logical and physical bytes, in total and per project. Admin.
    pub async fn store_stats(&self) -> Result<StoreStats> {
        let url = self.url(&["admin", "v1", "store", "stats"]);
        self.execute_json(self.request(Method::GET, url)).await
    }
}
