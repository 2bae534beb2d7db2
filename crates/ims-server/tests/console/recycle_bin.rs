//! Browser tests of the recycle bin page (`#/recycle-bin`: restore, purge), the image page's lineage
//! card, the marketplace tab (browse, subscribe) and the capsules tab (a capsule's parts).

use std::time::Duration;

use ims_client::{CreateCapsule, ListingScope, MemberStatus, NewMarketListing, PatchOp, Role};
use serde_json::json;

use super::harness::*;

/// Copies `source` as `t` (CopyImageInRegion) and waits for the job; returns the copy's id.
async fn copy(t: &Tenant, source: &str, name: &str) -> String {
    let job_id = t.client.copy_image(source, name, None).await.unwrap();
    let job = t.client.wait_job(&job_id, Duration::from_millis(100), Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(job.status, "SUCCESS", "{job:?}");
    job.entities["image_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_image_is_restored_from_the_bin_and_its_lineage_shows_hidden_parents() {
    let c = Console::start().await;
    let owner = c.server.tenant("binner", Role::Member).await;
    let viewer = c.server.tenant("viewer", Role::Member).await;
    let base = owner.client.create_image(&raw_image("base-image")).await.unwrap();
    owner.client.upload_bytes(&base.id, pattern(90_000, 11)).await.unwrap();
    let child = copy(&owner, &base.id, "child-image").await;
    let checksum = owner.client.get_image(&child).await.unwrap().checksum.expect("an active copy has a checksum");
    let scratch = owner.client.create_image(&raw_image("scratch-image")).await.unwrap();
    owner.client.upload_bytes(&scratch.id, pattern(20_000, 12)).await.unwrap();
    owner.client.delete_image(&scratch.id).await.unwrap();

    // The owner sees the whole lineage: the copy, then the image it was copied from, linked.
    c.sign_in(&owner.token, "binner").await;
    c.go(&format!("#/images/{child}")).await;
    c.until("document.querySelectorAll('#lineage-chain li').length === 2", "the two-image lineage").await;
    let links = c.js("return [...document.querySelectorAll('#lineage-chain li')].map(li => [li.dataset.ancestor, li.dataset.visible, li.textContent])").await;
    assert_eq!(links[0][0], json!(child));
    assert_eq!(links[1][0], json!(base.id));
    assert_eq!(links[1][1], json!("true"));
    assert!(links[0][2].as_str().unwrap().contains("copied from"), "{links}");
    assert!(links[1][2].as_str().unwrap().contains("base-image"), "{links}");
    assert_eq!(c.js(&format!("return document.querySelector(\"#lineage-chain a[href='#/images/{}']\")?.textContent", base.id)).await, json!("base-image"));
    assert_eq!(c.js("return document.querySelector('#lineage-chain').dataset.complete").await, json!("true"));

    // Delete says where the image goes; it lands in the bin with its times.
    c.click("#delete").await;
    let question = c.until("document.querySelector('dialog[open]')?.textContent", "the delete dialog").await;
    assert!(question.as_str().unwrap().contains("recycle bin"), "{question}");
    c.click("dialog[open] button[value='yes']").await;
    c.until("location.hash.startsWith('#/images') && !!document.querySelector('#result-count')", "back to the list").await;
    assert_eq!(owner.client.get_image(&child).await.unwrap_err().status(), Some(404));
    c.click("#nav-recycle-bin").await;
    c.wait_for(&format!("#bin-table tr[data-image-id='{child}']")).await;
    let binned = owner.client.binned_image(&child).await.unwrap();
    let times = c
        .js(&format!("const r = document.querySelector(\"tr[data-image-id='{child}']\"); return [r.querySelector('[data-binned-at]').dataset.binnedAt, r.querySelector('[data-purge-after]').dataset.purgeAfter, r.querySelector('[data-status]').dataset.status]"))
        .await;
    assert_eq!(times, json!([binned.binned_at(), binned.purge_after(), "active"]));
    c.doc_screenshot("recycle-bin").await;

    // Purge asks first: cancelling keeps the image, confirming deletes it for good.
    c.click(&format!("button[data-purge='{}']", scratch.id)).await;
    c.wait_for("dialog[open]").await;
    c.click("dialog[open] button[value='no']").await;
    c.until("!document.querySelector('dialog')", "the dialog to close").await;
    assert!(owner.client.binned_image(&scratch.id).await.is_ok(), "cancelled: still in the bin");
    c.click(&format!("button[data-purge='{}']", scratch.id)).await;
    c.click("dialog[open] button[value='yes']").await;
    c.until(&format!("!document.querySelector(\"tr[data-image-id='{}']\") && !!document.querySelector('#bin-table')", scratch.id), "the purged row to go").await;
    assert_eq!(owner.client.binned_image(&scratch.id).await.unwrap_err().status(), Some(404));

    // Restore brings the image back, active, with the same checksum.
    c.click(&format!("button[data-restore='{child}']")).await;
    c.wait_for("#bin-empty").await;
    c.go(&format!("#/images/{child}")).await;
    c.until("document.querySelector('#image-title [data-status]')?.dataset.status === 'active'", "the restored image").await;
    let attributes = c.text("#image-attributes").await;
    assert!(attributes.contains(&checksum), "the same checksum: {attributes}");
    assert_eq!(owner.client.get_image(&child).await.unwrap().checksum.as_deref(), Some(checksum.as_str()));

    // A project the copy is shared with sees its parent only as an image it may not see.
    owner.client.update_image(&child, &[PatchOp::replace("visibility", "shared")]).await.unwrap();
    owner.client.add_member(&child, &viewer.project_id).await.unwrap();
    viewer.client.update_member_status(&child, &viewer.project_id, MemberStatus::Accepted).await.unwrap();
    c.sign_out().await;
    c.sign_in(&viewer.token, "viewer").await;
    c.go(&format!("#/images/{child}")).await;
    c.wait_for("#lineage-stopped").await;
    let hidden = c.js("const li = document.querySelectorAll('#lineage-chain li')[1]; return [li.dataset.ancestor, li.dataset.visible, li.textContent]").await;
    assert_eq!(hidden[0], json!(base.id));
    assert_eq!(hidden[1], json!("false"));
    assert!(hidden[2].as_str().unwrap().contains("may not see") && !hidden[2].as_str().unwrap().contains("base-image"), "{hidden}");
    assert_eq!(c.js("return document.querySelector('#lineage-chain').dataset.complete").await, json!("false"));
    c.screenshot("lineage-hidden-parent").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_tab_lists_products_and_subscribes() {
    let c = Console::start().await;
    let publisher = c.server.tenant("vendor", Role::Member).await;
    let buyer = c.server.tenant("buyer", Role::Member).await;
    let image = publisher.client.create_image(&raw_image("hardened-web")).await.unwrap();
    publisher.client.upload_bytes(&image.id, pattern(40_000, 13)).await.unwrap();
    let new = NewMarketListing { image_id: image.id.clone(), product_code: "web-1".into(), version: "2.1".into(), description: "A web server".into() };
    let listing = publisher.client.publish_listing(&new).await.unwrap();
    // Off shelf: not offered.
    let shelved = publisher.client.create_image(&raw_image("retired-web")).await.unwrap();
    publisher.client.upload_bytes(&shelved.id, pattern(10_000, 14)).await.unwrap();
    let retired = NewMarketListing { image_id: shelved.id.clone(), product_code: "web-0".into(), version: "1.0".into(), description: "Old".into() };
    let retired = publisher.client.publish_listing(&retired).await.unwrap();
    publisher.client.set_listing_offshelved(&retired.id, true).await.unwrap();
    assert_eq!(buyer.client.get_image(&image.id).await.unwrap_err().status(), Some(404), "not usable before subscribing");

    c.sign_in(&buyer.token, "buyer").await;
    c.go("#/images?tab=marketplace").await;
    c.expect_rows(&["hardened-web".to_string()], "the on-shelf product").await;
    c.click(&format!("button[data-subscribe='{}']", listing.id)).await;
    c.until(&format!("document.querySelector(\"[data-listing='{}']\")?.dataset.subscribed === 'true'", listing.id), "the subscription").await;
    let mine = buyer.client.market_listings(ListingScope::Subscribed).await.unwrap();
    assert_eq!(mine.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [listing.id.as_str()]);
    assert!(buyer.client.get_image(&image.id).await.is_ok(), "usable after subscribing");
    // Shown as subscribed when the list loads again; the publisher sees its own product as such.
    c.go("#/images?tab=private").await;
    c.wait_for("#result-count").await;
    c.go("#/images?tab=marketplace").await;
    c.until(&format!("document.querySelector(\"[data-listing='{}']\")?.textContent.includes('subscribed')", listing.id), "subscribed on reload").await;
    assert!(!c.js("return !!document.querySelector('button[data-subscribe]')").await.as_bool().unwrap());
    c.screenshot("marketplace-subscribed").await;
    c.sign_out().await;
    c.sign_in(&publisher.token, "vendor").await;
    c.go("#/images?tab=marketplace").await;
    c.until(&format!("document.querySelector(\"[data-listing='{}']\")?.textContent.includes('published by your project')", listing.id), "the publisher's own product").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capsules_tab_lists_capsules_and_the_page_shows_their_parts() {
    let c = Console::start().await;
    let owner = c.server.tenant("packager", Role::Member).await;
    let base = owner.client.create_image(&raw_image("ubuntu-base")).await.unwrap();
    owner.client.upload_bytes(&base.id, pattern(30_000, 15)).await.unwrap();
    let data_disk = json!({"name": "app-data", "disk_format": "raw", "container_format": "bare", "virtual_env_type": "DataImage"});
    let app = owner.client.create_image(&data_disk).await.unwrap();
    owner.client.upload_bytes(&app.id, pattern(20_000, 16)).await.unwrap();
    let new = CreateCapsule {
        name: "shop-capsule".into(),
        base_image_id: base.id.clone(),
        app_image_ids: vec![app.id.clone()],
        user_data: b"#cloud-config\n".to_vec(),
        ..Default::default()
    };
    let capsule = owner.client.create_capsule(&new).await.unwrap();

    c.sign_in(&owner.token, "packager").await;
    c.go("#/images?tab=capsules").await;
    c.expect_rows(&["shop-capsule".to_string()], "the capsule").await;
    c.click(&format!("#images-table a[href='#/images/{}']", capsule.image.id)).await;
    c.until("document.querySelectorAll('#capsule-parts li').length === 2", "the capsule's parts").await;
    let parts = c.js("return [...document.querySelectorAll('#capsule-parts li')].map(li => [li.dataset.part, li.dataset.role, li.querySelector('a').textContent])").await;
    assert_eq!(parts, json!([[base.id, "Base image", "ubuntu-base"], [app.id, "Data disk 1", "app-data"]]));
    assert_eq!(c.text("#capsule-user-data").await, "Cloud-init user data: 14 bytes.");
    c.screenshot("capsule-parts").await;
    // A plain image has no capsule card.
    c.go(&format!("#/images/{}", base.id)).await;
    // (The capsule's page has a lineage chain too: wait for this image's, whose first link is the image.)
    let first_link = format!("document.querySelector('#lineage-chain li')?.dataset.ancestor === {}", js_str(&base.id));
    c.until(&first_link, "the base image's lineage").await;
    assert!(!c.js("return !!document.querySelector('#capsule')").await.as_bool().unwrap());
    c.quit().await;
}

/// How many images the paging test bins: more than the largest page.
const BINNED: usize = 1005;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bin_of_more_than_a_thousand_images_is_paged_with_markers() {
    use futures::StreamExt;

    let c = Console::start().await;
    let t = c.server.tenant("hoarder", Role::Member).await;
    // Seeded through the API, a few requests at a time: each image created (queued) and deleted into
    // the bin.
    let started = std::time::Instant::now();
    let client = t.client.clone();
    let seeded: Vec<String> = futures::stream::iter(0..BINNED)
        .map(|i| {
            let client = client.clone();
            async move {
                let image = client.create_image(&raw_image(&format!("binned-{i:04}"))).await.unwrap();
                client.delete_image(&image.id).await.unwrap();
                image.id
            }
        })
        .buffer_unordered(6)
        .collect()
        .await;
    eprintln!("binned {} images in {:?}", seeded.len(), started.elapsed());
    // The bin's order, from the API, a page at a time.
    let page = |marker: Option<String>| {
        let client = client.clone();
        async move {
            let query = marker.map(|m| format!("&marker={m}")).unwrap_or_default();
            let body: serde_json::Value = client.raw(reqwest::Method::GET, &format!("/v1/recycle-bin/images?limit=1000{query}")).send().await.unwrap().json().await.unwrap();
            body["images"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    let first = page(None).await;
    let rest = page(Some(first.last().unwrap().clone())).await;
    assert_eq!((first.len(), rest.len()), (1000, BINNED - 1000));

    c.sign_in(&t.token, "hoarder").await;
    c.click("#nav-recycle-bin").await;
    c.until("document.querySelectorAll('#bin-table tbody tr').length === 100 && document.querySelector('#bin-pager')?.dataset.more === 'yes'", "the first page of 100").await;
    assert!(c.js("return document.querySelector('#bin-prev').disabled").await.as_bool().unwrap());
    // A thousand a page: the first page, then the last with the five left.
    c.choose("#bin-page-size", "1000").await;
    c.until("document.querySelectorAll('#bin-table tbody tr').length === 1000 && document.querySelector('#bin-pager')?.dataset.more === 'yes'", "the first page of 1000").await;
    let row_ids = "return [...document.querySelectorAll('#bin-table tbody tr')].map(r => r.dataset.imageId)";
    assert_eq!(c.js(row_ids).await, json!(first));
    assert_eq!(c.text("#bin-count").await, "Page 1: 1,000 images, more on the next pages.");
    c.click("#bin-next").await;
    c.until("document.querySelectorAll('#bin-table tbody tr').length === 5 && document.querySelector('#bin-pager')?.dataset.more === 'no'", "the last page").await;
    assert_eq!(c.js(row_ids).await, json!(rest));
    assert_eq!(c.text("#bin-page-number").await, "Page 2");
    assert!(c.js("return document.querySelector('#bin-next').disabled").await.as_bool().unwrap());
    let hash = c.js("return location.hash").await;
    assert_eq!(hash, json!(format!("#/recycle-bin?limit=1000&marker={}", first.last().unwrap())), "the page is in the address");
    c.screenshot("recycle-bin-last-page").await;
    // Previous goes back to the first page; no request ever asked for more than a page.
    c.click("#bin-prev").await;
    c.until("document.querySelectorAll('#bin-table tbody tr').length === 1000 && document.querySelector('#bin-page-number')?.textContent === 'Page 1'", "the first page again").await;
    assert_eq!(c.js(row_ids).await, json!(first));
    let requests = c.js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/v1/recycle-bin/images'))").await;
    let requests: Vec<String> = serde_json::from_value(requests).unwrap();
    assert!(!requests.is_empty());
    for url in &requests {
        let limit = url.split(['?', '&']).find_map(|p| p.strip_prefix("limit=")).unwrap_or_else(|| panic!("{url} asks for a page"));
        assert!(limit.parse::<u32>().unwrap() <= 1000, "{url}");
    }
    c.quit().await;
}
