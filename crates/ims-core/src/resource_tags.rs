//! The IMS API's key/value image tags (`ResourceTag`), separate from Glance's string tags.

use std::collections::BTreeMap;

use ims_catalog::{CatalogError, Image, ResourceTag};
use uuid::Uuid;

use crate::images::ImageService;
use crate::{CoreError, Policy, RequestContext, Result};

/// Tags per image.
pub const MAX_TAGS_PER_IMAGE: usize = 20;
/// Longest key (characters).
pub const MAX_KEY: usize = 128;
/// Longest value (characters).
pub const MAX_VALUE: usize = 255;

/// A tag condition of a `resource_instances/action` query: the image has `key` with any of `values`
/// (any value at all when `values` is empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagCondition {
    pub key: String,
    pub values: Vec<String>,
}

impl TagCondition {
    fn holds(&self, tags: &[ResourceTag]) -> bool {
        tags.iter().any(|t| t.key == self.key && (self.values.is_empty() || self.values.contains(&t.value)))
    }
}

/// A query of the caller project's images by tags (all conditions combine with AND).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagQuery {
    /// Every condition holds.
    pub tags: Vec<TagCondition>,
    /// At least one condition holds (when not empty).
    pub tags_any: Vec<TagCondition>,
    /// Not every condition holds (images satisfying all of them are left out).
    pub not_tags: Vec<TagCondition>,
    /// None of the conditions holds.
    pub not_tags_any: Vec<TagCondition>,
    /// `(key, value)` on the image itself: `resource_name` matches the image name (substring).
    pub matches: Vec<(String, String)>,
    /// Only images without any tag.
    pub without_any_tag: bool,
    pub offset: usize,
    pub limit: usize,
}

impl TagQuery {
    fn selects(&self, image: &Image, tags: &[ResourceTag]) -> bool {
        if self.without_any_tag && !tags.is_empty() {
            return false;
        }
        if !self.tags.iter().all(|c| c.holds(tags)) {
            return false;
        }
        if !self.tags_any.is_empty() && !self.tags_any.iter().any(|c| c.holds(tags)) {
            return false;
        }
        if !self.not_tags.is_empty() && self.not_tags.iter().all(|c| c.holds(tags)) {
            return false;
        }
        if self.not_tags_any.iter().any(|c| c.holds(tags)) {
            return false;
        }
        self.matches.iter().all(|(key, value)| match key.as_str() {
            "resource_name" => image.name.as_deref().unwrap_or("").contains(value.as_str()),
            _ => false,
        })
    }
}

/// Resource tag use cases, each authorized by [`Policy`].
#[derive(Clone)]
pub struct TagService {
    images: ImageService,
}

fn check_tag(tag: &ResourceTag) -> Result<()> {
    let key_len = tag.key.chars().count();
    if key_len == 0 || key_len > MAX_KEY {
        return Err(CoreError::Invalid(format!("Tag key must have 1 to {MAX_KEY} characters: {:?}", tag.key)));
    }
    if tag.value.chars().count() > MAX_VALUE {
        return Err(CoreError::Invalid(format!("Tag value must have at most {MAX_VALUE} characters")));
    }
    if tag.key.chars().any(|c| c.is_control() || matches!(c, '=' | '*' | '<' | '>' | '\\' | ',' | '|' | '/')) {
        return Err(CoreError::Invalid(format!("Tag key {:?} contains a forbidden character", tag.key)));
    }
    Ok(())
}

impl TagService {
    pub fn new(images: ImageService) -> TagService {
        TagService { images }
    }

    /// The tags of an image the caller may see.
    pub async fn list(&self, ctx: &RequestContext, image_id: Uuid) -> Result<Vec<ResourceTag>> {
        self.images.get(ctx, image_id).await?;
        Ok(self.images.catalog.resource_tags.list(image_id).await?)
    }

    /// Adds (or replaces the value of) `put` and removes `remove` atomically; the caller must be allowed
    /// to modify the image. With `require_existing`, removing a key the image does not have is `NotFound`.
    pub async fn change(
        &self,
        ctx: &RequestContext,
        image_id: Uuid,
        put: &[ResourceTag],
        remove: &[String],
        require_existing: bool,
    ) -> Result<Vec<ResourceTag>> {
        let image = self.images.get(ctx, image_id).await?;
        Policy::check_modify(ctx, &image)?;
        put.iter().try_for_each(check_tag)?;
        let current = self.images.catalog.resource_tags.list(image_id).await?;
        if require_existing {
            if let Some(missing) = remove.iter().find(|k| !current.iter().any(|t| &t.key == *k)) {
                return Err(CoreError::NotFound(format!("Tag {missing} not found on image {image_id}")));
            }
        }
        let mut keys: BTreeMap<&str, ()> = current.iter().map(|t| (t.key.as_str(), ())).collect();
        for k in remove {
            keys.remove(k.as_str());
        }
        for t in put {
            keys.insert(&t.key, ());
        }
        if keys.len() > MAX_TAGS_PER_IMAGE {
            return Err(CoreError::TooLarge(format!("An image may have at most {MAX_TAGS_PER_IMAGE} tags")));
        }
        let event = ctx.event("image.resource_tags.update", format!("image:{image_id}"));
        self.images.catalog.resource_tags.change(image_id, put, remove, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("No image found with ID {image_id}")),
            other => other.into(),
        })
    }

    /// Every key used on the caller project's images with the values it has, keys and values sorted.
    pub async fn project_tags(&self, ctx: &RequestContext) -> Result<Vec<(String, Vec<String>)>> {
        let caller = Policy::require_caller(ctx)?;
        let mut keys: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (_, tags) in self.images.catalog.resource_tags.of_project(&caller.project_id).await? {
            for t in tags {
                keys.entry(t.key).or_default().insert(t.value);
            }
        }
        Ok(keys.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect())
    }

    /// The caller project's images selected by `query`: `(total matching, the page)`, in creation order.
    pub async fn query(&self, ctx: &RequestContext, query: &TagQuery) -> Result<(usize, Vec<(Image, Vec<ResourceTag>)>)> {
        let caller = Policy::require_caller(ctx)?;
        let all = self.images.catalog.resource_tags.of_project(&caller.project_id).await?;
        let selected: Vec<_> = all.into_iter().filter(|(image, tags)| query.selects(image, tags)).collect();
        let total = selected.len();
        let page = selected.into_iter().skip(query.offset).take(query.limit).collect();
        Ok((total, page))
    }
}
