//! Projects, users, roles and bearer tokens: authentication and the admin use cases.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use ims_catalog::{AccessKey, AuditEvent, Catalog, CatalogError, Project, Role, Token, User};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::secrets::SecretSealer;
use crate::{Caller, CoreError, Policy, RequestContext, Result};

/// Name of the project and user created on first start.
pub const BOOTSTRAP_NAME: &str = "admin";

/// A token as handed to its holder: the secret appears only here, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: Token,
    pub secret: String,
}

/// A user with its role in each project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRoles {
    pub user: User,
    pub roles: Vec<(String, Role)>,
}

/// An access key as handed to its holder: the secret (SK) appears only here, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedAccessKey {
    pub key: AccessKey,
    pub secret: String,
}

#[derive(Clone)]
pub struct IdentityService {
    catalog: Catalog,
    /// Seals access key secrets; without one, access keys can be neither created nor verified.
    sealer: Option<Arc<dyn SecretSealer>>,
}

/// Hex SHA-256 of a token secret: what the catalog stores.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `n` random letters and digits.
fn random_chars(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("ims{}", hex::encode(bytes))
}

impl IdentityService {
    pub fn new(catalog: Catalog) -> IdentityService {
        IdentityService { catalog, sealer: None }
    }

    /// The same service, sealing access key secrets with `sealer`.
    pub fn with_sealer(mut self, sealer: Arc<dyn SecretSealer>) -> IdentityService {
        self.sealer = Some(sealer);
        self
    }

    fn sealer(&self) -> Result<&Arc<dyn SecretSealer>> {
        self.sealer.as_ref().ok_or_else(|| CoreError::Unavailable("access keys are not configured on this node".into()))
    }

    /// Creates an access key for `user` (id or name), valid in `project` only when given (the user
    /// must have a role there), else in every project where the user has a role. Admin.
    pub async fn create_access_key(
        &self,
        ctx: &RequestContext,
        user: &str,
        project: Option<&str>,
        description: Option<&str>,
    ) -> Result<IssuedAccessKey> {
        Policy::check_admin(ctx)?;
        let user = self.find_user(user).await?;
        let project = match project {
            Some(p) => {
                let project = self.find_project(p).await?;
                if self.catalog.identity.role_of(&user.id, &project.id).await?.is_none() {
                    return Err(CoreError::Invalid(format!(
                        "User {} has no role in project {}",
                        user.name, project.name
                    )));
                }
                Some(project.id)
            }
            None => None,
        };
        if let Some(d) = description {
            crate::images::check_string("description", d)?;
        }
        let secret = random_chars(40);
        let key = AccessKey {
            id: random_chars(20).to_ascii_uppercase(),
            user_id: user.id,
            project_id: project,
            sealed_secret: self.sealer()?.seal(secret.as_bytes())?,
            description: description.map(str::to_string),
            created_at: crate::now(),
            revoked: false,
        };
        self.catalog.identity.create_access_key(&key, &ctx.event("access_key.create", format!("access_key:{}", key.id))).await?;
        Ok(IssuedAccessKey { key, secret })
    }

    /// Every access key (of `user`, id or name, when given), without secrets. Admin.
    pub async fn list_access_keys(&self, ctx: &RequestContext, user: Option<&str>) -> Result<Vec<AccessKey>> {
        Policy::check_admin(ctx)?;
        let user_id = match user {
            Some(u) => Some(self.find_user(u).await?.id),
            None => None,
        };
        Ok(self.catalog.identity.list_access_keys(user_id.as_deref()).await?)
    }

    /// Revokes an access key: signatures made with it stop being accepted. Admin.
    pub async fn revoke_access_key(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        Policy::check_admin(ctx)?;
        self.catalog
            .identity
            .revoke_access_key(id, &ctx.event("access_key.revoke", format!("access_key:{id}")))
            .await
            .map_err(|e| match e {
                CatalogError::NotFound(_) => CoreError::NotFound(format!("Access key {id} not found")),
                other => other.into(),
            })
    }

    /// The caller behind an `SDK-HMAC-SHA256` signature: `signature` (hex) must be the HMAC-SHA256 of
    /// `string_to_sign` under the secret of access key `access`. The caller acts in `project_id` (the
    /// `X-Project-Id` header) or, when absent, in the key's project or the user's only project. The key
    /// must be valid there and the user must hold a role there. Every failure is `Unauthenticated`.
    pub async fn authenticate_signature(
        &self,
        access: &str,
        project_id: Option<&str>,
        string_to_sign: &str,
        signature: &str,
    ) -> Result<Caller> {
        let invalid = |why: &str| CoreError::Unauthenticated(format!("Incorrect IAM authentication information: {why}"));
        let identity = &self.catalog.identity;
        let key = match identity.get_access_key(access).await {
            Ok(k) if !k.revoked => k,
            Ok(_) | Err(CatalogError::NotFound(_)) => return Err(invalid("unknown or revoked access key")),
            Err(e) => return Err(e.into()),
        };
        let secret = self.sealer()?.unseal(&key.sealed_secret)?;
        let signature = hex::decode(signature.trim()).map_err(|_| invalid("verify aksk signature fail"))?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("HMAC takes keys of any length");
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&signature).map_err(|_| invalid("verify aksk signature fail"))?;

        let project = match (project_id, key.project_id.as_deref()) {
            (Some(asked), Some(bound)) if asked != bound => {
                return Err(invalid("the access key is not valid in the project of X-Project-Id"))
            }
            (Some(asked), _) => asked.to_string(),
            (None, Some(bound)) => bound.to_string(),
            (None, None) => {
                let roles = identity.roles_of_user(&key.user_id).await?;
                match roles.as_slice() {
                    [(only, _)] => only.clone(),
                    _ => return Err(invalid("X-Project-Id is required: the user has roles in several projects")),
                }
            }
        };
        let role = identity
            .role_of(&key.user_id, &project)
            .await?
            .ok_or_else(|| invalid("the user has no role in the project of X-Project-Id"))?;
        let user = identity.get_user(&key.user_id).await.map_err(|e| missing_as(e, || invalid("unknown user")))?;
        let project = identity.get_project(&project).await.map_err(|e| missing_as(e, || invalid("unknown project")))?;
        Ok(Caller { user_id: user.id, user_name: user.name, project_id: project.id, project_name: project.name, role })
    }

    /// On an empty catalog, creates the `admin` project and user with an admin token whose secret is
    /// `admin_token` (or a random one). Returns the secret when it created one, `None` when the catalog
    /// already had projects. If `admin_token` is given and the catalog exists, makes sure that token is
    /// valid for the admin user (so a fixed `IMS_ADMIN_TOKEN` keeps working across restarts).
    ///
    /// Nodes of a cluster started at once on an empty catalog race here: exactly one creates the admin
    /// project (its name is unique); the others see the conflict, wait for the winner's admin user and role,
    /// and continue as on an existing catalog.
    pub async fn bootstrap(&self, admin_token: Option<&str>) -> Result<Option<String>> {
        let ctx = RequestContext::new(format!("req-{}", Uuid::new_v4()), None);
        let identity = &self.catalog.identity;
        if identity.is_empty().await? {
            let now = crate::now();
            let project = Project { id: Uuid::new_v4().simple().to_string(), name: BOOTSTRAP_NAME.into(), created_at: now };
            let user = User { id: Uuid::new_v4().simple().to_string(), name: BOOTSTRAP_NAME.into(), created_at: now };
            match identity.create_project(&project, &ctx.event("project.create", format!("project:{}", project.id))).await {
                Ok(()) => {}
                Err(CatalogError::Conflict(_)) => {
                    self.await_bootstrap_by_another_node().await?;
                    return self.ensure_admin_token(&ctx, admin_token).await.map(|()| None);
                }
                Err(e) => return Err(e.into()),
            }
            identity.create_user(&user, &ctx.event("user.create", format!("user:{}", user.id))).await?;
            identity
                .assign_role(&user.id, &project.id, Role::Admin, &ctx.event("role.assign", format!("user:{}", user.id)))
                .await?;
            let secret = admin_token.map(str::to_string).unwrap_or_else(new_secret);
            self.store_token(&ctx, &user.id, &project.id, &secret).await?;
            return Ok(Some(secret));
        }
        self.ensure_admin_token(&ctx, admin_token).await?;
        Ok(None)
    }

    /// Makes `admin_token`, when given, a valid token of the existing admin user in the admin project.
    async fn ensure_admin_token(&self, ctx: &RequestContext, admin_token: Option<&str>) -> Result<()> {
        let identity = &self.catalog.identity;
        if let Some(secret) = admin_token {
            if identity.find_token(&hash_secret(secret)).await.is_err() {
                let user = identity.find_user(BOOTSTRAP_NAME).await?;
                let project = identity.find_project(BOOTSTRAP_NAME).await?;
                self.store_token(ctx, &user.id, &project.id, secret).await?;
            }
        }
        Ok(())
    }

    /// Waits (up to 30 s) until the node that won the bootstrap race has given the admin user its role in
    /// the admin project.
    async fn await_bootstrap_by_another_node(&self) -> Result<()> {
        let identity = &self.catalog.identity;
        for _ in 0..300 {
            if let (Ok(user), Ok(project)) =
                (identity.find_user(BOOTSTRAP_NAME).await, identity.find_project(BOOTSTRAP_NAME).await)
            {
                if identity.role_of(&user.id, &project.id).await?.is_some() {
                    return Ok(());
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(CoreError::Conflict("another node started bootstrapping this catalog and did not finish".into()))
    }

    /// The caller a bearer token stands for. `Unauthenticated` for unknown, revoked or expired tokens,
    /// or a token whose user no longer has a role in its project.
    pub async fn authenticate(&self, secret: &str) -> Result<Caller> {
        let invalid = || CoreError::Unauthenticated("The request you have made requires authentication.".into());
        let identity = &self.catalog.identity;
        let token = match identity.find_token(&hash_secret(secret)).await {
            Ok(t) => t,
            Err(CatalogError::NotFound(_)) => return Err(invalid()),
            Err(e) => return Err(e.into()),
        };
        if token.revoked || token.expires_at.is_some_and(|at| at <= crate::now()) {
            return Err(invalid());
        }
        let role = identity.role_of(&token.user_id, &token.project_id).await?.ok_or_else(invalid)?;
        let user = identity.get_user(&token.user_id).await.map_err(|e| missing_as(e, invalid))?;
        let project = identity.get_project(&token.project_id).await.map_err(|e| missing_as(e, invalid))?;
        Ok(Caller { user_id: user.id, user_name: user.name, project_id: project.id, project_name: project.name, role })
    }

    pub async fn create_project(&self, ctx: &RequestContext, name: &str) -> Result<Project> {
        Policy::check_admin(ctx)?;
        check_name("project", name)?;
        let project = Project { id: Uuid::new_v4().simple().to_string(), name: name.to_string(), created_at: crate::now() };
        self.catalog
            .identity
            .create_project(&project, &ctx.event("project.create", format!("project:{}", project.id)))
            .await
            .map_err(|e| conflict_named(e, "project", name))?;
        Ok(project)
    }

    pub async fn list_projects(&self, ctx: &RequestContext) -> Result<Vec<Project>> {
        Policy::check_admin(ctx)?;
        Ok(self.catalog.identity.list_projects().await?)
    }

    /// A project by id or, failing that, by name.
    pub async fn get_project(&self, ctx: &RequestContext, id_or_name: &str) -> Result<Project> {
        Policy::check_admin(ctx)?;
        self.find_project(id_or_name).await
    }

    /// A project by id or name for any signed-in caller: what clients need to name a project they
    /// share an image with.
    pub async fn lookup_project(&self, ctx: &RequestContext, id_or_name: &str) -> Result<Project> {
        Policy::require_caller(ctx)?;
        self.find_project(id_or_name).await
    }

    /// Deletes a project that owns no images.
    pub async fn delete_project(&self, ctx: &RequestContext, id_or_name: &str) -> Result<()> {
        Policy::check_admin(ctx)?;
        let project = self.find_project(id_or_name).await?;
        if ctx.project_id() == Some(project.id.as_str()) {
            return Err(CoreError::Conflict("A project cannot delete itself.".into()));
        }
        self.catalog
            .identity
            .delete_project(&project.id, &ctx.event("project.delete", format!("project:{}", project.id)))
            .await?;
        Ok(())
    }

    /// Creates a user with `role` in `project` and issues its first token.
    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        name: &str,
        project: &str,
        role: Role,
    ) -> Result<(User, Project, IssuedToken)> {
        Policy::check_admin(ctx)?;
        check_name("user", name)?;
        let project = self.find_project(project).await?;
        let user = User { id: Uuid::new_v4().simple().to_string(), name: name.to_string(), created_at: crate::now() };
        let identity = &self.catalog.identity;
        identity
            .create_user(&user, &ctx.event("user.create", format!("user:{}", user.id)))
            .await
            .map_err(|e| conflict_named(e, "user", name))?;
        identity
            .assign_role(&user.id, &project.id, role, &ctx.event("role.assign", format!("user:{}", user.id)))
            .await?;
        let token = self.store_token(ctx, &user.id, &project.id, &new_secret()).await?;
        Ok((user, project, token))
    }

    pub async fn list_users(&self, ctx: &RequestContext) -> Result<Vec<UserRoles>> {
        Policy::check_admin(ctx)?;
        let identity = &self.catalog.identity;
        let mut out = Vec::new();
        for user in identity.list_users().await? {
            let roles = identity.roles_of_user(&user.id).await?;
            out.push(UserRoles { user, roles });
        }
        Ok(out)
    }

    /// Issues a new token for a user in a project where it holds a role.
    pub async fn create_token(&self, ctx: &RequestContext, user: &str, project: &str) -> Result<IssuedToken> {
        Policy::check_admin(ctx)?;
        let user = self.find_user(user).await?;
        let project = self.find_project(project).await?;
        if self.catalog.identity.role_of(&user.id, &project.id).await?.is_none() {
            return Err(CoreError::Invalid(format!("User {} has no role in project {}", user.name, project.name)));
        }
        self.store_token(ctx, &user.id, &project.id, &new_secret()).await
    }

    pub async fn revoke_token(&self, ctx: &RequestContext, token_id: &str) -> Result<()> {
        Policy::check_admin(ctx)?;
        self.catalog
            .identity
            .revoke_token(token_id, &ctx.event("token.revoke", format!("token:{token_id}")))
            .await
            .map_err(|e| match e {
                CatalogError::NotFound(_) => CoreError::NotFound(format!("Token {token_id} not found")),
                other => other.into(),
            })
    }

    async fn store_token(&self, ctx: &RequestContext, user_id: &str, project_id: &str, secret: &str) -> Result<IssuedToken> {
        let token = Token {
            id: Uuid::new_v4().simple().to_string(),
            secret_hash: hash_secret(secret),
            user_id: user_id.to_string(),
            project_id: project_id.to_string(),
            created_at: crate::now(),
            expires_at: None,
            revoked: false,
        };
        let event: AuditEvent = ctx.event("token.create", format!("token:{}", token.id));
        self.catalog.identity.create_token(&token, &event).await?;
        Ok(IssuedToken { token, secret: secret.to_string() })
    }

    async fn find_project(&self, id_or_name: &str) -> Result<Project> {
        let identity = &self.catalog.identity;
        match identity.get_project(id_or_name).await {
            Ok(p) => Ok(p),
            Err(CatalogError::NotFound(_)) => identity
                .find_project(id_or_name)
                .await
                .map_err(|e| missing_as(e, || CoreError::NotFound(format!("Project {id_or_name} not found")))),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_user(&self, id_or_name: &str) -> Result<User> {
        let identity = &self.catalog.identity;
        match identity.get_user(id_or_name).await {
            Ok(u) => Ok(u),
            Err(CatalogError::NotFound(_)) => identity
                .find_user(id_or_name)
                .await
                .map_err(|e| missing_as(e, || CoreError::NotFound(format!("User {id_or_name} not found")))),
            Err(e) => Err(e.into()),
        }
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "invalid {what} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn conflict_named(e: CatalogError, what: &str, name: &str) -> CoreError {
    match e {
        CatalogError::Conflict(_) => CoreError::Conflict(format!("A {what} named {name} already exists")),
        other => other.into(),
    }
}

/// A catalog `NotFound` as the caller's error of choice; any other catalog failure as itself, so that a
/// catalog that cannot answer is a failure of the service (503) and never reads as bad credentials or a
/// missing record.
fn missing_as(e: CatalogError, missing: impl FnOnce() -> CoreError) -> CoreError {
    match e {
        CatalogError::NotFound(_) => missing(),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nodes_bootstrapping_one_empty_catalog_at_once_all_start_with_one_admin() {
        let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
        let nodes: Vec<IdentityService> = (0..3).map(|_| IdentityService::new(catalog.clone())).collect();
        let results =
            futures::future::join_all(nodes.iter().map(|node| node.bootstrap(Some("fixed-admin-token")))).await;
        let created = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(created, 1, "exactly one node creates the admin project: {results:?}");
        let projects = catalog.identity.list_projects().await.unwrap();
        assert_eq!(projects.iter().filter(|p| p.name == BOOTSTRAP_NAME).count(), 1);
        let caller = nodes[2].authenticate("fixed-admin-token").await.unwrap();
        assert_eq!(caller.role, Role::Admin);
    }
}
