//! Lineage: the chain of images an image was derived from, as the caller may see it.

use std::collections::HashSet;

use ims_catalog::{Image, ImageStanding, Lineage, Visibility};
use uuid::Uuid;

use crate::{ImageService, Policy, RequestContext, Result};

/// The read-only properties that show an image's lineage in its Glance and IMS records.
pub const SOURCE_TYPE_PROPERTY: &str = "os_ims_source_type";
pub const SOURCE_REF_PROPERTY: &str = "os_ims_source_ref";
pub const PARENT_ID_PROPERTY: &str = "os_ims_parent_id";
pub const LINEAGE_PROPERTIES: [&str; 3] = [SOURCE_TYPE_PROPERTY, SOURCE_REF_PROPERTY, PARENT_ID_PROPERTY];

/// Most images an ancestry walk visits (the image itself included) before it stops.
pub const MAX_ANCESTRY_DEPTH: usize = 64;

/// One link of an ancestry chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ancestor {
    /// An image the caller may see, live, binned or deleted.
    Visible { image: Box<Image>, standing: ImageStanding },
    /// An image the caller may not see: only its id is shown, and the walk stops there.
    Hidden { id: Uuid },
    /// A parent id that names no image record.
    Missing { id: Uuid },
}

impl Ancestor {
    pub fn id(&self) -> Uuid {
        match self {
            Ancestor::Visible { image, .. } => image.id,
            Ancestor::Hidden { id } | Ancestor::Missing { id } => *id,
        }
    }
}

/// The chain from an image up to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestry {
    /// The image first, then its parent, its parent's parent, and so on.
    pub chain: Vec<Ancestor>,
    /// Why the walk ended before a root (an image without parent), if it did: `hidden`, `missing`,
    /// `cycle` or `depth`.
    pub stopped: Option<&'static str>,
}

/// `url` as lineage records it: without user name, password, query or fragment. A string that is not a
/// URL is kept up to its first `?` or `#`.
pub fn url_without_secrets(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// The lineage of data fetched from `url` by `web-download`.
pub fn web_download_lineage(url: &str) -> Lineage {
    Lineage::web_download(&url_without_secrets(url))
}

impl ImageService {
    /// The ancestry of image `id`: the image (which the caller must be able to see, else `NotFound`)
    /// and then each parent in turn. A parent the caller may not see appears by id only and ends the
    /// walk; so does a parent id with no record, a repeated id (a cycle) and the depth bound
    /// [`MAX_ANCESTRY_DEPTH`]. Binned and deleted parents appear with their standing; only their owner, an
    /// admin, or anyone for an image that was public or community may see them. Read-only.
    pub async fn ancestry(&self, ctx: &RequestContext, id: Uuid) -> Result<Ancestry> {
        let image = self.get(ctx, id).await?;
        let mut seen = HashSet::from([image.id]);
        let mut next = image.lineage.parent_id;
        let mut chain = vec![Ancestor::Visible { image: Box::new(image), standing: ImageStanding::Live }];
        while let Some(parent) = next {
            if !seen.insert(parent) {
                return Ok(Ancestry { chain, stopped: Some("cycle") });
            }
            if chain.len() >= MAX_ANCESTRY_DEPTH {
                return Ok(Ancestry { chain, stopped: Some("depth") });
            }
            let Some((image, standing)) = self.catalog.lineage.any_state(parent).await? else {
                chain.push(Ancestor::Missing { id: parent });
                return Ok(Ancestry { chain, stopped: Some("missing") });
            };
            if !self.may_see_ancestor(ctx, &image, standing).await? {
                chain.push(Ancestor::Hidden { id: parent });
                return Ok(Ancestry { chain, stopped: Some("hidden") });
            }
            next = image.lineage.parent_id;
            chain.push(Ancestor::Visible { image: Box::new(image), standing });
        }
        Ok(Ancestry { chain, stopped: None })
    }

    async fn may_see_ancestor(&self, ctx: &RequestContext, image: &Image, standing: ImageStanding) -> Result<bool> {
        if standing == ImageStanding::Live {
            let membership = self.membership(ctx, image).await?;
            return Ok(Policy::can_see(ctx, image, membership.as_ref()));
        }
        Ok(ctx.is_admin()
            || ctx.project_id() == Some(image.owner.as_str())
            || matches!(image.visibility, Visibility::Public | Visibility::Community))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(
            url_without_secrets("https://user:secret@example.com/images/a.qcow2?token=x#frag"),
            "https://example.com/images/a.qcow2"
        );
        assert_eq!(url_without_secrets("http://example.com:8080/a.img"), "http://example.com:8080/a.img");
        assert_eq!(url_without_secrets("not a url?sig=1"), "not a url");
    }
}
