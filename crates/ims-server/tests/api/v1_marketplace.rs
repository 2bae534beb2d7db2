//! `/v1/marketplace/listings...` with an admin, a publisher project and two member projects: publishing,
//! browsing (also as `GET /v2/cloudimages?__imagetype=market`), subscribing (the image becomes readable
//! through the Glance API), the shelf state, delisting; and public (gold) images with OS metadata.

use ims_client::{Client, ListParams, ListingScope, NewMarketListing, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, status, TestServer};

/// `GET path` as `client`: (status, JSON body).
async fn get_json(client: &Client, path: &str) -> (u16, Value) {
    let response = client.raw(Method::GET, path).send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

/// The ids of the images of an IMS list.
fn ims_ids(body: &Value) -> Vec<String> {
    body["images"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

fn new_listing(image_id: &str, code: &str) -> NewMarketListing {
    NewMarketListing {
        image_id: image_id.into(),
        product_code: code.into(),
        version: "2.1".into(),
        description: "A hardened web server".into(),
    }
}

#[tokio::test]
async fn publish_browse_subscribe_offshelf_and_delist() {
    let s = TestServer::start().await;
    let publisher = s.tenant("mk-publisher", Role::Member).await;
    let member = s.tenant("mk-member", Role::Member).await;
    let late = s.tenant("mk-late", Role::Member).await;

    let data = pattern(300_000, 7);
    let image = publisher.client.create_image(&raw_image("web-server")).await.unwrap();
    // Only active images are listed.
    assert_eq!(status(publisher.client.publish_listing(&new_listing(&image.id, "web-1")).await), 400);
    publisher.client.upload_bytes(&image.id, data.clone()).await.unwrap();

    // Only the owner (or an admin) lists an image; bad product codes are refused.
    assert_eq!(status(member.client.publish_listing(&new_listing(&image.id, "web-1")).await), 404);
    assert_eq!(status(publisher.client.publish_listing(&new_listing(&image.id, "bad code")).await), 400);
    let listing = publisher.client.publish_listing(&new_listing(&image.id, "web-1")).await.unwrap();
    assert_eq!((listing.publisher.as_str(), listing.offshelved), (publisher.project_id.as_str(), false));
    assert_eq!(listing.image.property("__productcode"), Some("web-1"));
    assert_eq!(status(publisher.client.publish_listing(&new_listing(&image.id, "web-2")).await), 409, "listed twice");
    let other = publisher.client.create_image(&raw_image("other")).await.unwrap();
    publisher.client.upload_bytes(&other.id, b"x".to_vec()).await.unwrap();
    assert_eq!(status(publisher.client.publish_listing(&new_listing(&other.id, "web-1")).await), 409, "code taken");

    // Any project browses the listing, in the marketplace API and the IMS list; the image itself stays
    // unreadable until the project subscribes.
    let browsed = member.client.market_listings(ListingScope::OnShelf).await.unwrap();
    assert_eq!(browsed.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [listing.id.as_str()]);
    assert_eq!(member.client.market_listing(&listing.id).await.unwrap().product_code, "web-1");
    let (code, body) = get_json(&member.client, "/v2/cloudimages?__imagetype=market").await;
    assert_eq!((code, ims_ids(&body)), (200, vec![image.id.clone()]), "{body}");
    let rendered = &body["images"][0];
    assert_eq!(rendered["__imagetype"], json!("market"));
    assert_eq!(rendered["__productcode"], json!("web-1"));
    assert_eq!(rendered["__is_offshelved"], json!("false"));
    assert_eq!(rendered["__market_version"], json!("2.1"));
    assert_eq!(status(member.client.get_image(&image.id).await), 404);
    let (_, gold) = get_json(&member.client, "/v2/cloudimages?__imagetype=gold").await;
    assert!(ims_ids(&gold).is_empty(), "a listed image that is not public is not gold");

    // Subscribing makes the image readable (Glance list, show, download) without making the project a member.
    let sub = member.client.subscribe_listing(&listing.id).await.unwrap();
    assert_eq!(sub.project_id, member.project_id);
    assert_eq!(member.client.subscribe_listing(&listing.id).await.unwrap().since, sub.since, "idempotent");
    let seen = member.client.list_all_images(&ListParams::default()).await.unwrap();
    assert_eq!(seen.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [image.id.as_str()]);
    assert_eq!(member.client.download(&image.id, None).await.unwrap().bytes().await.unwrap().as_ref(), &data[..]);
    assert_eq!(status(member.client.delete_image(&image.id).await), 403, "subscribers cannot change the image");
    assert!(publisher.client.list_members(&image.id).await.unwrap().is_empty(), "subscribers are not members");
    let subscribed = member.client.market_listings(ListingScope::Subscribed).await.unwrap();
    assert_eq!(subscribed.len(), 1);
    let subscribers = publisher.client.listing_subscriptions(&listing.id).await.unwrap();
    assert_eq!(subscribers.iter().map(|s| s.project_id.as_str()).collect::<Vec<_>>(), [member.project_id.as_str()]);
    assert_eq!(status(member.client.listing_subscriptions(&listing.id).await), 403);

    // Off shelf: hidden from browsing and the market list, no new subscribers, subscribers keep the image.
    assert_eq!(status(member.client.set_listing_offshelved(&listing.id, true).await), 403);
    let off = publisher.client.set_listing_offshelved(&listing.id, true).await.unwrap();
    assert!(off.offshelved);
    assert!(late.client.market_listings(ListingScope::OnShelf).await.unwrap().is_empty());
    let (_, body) = get_json(&late.client, "/v2/cloudimages?__imagetype=market").await;
    assert!(ims_ids(&body).is_empty(), "{body}");
    assert_eq!(status(late.client.market_listing(&listing.id).await), 404);
    assert_eq!(status(late.client.subscribe_listing(&listing.id).await), 404);
    assert_eq!(member.client.market_listing(&listing.id).await.unwrap().offshelved, true, "subscribers still see it");
    assert_eq!(member.client.download(&image.id, None).await.unwrap().bytes().await.unwrap().as_ref(), &data[..]);
    let (_, mine) = get_json(&member.client, "/v2/cloudimages").await;
    assert_eq!(mine["images"][0]["__is_offshelved"], json!("true"), "{mine}");
    assert_eq!(publisher.client.market_listings(ListingScope::Published).await.unwrap().len(), 1);
    // Back on shelf, a new project subscribes.
    publisher.client.set_listing_offshelved(&listing.id, false).await.unwrap();
    late.client.subscribe_listing(&listing.id).await.unwrap();
    late.client.unsubscribe_listing(&listing.id, &late.project_id).await.unwrap();
    assert_eq!(status(late.client.get_image(&image.id).await), 404, "unsubscribed");
    assert_eq!(status(late.client.unsubscribe_listing(&listing.id, &member.project_id).await), 403);

    // Delisting with a subscriber: refused, the publisher cannot force, an admin can.
    assert_eq!(status(publisher.client.delist(&listing.id, false).await), 409);
    assert_eq!(status(publisher.client.delist(&listing.id, true).await), 403);
    assert!(member.client.get_image(&image.id).await.is_ok());
    s.admin.delist(&listing.id, true).await.unwrap();
    assert_eq!(status(member.client.get_image(&image.id).await), 404, "a forced delisting ends access");
    assert_eq!(status(publisher.client.market_listing(&listing.id).await), 404);
    assert_eq!(publisher.client.get_image(&image.id).await.unwrap().visibility, "shared", "the image is unchanged");
}

#[tokio::test]
async fn errors_take_the_ims_form() {
    let s = TestServer::start().await;
    let reader = s.tenant("mk-reader", Role::Reader).await;
    let (code, body) = get_json(&reader.client, "/v1/marketplace/listings/not-an-id").await;
    assert_eq!(code, 404);
    assert!(body["error_code"].is_string() && body["error_msg"].is_string(), "{body}");
    let (code, body) = get_json(&reader.client, "/v1/marketplace/listings?scope=everything").await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = get_json(&reader.client, "/v1/marketplace/listings?scope=all").await;
    assert_eq!(code, 403, "every listing is for admins");
    let response =
        reader.client.raw(Method::POST, "/v1/marketplace/listings").json(&json!({"image_id": 5})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let anonymous = reqwest::Client::new().get(format!("{}/v1/marketplace/listings", s.url)).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn public_images_carry_os_metadata_in_both_apis() {
    let s = TestServer::start().await;
    let owner = s.tenant("gold-owner", Role::Member).await;
    let member = s.tenant("gold-member", Role::Member).await;

    let mut gold = raw_image("Ubuntu 22.04 server 64bit");
    gold.visibility = Some("public".into());
    gold.min_disk = Some(10);
    gold.min_ram = Some(1024);
    for (k, v) in [
        ("__platform", "Ubuntu"),
        ("__os_version", "Ubuntu 22.04 server 64bit"),
        ("__os_type", "Linux"),
        ("__os_bit", "64"),
        ("hw_firmware_type", "uefi"),
        ("architecture", "x86_64"),
    ] {
        gold.properties.insert(k.into(), v.into());
    }
    assert_eq!(status(owner.client.create_image(&gold).await), 403, "only admins publish public images");
    let mut bad = gold.clone();
    bad.properties.insert("__os_bit".into(), "16".into());
    assert_eq!(status(s.admin.create_image(&bad).await), 400);
    let image = s.admin.create_image(&gold).await.unwrap();
    s.admin.upload_bytes(&image.id, pattern(4096, 1)).await.unwrap();
    let own = owner.client.create_image(&raw_image("own")).await.unwrap();

    let (code, body) = get_json(&member.client, "/v2/cloudimages?__imagetype=gold").await;
    assert_eq!((code, ims_ids(&body)), (200, vec![image.id.clone()]), "{body}");
    let rendered = &body["images"][0];
    for (k, v) in [("__imagetype", "gold"), ("__platform", "Ubuntu"), ("__os_bit", "64"), ("hw_firmware_type", "uefi")]
    {
        assert_eq!(rendered[k], json!(v), "{k} in {rendered}");
    }
    assert_eq!((rendered["min_disk"].as_i64(), rendered["min_ram"].as_i64()), (Some(10), Some(1024)));
    let (_, body) = get_json(&member.client, "/v2/cloudimages?__imagetype=gold&__platform=Ubuntu&__os_bit=64").await;
    assert_eq!(ims_ids(&body), vec![image.id.clone()], "OS metadata filters");
    let (_, body) = get_json(&owner.client, "/v2/cloudimages?__imagetype=private").await;
    assert_eq!(ims_ids(&body), vec![own.id.clone()]);
    let glance = member.client.get_image(&image.id).await.unwrap();
    assert_eq!(
        (glance.property("__os_version"), glance.property("architecture")),
        (Some("Ubuntu 22.04 server 64bit"), Some("x86_64"))
    );

    // The IMS update checks the same values.
    let patch = json!([{"op": "replace", "path": "/hw_firmware_type", "value": "efi"}]);
    let response = s
        .raw(Method::PATCH, &format!("/v2/cloudimages/{}", image.id))
        .header("content-type", "application/json")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

/// A subscriber may copy the image it subscribed to (the copy is its own, with the same bytes); a project
/// that did not subscribe may not even see it.
#[tokio::test]
async fn subscribers_copy_the_listed_image() {
    let s = TestServer::start().await;
    let publisher = s.tenant("mk-copy-publisher", Role::Member).await;
    let subscriber = s.tenant("mk-copy-subscriber", Role::Member).await;
    let outsider = s.tenant("mk-copy-outsider", Role::Member).await;
    let data = pattern(200_000, 11);
    let image = publisher.client.create_image(&raw_image("listed")).await.unwrap();
    publisher.client.upload_bytes(&image.id, data.clone()).await.unwrap();
    let listing = publisher.client.publish_listing(&new_listing(&image.id, "copyable-1")).await.unwrap();
    assert_eq!(status(subscriber.client.copy_image(&image.id, "mine", None).await), 404, "not subscribed yet");
    subscriber.client.subscribe_listing(&listing.id).await.unwrap();
    assert_eq!(status(outsider.client.copy_image(&image.id, "mine", None).await), 404);

    let job = subscriber.client.copy_image(&image.id, "mine", None).await.unwrap();
    let every = std::time::Duration::from_millis(50);
    let done = subscriber.client.wait_job(&job, every, std::time::Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(done.status, "SUCCESS", "{:?}", done.fail_reason);
    let copies = subscriber.client.list_all_images(&ListParams::default()).await.unwrap();
    let copy = copies.iter().find(|i| i.name.as_deref() == Some("mine")).expect("the copy is listed");
    assert_eq!(copy.owner.as_deref(), Some(subscriber.project_id.as_str()));
    assert_eq!(subscriber.client.download(&copy.id, None).await.unwrap().bytes().await.unwrap().as_ref(), data.as_slice());
    // The source stays the publisher's, unchanged.
    assert_eq!(publisher.client.get_image(&image.id).await.unwrap().owner.as_deref(), Some(publisher.project_id.as_str()));
}
