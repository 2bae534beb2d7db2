//! Who may read and change metadata definitions: Glance's default metadef policy.
//!
//! Reading (`get_metadef_*`, `list_metadef_resource_types`): any signed-in caller, for public namespaces
//! and those its project owns; admins see every namespace. A namespace the caller may not see is reported
//! as not found. Writing (`add_`, `modify_`, `delete_metadef_*`, associations): admins only.

use ims_catalog::metadef::{MetadefNamespace, NamespaceVisibility};

use crate::{CoreError, Policy, RequestContext, Result};

/// The decisions of the metadata definitions catalog.
pub struct MetadefPolicy;

impl MetadefPolicy {
    /// Whether the caller may read `namespace` and its contents.
    pub fn can_see(ctx: &RequestContext, namespace: &MetadefNamespace) -> bool {
        ctx.is_admin()
            || namespace.visibility == NamespaceVisibility::Public
            || ctx.project_id().is_some_and(|p| p == namespace.owner)
    }

    /// The caller must be signed in to read anything.
    pub fn check_read(ctx: &RequestContext) -> Result<()> {
        Policy::require_caller(ctx).map(drop)
    }

    /// Creating, changing and deleting definitions: admins only.
    pub fn check_write(ctx: &RequestContext) -> Result<()> {
        Policy::require_caller(ctx)?;
        if !ctx.is_admin() {
            return Err(CoreError::Forbidden(
                "You are not authorized to change metadata definitions: the admin role is required.".into(),
            ));
        }
        Ok(())
    }

    /// Deleting a namespace: write rights, and never a protected namespace.
    pub fn check_delete(ctx: &RequestContext, namespace: &MetadefNamespace) -> Result<()> {
        Self::check_write(ctx)?;
        if namespace.protected {
            return Err(CoreError::Forbidden(format!(
                "Namespace {} is protected and cannot be deleted.",
                namespace.namespace
            )));
        }
        Ok(())
    }
}
