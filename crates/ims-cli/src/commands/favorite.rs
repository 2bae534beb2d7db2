//! `ims image favorite add|remove|list`: the signed-in user's frequently used images.

use clap::Subcommand;
use ims_client::{FavoriteImage, Image};

use super::image::IdArg;
use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum FavoriteCommand {
    /// Put an image on your favourites list (no change if it is already there).
    Add(IdArg),
    /// Take an image off your favourites list.
    Remove(IdArg),
    /// List your favourite images that you can see now, most recently added first.
    List,
}

pub async fn run(ctx: &Ctx, command: FavoriteCommand) -> anyhow::Result<()> {
    match command {
        FavoriteCommand::Add(a) => {
            let image = ctx.client.add_favorite(&a.id).await?;
            ctx.print(&output::image(&image, ctx.output))
        }
        FavoriteCommand::Remove(a) => Ok(ctx.client.remove_favorite(&a.id).await?),
        FavoriteCommand::List => ctx.print(&render(&ctx.client.favorites().await?, ctx.output)),
    }
}

/// Moves the caller's favourite images to the front of `images`, in favourites order (most recently
/// added first); the other images keep their order.
pub async fn put_favorites_first(ctx: &Ctx, images: &mut Vec<Image>) -> anyhow::Result<()> {
    let favorites = ctx.client.favorites().await?;
    let rank = |image: &Image| favorites.iter().position(|f| f.image_id == image.id).unwrap_or(usize::MAX);
    images.sort_by_key(rank);
    Ok(())
}

fn render(favorites: &[FavoriteImage], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(favorites),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Name", "Status", "Type", "Added At"]);
            for f in favorites {
                t.row([
                    f.image_id.clone(),
                    f.image.name.clone().unwrap_or_default(),
                    f.image.status.clone(),
                    f.image.property("__imagetype").unwrap_or_default().to_string(),
                    f.added_at.clone(),
                ]);
            }
            t.render()
        }
    }
}
