//! `ims admin kms create-key|list-keys|show-key|update-key|disable-key|enable-key`: master keys for encrypted
//! images.

use clap::Subcommand;
use ims_client::KmsKey;

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Create an enabled master key; images created with `__system__cmkid=<key id>` are encrypted under it.
    CreateKey {
        /// A unique name for the key.
        alias: String,
        /// A note kept with the key.
        #[arg(long)]
        description: Option<String>,
        /// Let images encrypted under the key be shared with other projects.
        #[arg(long)]
        shareable: bool,
    },
    /// Change whether images encrypted under a master key may be shared with other projects (projects
    /// already members keep their access when sharing is turned off).
    UpdateKey {
        key_id: String,
        #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
        shareable: bool,
    },
    /// List master keys.
    ListKeys,
    /// Show a master key.
    ShowKey { key_id: String },
    /// Disable master keys: images encrypted under them become unreadable until enabled again.
    DisableKey {
        #[arg(required = true)]
        key_ids: Vec<String>,
    },
    /// Enable master keys again.
    EnableKey {
        #[arg(required = true)]
        key_ids: Vec<String>,
    },
}

pub async fn run(ctx: &Ctx, command: KmsCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let keys = match command {
        KmsCommand::CreateKey { alias, description, shareable } => {
            let created = c.create_kms_key_with_sharing(&alias, description.as_deref(), shareable).await?;
            return ctx.print(&key(&created, ctx.output));
        }
        KmsCommand::UpdateKey { key_id, shareable } => {
            return ctx.print(&key(&c.set_kms_key_shareable(&key_id, shareable).await?, ctx.output))
        }
        KmsCommand::ShowKey { key_id } => return ctx.print(&key(&c.get_kms_key(&key_id).await?, ctx.output)),
        KmsCommand::ListKeys => c.list_kms_keys().await?,
        KmsCommand::DisableKey { key_ids } => {
            let mut done = Vec::new();
            for id in &key_ids {
                done.push(c.disable_kms_key(id).await?);
            }
            done
        }
        KmsCommand::EnableKey { key_ids } => {
            let mut done = Vec::new();
            for id in &key_ids {
                done.push(c.enable_kms_key(id).await?);
            }
            done
        }
    };
    ctx.print(&list(&keys, ctx.output))
}

fn key(k: &KmsKey, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(k),
        OutputFormat::Table => output::fields([
            ("id", k.id.clone()),
            ("alias", k.alias.clone()),
            ("description", k.description.clone().unwrap_or_default()),
            ("state", k.state.clone()),
            ("shareable", k.shareable.to_string()),
            ("created_at", k.created_at.clone()),
            ("updated_at", k.updated_at.clone()),
        ]),
    }
}

fn list(keys: &[KmsKey], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(keys),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Alias", "State", "Shareable", "Created At"]);
            for k in keys {
                t.row([k.id.clone(), k.alias.clone(), k.state.clone(), k.shareable.to_string(), k.created_at.clone()]);
            }
            t.render()
        }
    }
}
