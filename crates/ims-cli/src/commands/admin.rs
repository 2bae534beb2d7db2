//! `ims admin ...` (projects, users, tokens) and `ims whoami`.

use clap::{Args, Subcommand};
use ims_client::{CreatedUser, Role, Token};
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
    fn role_parsing() {
        assert_eq!(parse_role("reader").unwrap(), Role::Reader);
        assert!(parse_role("root").is_err());
    }
}
