//! The visibility rule of `ImageQuery` (Glance's), for every kind of viewer, visibility filter and
//! member_status filter.
//!
//! The world: projects `alpha` (the viewer), `beta` (everyone else's images), `gamma`, and `admin`.

use chrono::Utc;
use ims_catalog::query::MemberStatusFilter as MS;
use ims_catalog::query::VisibilityFilter as VF;
use ims_catalog::{Catalog, Member, MemberStatus, Visibility};

use crate::support::*;
use crate::Backend;

const ALPHA_OWN: [&str; 4] = ["a_private", "a_shared", "a_community", "a_public"];

/// Creates the world; every image's name says what it is.
async fn world(c: &Catalog) {
    let images = [
        ("alpha", "a_private", Visibility::Private, None),
        ("alpha", "a_shared", Visibility::Shared, None),
        ("alpha", "a_community", Visibility::Community, None),
        ("alpha", "a_public", Visibility::Public, None),
        ("beta", "b_private", Visibility::Private, None),
        ("beta", "b_public", Visibility::Public, None),
        ("beta", "b_community", Visibility::Community, None),
        ("beta", "b_shared_none", Visibility::Shared, None),
        ("beta", "b_shared_pending", Visibility::Shared, Some(("alpha", MemberStatus::Pending))),
        ("beta", "b_shared_accepted", Visibility::Shared, Some(("alpha", MemberStatus::Accepted))),
        ("beta", "b_shared_rejected", Visibility::Shared, Some(("alpha", MemberStatus::Rejected))),
        // Membership only counts for shared images.
        ("beta", "b_private_member", Visibility::Private, Some(("alpha", MemberStatus::Accepted))),
        ("beta", "b_shared_gamma", Visibility::Shared, Some(("gamma", MemberStatus::Accepted))),
        ("admin", "admin_community", Visibility::Community, None),
    ];
    for (owner, name, visibility, member) in images {
        let mut img = image(owner, name);
        img.visibility = visibility;
        create(c, &img).await;
        if let Some((project, status)) = member {
            let now = Utc::now();
            let m = Member { image_id: img.id, member: project.into(), status, created_at: now, updated_at: now };
            c.members.add(&m, &event("member.create", &format!("image:{}", img.id))).await.unwrap();
        }
    }
}

async fn seen(
    c: &Catalog,
    v: ims_catalog::Viewer,
    vis: Option<VF>,
    ms: Option<MS>,
) -> std::collections::BTreeSet<String> {
    names(c, &with_visibility(query(v), vis, ms)).await
}

fn own_plus(extra: &[&str]) -> std::collections::BTreeSet<String> {
    let mut s = set(&ALPHA_OWN);
    s.extend(extra.iter().map(|x| x.to_string()));
    s
}

pub async fn check_visibility_project_viewer(b: &Backend) {
    let c = &b.catalog;
    world(c).await;
    let alpha = || viewer("alpha");
    assert_eq!(seen(c, alpha(), None, None).await, own_plus(&["b_public", "b_shared_accepted"]));
    assert_eq!(
        seen(c, alpha(), Some(VF::All), None).await,
        own_plus(&["b_public", "b_shared_accepted", "b_community", "admin_community"])
    );
    assert_eq!(
        seen(c, alpha(), Some(VF::Only(Visibility::Community)), None).await,
        set(&["a_community", "b_community", "admin_community"])
    );
    assert_eq!(seen(c, alpha(), Some(VF::Only(Visibility::Public)), None).await, set(&["a_public", "b_public"]));
    assert_eq!(seen(c, alpha(), Some(VF::Only(Visibility::Private)), None).await, set(&["a_private"]));
    assert_eq!(
        seen(c, alpha(), Some(VF::Only(Visibility::Shared)), None).await,
        set(&["a_shared", "b_shared_accepted"]),
        "shared: owned shared images plus accepted memberships"
    );
    // Another project sees its own membership only.
    assert_eq!(seen(c, viewer("gamma"), None, None).await, set(&["a_public", "b_public", "b_shared_gamma"]));
    // The owner sees all of its images, members or not, whatever member_status says.
    let beta_all = set(&[
        "b_private",
        "b_public",
        "b_community",
        "b_shared_none",
        "b_shared_pending",
        "b_shared_accepted",
        "b_shared_rejected",
        "b_private_member",
        "b_shared_gamma",
        "a_public",
    ]);
    assert_eq!(seen(c, viewer("beta"), None, None).await, beta_all);
    assert_eq!(seen(c, viewer("beta"), None, Some(MS::Only(MemberStatus::Pending))).await, beta_all);
}

pub async fn check_visibility_member_status(b: &Backend) {
    let c = &b.catalog;
    world(c).await;
    let alpha = || viewer("alpha");
    for (ms, shared) in [
        (MS::Only(MemberStatus::Accepted), vec!["b_shared_accepted"]),
        (MS::Only(MemberStatus::Pending), vec!["b_shared_pending"]),
        (MS::Only(MemberStatus::Rejected), vec!["b_shared_rejected"]),
        (MS::All, vec!["b_shared_pending", "b_shared_accepted", "b_shared_rejected"]),
    ] {
        let mut expected = own_plus(&["b_public"]);
        expected.extend(shared.iter().map(|s| s.to_string()));
        assert_eq!(seen(c, alpha(), None, Some(ms)).await, expected, "member_status {ms:?}");

        let mut expected = set(&["a_shared"]);
        expected.extend(shared.iter().map(|s| s.to_string()));
        assert_eq!(
            seen(c, alpha(), Some(VF::Only(Visibility::Shared)), Some(ms)).await,
            expected,
            "visibility shared, member_status {ms:?}"
        );
    }
    // A membership answer changes what the member sees at once.
    let pending = list(c, &with_visibility(query(alpha()), None, Some(MS::Only(MemberStatus::Pending)))).await;
    let pending = pending.iter().find(|i| i.name.as_deref() == Some("b_shared_pending")).unwrap();
    c.members.set_status(pending.id, "alpha", MemberStatus::Accepted, &event("member.update", "m")).await.unwrap();
    assert_eq!(
        seen(c, alpha(), Some(VF::Only(Visibility::Shared)), None).await,
        set(&["a_shared", "b_shared_accepted", "b_shared_pending"])
    );
}

pub async fn check_visibility_anonymous(b: &Backend) {
    let c = &b.catalog;
    world(c).await;
    let publics = set(&["a_public", "b_public"]);
    assert_eq!(seen(c, anonymous(), None, None).await, publics);
    assert_eq!(seen(c, anonymous(), Some(VF::All), Some(MS::All)).await, publics);
    assert_eq!(seen(c, anonymous(), Some(VF::Only(Visibility::Public)), None).await, publics);
    for v in [Visibility::Community, Visibility::Shared, Visibility::Private] {
        assert!(seen(c, anonymous(), Some(VF::Only(v)), None).await.is_empty(), "anonymous, {v}");
    }
}

pub async fn check_visibility_admin(b: &Backend) {
    let c = &b.catalog;
    world(c).await;
    let everything = set(&[
        "a_private",
        "a_shared",
        "a_community",
        "a_public",
        "b_private",
        "b_public",
        "b_community",
        "b_shared_none",
        "b_shared_pending",
        "b_shared_accepted",
        "b_shared_rejected",
        "b_private_member",
        "b_shared_gamma",
        "admin_community",
    ]);
    let mut default_view = everything.clone();
    default_view.remove("a_community");
    default_view.remove("b_community");
    let adm = || admin("admin");
    assert_eq!(seen(c, adm(), None, None).await, default_view, "community images of others only on request");
    assert_eq!(
        seen(c, adm(), None, Some(MS::Only(MemberStatus::Rejected))).await,
        default_view,
        "member_status does not restrict admins"
    );
    assert_eq!(seen(c, adm(), Some(VF::All), None).await, everything);
    assert_eq!(
        seen(c, adm(), Some(VF::Only(Visibility::Community)), None).await,
        set(&["a_community", "b_community", "admin_community"])
    );
    assert_eq!(
        seen(c, adm(), Some(VF::Only(Visibility::Shared)), None).await,
        set(&[
            "a_shared",
            "b_shared_none",
            "b_shared_pending",
            "b_shared_accepted",
            "b_shared_rejected",
            "b_shared_gamma"
        ])
    );
    assert_eq!(
        seen(c, adm(), Some(VF::Only(Visibility::Private)), None).await,
        set(&["a_private", "b_private", "b_private_member"])
    );
    // An admin of another project does not own admin_community.
    let mut other_admin = default_view.clone();
    other_admin.remove("admin_community");
    assert_eq!(seen(c, admin("beta"), None, None).await, {
        let mut s = other_admin;
        s.insert("b_community".into());
        s
    });
}

pub async fn check_marker_must_be_visible(b: &Backend) {
    let c = &b.catalog;
    world(c).await;
    let all = list(c, &with_visibility(query(admin("admin")), Some(VF::All), None)).await;
    let id = |name: &str| all.iter().find(|i| i.name.as_deref() == Some(name)).map(|i| i.id).unwrap();
    let try_marker = |v: ims_catalog::Viewer, name: &str| {
        let mut q = query(v);
        q.marker = Some(id(name));
        q
    };
    // Any image the viewer can see at all is a valid marker, even if this list's filters exclude it.
    for name in ["a_private", "b_public", "b_community", "b_shared_pending", "b_shared_rejected"] {
        c.images.list(&try_marker(viewer("alpha"), name)).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["b_private", "b_shared_none", "b_private_member", "b_shared_gamma"] {
        expect_invalid(c.images.list(&try_marker(viewer("alpha"), name)).await);
    }
    expect_invalid(c.images.list(&try_marker(anonymous(), "a_shared")).await);
    c.images.list(&try_marker(anonymous(), "a_public")).await.unwrap();
    c.images.list(&try_marker(admin("admin"), "b_community")).await.unwrap();
}
