//! The identity admin API (`/identity/v1/...`): projects, users, tokens, and whoami.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::{AccessKey, AuthInfo, Client, CreatedUser, Project, Result, Role, Token, User};

#[derive(Deserialize)]
struct ProjectBody {
    project: Project,
}

#[derive(Deserialize)]
struct ProjectList {
    projects: Vec<Project>,
}

#[derive(Deserialize)]
struct UserList {
    users: Vec<User>,
}

#[derive(Deserialize)]
struct TokenBody {
    token: Token,
}

#[derive(Deserialize)]
struct AccessKeyBody {
    access_key: AccessKey,
}

#[derive(Deserialize)]
struct AccessKeyList {
    access_keys: Vec<AccessKey>,
}

impl Client {
    /// `POST /identity/v1/access-keys` `{"user","project"?,"description"?}` → 201 a new access key with
    /// its secret (shown this once). Without `project` the key is valid in every project where the user
    /// has a role. Admin.
    pub async fn create_access_key(&self, user: &str, project: Option<&str>, description: Option<&str>) -> Result<AccessKey> {
        let url = self.url(&["identity", "v1", "access-keys"]);
        let body = json!({ "user": user, "project": project, "description": description });
        let body: AccessKeyBody = self.execute_json(self.request(Method::POST, url).json(&body)).await?;
        Ok(body.access_key)
    }

    /// `GET /identity/v1/access-keys[?user=U]`: keys without secrets. Admin.
    pub async fn list_access_keys(&self, user: Option<&str>) -> Result<Vec<AccessKey>> {
        let mut url = self.url(&["identity", "v1", "access-keys"]);
        if let Some(user) = user {
            url.query_pairs_mut().append_pair("user", user);
        }
        let body: AccessKeyList = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.access_keys)
    }

    /// `DELETE /identity/v1/access-keys/{access}` (204): signatures with the key stop being accepted. Admin.
    pub async fn revoke_access_key(&self, access: &str) -> Result<()> {
        let url = self.url(&["identity", "v1", "access-keys", access]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `POST /identity/v1/projects` `{"name"}` → 201 the project (409 if the name exists). Admin.
    pub async fn create_project(&self, name: &str) -> Result<Project> {
        let url = self.url(&["identity", "v1", "projects"]);
        let body: ProjectBody = self.execute_json(self.request(Method::POST, url).json(&json!({ "name": name }))).await?;
        Ok(body.project)
    }

    /// `GET /identity/v1/projects`. Admin.
    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        let url = self.url(&["identity", "v1", "projects"]);
        let body: ProjectList = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.projects)
    }

    /// `GET /identity/v1/projects/{id-or-name}`. Admin.
    pub async fn get_project(&self, id_or_name: &str) -> Result<Project> {
        let url = self.url(&["identity", "v1", "projects", id_or_name]);
        let body: ProjectBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.project)
    }

    /// `DELETE /identity/v1/projects/{id-or-name}` (204). Admin.
    pub async fn delete_project(&self, id_or_name: &str) -> Result<()> {
        let url = self.url(&["identity", "v1", "projects", id_or_name]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `POST /identity/v1/users` `{"name","project","role"}` → 201 the user and its first token (the
    /// secret is in `token.token`, shown this once). `project` is an id or a name. Admin.
    pub async fn create_user(&self, name: &str, project: &str, role: Role) -> Result<CreatedUser> {
        let url = self.url(&["identity", "v1", "users"]);
        let body = json!({ "name": name, "project": project, "role": role.as_str() });
        self.execute_json(self.request(Method::POST, url).json(&body)).await
    }

    /// `GET /identity/v1/users` (each with its `roles`). Admin.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let url = self.url(&["identity", "v1", "users"]);
        let body: UserList = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.users)
    }

    /// `POST /identity/v1/tokens` `{"user","project"}` (ids or names) → 201 a new token, secret in
    /// `token`. Admin.
    pub async fn create_token(&self, user: &str, project: &str) -> Result<Token> {
        let url = self.url(&["identity", "v1", "tokens"]);
        let body = json!({ "user": user, "project": project });
        let body: TokenBody = self.execute_json(self.request(Method::POST, url).json(&body)).await?;
        Ok(body.token)
    }

    /// `DELETE /identity/v1/tokens/{token-id}` (204): the token stops working. Admin.
    pub async fn revoke_token(&self, token_id: &str) -> Result<()> {
        let url = self.url(&["identity", "v1", "tokens", token_id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `GET /identity/v1/auth`: the caller's user, project and role. Any valid token.
    pub async fn whoami(&self) -> Result<AuthInfo> {
        self.execute_json(self.request(Method::GET, self.url(&["identity", "v1", "auth"]))).await
    }
}
