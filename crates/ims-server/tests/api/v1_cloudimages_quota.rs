//! `GET /v1/cloudimages/quota` (the caller's own quota) and the private image quota under concurrent
//! creates: an admin sets it, an owner project fills it, another project is not affected.

use ims_client::Role;

use crate::common::{raw_image, TestServer};

#[tokio::test]
async fn twenty_concurrent_creates_at_quota_ten_leave_exactly_ten() {
    let s = TestServer::start().await;
    let owner = s.tenant("race-owner", Role::Member).await;
    let other = s.tenant("race-other", Role::Member).await;
    s.admin.set_private_image_quota(&owner.project_id, Some(10)).await.unwrap();

    let q = owner.client.own_image_quota().await.unwrap();
    assert_eq!((q.used, q.quota), (0, 10));

    let creates = (0..20).map(|i| {
        let client = owner.client.clone();
        tokio::spawn(async move { client.create_image(&raw_image(&format!("race-{i}"))).await })
    });
    let mut outcomes = Vec::new();
    for task in creates.collect::<Vec<_>>() {
        outcomes.push(task.await.unwrap());
    }
    let created = outcomes.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<u16> = outcomes.iter().filter_map(|r| r.as_ref().err()).filter_map(|e| e.status()).collect();
    assert_eq!(created, 10);
    assert_eq!(refused, vec![413; 10], "every other create is refused as over the quota");

    let q = owner.client.own_image_quota().await.unwrap();
    assert_eq!((q.used, q.quota), (10, 10), "the IMS quota API shows the usage");
    assert_eq!(s.admin.project_quotas(&owner.project_id).await.unwrap().private_images.used, 10);
    let owned = owner.client.list_all_images(&Default::default()).await.unwrap();
    assert_eq!(owned.iter().filter(|i| i.owner.as_deref() == Some(owner.project_id.as_str())).count(), 10);

    let q = other.client.own_image_quota().await.unwrap();
    assert_eq!((q.used, q.quota), (0, 50), "another project keeps the default");
    other.client.create_image(&raw_image("unaffected")).await.unwrap();
}
