//! Shareable master keys: an encrypted image may be shared with other projects (Glance members, IMS batch
//! shares) only when its key is shareable; members then read it through the owner's encryption domain.

use ims_client::{Client, CreateImage, MemberStatus, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, status, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

const CMK: &str = "__system__cmkid";

/// An active `shared` image encrypted under `key`, holding `data`.
async fn encrypted_shared_image(client: &Client, name: &str, key: &str, data: &[u8]) -> String {
    let mut create = CreateImage { visibility: Some("shared".into()), ..raw_image(name) };
    create.properties.insert(CMK.into(), key.into());
    let image = client.create_image(&create).await.unwrap();
    client.upload_bytes(&image.id, data.to_vec()).await.unwrap();
    image.id
}

async fn download(client: &Client, id: &str) -> Vec<u8> {
    client.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

/// IMS `BatchAddMembers` of `images` with `projects`: the status and body of the answer.
async fn batch_share(owner: &Tenant, images: &[&str], projects: &[&str]) -> (u16, Value) {
    ims(owner, Method::POST, "/v1/cloudimages/members", Some(json!({"images": images, "projects": projects}))).await
}

#[tokio::test]
async fn the_shareable_flag_is_set_at_creation_and_by_admins() {
    let s = TestServer::start().await;
    let plain = s.admin.create_kms_key("plain-key", None).await.unwrap();
    assert!(!plain.shareable, "keys are not shareable unless asked");
    let shared = s.admin.create_kms_key_with_sharing("shared-key", Some("for shared images"), true).await.unwrap();
    assert!(shared.shareable);
    assert!(s.admin.get_kms_key(&shared.id).await.unwrap().shareable);

    let changed = s.admin.set_kms_key_shareable(&plain.id, true).await.unwrap();
    assert!(changed.shareable);
    assert_eq!(changed.state, "enabled", "the state is untouched");
    assert!(s.admin.set_kms_key_shareable(&plain.id, true).await.unwrap().shareable, "idempotent");
    let listed = s.admin.list_kms_keys().await.unwrap();
    assert!(listed.iter().all(|k| k.shareable));
    assert!(!s.admin.set_kms_key_shareable(&plain.id, false).await.unwrap().shareable);

    // Bad requests change nothing.
    assert_eq!(status(s.admin.set_kms_key_shareable("no-such-key", true).await), 404);
    for body in [json!({"shareable": "yes"}), json!({}), json!({"shareable": true, "state": "disabled"})] {
        let r = s.raw(Method::PATCH, &format!("/kms/v1/keys/{}", plain.id)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let r = s.raw(Method::POST, "/kms/v1/keys").json(&json!({"alias": "bad", "shareable": 1})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let key = s.admin.get_kms_key(&plain.id).await.unwrap();
    assert_eq!((key.shareable, key.state.as_str()), (false, "enabled"));
    let t = s.tenant("key-user", Role::Member).await;
    assert_eq!(status(t.client.set_kms_key_shareable(&plain.id, true).await), 403, "admins only");
}

#[tokio::test]
async fn images_under_a_key_that_is_not_shareable_cannot_be_shared() {
    let s = TestServer::start().await;
    let owner = s.tenant("enc-owner", Role::Member).await;
    let guest = s.tenant("enc-guest", Role::Member).await;
    let key = s.admin.create_kms_key("private-key", None).await.unwrap();
    let data = pattern(3 << 20, 31);
    let id = encrypted_shared_image(&owner.client, "secret", &key.id, &data).await;

    // Glance: 403 with a message naming the key; nothing stored.
    let r = owner
        .client
        .raw(Method::POST, &format!("/v2/images/{id}/members"))
        .json(&json!({"member": guest.project_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&key.id) && message.contains("not shareable"), "{message}");
    assert!(owner.client.list_members(&id).await.unwrap().is_empty());

    // IMS batch share: refused before any job, in the IMS error form.
    let (code, body) = batch_share(&owner, &[&id], &[&guest.project_id]).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error_code"], "IMG.0003");
    assert!(body["error_msg"].as_str().unwrap().contains("not shareable"), "{body}");
    assert!(owner.client.list_members(&id).await.unwrap().is_empty());

    // A queued image asking for the key is refused too; plaintext images share as before.
    let mut queued = CreateImage { visibility: Some("shared".into()), ..raw_image("queued") };
    queued.properties.insert(CMK.into(), key.id.clone());
    let queued = owner.client.create_image(&queued).await.unwrap();
    assert_eq!(status(owner.client.add_member(&queued.id, &guest.project_id).await), 403);
    let plain = owner.client.create_image(&CreateImage { visibility: Some("shared".into()), ..raw_image("plain") }).await.unwrap();
    owner.client.add_member(&plain.id, &guest.project_id).await.unwrap();
    assert_eq!(status(guest.client.download(&id, None).await), 404, "the guest cannot see the encrypted image");
}

#[tokio::test]
async fn members_of_a_shareable_key_image_read_it_through_the_owners_domain() {
    let s = TestServer::start().await;
    let owner = s.tenant("share-owner", Role::Member).await;
    let glance_guest = s.tenant("share-glance", Role::Member).await;
    let ims_guest = s.tenant("share-ims", Role::Member).await;
    let late = s.tenant("share-late", Role::Member).await;
    let key = s.admin.create_kms_key("team-key", None).await.unwrap();
    let data = pattern(3 << 20, 32);
    let id = encrypted_shared_image(&owner.client, "team-disk", &key.id, &data).await;
    assert_eq!(status(owner.client.add_member(&id, &glance_guest.project_id).await), 403);

    s.admin.set_kms_key_shareable(&key.id, true).await.unwrap();
    owner.client.add_member(&id, &glance_guest.project_id).await.unwrap();
    glance_guest.client.update_member_status(&id, &glance_guest.project_id, MemberStatus::Accepted).await.unwrap();
    assert_eq!(download(&glance_guest.client, &id).await, data);

    let (code, body) = batch_share(&owner, &[&id], &[&ims_guest.project_id]).await;
    assert_eq!(code, 200, "{body}");
    let job = wait_job(&owner, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    ims_guest.client.update_member_status(&id, &ims_guest.project_id, MemberStatus::Accepted).await.unwrap();
    assert_eq!(download(&ims_guest.client, &id).await, data);

    // Turning sharing off keeps existing members and refuses new ones; the key's state still rules reads.
    s.admin.set_kms_key_shareable(&key.id, false).await.unwrap();
    assert_eq!(download(&glance_guest.client, &id).await, data);
    assert_eq!(status(owner.client.add_member(&id, &late.project_id).await), 403);
    s.admin.disable_kms_key(&key.id).await.unwrap();
    assert_eq!(status(ims_guest.client.download(&id, None).await), 403);
    s.admin.enable_kms_key(&key.id).await.unwrap();
    assert_eq!(download(&ims_guest.client, &id).await, data);
}
