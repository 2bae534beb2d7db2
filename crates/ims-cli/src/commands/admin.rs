//! `ims admin ...` (projects, users, tokens) and `ims whoami`.

use clap::{Args, Subcommand};
use ims_client::{AccessKey, CreatedUser, Role, Token};
use serde_json::{json, Value};

use super::Ctx;
use crate::output::{self, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create { name: String },
    /// List projects.
    List,
    /// Show a project (by id or name).
    Show { project: String },
    /// Delete projects (by id or name).
    Delete {
        #[arg(required = true)]
        projects: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user with a role in a project; prints its first token (shown once).
    Create(UserCreateArgs),
    /// List users and their roles.
    List,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// The user's name.
    pub name: String,
    /// Project (id or name) the user gets a role in.
    #[arg(long)]
    pub project: String,
    /// Role in that project.
    #[arg(long, value_parser = role_parser())]
    pub role: Role,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token for a user in a project (secret shown once).
    Create {
        /// User id or name.
        #[arg(long)]
        user: String,
        /// Project id or name.
        #[arg(long)]
        project: String,
    },
    /// Revoke a token by its id.
    Revoke { token_id: String },
}

#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// Create an access key (AK/SK) for a user; the secret is shown once.
    Create {
        /// User id or name.
        #[arg(long)]
        user: String,
        /// Project (id or name) the key is limited to; without it the key works in every project where
        /// the user has a role (the SDK names the project in X-Project-Id).
        #[arg(long)]
        project: Option<String>,
        /// A note kept with the key.
        #[arg(long)]
        description: Option<String>,
    },
    /// List access keys (without secrets).
    List {
        /// Only the keys of this user (id or name).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke access keys by their AK.
    Revoke {
        #[arg(required = true)]
        access: Vec<String>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// `admin|member|reader`, listed in `--help`.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["admin", "member", "reader"])
        .map(|s| parse_role(&s).expect("one of the possible values"))
}

pub async fn project(ctx: &Ctx, command: ProjectCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        ProjectCommand::Create { name } => ctx.print(&output::project(&c.create_project(&name).await?, ctx.output)),
        ProjectCommand::List => ctx.print(&output::projects(&c.list_projects().await?, ctx.output)),
        ProjectCommand::Show { project } => ctx.print(&output::project(&c.get_project(&project).await?, ctx.output)),
        ProjectCommand::Delete { projects } => {
            let mut failed = 0;
            for p in &projects {
                if let Err(e) = c.delete_project(p).await {
                    eprintln!("error: cannot delete project {p}: {e}");
                    failed += 1;
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} project(s) not deleted", projects.len());
            }
            Ok(())
        }
    }
}

pub async fn user(ctx: &Ctx, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(a) => {
            let created = ctx.client.create_user(&a.name, &a.project, a.role).await?;
            ctx.print(&created_user(&created, ctx.output))?;
            if ctx.output == OutputFormat::Table {
                eprintln!("Save the token now: it cannot be shown again.");
            }
            Ok(())
        }
        UserCommand::List => ctx.print(&output::users(&ctx.client.list_users().await?, ctx.output)),
    }
}

pub async fn token(ctx: &Ctx, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { user, project } => {
            let token = ctx.client.create_token(&user, &project).await?;
            ctx.print(&token_output(&token, ctx.output))
        }
        TokenCommand::Revoke { token_id } => Ok(ctx.client.revoke_token(&token_id).await?),
    }
}

pub async fn access_key(ctx: &Ctx, command: AccessKeyCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match command {
        AccessKeyCommand::Create { user, project, description } => {
            let key = c.create_access_key(&user, project.as_deref(), description.as_deref()).await?;
            ctx.print(&access_key_output(&key, ctx.output))?;
            if ctx.output == OutputFormat::Table {
                eprintln!("Save the secret now: it cannot be shown again.");
            }
            Ok(())
        }
        AccessKeyCommand::List { user } => {
            let keys = c.list_access_keys(user.as_deref()).await?;
            ctx.print(&access_keys_output(&keys, ctx.output))
        }
        AccessKeyCommand::Revoke { access } => {
            let mut failed = 0;
            for a in &access {
                if let Err(e) = c.revoke_access_key(a).await {
                    eprintln!("error: cannot revoke access key {a}: {e}");
                    failed += 1;
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} access key(s) not revoked", access.len());
            }
            Ok(())
        }
    }
}

/// A new access key: `{"access","secret","user_id","project_id","description","created_at","status"}`.
pub fn access_key_output(k: &AccessKey, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(k),
        OutputFormat::Table => output::fields([
            ("access", k.access.clone()),
            ("secret", k.secret.clone().unwrap_or_default()),
            ("user_id", k.user_id.clone()),
            ("project_id", k.project_id.clone().unwrap_or_default()),
            ("description", k.description.clone().unwrap_or_default()),
            ("created_at", k.created_at.clone()),
            ("status", k.status.clone()),
        ]),
    }
}

fn access_keys_output(keys: &[AccessKey], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(&keys),
        OutputFormat::Table => {
            let mut lines = vec![format!("{:<22} {:<34} {:<34} {:<8} {}", "access", "user_id", "project_id", "status", "created_at")];
            for k in keys {
                lines.push(format!(
                    "{:<22} {:<34} {:<34} {:<8} {}",
                    k.access,
                    k.user_id,
                    k.project_id.as_deref().unwrap_or("*"),
                    k.status,
                    k.created_at
                ));
            }
            lines.join("\n")
        }
    }
}

pub async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let info = ctx.client.whoami().await?;
    ctx.print(&output::auth_info(&info, ctx.output))
}

/// The flat record of a new user: `{"id","name","project_id","role","token","token_id"}`.
pub fn created_user_record(c: &CreatedUser) -> Value {
    json!({
        "id": c.user.id,
        "name": c.user.name,
        "project_id": c.user.project_id.as_deref().unwrap_or(&c.token.project_id),
        "role": c.user.role,
        "token": c.token.token,
        "token_id": c.token.id,
    })
}

pub fn created_user(c: &CreatedUser, format: OutputFormat) -> String {
    let record = created_user_record(c);
    match format {
        OutputFormat::Json => output::json(&record),
        OutputFormat::Table => output::fields(
            ["id", "name", "project_id", "role", "token_id", "token"].map(|k| (k, output::cell(&record[k]))),
        ),
    }
}

/// The flat record of a new token: `{"id","token","user_id","project_id","created_at","expires_at"}`.
pub fn token_output(t: &Token, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(t),
        OutputFormat::Table => output::fields([
            ("id", t.id.clone()),
            ("token", t.token.clone().unwrap_or_default()),
            ("user_id", t.user_id.clone()),
            ("project_id", t.project_id.clone()),
            ("created_at", t.created_at.clone()),
            ("expires_at", t.expires_at.clone().unwrap_or_default()),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> CreatedUser {
        serde_json::from_value(json!({
            "user": {"id": "u1", "name": "alice", "created_at": "t", "project_id": "p1", "role": "member"},
            "token": {"id": "tok1", "token": "s3cret", "user_id": "u1", "project_id": "p1", "created_at": "t", "expires_at": null}
        }))
        .unwrap()
    }

    #[test]
    fn created_user_json_is_flat() {
        let v: Value = serde_json::from_str(&created_user(&created(), OutputFormat::Json)).unwrap();
        assert_eq!(
            v,
            json!({"id": "u1", "name": "alice", "project_id": "p1", "role": "member", "token": "s3cret", "token_id": "tok1"})
        );
    }

    #[test]
    fn created_user_table_shows_the_secret() {
        let t = created_user(&created(), OutputFormat::Table);
        assert!(t.contains("| token      | s3cret"));
        assert!(t.contains("| id         | u1"));
    }

    #[test]
    fn token_json() {
        let v: Value = serde_json::from_str(&token_output(&created().token, OutputFormat::Json)).unwrap();
        assert_eq!(v["id"], "tok1");
        assert_eq!(v["token"], "s3cret");
        assert_eq!(v["user_id"], "u1");
        assert_eq!(v["project_id"], "p1");
    }

    #[test]
    fn access_key_json_has_access_and_secret() {
        let k: AccessKey = serde_json::from_value(json!({
            "access": "AK1", "secret": "SK1", "user_id": "u1", "project_id": null, "description": null,
            "created_at": "t", "status": "active"
        }))
        .unwrap();
        let v: Value = serde_json::from_str(&access_key_output(&k, OutputFormat::Json)).unwrap();
        assert_eq!((v["access"].as_str(), v["secret"].as_str()), (Some("AK1"), Some("SK1")));
        assert!(access_key_output(&k, OutputFormat::Table).contains("SK1"));
    }

    #[test]
    fn role_parsing() {
        assert_eq!(parse_role("reader").unwrap(), Role::Reader);
        assert!(parse_role("root").is_err());
    }
}
