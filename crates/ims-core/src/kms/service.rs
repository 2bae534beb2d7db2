//! The admin use cases of key management (`/kms/v1/keys`).

use std::sync::Arc;

use super::{Kms, KmsKey};
use crate::{CoreError, Policy, RequestContext, Result};

/// Creating, listing and switching master keys: admins only.
#[derive(Clone, Default)]
pub struct KmsService {
    kms: Option<Arc<dyn Kms>>,
}

impl KmsService {
    /// The service over `kms`; `None` for a node without key management (every call is `NotAvailable`).
    pub fn new(kms: Option<Arc<dyn Kms>>) -> KmsService {
        KmsService { kms }
    }

    /// The provider, if this node has one.
    pub fn provider(&self) -> Option<&Arc<dyn Kms>> {
        self.kms.as_ref()
    }

    fn admin(&self, ctx: &RequestContext) -> Result<&Arc<dyn Kms>> {
        Policy::check_admin(ctx)?;
        self.kms.as_ref().ok_or_else(|| CoreError::NotAvailable("key management is not configured".into()))
    }

    /// Creates an enabled master key (admin); `shareable` says whether images encrypted under it may be
    /// shared with other projects.
    pub async fn create_key(
        &self,
        ctx: &RequestContext,
        alias: &str,
        description: Option<&str>,
        shareable: bool,
    ) -> Result<KmsKey> {
        let kms = self.admin(ctx)?;
        Ok(kms.create_key(alias, description, shareable, &ctx.event("kms.key.create", "kms-key:".into())).await?)
    }

    /// Sets whether images encrypted under the key may be shared (admin). Images already shared keep
    /// their members when it is cleared; new shares are refused. Idempotent; `NotFound` if missing.
    pub async fn set_key_shareable(&self, ctx: &RequestContext, key_id: &str, shareable: bool) -> Result<KmsKey> {
        let kms = self.admin(ctx)?;
        Ok(kms.set_key_shareable(key_id, shareable, &ctx.event("kms.key.update", format!("kms-key:{key_id}"))).await?)
    }

    /// Every master key (admin).
    pub async fn list_keys(&self, ctx: &RequestContext) -> Result<Vec<KmsKey>> {
        Ok(self.admin(ctx)?.list_keys().await?)
    }

    /// One master key (admin); `NotFound` if missing.
    pub async fn get_key(&self, ctx: &RequestContext, key_id: &str) -> Result<KmsKey> {
        Ok(self.admin(ctx)?.get_key(key_id).await?)
    }

    /// Disables a key (admin): the data of every image encrypted under it becomes unreadable (`Forbidden`)
    /// until the key is enabled again. Nothing is deleted. Idempotent.
    pub async fn disable_key(&self, ctx: &RequestContext, key_id: &str) -> Result<KmsKey> {
        let kms = self.admin(ctx)?;
        Ok(kms.disable_key(key_id, &ctx.event("kms.key.disable", format!("kms-key:{key_id}"))).await?)
    }

    /// Enables a key again (admin). Idempotent.
    pub async fn enable_key(&self, ctx: &RequestContext, key_id: &str) -> Result<KmsKey> {
        let kms = self.admin(ctx)?;
        Ok(kms.enable_key(key_id, &ctx.event("kms.key.enable", format!("kms-key:{key_id}"))).await?)
    }
}
