//! Sort keys, directions, NULL placement and keyset paging by marker, checked against an oracle sort.

use ims_catalog::query::VisibilityFilter;
use ims_catalog::{Catalog, Image, ImageStatus, SortDir, SortKey, Visibility};
use uuid::Uuid;

use crate::support::*;
use crate::Backend;

const KEYS: [SortKey; 8] = [
    SortKey::Name,
    SortKey::Status,
    SortKey::ContainerFormat,
    SortKey::DiskFormat,
    SortKey::Size,
    SortKey::Id,
    SortKey::CreatedAt,
    SortKey::UpdatedAt,
];

/// 57 images with many ties and NULLs in every nullable key, from a fixed pseudo-random sequence.
async fn fixture(c: &Catalog) -> Vec<Image> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let statuses =
        [ImageStatus::Queued, ImageStatus::Active, ImageStatus::Saving, ImageStatus::Deactivated, ImageStatus::Killed];
    let mut all = Vec::new();
    for i in 0..57 {
        let mut img = image("p1", "");
        img.name = match next(6) {
            0 => None,
            n => Some(["alpha", "Beta", "beta", "gamma", "delta"][n as usize - 1].to_string()),
        };
        img.status = statuses[next(statuses.len() as u64) as usize];
        img.disk_format = [None, Some("qcow2"), Some("raw"), Some("vhd")][next(4) as usize].map(str::to_string);
        img.container_format = [None, Some("bare"), Some("ovf")][next(3) as usize].map(str::to_string);
        img.size = [None, Some(0), Some(10), Some(1 << 30), Some(1 << 40)][next(5) as usize];
        // Ties on the timestamps too, and times before and after t(0).
        img.created_at = t(next(12) as i64 - 6);
        img.updated_at = t(i / 4);
        img.visibility = [Visibility::Private, Visibility::Public, Visibility::Shared][next(3) as usize];
        create(c, &img).await;
        all.push(img);
    }
    all
}

fn sorted(images: &[Image], sort: &[(SortKey, SortDir)]) -> Vec<Uuid> {
    let mut v = images.to_vec();
    v.sort_by(oracle_order(sort));
    ids(&v)
}

fn sorted_query(sort: &[(SortKey, SortDir)]) -> ims_catalog::ImageQuery {
    let mut q = query(viewer("p1"));
    q.sort = sort.to_vec();
    q
}

pub async fn check_default_sort_is_newest_first(b: &Backend) {
    let c = &b.catalog;
    let all = fixture(c).await;
    let got = ids(&list(c, &query(viewer("p1"))).await);
    assert_eq!(got, sorted(&all, &[(SortKey::CreatedAt, SortDir::Desc)]));
    assert_eq!(got, sorted(&all, &[]));
}

pub async fn check_sort_every_key_both_directions(b: &Backend) {
    let c = &b.catalog;
    let all = fixture(c).await;
    for key in KEYS {
        for dir in [SortDir::Asc, SortDir::Desc] {
            let sort = [(key, dir)];
            let got = list(c, &sorted_query(&sort)).await;
            assert_eq!(ids(&got), sorted(&all, &sort), "sort by {key:?} {dir:?}");
        }
    }
    // NULL is the smallest value: first ascending, last descending.
    let got = list(c, &sorted_query(&[(SortKey::Size, SortDir::Asc)])).await;
    assert_eq!(got[0].size, None);
    let got = list(c, &sorted_query(&[(SortKey::Name, SortDir::Desc)])).await;
    assert_eq!(got.last().and_then(|i| i.name.clone()), None);
}

/// Orders with several keys, mixed directions, repeated keys and keys after `id`.
fn multi_key_orders() -> Vec<Vec<(SortKey, SortDir)>> {
    use SortDir::*;
    use SortKey::*;
    vec![
        vec![(Size, Desc), (Name, Asc)],
        vec![(Name, Asc), (Size, Desc)],
        vec![(Status, Asc), (CreatedAt, Desc)],
        vec![(DiskFormat, Desc), (ContainerFormat, Asc)],
        vec![(ContainerFormat, Desc), (Size, Asc), (Name, Desc)],
        vec![(Name, Desc), (DiskFormat, Asc), (UpdatedAt, Desc), (Size, Asc)],
        vec![(UpdatedAt, Asc), (CreatedAt, Desc)],
        vec![(Name, Asc), (Name, Desc), (Status, Desc)],
        vec![(DiskFormat, Asc), (Id, Desc), (Name, Asc)],
    ]
}

pub async fn check_paging_by_marker_single_keys(b: &Backend) {
    let c = &b.catalog;
    let all = fixture(c).await;
    let mut orders = vec![vec![]];
    for key in KEYS {
        for dir in [SortDir::Asc, SortDir::Desc] {
            orders.push(vec![(key, dir)]);
        }
    }
    for sort in orders {
        let got = walk(c, &sorted_query(&sort), 10).await;
        assert_eq!(got.len(), 57, "{sort:?}: every image once");
        assert_eq!(ids(&got), sorted(&all, &sort), "{sort:?}: pages in order, no repeats, no gaps");
    }
}

pub async fn check_paging_by_marker_multiple_keys(b: &Backend) {
    let c = &b.catalog;
    let all = fixture(c).await;
    for sort in multi_key_orders() {
        let got = walk(c, &sorted_query(&sort), 10).await;
        assert_eq!(ids(&got), sorted(&all, &sort), "{sort:?}");
        // Other page sizes agree.
        for page in [1, 7, 57, 100] {
            assert_eq!(ids(&walk(c, &sorted_query(&sort), page).await), sorted(&all, &sort), "{sort:?} by {page}");
        }
    }
}

pub async fn check_paging_with_filters(b: &Backend) {
    let c = &b.catalog;
    let all = fixture(c).await;
    // Another viewer sees a subset: the public images.
    let visible: Vec<Image> = all.iter().filter(|i| i.visibility == Visibility::Public).cloned().collect();
    assert!(visible.len() > 10, "fixture has several pages of public images");
    for sort in [vec![], vec![(SortKey::Name, SortDir::Asc), (SortKey::Size, SortDir::Desc)]] {
        let mut q = query(viewer("other"));
        q.sort = sort.clone();
        assert_eq!(ids(&walk(c, &q, 4).await), sorted(&visible, &sort), "{sort:?}");
    }
    // A filter on a key value, and a marker that the filter excludes: the page still starts after it.
    let mut q = query(viewer("p1"));
    q.statuses = vec![ImageStatus::Active];
    q.sort = vec![(SortKey::Size, SortDir::Asc)];
    let actives: Vec<Image> = all.iter().filter(|i| i.status == ImageStatus::Active).cloned().collect();
    assert_eq!(ids(&walk(c, &q, 3).await), sorted(&actives, &q.sort));
    let order = sorted(&all, &q.sort);
    let marker = all.iter().find(|i| i.status != ImageStatus::Active).unwrap();
    let pos = order.iter().position(|id| *id == marker.id).unwrap();
    let expected: Vec<Uuid> =
        order[pos + 1..].iter().filter(|id| actives.iter().any(|a| a.id == **id)).copied().collect();
    q.marker = Some(marker.id);
    assert_eq!(ids(&list(c, &q).await), expected);
    // Limits bound the page.
    let mut q = query(viewer("p1"));
    q.limit = 0;
    assert!(list(c, &q).await.is_empty());
    q.limit = 5;
    assert_eq!(list(c, &q).await.len(), 5);
    q.visibility = Some(VisibilityFilter::All);
    q.limit = 1000;
    assert_eq!(list(c, &q).await.len(), 57);
}

pub async fn check_unknown_marker_is_invalid(b: &Backend) {
    let c = &b.catalog;
    let all = fixture(c).await;
    let mut q = query(viewer("p1"));
    q.marker = Some(Uuid::new_v4());
    expect_invalid(c.images.list(&q).await);

    let mut gone = all[0].clone();
    gone.status = ImageStatus::Deleted;
    c.images.save(&gone, &[all[0].status], &image_event(gone.id)).await.unwrap();
    q.marker = Some(gone.id);
    expect_invalid(c.images.list(&q).await);

    // The last image as marker gives an empty page.
    let last = list(c, &query(viewer("p1"))).await.pop().unwrap();
    q.marker = Some(last.id);
    assert!(list(c, &q).await.is_empty());
}
