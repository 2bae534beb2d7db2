//! Every list filter. The viewer is an admin so that visibility plays no part.

use ims_catalog::{Catalog, Image, ImageQuery, ImageStatus, TimeFilter, TimeOp};

use crate::support::*;
use crate::Backend;

fn q() -> ImageQuery {
    query(admin("admin"))
}

/// A change applied to a fresh image.
type Edit = Box<dyn Fn(&mut Image)>;

/// Creates one image per `(name, edit)`.
async fn images(c: &Catalog, specs: Vec<(&str, Edit)>) -> Vec<Image> {
    let mut out = Vec::new();
    for (name, edit) in specs {
        let mut img = image("p1", name);
        edit(&mut img);
        create(c, &img).await;
        out.push(img);
    }
    out
}

fn keep(_: &mut Image) {}

pub async fn check_filter_names_ids_owner(b: &Backend) {
    let c = &b.catalog;
    let imgs = images(
        c,
        vec![
            ("a", Box::new(keep)),
            ("b", Box::new(|i: &mut Image| i.owner = "p2".into())),
            ("c", Box::new(keep)),
            ("a", Box::new(|i: &mut Image| i.owner = "p2".into())),
            ("with, comma", Box::new(keep)),
        ],
    )
    .await;
    let mut nameless = image("p1", "x");
    nameless.name = None;
    create(c, &nameless).await;

    let mut f = q();
    f.names = vec!["a".into()];
    assert_eq!(list(c, &f).await.len(), 2);
    f.names = vec!["a".into(), "c".into(), "with, comma".into(), "nope".into()];
    assert_eq!(list(c, &f).await.len(), 4);

    let mut f = q();
    f.ids = vec![imgs[1].id, imgs[2].id, uuid::Uuid::new_v4()];
    let mut got = ids(&list(c, &f).await);
    got.sort();
    let mut want = vec![imgs[1].id, imgs[2].id];
    want.sort();
    assert_eq!(got, want);

    let mut f = q();
    f.owner = Some("p2".into());
    assert_eq!(names(c, &f).await, set(&["a", "b"]));
    f.names = vec!["b".into()];
    assert_eq!(names(c, &f).await, set(&["b"]));
    f.owner = Some("nobody".into());
    assert!(list(c, &f).await.is_empty());
}

pub async fn check_filter_statuses_and_formats(b: &Backend) {
    let c = &b.catalog;
    let spec = |status: ImageStatus, disk: Option<&'static str>, container: Option<&'static str>| -> Edit {
        Box::new(move |i: &mut Image| {
            i.status = status;
            i.disk_format = disk.map(str::to_string);
            i.container_format = container.map(str::to_string);
        })
    };
    images(
        c,
        vec![
            ("queued", spec(ImageStatus::Queued, None, None)),
            ("active_qcow2", spec(ImageStatus::Active, Some("qcow2"), Some("bare"))),
            ("active_raw", spec(ImageStatus::Active, Some("raw"), Some("ovf"))),
            ("deactivated_vhd", spec(ImageStatus::Deactivated, Some("vhd"), Some("bare"))),
            ("saving_qcow2", spec(ImageStatus::Saving, Some("qcow2"), Some("docker"))),
        ],
    )
    .await;
    let mut f = q();
    f.statuses = vec![ImageStatus::Active];
    assert_eq!(names(c, &f).await, set(&["active_qcow2", "active_raw"]));
    f.statuses = vec![ImageStatus::Active, ImageStatus::Deactivated, ImageStatus::Killed];
    assert_eq!(names(c, &f).await, set(&["active_qcow2", "active_raw", "deactivated_vhd"]));

    let mut f = q();
    f.disk_formats = vec!["qcow2".into()];
    assert_eq!(names(c, &f).await, set(&["active_qcow2", "saving_qcow2"]));
    f.disk_formats = vec!["qcow2".into(), "vhd".into()];
    assert_eq!(names(c, &f).await, set(&["active_qcow2", "saving_qcow2", "deactivated_vhd"]));

    let mut f = q();
    f.container_formats = vec!["bare".into()];
    assert_eq!(names(c, &f).await, set(&["active_qcow2", "deactivated_vhd"]));
    f.container_formats = vec!["ovf".into(), "docker".into()];
    assert_eq!(names(c, &f).await, set(&["active_raw", "saving_qcow2"]));
    f.disk_formats = vec!["qcow2".into()];
    assert_eq!(names(c, &f).await, set(&["saving_qcow2"]));
}

pub async fn check_filter_protected_and_os_hidden(b: &Backend) {
    let c = &b.catalog;
    let spec = |protected: bool, hidden: bool| -> Edit {
        Box::new(move |i: &mut Image| {
            i.protected = protected;
            i.os_hidden = hidden;
        })
    };
    images(
        c,
        vec![
            ("plain", spec(false, false)),
            ("protected", spec(true, false)),
            ("hidden", spec(false, true)),
            ("protected_hidden", spec(true, true)),
        ],
    )
    .await;
    assert_eq!(names(c, &q()).await, set(&["plain", "protected"]), "hidden images are excluded by default");
    let mut f = q();
    f.os_hidden = Some(true);
    assert_eq!(names(c, &f).await, set(&["hidden", "protected_hidden"]));
    f.os_hidden = Some(false);
    assert_eq!(names(c, &f).await, set(&["plain", "protected"]));
    f.protected = Some(true);
    assert_eq!(names(c, &f).await, set(&["protected"]));
    f.os_hidden = Some(true);
    assert_eq!(names(c, &f).await, set(&["protected_hidden"]));
    f.protected = Some(false);
    assert_eq!(names(c, &f).await, set(&["hidden"]));
}

pub async fn check_filter_tags_and_properties(b: &Backend) {
    let c = &b.catalog;
    let spec = |tags: &'static [&'static str], props: &'static [(&'static str, &'static str)]| -> Edit {
        Box::new(move |i: &mut Image| {
            i.tags = tags.iter().map(|t| t.to_string()).collect();
            i.properties = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        })
    };
    images(
        c,
        vec![
            ("xy", spec(&["x", "y"], &[("os", "linux"), ("arch", "x86_64")])),
            ("x", spec(&["x"], &[("os", "linux")])),
            ("y", spec(&["y"], &[("os", "windows"), ("arch", "x86_64")])),
            ("none", spec(&[], &[])),
        ],
    )
    .await;
    let tagged = |tags: &[&str]| {
        let mut f = q();
        f.tags = tags.iter().map(|t| t.to_string()).collect();
        f
    };
    assert_eq!(names(c, &tagged(&["x"])).await, set(&["xy", "x"]));
    assert_eq!(names(c, &tagged(&["x", "y"])).await, set(&["xy"]), "every tag must be present");
    assert!(names(c, &tagged(&["x", "z"])).await.is_empty());

    let with = |props: &[(&str, &str)]| {
        let mut f = q();
        f.properties = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        f
    };
    assert_eq!(names(c, &with(&[("os", "linux")])).await, set(&["xy", "x"]));
    assert_eq!(names(c, &with(&[("os", "linux"), ("arch", "x86_64")])).await, set(&["xy"]));
    assert_eq!(names(c, &with(&[("arch", "x86_64")])).await, set(&["xy", "y"]));
    assert!(names(c, &with(&[("os", "mac")])).await.is_empty());
    assert!(names(c, &with(&[("linux", "os")])).await.is_empty(), "key and value are not interchangeable");

    let mut f = with(&[("arch", "x86_64")]);
    f.tags = vec!["y".into()];
    assert_eq!(names(c, &f).await, set(&["xy", "y"]));
    f.tags.push("x".into());
    assert_eq!(names(c, &f).await, set(&["xy"]));
}

pub async fn check_filter_size(b: &Backend) {
    let c = &b.catalog;
    let sized = |size: Option<i64>| -> Edit { Box::new(move |i: &mut Image| i.size = size) };
    images(
        c,
        vec![
            ("none", sized(None)),
            ("zero", sized(Some(0))),
            ("ten", sized(Some(10))),
            ("twenty", sized(Some(20))),
            ("big", sized(Some(1 << 40))),
        ],
    )
    .await;
    let sizes = |min: Option<i64>, max: Option<i64>| {
        let mut f = q();
        f.size_min = min;
        f.size_max = max;
        f
    };
    assert_eq!(names(c, &sizes(Some(10), None)).await, set(&["ten", "twenty", "big"]), "size_min is inclusive");
    assert_eq!(names(c, &sizes(None, Some(10))).await, set(&["zero", "ten"]), "size_max is inclusive");
    assert_eq!(names(c, &sizes(Some(5), Some(20))).await, set(&["ten", "twenty"]));
    assert_eq!(names(c, &sizes(Some(0), None)).await, set(&["zero", "ten", "twenty", "big"]), "no size never matches");
    assert!(names(c, &sizes(Some(21), Some(20))).await.is_empty());
}

pub async fn check_filter_times(b: &Backend) {
    let c = &b.catalog;
    let at = |created: i64, updated: i64| -> Edit {
        Box::new(move |i: &mut Image| {
            i.created_at = t(created);
            i.updated_at = t(updated);
        })
    };
    images(c, vec![("c0", at(0, 300)), ("c10", at(10, 200)), ("c20", at(20, 100))]).await;
    let created = |filters: &[(TimeOp, chrono::DateTime<chrono::Utc>)]| {
        let mut f = q();
        f.created_at = filters.iter().map(|&(op, at)| TimeFilter { op, at }).collect();
        f
    };
    assert_eq!(names(c, &created(&[(TimeOp::Gt, t(10))])).await, set(&["c20"]));
    assert_eq!(names(c, &created(&[(TimeOp::Gte, t(10))])).await, set(&["c10", "c20"]));
    assert_eq!(names(c, &created(&[(TimeOp::Eq, t(10))])).await, set(&["c10"]));
    assert_eq!(names(c, &created(&[(TimeOp::Neq, t(10))])).await, set(&["c0", "c20"]));
    assert_eq!(names(c, &created(&[(TimeOp::Lt, t(10))])).await, set(&["c0"]));
    assert_eq!(names(c, &created(&[(TimeOp::Lte, t(10))])).await, set(&["c0", "c10"]));
    assert_eq!(names(c, &created(&[(TimeOp::Gte, t(0)), (TimeOp::Lt, t(20))])).await, set(&["c0", "c10"]));
    // Comparisons are by instant, at full precision: one nanosecond either side changes the answer.
    let just_after = t(10) + chrono::Duration::nanoseconds(1);
    assert_eq!(names(c, &created(&[(TimeOp::Lt, just_after)])).await, set(&["c0", "c10"]));
    assert_eq!(names(c, &created(&[(TimeOp::Eq, just_after)])).await, set(&[]));

    let updated = |filters: &[(TimeOp, chrono::DateTime<chrono::Utc>)]| {
        let mut f = q();
        f.updated_at = filters.iter().map(|&(op, at)| TimeFilter { op, at }).collect();
        f
    };
    assert_eq!(names(c, &updated(&[(TimeOp::Gt, t(100))])).await, set(&["c0", "c10"]));
    assert_eq!(names(c, &updated(&[(TimeOp::Lte, t(200))])).await, set(&["c10", "c20"]));
    assert_eq!(names(c, &updated(&[(TimeOp::Eq, t(300))])).await, set(&["c0"]));
    assert_eq!(names(c, &updated(&[(TimeOp::Neq, t(300))])).await, set(&["c10", "c20"]));
    assert_eq!(names(c, &updated(&[(TimeOp::Gte, t(300))])).await, set(&["c0"]));
    assert_eq!(names(c, &updated(&[(TimeOp::Lt, t(100))])).await, set(&[]));
    let mut both = created(&[(TimeOp::Gt, t(0))]);
    both.updated_at = vec![TimeFilter { op: TimeOp::Gt, at: t(150) }];
    assert_eq!(names(c, &both).await, set(&["c10"]));
}

pub async fn check_filters_combine(b: &Backend) {
    let c = &b.catalog;
    let spec = |owner: &'static str, status: ImageStatus, tag: &'static str, size: i64| -> Edit {
        Box::new(move |i: &mut Image| {
            i.owner = owner.into();
            i.status = status;
            i.tags.insert(tag.into());
            i.size = Some(size);
            i.visibility = ims_catalog::Visibility::Private;
        })
    };
    images(
        c,
        vec![
            ("hit", spec("alpha", ImageStatus::Active, "gold", 50)),
            ("wrong_status", spec("alpha", ImageStatus::Queued, "gold", 50)),
            ("wrong_tag", spec("alpha", ImageStatus::Active, "silver", 50)),
            ("too_small", spec("alpha", ImageStatus::Active, "gold", 5)),
            ("wrong_owner", spec("beta", ImageStatus::Active, "gold", 50)),
        ],
    )
    .await;
    let mut f = query(viewer("alpha"));
    f.statuses = vec![ImageStatus::Active];
    f.tags = vec!["gold".into()];
    f.size_min = Some(10);
    assert_eq!(names(c, &f).await, set(&["hit"]), "filters AND together and with visibility");
}

pub async fn check_filter_ims_additions(b: &Backend) {
    use ims_catalog::Visibility;
    let c = &b.catalog;
    images(
        c,
        vec![
            ("reg-absent", Box::new(keep)),
            ("reg-true", Box::new(|i: &mut Image| {
                i.properties.insert("__isregistered".into(), "true".into());
            })),
            ("reg-false", Box::new(|i: &mut Image| {
                i.properties.insert("__isregistered".into(), "false".into());
                i.owner = "p2".into();
                i.visibility = Visibility::Public;
            })),
            ("disk-ram", Box::new(|i: &mut Image| {
                i.min_disk = 40;
                i.min_ram = 1024;
                i.owner = "p2".into();
                i.visibility = Visibility::Private;
            })),
        ],
    )
    .await;
    let mut qq = q();
    qq.properties_or_absent = vec![("__isregistered".into(), "true".into())];
    assert_eq!(names(c, &qq).await, set(&["reg-absent", "reg-true", "disk-ram"]));
    let mut qq = q();
    qq.exclude_owner = Some("p1".into());
    assert_eq!(names(c, &qq).await, set(&["reg-false", "disk-ram"]));
    let mut qq = q();
    qq.exclude_visibilities = vec![Visibility::Public, Visibility::Private];
    assert_eq!(names(c, &qq).await, set(&["reg-absent", "reg-true"]));
    let mut qq = q();
    qq.min_disk = Some(40);
    assert_eq!(names(c, &qq).await, set(&["disk-ram"]));
    qq.min_ram = Some(512);
    assert!(names(c, &qq).await.is_empty());
}
