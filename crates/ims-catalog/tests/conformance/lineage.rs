//! Lineage columns and reading image records in any state.

use ims_catalog::{ImageStanding, ImageStatus, Lineage, SourceType};

use crate::support::*;
use crate::Backend;

pub async fn check_lineage_round_trips_through_create_and_save(b: &Backend) {
    let c = &b.catalog;
    let parent = image("p1", "parent");
    create(c, &parent).await;
    let mut img = image("p1", "child");
    img.lineage = Lineage::derived(SourceType::Copy, parent.id);
    create(c, &img).await;
    assert_eq!(c.images.get(img.id).await.unwrap().lineage, img.lineage);
    let listed = list(c, &query(viewer("p1"))).await;
    assert!(listed.iter().any(|i| i.id == img.id && i.lineage == img.lineage), "lists carry lineage");

    img.lineage = Lineage::bucket_object(SourceType::QuickImport, "bucket", "dir/disk.zvhd2");
    c.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    let got = c.images.get(img.id).await.unwrap();
    assert_eq!(got.lineage.source_type, Some(SourceType::QuickImport));
    assert_eq!(got.lineage.source_ref.as_deref(), Some("bucket:dir/disk.zvhd2"));
    assert_eq!(got.lineage.parent_id, None);

    img.lineage = Lineage::server("server-1", Some(parent.id));
    c.images.save(&img, &[ImageStatus::Queued], &image_event(img.id)).await.unwrap();
    assert_eq!(c.images.get(img.id).await.unwrap().lineage, img.lineage);
    assert_eq!(img.lineage.source_type.unwrap().as_str(), ims_catalog::SOURCE_TYPE_SERVER);
}

pub async fn check_any_state_reads_live_binned_and_deleted_images(b: &Backend) {
    let c = &b.catalog;
    assert!(c.lineage.any_state(uuid::Uuid::new_v4()).await.unwrap().is_none(), "never existed");

    let mut live = image("p1", "live");
    live.lineage = Lineage::upload();
    create(c, &live).await;
    let (got, standing) = c.lineage.any_state(live.id).await.unwrap().unwrap();
    assert_eq!((got, standing), (live.clone(), ImageStanding::Live));

    let mut binned = image("p1", "binned");
    binned.status = ImageStatus::Active;
    binned.disk_format = Some("raw".into());
    binned.container_format = Some("bare".into());
    binned.lineage = Lineage::derived(SourceType::Copy, live.id);
    create(c, &binned).await;
    c.recycle_bin.move_to_bin(binned.id, ImageStatus::Active, t(3), t(4), &image_event(binned.id)).await.unwrap();
    let (got, standing) = c.lineage.any_state(binned.id).await.unwrap().unwrap();
    assert_eq!(standing, ImageStanding::Binned);
    assert_eq!(got.status, ImageStatus::Active, "the status before binning");
    assert_eq!(got.lineage, binned.lineage);

    let mut deleted = image("p1", "deleted");
    deleted.properties.insert("k".into(), "v".into());
    create(c, &deleted).await;
    deleted.status = ImageStatus::Deleted;
    c.images.save(&deleted, &[ImageStatus::Queued], &image_event(deleted.id)).await.unwrap();
    let (got, standing) = c.lineage.any_state(deleted.id).await.unwrap().unwrap();
    assert_eq!(standing, ImageStanding::Deleted);
    assert_eq!(got.status, ImageStatus::Deleted);
    assert_eq!(got.properties.get("k").map(String::as_str), Some("v"));

    c.recycle_bin.purge(binned.id, None, &image_event(binned.id)).await.unwrap();
    let (_, standing) = c.lineage.any_state(binned.id).await.unwrap().unwrap();
    assert_eq!(standing, ImageStanding::Deleted, "purged: deleted for good");
}
