//! Lineage: the read-only `os_ims_*` properties of Glance and IMS records, and
//! `GET /v1/cloudimages/{id}/ancestry` as an admin, the owner and a member see it.

use ims_catalog::{Catalog, Image, Lineage, SourceType, Visibility};
use ims_client::{MemberStatus, PatchOp, Role};
use reqwest::Method;
use serde_json::json;

use crate::common::{pattern, raw_image, status, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

/// Uploads a small raw image as `t`; returns its id.
async fn upload(t: &Tenant, name: &str) -> String {
    let image = t.client.create_image(&raw_image(name)).await.unwrap();
    t.client.upload_bytes(&image.id, pattern(70_000, 9)).await.unwrap();
    image.id
}

/// Copies `source` as `t` through the IMS copy pipeline; returns the copy's id.
async fn copy(t: &Tenant, source: &str, name: &str) -> String {
    let job_id = t.client.copy_image(source, name, None).await.unwrap();
    let job = wait_job(t, &job_id).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    job["entities"]["image_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn lineage_is_recorded_shown_read_only_and_walked() {
    let s = TestServer::start_with(|settings| settings.recycle_bin_retention = 3600).await;
    let owner = s.tenant("owner", Role::Member).await;
    let member = s.tenant("member", Role::Member).await;
    let base = upload(&owner, "base").await;
    let child = copy(&owner, &base, "child").await;
    let grandchild = copy(&owner, &child, "grandchild").await;

    // Glance and IMS records show where each image came from.
    let shown = owner.client.get_image(&base).await.unwrap();
    assert_eq!(shown.property("os_ims_source_type"), Some("upload"));
    assert_eq!(shown.property("os_ims_parent_id"), None);
    let shown = owner.client.get_image(&grandchild).await.unwrap();
    assert_eq!(shown.property("os_ims_source_type"), Some("copy"));
    assert_eq!(shown.property("os_ims_source_ref"), Some(child.as_str()));
    assert_eq!(shown.property("os_ims_parent_id"), Some(child.as_str()));
    let (code, listed) = ims(&owner, Method::GET, "/v2/cloudimages", None).await;
    assert_eq!(code, 200, "{listed}");
    let ims_record = listed["images"].as_array().unwrap().iter().find(|i| i["id"] == grandchild.as_str()).unwrap();
    assert_eq!(ims_record["os_ims_parent_id"], child.as_str(), "{ims_record}");
    assert_eq!(ims_record["os_ims_source_type"], "copy", "{ims_record}");

    // The lineage is the service's: refused on update and on create.
    for path in ["os_ims_source_type", "os_ims_source_ref", "os_ims_parent_id"] {
        let r = owner.client.update_image(&grandchild, &[PatchOp::replace(path, "forged")]).await;
        assert_eq!(status(r), 403, "{path}");
    }
    let (code, answer) = ims(&owner, Method::PATCH, &format!("/v2/cloudimages/{grandchild}"),
        Some(json!([{"op": "replace", "path": "/os_ims_parent_id", "value": base}]))).await;
    assert_eq!(code, 403, "IMS update: {answer}");
    let r = owner.client.create_image(&json!({"name": "forged", "os_ims_source_type": "upload"})).await;
    assert_eq!(status(r), 403);

    // The owner walks the whole chain.
    let ancestry = owner.client.image_ancestry(&grandchild).await.unwrap();
    let ids: Vec<&str> = ancestry.ancestry.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, [grandchild.as_str(), child.as_str(), base.as_str()]);
    assert!(ancestry.complete && ancestry.stopped.is_none(), "{ancestry:?}");
    assert!(ancestry.ancestry.iter().all(|l| l.visible && l.state.as_deref() == Some("live")));
    assert_eq!(ancestry.ancestry[2].source_type.as_deref(), Some("upload"));
    assert_eq!(ancestry.ancestry[0].parent_id.as_deref(), Some(child.as_str()));

    // A member who sees only the grandchild gets the parent's id and nothing more.
    owner.client.update_image(&grandchild, &[PatchOp::replace("visibility", "shared")]).await.unwrap();
    owner.client.add_member(&grandchild, &member.project_id).await.unwrap();
    member.client.update_member_status(&grandchild, &member.project_id, MemberStatus::Accepted).await.unwrap();
    let seen = member.client.image_ancestry(&grandchild).await.unwrap();
    assert_eq!(seen.ancestry.len(), 2, "{seen:?}");
    assert!(!seen.ancestry[1].visible && seen.ancestry[1].id == child, "{seen:?}");
    assert_eq!((seen.ancestry[1].name.clone(), seen.ancestry[1].source_type.clone()), (None, None));
    assert_eq!((seen.complete, seen.stopped.as_deref()), (false, Some("hidden")));
    assert_eq!(status(member.client.image_ancestry(&child).await), 404, "an image it cannot see at all");

    // Binned and deleted parents appear as such to the owner and to admins.
    owner.client.delete_image(&child).await.unwrap();
    let walked = owner.client.image_ancestry(&grandchild).await.unwrap();
    assert_eq!(walked.ancestry[1].state.as_deref(), Some("binned"));
    assert_eq!(walked.ancestry[1].status.as_deref(), Some("active"));
    assert_eq!(walked.ancestry.len(), 3, "the walk goes on past a binned parent");
    owner.client.purge_image(&child).await.unwrap();
    let walked = s.admin.image_ancestry(&grandchild).await.unwrap();
    assert_eq!(walked.ancestry[1].state.as_deref(), Some("deleted"));
    assert!(walked.complete);
    assert_eq!(status(owner.client.image_ancestry(&child).await), 404, "a deleted image has no ancestry of its own");
}

#[tokio::test]
async fn the_walk_is_bounded_and_stops_at_cycles_and_missing_parents() {
    let s = TestServer::start().await;
    let owner = s.tenant("owner", Role::Member).await;
    // Records the API cannot produce, written straight into the server's catalog.
    let catalog = Catalog::connect(&format!("sqlite://{}", s.data_dir.join("ims.db").display())).await.unwrap();
    let new_image = |name: &str, parent: uuid::Uuid| {
        let mut image = Image::new(uuid::Uuid::new_v4(), &owner.project_id, chrono::Utc::now());
        image.name = Some(name.into());
        image.visibility = Visibility::Private;
        image.lineage = Lineage::derived(SourceType::Conversion, parent);
        image
    };
    let event = |id: uuid::Uuid| ims_catalog::AuditEvent::new("req-test", "image.create", format!("image:{id}"));
    let (a_id, b_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut a = new_image("a", b_id);
    a.id = a_id;
    let mut b = new_image("b", a_id);
    b.id = b_id;
    catalog.images.create(&a, &event(a_id)).await.unwrap();
    catalog.images.create(&b, &event(b_id)).await.unwrap();
    let cycle = owner.client.image_ancestry(&a_id.to_string()).await.unwrap();
    assert_eq!(cycle.ancestry.len(), 2);
    assert_eq!(cycle.stopped.as_deref(), Some("cycle"));
    assert_eq!(cycle.ancestry[0].source_type.as_deref(), Some("conversion"));

    let orphan = new_image("orphan", uuid::Uuid::new_v4());
    catalog.images.create(&orphan, &event(orphan.id)).await.unwrap();
    let missing = owner.client.image_ancestry(&orphan.id.to_string()).await.unwrap();
    assert_eq!(missing.stopped.as_deref(), Some("missing"));
    assert_eq!(missing.ancestry[1].state.as_deref(), Some("missing"));

    // A chain longer than the bound: the walk stops at the bound.
    let mut parent = uuid::Uuid::new_v4();
    let mut last = None;
    for i in 0..(ims_core::lineage::MAX_ANCESTRY_DEPTH + 5) {
        let image = new_image(&format!("link-{i}"), parent);
        catalog.images.create(&image, &event(image.id)).await.unwrap();
        parent = image.id;
        last = Some(image.id);
    }
    let long = owner.client.image_ancestry(&last.unwrap().to_string()).await.unwrap();
    assert_eq!(long.ancestry.len(), ims_core::lineage::MAX_ANCESTRY_DEPTH);
    assert_eq!(long.stopped.as_deref(), Some("depth"));
}

/// Serves `data` at `/disk.raw` on a free port until dropped.
struct FileServer {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FileServer {
    async fn start(data: Vec<u8>) -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/disk.raw", axum::routing::get(move || async move { data.clone() }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async { drop(rx.await) }).await.unwrap();
        });
        FileServer { url, _stop: tx }
    }
}

/// Polls the image until it leaves `queued`/`importing` (at most 30 s).
async fn settled(t: &Tenant, id: &str) -> ims_client::Image {
    for _ in 0..300 {
        let image = t.client.get_image(id).await.unwrap();
        if image.status != "queued" && image.status != "importing" {
            return image;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("image {id} did not settle");
}

#[tokio::test]
async fn imports_record_their_source_without_secrets() {
    let files = FileServer::start(pattern(100_000, 4)).await;
    let s = TestServer::start_with(|c| c.glance_import.web_download_allow_private_addresses = true).await;
    let owner = s.tenant("owner", Role::Member).await;

    // Glance web-download: the URL is kept without its query and fragment.
    let image = owner.client.create_image(&raw_image("fetched")).await.unwrap();
    let uri = format!("{}/disk.raw?signature=s3cr3t#part", files.url);
    let body = json!({"method": {"name": "web-download", "uri": uri}});
    owner.client.import_image(&image.id, &body).await.unwrap();
    let fetched = settled(&owner, &image.id).await;
    assert_eq!(fetched.status, "active");
    assert_eq!(fetched.property("os_ims_source_type"), Some("web-download"));
    assert_eq!(fetched.property("os_ims_source_ref"), Some(format!("{}/disk.raw", files.url).as_str()));

    // IMS quick import from a bucket: `bucket:key`.
    owner.client.put_object_bytes("lineage-src", "disks/a.raw", pattern(1 << 20, 5)).await.unwrap();
    let request = ims_client::ImportImage {
        name: "quick".into(),
        image_url: "lineage-src:disks/a.raw".into(),
        min_disk: 1,
        quick: true,
        ..Default::default()
    };
    let job_id = owner.client.create_image_from_file(&request).await.unwrap();
    let job = wait_job(&owner, &job_id).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let quick = owner.client.get_image(job["entities"]["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(quick.property("os_ims_source_type"), Some("quick-import"));
    assert_eq!(quick.property("os_ims_source_ref"), Some("lineage-src:disks/a.raw"));
    let ancestry = owner.client.image_ancestry(&quick.id).await.unwrap();
    assert_eq!((ancestry.ancestry.len(), ancestry.complete), (1, true));
}
