//! Master keys of the key management service (`/kms/v1/keys`, admin).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Client, Result};

/// A master key (never its material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsKey {
    /// What `__system__cmkid` names to encrypt an image under this key.
    pub id: String,
    pub alias: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    /// Whether images encrypted under the key may be shared with other projects.
    #[serde(default)]
    pub shareable: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Deserialize)]
struct KeyBody {
    key: KmsKey,
}

#[derive(Deserialize)]
struct KeyList {
    keys: Vec<KmsKey>,
}

impl Client {
    /// `POST /kms/v1/keys` `{"alias","description"?}` → 201 a new enabled key (409 if the alias is taken). Admin.
    pub async fn create_kms_key(&self, alias: &str, description: Option<&str>) -> Result<KmsKey> {
        let url = self.url(&["kms", "v1", "keys"]);
        let body = json!({ "alias": alias, "description": description });
        let body: KeyBody = self.execute_json(self.request(Method::POST, url).json(&body)).await?;
        Ok(body.key)
    }

    /// `POST /kms/v1/keys` `{"alias","description"?,"shareable"}` → 201 a new enabled key whose images may
    /// (`shareable`) or may not be shared with other projects. Admin.
    pub async fn create_kms_key_with_sharing(
        &self,
        alias: &str,
        description: Option<&str>,
        shareable: bool,
    ) -> Result<KmsKey> {
        let url = self.url(&["kms", "v1", "keys"]);
        let body = json!({ "alias": alias, "description": description, "shareable": shareable });
        let body: KeyBody = self.execute_json(self.request(Method::POST, url).json(&body)).await?;
        Ok(body.key)
    }

    /// `PATCH /kms/v1/keys/{id}` `{"shareable": bool}`: whether images encrypted under the key may be shared
    /// from now on (existing members stay). Idempotent; 404 if missing. Admin.
    pub async fn set_kms_key_shareable(&self, id: &str, shareable: bool) -> Result<KmsKey> {
        let url = self.url(&["kms", "v1", "keys", id]);
        let body = json!({ "shareable": shareable });
        let body: KeyBody = self.execute_json(self.request(Method::PATCH, url).json(&body)).await?;
        Ok(body.key)
    }

    /// `GET /kms/v1/keys`: every key, oldest first. Admin.
    pub async fn list_kms_keys(&self) -> Result<Vec<KmsKey>> {
        let url = self.url(&["kms", "v1", "keys"]);
        let body: KeyList = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.keys)
    }

    /// `GET /kms/v1/keys/{id}` (404 if missing). Admin.
    pub async fn get_kms_key(&self, id: &str) -> Result<KmsKey> {
        let url = self.url(&["kms", "v1", "keys", id]);
        let body: KeyBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.key)
    }

    /// `POST /kms/v1/keys/{id}/disable`: images encrypted under the key become unreadable (403) until it is
    /// enabled again. Idempotent. Admin.
    pub async fn disable_kms_key(&self, id: &str) -> Result<KmsKey> {
        let url = self.url(&["kms", "v1", "keys", id, "disable"]);
        let body: KeyBody = self.execute_json(self.request(Method::POST, url)).await?;
        Ok(body.key)
    }

    /// `POST /kms/v1/keys/{id}/enable`. Idempotent. Admin.
    pub async fn enable_kms_key(&self, id: &str) -> Result<KmsKey> {
        let url = self.url(&["kms", "v1", "keys", id, "enable"]);
        let body: KeyBody = self.execute_json(self.request(Method::POST, url)).await?;
        Ok(body.key)
    }
}
