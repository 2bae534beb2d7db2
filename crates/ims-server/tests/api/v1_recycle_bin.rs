//! `/v1/recycle-bin/images...` with deletion through the Glance API (`DELETE /v2/images/{id}`): binning,
//! restoring with the same data and checksums, purging, protection, quotas, the scheduled purge, and what
//! garbage collection keeps, across an admin, an owner and a member project.

use std::collections::BTreeSet;
use std::time::Duration;

use ims_client::{AuditFilter, Client, MemberStatus, PatchOp, Role};
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::common::{chunk_files, pattern, raw_image, status, TestServer};

const MIB: usize = 1 << 20;

async fn server_with_bin(retention_seconds: u64) -> TestServer {
    TestServer::start_with(|s| s.recycle_bin_retention = retention_seconds).await
}

async fn upload(client: &Client, name: &str, data: Vec<u8>) -> String {
    let image = client.create_image(&raw_image(name)).await.unwrap();
    client.upload_bytes(&image.id, data).await.unwrap();
    image.id
}

async fn sha256_of_download(client: &Client, id: &str) -> String {
    hex::encode(Sha256::digest(client.download(id, None).await.unwrap().bytes().await.unwrap()))
}

async fn audit_actions(s: &TestServer, image_id: &str) -> Vec<String> {
    let filter = AuditFilter { resource: Some(format!("image:{image_id}")), ..Default::default() };
    s.admin.audit_events(&filter).await.unwrap().events.into_iter().map(|e| e.action).collect()
}

#[tokio::test]
async fn deleted_images_go_to_the_owners_bin_and_come_back_whole() {
    let s = server_with_bin(3600).await;
    let owner = s.tenant("owner", Role::Member).await;
    let member = s.tenant("member", Role::Member).await;
    let data = pattern(3 * MIB + 17, 1);
    let id = upload(&owner.client, "kept", data.clone()).await;
    owner.client.update_image(&id, &[PatchOp::replace("visibility", "shared")]).await.unwrap();
    owner.client.add_member(&id, &member.project_id).await.unwrap();
    member.client.update_member_status(&id, &member.project_id, MemberStatus::Accepted).await.unwrap();
    let before = owner.client.get_image(&id).await.unwrap();

    // Glance delete: 204, then 404 and absent from lists, for the owner and the member alike.
    owner.client.delete_image(&id).await.unwrap();
    assert_eq!(status(owner.client.get_image(&id).await), 404);
    assert_eq!(status(member.client.get_image(&id).await), 404);
    assert!(owner.client.list_all_images(&Default::default()).await.unwrap().iter().all(|i| i.id != id));
    assert!(member.client.list_all_images(&Default::default()).await.unwrap().iter().all(|i| i.id != id));
    let (code, listed) = crate::v1_cloudimages_export::ims(&owner, Method::GET, "/v2/cloudimages", None).await;
    assert_eq!(code, 200);
    assert!(listed["images"].as_array().unwrap().iter().all(|i| i["id"] != id.as_str()), "IMS list: {listed}");
    assert_eq!(status(owner.client.delete_image(&id).await), 404, "deleting twice finds nothing");

    // Only the owner (and admins) see it in a bin.
    let bin = owner.client.recycle_bin(false).await.unwrap();
    assert_eq!(bin.len(), 1);
    assert_eq!((bin[0].image.id.as_str(), bin[0].image.status.as_str()), (id.as_str(), "active"));
    assert_eq!(bin[0].image.checksum, before.checksum);
    assert!(bin[0].binned_at().is_some() && bin[0].purge_after() > bin[0].binned_at(), "{bin:?}");
    assert!(member.client.recycle_bin(false).await.unwrap().is_empty());
    assert_eq!(status(member.client.binned_image(&id).await), 404);
    assert_eq!(status(member.client.restore_image(&id).await), 404);
    assert_eq!(status(member.client.purge_image(&id).await), 404);
    assert_eq!(status(owner.client.recycle_bin(true).await), 403, "all projects: admins only");
    let all = s.admin.recycle_bin(true).await.unwrap();
    assert!(all.iter().any(|b| b.image.id == id));
    assert!(s.admin.recycle_bin(false).await.unwrap().is_empty(), "the admin project's own bin is empty");

    // Restore: same id, status, checksums and data; the share is back too.
    let restored = owner.client.restore_image(&id).await.unwrap();
    assert_eq!(restored.id, id);
    assert_eq!(restored.status, "active");
    assert_eq!((restored.checksum.clone(), restored.os_hash_value.clone()), (before.checksum.clone(), before.os_hash_value.clone()));
    let shown = owner.client.get_image(&id).await.unwrap();
    assert_eq!((shown.checksum, shown.os_hash_value, shown.size), (before.checksum, before.os_hash_value, before.size));
    assert_eq!(sha256_of_download(&owner.client, &id).await, hex::encode(Sha256::digest(&data)));
    assert_eq!(sha256_of_download(&member.client, &id).await, hex::encode(Sha256::digest(&data)));
    assert!(owner.client.recycle_bin(false).await.unwrap().is_empty());
    assert_eq!(status(owner.client.restore_image(&id).await), 404, "restoring twice finds nothing");

    let actions = audit_actions(&s, &id).await;
    let delete_at = actions.iter().position(|a| a == "image.delete").expect("delete audited");
    assert!(actions[delete_at..].iter().any(|a| a == "image.restore"), "{actions:?}");
}

#[tokio::test]
async fn protection_blocks_delete_and_force_delete_skips_the_bin() {
    let s = server_with_bin(3600).await;
    let owner = s.tenant("owner", Role::Member).await;
    let id = upload(&owner.client, "guarded", pattern(4096, 2)).await;
    owner.client.update_image(&id, &[PatchOp::replace("protected", true)]).await.unwrap();
    assert_eq!(status(owner.client.delete_image(&id).await), 403);
    assert_eq!(status(owner.client.force_delete_image(&id).await), 403);
    assert_eq!(status(s.admin.delete_image(&id).await), 403, "not even an admin");
    assert!(owner.client.recycle_bin(false).await.unwrap().is_empty());
    owner.client.get_image(&id).await.unwrap();

    owner.client.update_image(&id, &[PatchOp::replace("protected", false)]).await.unwrap();
    let bad = owner.client.raw(Method::DELETE, &format!("/v2/images/{id}")).header("X-Ims-Force-Delete", "maybe");
    assert_eq!(bad.send().await.unwrap().status(), 400);
    owner.client.get_image(&id).await.unwrap();
    owner.client.force_delete_image(&id).await.unwrap();
    assert_eq!(status(owner.client.get_image(&id).await), 404);
    assert!(owner.client.recycle_bin(false).await.unwrap().is_empty(), "a forced delete is final");
    assert_eq!(status(owner.client.restore_image(&id).await), 404);
}

#[tokio::test]
async fn binned_data_survives_gc_and_purged_data_is_reclaimed() {
    let s = server_with_bin(3600).await;
    let owner = s.tenant("owner", Role::Member).await;
    let kept_data = pattern(3 * MIB, 3);
    let kept = upload(&owner.client, "binned", kept_data.clone()).await;
    let gone = upload(&owner.client, "forced", pattern(3 * MIB, 4)).await;
    let all_chunks = chunk_files(&s.data_dir);
    owner.client.force_delete_image(&gone).await.unwrap();
    s.admin.store_gc(Some(0)).await.unwrap();
    let kept_chunks = chunk_files(&s.data_dir);
    assert!(!kept_chunks.is_empty() && kept_chunks.len() < all_chunks.len(), "the forced delete's chunks go");

    owner.client.delete_image(&kept).await.unwrap();
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert_eq!(report.chunks_deleted, 0, "a binned image's data is live: {report:?}");
    assert_eq!(chunk_files(&s.data_dir), kept_chunks);
    owner.client.restore_image(&kept).await.unwrap();
    assert_eq!(sha256_of_download(&owner.client, &kept).await, hex::encode(Sha256::digest(&kept_data)));

    owner.client.delete_image(&kept).await.unwrap();
    owner.client.purge_image(&kept).await.unwrap();
    assert_eq!(status(owner.client.restore_image(&kept).await), 404, "purged: gone for good");
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert!(report.chunks_deleted > 0, "{report:?}");
    assert!(chunk_files(&s.data_dir).is_empty(), "no image left, no chunk left");
    assert!(audit_actions(&s, &kept).await.iter().any(|a| a == "image.purge"));
}

#[tokio::test]
async fn a_restore_past_the_image_quota_is_refused() {
    let s = server_with_bin(3600).await;
    let owner = s.tenant("owner", Role::Member).await;
    s.admin.set_private_image_quota(&owner.project_id, Some(1)).await.unwrap();
    let first = owner.client.create_image(&raw_image("first")).await.unwrap();
    owner.client.delete_image(&first.id).await.unwrap();
    // A binned image does not count: the project may create another.
    let second = owner.client.create_image(&raw_image("second")).await.unwrap();
    let refused = owner.client.restore_image(&first.id).await;
    let code = status(refused);
    assert_eq!(code, 413, "quota exceeded");
    assert_eq!(owner.client.recycle_bin(false).await.unwrap().len(), 1, "still in the bin");
    owner.client.delete_image(&second.id).await.unwrap();
    let restored = owner.client.restore_image(&first.id).await.unwrap();
    assert_eq!(restored.status, "queued", "back to the status it had");
}

#[tokio::test]
async fn images_past_their_retention_are_purged_in_the_background() {
    let s = server_with_bin(1).await;
    let owner = s.tenant("owner", Role::Member).await;
    let id = upload(&owner.client, "short-lived", pattern(4096, 5)).await;
    owner.client.delete_image(&id).await.unwrap();
    let mut purged = false;
    for _ in 0..100 {
        if owner.client.recycle_bin(false).await.unwrap().is_empty() {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "the scheduled purge empties the bin after the retention");
    assert_eq!(status(owner.client.restore_image(&id).await), 404);
    assert_eq!(status(owner.client.get_image(&id).await), 404);
    let filter = AuditFilter { resource: Some(format!("image:{id}")), action: Some("image.purge".into()), ..Default::default() };
    let events = s.admin.audit_events(&filter).await.unwrap().events;
    assert_eq!(events.len(), 1, "one audited purge: {events:?}");
    assert_eq!(events[0].project_id.as_deref(), Some(owner.project_id.as_str()));
}

#[tokio::test]
async fn with_the_bin_off_deletion_is_final() {
    let s = server_with_bin(0).await;
    let owner = s.tenant("owner", Role::Member).await;
    let id = upload(&owner.client, "final", pattern(4096, 6)).await;
    owner.client.delete_image(&id).await.unwrap();
    assert!(owner.client.recycle_bin(false).await.unwrap().is_empty());
    assert_eq!(status(owner.client.restore_image(&id).await), 404);
}

#[tokio::test]
async fn a_restore_past_the_byte_quota_is_refused() {
    let s = server_with_bin(3600).await;
    let owner = s.tenant("owner", Role::Member).await;
    s.admin.set_image_bytes_quota(&owner.project_id, Some(6000)).await.unwrap();
    let first = upload(&owner.client, "first", pattern(4000, 7)).await;
    owner.client.delete_image(&first).await.unwrap();
    let second = upload(&owner.client, "second", pattern(4000, 8)).await;
    assert_eq!(status(owner.client.restore_image(&first).await), 413, "4000 + 4000 bytes > 6000");
    owner.client.force_delete_image(&second).await.unwrap();
    assert_eq!(owner.client.restore_image(&first).await.unwrap().size, Some(4000));
}

#[tokio::test]
async fn the_bin_is_listed_in_pages_with_a_marker() {
    let s = server_with_bin(3600).await;
    let owner = s.tenant("pager", Role::Member).await;
    let other = s.tenant("other", Role::Member).await;
    let mut binned = Vec::new();
    for i in 0..5 {
        let image = owner.client.create_image(&raw_image(&format!("paged-{i}"))).await.unwrap();
        owner.client.delete_image(&image.id).await.unwrap();
        binned.push(image.id);
    }
    let foreign = other.client.create_image(&raw_image("foreign")).await.unwrap();
    other.client.delete_image(&foreign.id).await.unwrap();

    let page = |query: String| {
        let client = owner.client.clone();
        async move {
            let r = client.raw(Method::GET, &format!("/v1/recycle-bin/images{query}")).send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["images"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
    };

    // Without a limit, everything (up to 1000) in one page, without a next marker: the project's
    // images only, in the bin's order (binning time, then id).
    let (code, all) = page(String::new()).await;
    assert_eq!(code, 200, "{all}");
    assert!(all.get("next_marker").is_none());
    let order = ids(&all);
    assert_eq!(order.iter().cloned().collect::<BTreeSet<_>>(), binned.iter().cloned().collect::<BTreeSet<_>>());
    let binned = order;
    // Two at a time, in that order; a full page names the next marker, the last page none.
    let (_, first) = page("?limit=2".into()).await;
    assert_eq!(ids(&first), binned[0..2]);
    assert_eq!(first["next_marker"], binned[1].as_str());
    let (_, second) = page(format!("?limit=2&marker={}", binned[1])).await;
    assert_eq!(ids(&second), binned[2..4]);
    assert_eq!(second["next_marker"], binned[3].as_str());
    let (_, last) = page(format!("?limit=2&marker={}", binned[3])).await;
    assert_eq!(ids(&last), binned[4..5]);
    assert!(last.get("next_marker").is_none(), "{last}");
    // A page ending exactly at the last image still names it; the page after it is empty.
    let (_, exact) = page(format!("?limit=1&marker={}", binned[3])).await;
    assert_eq!(ids(&exact), binned[4..5]);
    assert_eq!(exact["next_marker"], binned[4].as_str());
    let (_, empty) = page(format!("?limit=1&marker={}", binned[4])).await;
    assert!(ids(&empty).is_empty() && empty.get("next_marker").is_none(), "{empty}");

    // Bad paging is refused in plain words: a marker that is not an id, one that is not in this
    // project's bin (another project's binned image), a limit that is not a number.
    let (code, body) = page("?marker=not-an-id".into()).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("marker"), "{body}");
    let (code, body) = page(format!("?marker={}", foreign.id)).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = page("?limit=many".into()).await;
    assert_eq!(code, 400, "{body}");
}
