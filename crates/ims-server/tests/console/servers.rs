//! Browser tests of the servers pages (`#/servers`, `#/servers/<id>`: create from an image, a
//! whole-server image or a capsule, volumes, images from a server, delete) and of capsule creation on
//! the create page.

use ims_client::Role;
use serde_json::{json, Value};

use super::harness::*;

/// Waits for `#server-source` to offer `id`, then picks it.
async fn choose_source(c: &Console, kind: &str, id: &str) {
    c.choose("#server-source-kind", kind).await;
    c.wait_for(&format!("#server-source option[value='{id}']")).await;
    c.choose("#server-source", id).await;
}

/// Creates a server through the form; returns its id once its page shows `volumes` volumes.
async fn create_server(c: &Console, name: &str, kind: &str, source: &str, data_sizes: &str, volumes: usize) -> String {
    c.go("#/servers").await;
    c.wait_for("#server-form").await;
    c.fill("#server-name", name).await;
    choose_source(c, kind, source).await;
    c.fill("#server-ram", "2048").await;
    c.fill("#server-data-sizes", data_sizes).await;
    c.click("#create-server").await;
    c.until(
        &format!("location.hash.startsWith('#/servers/') && document.querySelector('#server-title')?.textContent.startsWith({})", js_str(name)),
        &format!("the page of server {name}"),
    )
    .await;
    c.until(&format!("document.querySelectorAll('#server-volumes tbody tr').length === {volumes}"), "the server's volumes").await;
    c.js("return location.hash.slice('#/servers/'.length)").await.as_str().unwrap().to_string()
}

/// Starts an image of the open server page's server and follows its job to success on the job page
/// and on the jobs list; returns the job.
async fn image_from_server(c: &Console, t: &Tenant, whole: bool, name: &str) -> Value {
    c.click(if whole { "#server-image-whole" } else { "#server-image-system" }).await;
    c.fill("#server-image-name", name).await;
    c.click("#start-server-image").await;
    let link = c.wait_for("#server-image-job-link").await;
    let job_id = link.attr("data-job-id").await.unwrap().unwrap();
    c.click("#server-image-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'SUCCESS'", "the image job to succeed").await;
    c.go("#/jobs").await;
    let row = format!("#jobs-table tr[data-job-id='{job_id}']");
    c.until(&format!("document.querySelector(\"{row} [data-job-status]\")?.dataset.jobStatus === 'SUCCESS'"), "the job on the jobs list").await;
    assert_eq!(c.js(&format!("return document.querySelector(\"{row}\").dataset.jobType")).await, json!("createImageFromServer"));
    let job = t.client.get_job(&job_id).await.unwrap();
    assert_eq!(job.status, "SUCCESS", "{job:?}");
    job.entities
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_created_from_images_and_make_images() {
    let c = Console::start().await;
    let t = c.server.tenant("compute", Role::Member).await;
    let base = t.client.create_image(&raw_image("web-base")).await.unwrap();
    t.client.upload_bytes(&base.id, pattern(300_000, 21)).await.unwrap();
    let data_disk = json!({"name": "app-disk", "disk_format": "raw", "container_format": "bare", "virtual_env_type": "DataImage"});
    let data_image = t.client.create_image(&data_disk).await.unwrap();
    t.client.upload_bytes(&data_image.id, pattern(50_000, 22)).await.unwrap();

    c.sign_in(&t.token, "compute").await;
    c.click("#nav-servers").await;
    c.wait_for("#servers-empty").await;
    // A data disk image is not offered as a system disk; a bad size is refused in plain words.
    c.wait_for(&format!("#server-source option[value='{}']", base.id)).await;
    assert!(!c.js(&format!("return !!document.querySelector(\"#server-source option[value='{}']\")", data_image.id)).await.as_bool().unwrap());
    c.fill("#server-name", "web-1").await;
    c.choose("#server-source", &base.id).await;
    c.fill("#server-data-sizes", "2, x").await;
    c.click("#create-server").await;
    let error = c.until("document.querySelector('#server-create-result [role=alert]')?.textContent", "the size error").await;
    assert!(error.as_str().unwrap().contains("whole numbers of GB"), "{error}");
    assert!(t.client.list_servers(false).await.unwrap().is_empty(), "nothing created");

    // From a system disk image, with one empty data disk: the server page lists both volumes.
    let server_id = create_server(&c, "web-1", "image", &base.id, "2", 2).await;
    let server = t.client.get_server(&server_id).await.unwrap();
    assert_eq!(server.image_id.as_deref(), Some(base.id.as_str()));
    assert_eq!(server.volumes.as_ref().map(Vec::len), Some(2));
    let devices = c.js("return [...document.querySelectorAll('#server-volumes tbody tr')].map(r => r.dataset.device)").await;
    assert_eq!(devices, json!(["0", "1"]));
    assert!(c.text("#server-volumes").await.contains("2 GB"));

    // A system disk image from it: a job on the jobs list, then the image in Private, active.
    let entities = image_from_server(&c, &t, false, "web-1-image").await;
    let image_id = entities["image_id"].as_str().unwrap().to_string();
    c.go("#/images?tab=private").await;
    c.wait_for(&format!("#images-table tr[data-name='web-1-image']")).await;
    assert_eq!(
        c.js("return document.querySelector(\"#images-table tr[data-name='web-1-image'] [data-status]\").dataset.status").await,
        json!("active")
    );
    assert_eq!(t.client.get_image(&image_id).await.unwrap().status, "active");

    // A whole-server image, and a server restored from it with both disks.
    c.go(&format!("#/servers/{server_id}")).await;
    c.wait_for("#server-image-form").await;
    let entities = image_from_server(&c, &t, true, "web-1-whole").await;
    let whole_id = entities["image_id"].as_str().unwrap().to_string();
    let restored = create_server(&c, "web-2", "whole", &whole_id, "", 2).await;
    assert_eq!(t.client.get_server(&restored).await.unwrap().image_id.as_deref(), Some(whole_id.as_str()));

    // The list: both servers with their volumes and images.
    c.click("#nav-servers").await;
    c.until("document.querySelectorAll('#servers-table tbody tr').length === 2", "two servers").await;
    let rows = c.js("return [...document.querySelectorAll('#servers-table tbody tr')].map(r => [r.dataset.name, r.querySelector('[data-volumes]').dataset.volumes, r.querySelector('[data-image]').dataset.image, r.querySelector('[data-server-status]').dataset.serverStatus])").await;
    assert_eq!(rows, json!([["web-1", "2", base.id, "SHUTOFF"], ["web-2", "2", whole_id, "SHUTOFF"]]));
    c.js("document.getElementById('toasts')?.replaceChildren(); return null").await;
    c.doc_screenshot("servers").await;

    // Phone width, dark mode: nothing scrolls sideways.
    c.set_viewport(PHONE).await;
    c.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]})).await;
    c.assert_no_horizontal_scroll("servers at phone width").await;
    c.go(&format!("#/servers/{restored}")).await;
    c.wait_for("#server-volumes").await;
    c.assert_no_horizontal_scroll("a server at phone width").await;
    c.screenshot("server-phone-dark").await;
    c.set_viewport(DESKTOP).await;

    // Delete asks first; cancelling keeps the server, confirming deletes it and its volumes.
    c.click("#delete-server").await;
    c.wait_for("dialog[open]").await;
    c.click("dialog[open] button[value='no']").await;
    c.until("!document.querySelector('dialog')", "the dialog to close").await;
    assert!(t.client.get_server(&restored).await.is_ok());
    c.click("#delete-server").await;
    c.click("dialog[open] button[value='yes']").await;
    c.until("location.hash === '#/servers' && document.querySelectorAll('#servers-table tbody tr').length === 1", "the list without web-2").await;
    assert_eq!(t.client.get_server(&restored).await.unwrap_err().status(), Some(404));
    let left = t.client.list_volumes(false, None).await.unwrap();
    assert!(left.iter().all(|v| v.server_id.as_deref() == Some(server_id.as_str())), "web-2's volumes went with it: {left:?}");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capsule_is_created_in_the_browser_and_deploys_as_a_server() {
    let c = Console::start().await;
    let t = c.server.tenant("packager", Role::Member).await;
    let base = t.client.create_image(&raw_image("debian-base")).await.unwrap();
    t.client.upload_bytes(&base.id, pattern(200_000, 31)).await.unwrap();
    let mut apps = Vec::new();
    for (i, name) in ["app-code", "app-data"].into_iter().enumerate() {
        let fields = json!({"name": name, "disk_format": "raw", "container_format": "bare", "virtual_env_type": "DataImage"});
        let image = t.client.create_image(&fields).await.unwrap();
        t.client.upload_bytes(&image.id, pattern(40_000, 32 + i as u64)).await.unwrap();
        apps.push(image.id);
    }

    c.sign_in(&t.token, "packager").await;
    c.go("#/create").await;
    c.wait_for(&format!("#capsule-base option[value='{}']", base.id)).await;
    // Only data disk images are offered as application images, and the base only among system disks.
    let offered = c.js("return [...document.querySelectorAll('#capsule-apps input')].map(i => i.value)").await;
    assert_eq!(offered, json!([apps[0], apps[1]]));
    assert!(!c.js(&format!("return !!document.querySelector(\"#capsule-base option[value='{}']\")", apps[0])).await.as_bool().unwrap());
    c.fill("#capsule-name", "shop-capsule").await;
    c.choose("#capsule-base", &base.id).await;
    // No application image: refused in plain words, nothing created.
    c.click("#create-capsule").await;
    let error = c.until("document.querySelector('#capsule-result [role=alert]')?.textContent", "the missing-part error").await;
    assert!(error.as_str().unwrap().contains("application images"), "{error}");
    assert!(t.client.list_capsules(None, None).await.unwrap().capsules.is_empty());

    let user_data = "#cloud-config\npackages: [nginx]\nruncmd:\n  - echo \"héllo\" > /etc/motd\n";
    c.click(&format!("#capsule-app-{}", apps[1])).await;
    c.fill("#capsule-user-data", user_data).await;
    c.click("#create-capsule").await;
    let link = c.wait_for("#capsule-link").await;
    let capsule_id = link.attr("data-capsule-id").await.unwrap().unwrap();
    let capsule = t.client.get_capsule(&capsule_id).await.unwrap();
    assert_eq!(capsule.base_image.id, base.id);
    assert_eq!(capsule.app_images.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [apps[1].as_str()]);
    assert_eq!(capsule.user_data, user_data.as_bytes(), "the user data byte for byte (UTF-8)");
    c.js("document.querySelector('#capsule-form').scrollIntoView(); return null").await;
    c.doc_screenshot("capsule-create").await;

    // It shows in the Capsules tab, and deploys as a server: base, application disk, config drive.
    c.click("#capsules-tab-link").await;
    c.expect_rows(&["shop-capsule".to_string()], "the new capsule in the Capsules tab").await;
    let server_id = create_server(&c, "shop-1", "capsule", &capsule_id, "", 3).await;
    let server = t.client.get_server(&server_id).await.unwrap();
    assert_eq!(server.image_id.as_deref(), Some(capsule_id.as_str()));
    let sources = c.js("return [...document.querySelectorAll('#server-volumes tbody tr')].map(r => r.querySelector('[data-image]')?.dataset.image)").await;
    assert_eq!(sources, json!([base.id, apps[1], capsule_id]));

    // The create page at phone width in dark mode does not scroll sideways.
    c.set_viewport(PHONE).await;
    c.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]})).await;
    c.go("#/create").await;
    c.wait_for(&format!("#capsule-base option[value='{}']", base.id)).await;
    c.assert_no_horizontal_scroll("the create page at phone width").await;
    c.quit().await;
}
