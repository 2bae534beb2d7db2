//! `ims market list|show|publish|offshelf|onshelf|subscribe|unsubscribe|subscribers|delist`: the
//! marketplace.

use clap::{Args, Subcommand, ValueEnum};
use ims_client::{ListingScope, MarketListing, MarketSubscription, NewMarketListing};

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// Browse listings (on shelf by default).
    List(ListArgs),
    /// Show one listing.
    Show(ListingArg),
    /// List an active image of your project as a product (admins: any image).
    Publish(PublishArgs),
    /// Take a listing off shelf: hidden from browsing, no new subscribers; subscribers keep the image.
    Offshelf(ListingArg),
    /// Put a listing back on shelf.
    Onshelf(ListingArg),
    /// Subscribe your project to a listing: its image becomes readable to your project.
    Subscribe(ListingArg),
    /// End a subscription (your project's, or any project's for admins).
    Unsubscribe(UnsubscribeArgs),
    /// The projects subscribed to a listing (publisher, admins).
    Subscribers(ListingArg),
    /// Delete a listing; refused while projects subscribe unless an admin passes --force.
    Delist(DelistArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Listings on shelf.
    OnShelf,
    /// Your project's listings, on or off shelf.
    Published,
    /// Listings your project subscribed to, on or off shelf.
    Subscribed,
    /// Every listing (admins).
    All,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t = Scope::OnShelf)]
    pub scope: Scope,
}

#[derive(Debug, Args)]
pub struct ListingArg {
    /// Listing id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Image id (must be active).
    pub image: String,
    /// Product code, unique on the marketplace (letters, digits, '.', '_', '-').
    #[arg(long)]
    pub product_code: String,
    /// Product version.
    #[arg(long)]
    pub product_version: String,
    #[arg(long, default_value = "")]
    pub description: String,
}

#[derive(Debug, Args)]
pub struct UnsubscribeArgs {
    /// Listing id.
    pub id: String,
    /// Project whose subscription ends (default: yours).
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(Debug, Args)]
pub struct DelistArgs {
    /// Listing id.
    pub id: String,
    /// Delist even though projects subscribe, ending their access (admins).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(ctx: &Ctx, command: MarketCommand) -> anyhow::Result<()> {
    let client = &ctx.client;
    match command {
        MarketCommand::List(a) => {
            let scope = match a.scope {
                Scope::OnShelf => ListingScope::OnShelf,
                Scope::Published => ListingScope::Published,
                Scope::Subscribed => ListingScope::Subscribed,
                Scope::All => ListingScope::All,
            };
            ctx.print(&listings(&client.market_listings(scope).await?, ctx.output))
        }
        MarketCommand::Show(a) => ctx.print(&listing(&client.market_listing(&a.id).await?, ctx.output)),
        MarketCommand::Publish(a) => {
            let new = NewMarketListing {
                image_id: a.image,
                product_code: a.product_code,
                version: a.product_version,
                description: a.description,
            };
            ctx.print(&listing(&client.publish_listing(&new).await?, ctx.output))
        }
        MarketCommand::Offshelf(a) => {
            ctx.print(&listing(&client.set_listing_offshelved(&a.id, true).await?, ctx.output))
        }
        MarketCommand::Onshelf(a) => {
            ctx.print(&listing(&client.set_listing_offshelved(&a.id, false).await?, ctx.output))
        }
        MarketCommand::Subscribe(a) => ctx.print(&subscriptions(&[client.subscribe_listing(&a.id).await?], ctx.output)),
        MarketCommand::Unsubscribe(a) => {
            let project = match a.project {
                Some(p) => p,
                None => client.whoami().await?.project.id,
            };
            Ok(client.unsubscribe_listing(&a.id, &project).await?)
        }
        MarketCommand::Subscribers(a) => {
            ctx.print(&subscriptions(&client.listing_subscriptions(&a.id).await?, ctx.output))
        }
        MarketCommand::Delist(a) => Ok(client.delist(&a.id, a.force).await?),
    }
}

fn listing(l: &MarketListing, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(l),
        OutputFormat::Table => output::fields([
            ("id", l.id.clone()),
            ("product_code", l.product_code.clone()),
            ("image_id", l.image_id.clone()),
            ("image_name", l.image.name.clone().unwrap_or_default()),
            ("publisher", l.publisher.clone()),
            ("version", l.version.clone()),
            ("description", l.description.clone()),
            ("offshelved", l.offshelved.to_string()),
            ("os_version", l.image.property("__os_version").unwrap_or_default().to_string()),
            ("created_at", l.created_at.clone()),
            ("updated_at", l.updated_at.clone()),
        ]),
    }
}

fn listings(ls: &[MarketListing], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(ls),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Product Code", "Image", "Version", "Publisher", "Off Shelf"]);
            for l in ls {
                t.row([
                    l.id.clone(),
                    l.product_code.clone(),
                    l.image.name.clone().unwrap_or_else(|| l.image_id.clone()),
                    l.version.clone(),
                    l.publisher.clone(),
                    l.offshelved.to_string(),
                ]);
            }
            t.render()
        }
    }
}

fn subscriptions(subs: &[MarketSubscription], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(subs),
        OutputFormat::Table => {
            let mut t = Table::new(["Listing", "Project", "Since"]);
            for s in subs {
                t.row([s.listing_id.clone(), s.project_id.clone(), s.since.clone()]);
            }
            t.render()
        }
    }
}
