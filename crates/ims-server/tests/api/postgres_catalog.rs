//! The server with its catalog on PostgreSQL: the Glance flow on one node, and two nodes sharing one
//! database and one store.

use ims_client::{Client, ListParams, MemberStatus, Role};
use ims_testkit::postgres::PostgresCluster;
use md5::{Digest, Md5};

use crate::common::{pattern, raw_image, status, TestServer};

#[tokio::test]
async fn create_upload_download_list_and_share_on_postgres() {
    let postgres = PostgresCluster::shared_or_start().await.unwrap();
    let database = postgres.fresh_database().await.unwrap();
    let s = TestServer::start_on_postgres(&database, |_| {}).await;
    let owner = s.tenant("owner", Role::Member).await;
    let guest = s.tenant("guest", Role::Member).await;

    let img = owner.client.create_image(&raw_image("pg-disk")).await.unwrap();
    assert_eq!(img.status, "queued");
    let data = pattern(3 << 20, 7);
    owner.client.upload_bytes(&img.id, data.clone()).await.unwrap();
    let shown = owner.client.get_image(&img.id).await.unwrap();
    assert_eq!(shown.status, "active");
    assert_eq!(shown.size, Some(data.len() as u64));
    assert_eq!(shown.checksum.as_deref(), Some(hex::encode(Md5::digest(&data)).as_str()));
    let got = owner.client.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());

    let second = owner.client.create_image(&raw_image("pg-empty")).await.unwrap();
    // Sorted by name: both images may have been created within the same second.
    let by_name_asc = ListParams { sort: Some("name:asc".into()), ..Default::default() };
    let listed = owner.client.list_all_images(&by_name_asc).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [img.id.as_str(), second.id.as_str()]);
    let by_name = ListParams { name: Some("pg-disk".into()), ..Default::default() };
    assert_eq!(owner.client.list_all_images(&by_name).await.unwrap().len(), 1);
    assert!(guest.client.list_all_images(&ListParams::default()).await.unwrap().is_empty());
    assert_eq!(status(guest.client.get_image(&img.id).await), 404);

    owner.client.add_member(&img.id, &guest.project_id).await.unwrap();
    assert_eq!(status(owner.client.add_member(&img.id, &guest.project_id).await), 409, "the unique key decides");
    guest.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    let shared = guest.client.list_all_images(&ListParams::default()).await.unwrap();
    assert_eq!(shared.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [img.id.as_str()]);
    let got = guest.client.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());

    owner.client.delete_image(&img.id).await.unwrap();
    assert_eq!(status(owner.client.get_image(&img.id).await), 404);
    assert_eq!(status(guest.client.download(&img.id, None).await), 404);
}

#[tokio::test]
async fn two_nodes_serve_one_catalog() {
    let postgres = PostgresCluster::shared_or_start().await.unwrap();
    let database = postgres.fresh_database().await.unwrap();
    let a = TestServer::start_on_postgres(&database, |_| {}).await;
    let store = format!("file://{}", a.data_dir.join("store").display());
    let b = TestServer::start_on_postgres(&database, |settings| settings.store = Some(store)).await;

    // A project made on one node is usable on the other: same users, tokens and images.
    let owner = a.tenant("owner", Role::Member).await;
    let owner_on_b = same_caller_on(&b, &owner.client);
    let img = owner_on_b.create_image(&raw_image("made-on-b")).await.unwrap();
    let data = pattern(2 << 20, 11);
    owner.client.upload_bytes(&img.id, data.clone()).await.unwrap();
    assert_eq!(owner_on_b.get_image(&img.id).await.unwrap().status, "active");
    let got = owner_on_b.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());

    // A second upload to an active image is refused whichever node gets it.
    assert_eq!(status(owner_on_b.upload_bytes(&img.id, data.clone()).await), 409);
    let guest = b.tenant("guest", Role::Member).await;
    owner_on_b.add_member(&img.id, &guest.project_id).await.unwrap();
    let guest_on_a = same_caller_on(&a, &guest.client);
    guest_on_a.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    assert_eq!(guest.client.list_all_images(&ListParams::default()).await.unwrap().len(), 1);
}

/// A client of `node` holding the token of `client`.
fn same_caller_on(node: &TestServer, client: &Client) -> Client {
    Client::new(&node.url, client.token().expect("a token")).unwrap()
}
