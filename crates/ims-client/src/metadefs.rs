//! The metadata definitions catalog (`/v2/metadefs/...`). Definitions are free-form JSON documents (the
//! shapes of Glance's API), so they travel as [`serde_json::Value`].

use reqwest::Method;
use serde_json::{json, Value};

use crate::{Client, ClientError, Result};

/// Which list of a namespace's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadefKind {
    Objects,
    Properties,
    Tags,
}

impl MetadefKind {
    fn segment(self) -> &'static str {
        match self {
            MetadefKind::Objects => "objects",
            MetadefKind::Properties => "properties",
            MetadefKind::Tags => "tags",
        }
    }
}

/// `Ok(None)` for a 404, the value otherwise.
fn found(result: Result<Value>) -> Result<Option<Value>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::Http { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Client {
    /// `GET /v2/metadefs/namespaces/{ns}`: the namespace with its contents, or `None` if it does not
    /// exist or the caller cannot see it.
    pub async fn metadef_namespace(&self, namespace: &str) -> Result<Option<Value>> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace]);
        found(self.execute_json(self.request(Method::GET, url)).await)
    }

    /// `POST /v2/metadefs/namespaces`: creates a namespace, with any objects, properties, tags and
    /// resource type associations in `body` (admin).
    pub async fn create_metadef_namespace(&self, body: &Value) -> Result<Value> {
        let url = self.url(&["v2", "metadefs", "namespaces"]);
        self.execute_json(self.request(Method::POST, url).json(body)).await
    }

    /// `PUT /v2/metadefs/namespaces/{ns}`: replaces the namespace's own fields (admin).
    pub async fn update_metadef_namespace(&self, namespace: &str, body: &Value) -> Result<Value> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace]);
        self.execute_json(self.request(Method::PUT, url).json(body)).await
    }

    /// `DELETE /v2/metadefs/namespaces/{ns}` (admin; refused for a protected namespace).
    pub async fn delete_metadef_namespace(&self, namespace: &str) -> Result<()> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// One object, property or tag of a namespace, or `None`.
    pub async fn metadef_entry(&self, namespace: &str, kind: MetadefKind, name: &str) -> Result<Option<Value>> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace, kind.segment(), name]);
        found(self.execute_json(self.request(Method::GET, url)).await)
    }

    /// Creates an object or property from `body` (which holds its `name`) (admin).
    pub async fn create_metadef_entry(&self, namespace: &str, kind: MetadefKind, body: &Value) -> Result<Value> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace, kind.segment()]);
        self.execute_json(self.request(Method::POST, url).json(body)).await
    }

    /// Replaces the object or property `name` with `body` (admin).
    pub async fn update_metadef_entry(&self, namespace: &str, kind: MetadefKind, name: &str, body: &Value) -> Result<Value> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace, kind.segment(), name]);
        self.execute_json(self.request(Method::PUT, url).json(body)).await
    }

    /// `POST .../tags`: adds `names` to the namespace's tags with `append`, or puts them in their place
    /// (admin).
    pub async fn create_metadef_tags(&self, namespace: &str, names: &[String], append: bool) -> Result<Value> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace, "tags"]);
        let tags: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        let rb = self.request(Method::POST, url).json(&json!({"tags": tags}));
        let rb = if append { rb.header("X-Openstack-Append", "True") } else { rb };
        self.execute_json(rb).await
    }

    /// `POST .../resource_types`: associates the namespace with a resource type (admin).
    pub async fn create_metadef_association(&self, namespace: &str, body: &Value) -> Result<Value> {
        let url = self.url(&["v2", "metadefs", "namespaces", namespace, "resource_types"]);
        self.execute_json(self.request(Method::POST, url).json(body)).await
    }
}
