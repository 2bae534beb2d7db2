//! Frequently used images (`/v1/cloudimages/favorites`): the signed-in user's favourites list.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Client, Image, Result};

/// One image of the favourites list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FavoriteImage {
    pub image_id: String,
    /// When the user put the image on the list (`YYYY-MM-DDThh:mm:ssZ`).
    pub added_at: String,
    /// The image as the IMS API renders it (`__imagetype` and the other IMS fields are in `properties`).
    pub image: Image,
}

#[derive(Deserialize)]
struct FavoritesBody {
    favorites: Vec<FavoriteImage>,
}

#[derive(Deserialize)]
struct AddedBody {
    image: Image,
}

impl Client {
    /// `GET /v1/cloudimages/favorites`: the favourite images the caller can see now, most recently
    /// added first.
    pub async fn favorites(&self) -> Result<Vec<FavoriteImage>> {
        let url = self.url(&["v1", "cloudimages", "favorites"]);
        let body: FavoritesBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.favorites)
    }

    /// `POST /v1/cloudimages/favorites {"image_id"}`: puts the image on the list (idempotent) and
    /// returns it.
    pub async fn add_favorite(&self, image_id: &str) -> Result<Image> {
        let url = self.url(&["v1", "cloudimages", "favorites"]);
        let body: AddedBody =
            self.execute_json(self.request(Method::POST, url).json(&json!({"image_id": image_id}))).await?;
        Ok(body.image)
    }

    /// `DELETE /v1/cloudimages/favorites/{image_id}`: takes the image off the list (404 if not on it).
    pub async fn remove_favorite(&self, image_id: &str) -> Result<()> {
        let url = self.url(&["v1", "cloudimages", "favorites", image_id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }
}
