//! What Keystone says of a valid token (`GET /v3/auth/tokens`), and how it maps onto an IMS [`Caller`].
//!
//! Roles: `admin` → admin, `member` and `service` → member, `reader` → reader; the strongest one the token
//! carries wins (Keystone lists implied roles too: an admin token also carries member and reader). Other roles
//! are ignored. A project-scoped token acts in its project. A system-scoped token (`system: {all: true}`) is
//! accepted with the admin role only and then acts as an admin of no project. Unscoped and domain-scoped tokens
//! give no access to images.

use chrono::{DateTime, Utc};
use ims_catalog::Role;
use ims_core::Caller;
use serde::Deserialize;

use super::KeystoneError;

/// The body of a token validation: `{"token": {...}}`.
#[derive(Debug, Deserialize)]
pub struct TokenBody {
    pub token: TokenInfo,
}

/// The fields of a Keystone v3 token that IMS uses.
#[derive(Debug, Deserialize)]
pub struct TokenInfo {
    pub expires_at: DateTime<Utc>,
    pub user: Named,
    #[serde(default)]
    pub project: Option<Named>,
    #[serde(default)]
    pub system: Option<SystemScope>,
    #[serde(default)]
    pub roles: Vec<Named>,
}

#[derive(Debug, Deserialize)]
pub struct Named {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct SystemScope {
    #[serde(default)]
    pub all: bool,
}

/// The IMS role a Keystone role name stands for, if any.
pub fn role_of(name: &str) -> Option<Role> {
    match name {
        "admin" => Some(Role::Admin),
        "member" | "service" => Some(Role::Member),
        "reader" => Some(Role::Reader),
        _ => None,
    }
}

impl TokenInfo {
    /// The caller this token stands for, or why it gives no access to IMS.
    pub fn caller(&self) -> Result<Caller, KeystoneError> {
        let role = self.roles.iter().filter_map(|r| role_of(&r.name)).max().ok_or_else(|| {
            KeystoneError::NoAccess("The token carries none of the roles admin, member, reader or service.".into())
        })?;
        let (project_id, project_name) = match (&self.project, &self.system) {
            (Some(project), _) => (project.id.clone(), project.name.clone()),
            (None, Some(system)) if system.all => {
                if role != Role::Admin {
                    return Err(KeystoneError::NoAccess(
                        "A system-scoped token needs the admin role here; use a project-scoped token.".into(),
                    ));
                }
                (String::new(), "system".to_string())
            }
            (None, _) => {
                return Err(KeystoneError::NoAccess("The token must be scoped to a project or to the system.".into()))
            }
        };
        Ok(Caller { user_id: self.user.id.clone(), user_name: self.user.name.clone(), project_id, project_name, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scope: &str, roles: &[&str]) -> TokenInfo {
        let roles: Vec<String> = roles.iter().map(|r| format!(r#"{{"id": "id-{r}", "name": "{r}"}}"#)).collect();
        let text = format!(
            r#"{{"token": {{"expires_at": "2030-01-02T03:04:05.000000Z", "methods": ["password"],
                "user": {{"id": "u1", "name": "alice", "domain": {{"id": "default", "name": "Default"}}}},
                {scope} "roles": [{}], "issued_at": "2030-01-02T02:04:05.000000Z"}}}}"#,
            roles.join(", ")
        );
        serde_json::from_str::<TokenBody>(&text).unwrap().token
    }

    const PROJECT: &str = r#""project": {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}},"#;
    const SYSTEM: &str = r#""system": {"all": true},"#;
    const DOMAIN: &str = r#""domain": {"id": "default", "name": "Default"},"#;

    #[test]
    fn project_tokens_act_in_their_project_with_their_strongest_role() {
        let caller = token(PROJECT, &["reader", "member"]).caller().unwrap();
        assert_eq!((caller.project_id.as_str(), caller.project_name.as_str()), ("p1", "demo"));
        assert_eq!((caller.user_id.as_str(), caller.user_name.as_str()), ("u1", "alice"));
        assert_eq!(caller.role, Role::Member);
        assert_eq!(token(PROJECT, &["admin", "member", "reader"]).caller().unwrap().role, Role::Admin);
        assert_eq!(token(PROJECT, &["reader"]).caller().unwrap().role, Role::Reader);
        assert_eq!(token(PROJECT, &["service"]).caller().unwrap().role, Role::Member);
        assert_eq!(token(PROJECT, &["heat_stack_owner", "reader"]).caller().unwrap().role, Role::Reader);
        assert_eq!(token(PROJECT, &["admin"]).expires_at.to_rfc3339(), "2030-01-02T03:04:05+00:00");
    }

    #[test]
    fn tokens_without_a_known_role_give_no_access() {
        assert!(matches!(token(PROJECT, &[]).caller(), Err(KeystoneError::NoAccess(_))));
        assert!(matches!(token(PROJECT, &["_member_", "load-balancer_member"]).caller(), Err(KeystoneError::NoAccess(_))));
    }

    #[test]
    fn system_scope_is_admin_only_and_other_scopes_are_refused() {
        let admin = token(SYSTEM, &["admin", "member", "reader"]).caller().unwrap();
        assert!(admin.is_admin());
        assert_eq!(admin.project_id, "");
        assert!(matches!(token(SYSTEM, &["reader"]).caller(), Err(KeystoneError::NoAccess(_))));
        assert!(matches!(token(DOMAIN, &["admin"]).caller(), Err(KeystoneError::NoAccess(_))));
        assert!(matches!(token("", &["admin"]).caller(), Err(KeystoneError::NoAccess(_))));
    }
}
