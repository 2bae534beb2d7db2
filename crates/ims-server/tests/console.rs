//! Browser tests of the web console (`/console/`): the real server in-process on a free port,
//! Debian's headless Chromium driven through chromedriver (WebDriver) with `thirtyfour`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/install-browser` installs them);
//! without them every browser test fails with a message saying so. Screenshots go to
//! `target/console-screenshots/`, and those of the flows the documentation shows to `docs/screenshots/`.
//! The tests run one at a time (one browser at once on small machines).
//!
//! `console/harness.rs` has the server and browser harness; `console/operations.rs` the tests of jobs,
//! exports, buckets, access keys and the administration pages; `console/recycle_bin.rs` the recycle
//! bin and lineage; `console/servers.rs` the servers pages and capsule creation.

#[path = "console/harness.rs"]
mod harness;
#[path = "console/operations.rs"]
mod operations;
#[path = "console/recycle_bin.rs"]
mod recycle_bin;
#[path = "console/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use harness::*;
use ims_client::{CreateImage, ListParams, MemberStatus, Role};
use serde_json::{json, Value};
use thirtyfour::prelude::*;

// --- the tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_with_a_strict_policy() {
    let server = TestServer::start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.get(format!("{}/console", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/console/");
    let r = http.get(format!("{}/console/", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let etag = r.headers()["etag"].clone();
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="js/app.js">"#));
    let r = http.get(format!("{}/console/", server.url)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = http.get(format!("{}/console/js/views/images.js", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    // Every module the page loads, followed through its imports, is served as JavaScript.
    let mut pending = vec!["js/app.js".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = http.get(format!("{}/console/{path}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} is listed in console/assets.rs");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"), "{path}");
        let text = r.text().await.unwrap();
        let dir = path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let spec = line.rsplit_once(" from \"").map(|(_, s)| s.trim_end_matches("\";")).unwrap();
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for seg in spec.split('/') {
                match seg {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            pending.push(parts.join("/"));
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
    for asset in ["console.css", "favicon.svg"] {
        let r = http.get(format!("{}/console/{asset}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let r = http.get(format!("{}/console/nope.js", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{}/console/../v2/images", server.url)).send().await.unwrap();
    assert_ne!(r.status(), 200, "no way out of the console's files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_shows_the_project_and_a_bad_token_is_refused_in_plain_words() {
    let c = Console::start().await;

    // A bad token: a plain-words error, no HTML, nothing stored, no token in the URL.
    c.fill("#token", "not-a-real-token").await;
    c.click("#sign-in").await;
    let error = c.until("document.querySelector('#signin-error [role=alert]')?.textContent", "the sign-in error").await;
    let error = error.as_str().unwrap();
    assert!(error.contains("this token was not accepted"), "{error}");
    assert!(error.contains("requires authentication"), "the API's message is shown: {error}");
    assert!(!error.contains('<'), "no markup in the message: {error}");
    assert_eq!(c.js("return sessionStorage.length").await, json!(0));
    c.screenshot("signin-error-desktop").await;

    // The admin token: signed in, the project shown, the token kept in sessionStorage only.
    c.fill("#token", ADMIN_TOKEN).await;
    c.click("#sign-in").await;
    c.until("document.querySelector('#project-name')?.textContent === 'admin'", "the project display").await;
    let who = c.text("#whoami").await;
    assert!(who.contains("admin") && who.contains("in project"), "{who}");
    assert!(c.js("return !!document.querySelector('#nav-admin')").await.as_bool().unwrap(), "admins see Administration");
    let url = c.driver.current_url().await.unwrap().to_string();
    assert!(!url.contains(ADMIN_TOKEN), "the token is never in the URL: {url}");
    let stored = c.js("return JSON.stringify(sessionStorage)").await;
    assert!(stored.as_str().unwrap().contains(ADMIN_TOKEN));
    assert_eq!(c.js("return localStorage.length").await, json!(0));

    // A token revoked while signed in ends the session with a plain explanation.
    let tenant = c.server.tenant("short-lived", Role::Member).await;
    c.sign_out().await;
    c.sign_in(&tenant.token, "short-lived").await;
    assert!(!c.js("return !!document.querySelector('#nav-admin')").await.as_bool().unwrap(), "members do not see Administration");
    c.server.admin.revoke_token(&tenant.token_id).await.unwrap();
    c.click("#nav-usage").await;
    let reason = c.until("document.querySelector('.signin-page .msg-info')?.textContent", "the end of the session").await;
    assert!(reason.as_str().unwrap().contains("no longer accepted"), "{reason}");
    assert_eq!(c.js("return sessionStorage.getItem('ims.console.credential')").await, Value::Null, "the revoked token is forgotten");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploads_with_progress_to_100_percent_and_the_image_becomes_active() {
    let c = Console::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web-server.raw");
    let size = 6 * 1024 * 1024 + 4096;
    std::fs::write(&path, pattern(size, 7)).unwrap();

    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.click("#nav-create").await;
    let input = c.wait_for("#upload-file").await;
    input.send_keys(path.to_str().unwrap()).await.unwrap();
    c.until("document.querySelector('#upload-name').value === 'web-server'", "the name from the file").await;
    assert_eq!(c.js("return document.querySelector('#upload-disk-format').value").await, json!("raw"));
    c.fill("#upload-tags", "web, linux").await;
    c.click("#start-upload").await;

    c.until("document.querySelector('#upload-phase')?.textContent.startsWith('Done')", "the upload to finish").await;
    let numbers = c.text("#upload-progress-text").await;
    assert!(numbers.contains("(100%)"), "progress reaches 100%: {numbers}");
    assert!(numbers.contains("6 MiB of 6 MiB") && numbers.contains("/s"), "bytes and rate: {numbers}");
    let bar = c.js("const p = document.querySelector('#upload-progress'); return [p.value, p.max]").await;
    assert_eq!(bar, json!([size, size]), "the progress bar is full");
    assert!(c.text("#upload-phase").await.contains("is active"));
    c.screenshot("upload-done-desktop").await;

    // The list shows it active, with its exact size.
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table tr[data-name='web-server']").await;
    let row = "#images-table tr[data-name='web-server']";
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} [data-status]\").dataset.status")).await, json!("active"));
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} .size\").dataset.bytes")).await, json!(size.to_string()));
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} .size\").textContent")).await, json!("6 MiB"));
    let image = c.server.admin.list_all_images(&ListParams { name: Some("web-server".into()), ..Default::default() }).await.unwrap();
    assert_eq!(image.len(), 1);
    assert_eq!(image[0].size, Some(size as u64));
    let mut tags = image[0].tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["linux", "web"]);

    // Download, streamed into the file the user picks (File System Access API; the picker is
    // stood in for by a page script, since a headless browser shows no dialog).
    c.click(&format!("{row} a.image-link")).await;
    c.wait_for("#download").await;
    c.js(
        "window.__saved = {name: null, bytes: 0, closed: false}; \
         window.showSaveFilePicker = async (opts) => { window.__saved.name = opts.suggestedName; return { \
           createWritable: async () => new WritableStream({ \
             write(chunk) { window.__saved.bytes += chunk.byteLength; }, \
             close() { window.__saved.closed = true; } }) }; }; return null",
    )
    .await;
    c.click("#download").await;
    c.until("window.__saved.closed", "the streamed download").await;
    assert_eq!(c.js("return window.__saved").await, json!({"name": "web-server.raw", "bytes": size, "closed": true}));
    assert!(c.text("#download-progress").await.starts_with("Saved web-server.raw"));

    // Without that API: the in-memory fallback saves the file through the browser's downloads.
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    c.cdp("Browser.setDownloadBehavior", json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()})).await;
    c.js("window.showSaveFilePicker = undefined; return null").await;
    c.click("#download").await;
    let saved = downloads.join("web-server.raw");
    let deadline = Instant::now() + WAIT;
    while std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0) != size as u64 {
        assert!(Instant::now() < deadline, "the fallback download never arrived in {}", downloads.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::fs::read(&saved).unwrap() == pattern(size, 7), "the downloaded bytes are the uploaded ones");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_sorts_and_pages_through_30_images() {
    let c = Console::start().await;
    let admin = &c.server.admin;
    for i in 0..30usize {
        let even = i % 2 == 0;
        let img = admin
            .create_image(&CreateImage {
                disk_format: Some(if even { "raw" } else { "qcow2" }.into()),
                tags: if even { vec!["even".into()] } else { vec![] },
                ..raw_image(&format!("disk-{i:02}"))
            })
            .await
            .unwrap();
        if even && i % 3 == 0 {
            admin.upload_bytes(&img.id, pattern(1024 * (i + 1), i as u64)).await.unwrap();
        }
    }
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.go("#/images?tab=private").await;
    assert_eq!(c.row_names().await.len(), 25, "25 per page by default");

    c.choose("#page-size", "10").await;
    c.choose("#sort", "name:asc").await;
    c.expect_rows(&names(0..10), "page 1 by name").await;
    c.click("#page-next").await;
    c.expect_rows(&names(10..20), "page 2 by name").await;
    c.click("#page-next").await;
    c.expect_rows(&names(20..30), "page 3 by name").await;
    c.until("document.querySelector('.pager')?.dataset.more === 'no'", "the list to know nothing follows").await;
    let next_disabled = c.js("return document.querySelector('#page-next').disabled").await;
    assert_eq!(next_disabled, json!(true), "no page after the last");
    assert!(!c.text("#result-count").await.contains("more"), "the count does not promise more");
    c.click("#page-prev").await;
    c.expect_rows(&names(10..20), "back to page 2").await;
    c.click("#page-prev").await;
    c.expect_rows(&names(0..10), "back to page 1").await;

    // A column header sorts: name, ascending then descending.
    c.click("th button[data-sort='name']").await;
    c.expect_rows(&names(0..30).into_iter().rev().take(10).collect::<Vec<_>>(), "sorted by name, descending").await;
    let sort = c.js("return document.querySelector('th[aria-sort]').getAttribute('aria-sort')").await;
    assert_eq!(sort, json!("descending"));
    c.click("th button[data-sort='size']").await;
    c.until("document.querySelector('th[aria-sort]')?.textContent.startsWith('Size')", "sorted by size").await;
    let sizes = c.js("return [...document.querySelectorAll('#images-table tbody .size')].map(s => Number(s.dataset.bytes || -1))").await;
    let sizes: Vec<i64> = sizes.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let mut sorted = sizes.clone();
    sorted.sort();
    assert_eq!(sizes, sorted, "ascending sizes");

    // Filters: exact name, tag, status, disk format.
    c.click("#reset-filters").await;
    c.row_names().await;
    c.fill("#filter-name", "disk-07").await;
    c.click("#apply-filters").await;
    c.expect_rows(&["disk-07".to_string()], "the name filter").await;
    c.screenshot("list-filtered-desktop").await;

    c.click("#reset-filters").await;
    c.choose("#page-size", "50").await;
    c.choose("#sort", "name:asc").await;
    c.fill("#filter-tag", "even").await;
    c.click("#apply-filters").await;
    c.expect_rows(&names((0..30).step_by(2)), "the tag filter").await;
    c.choose("#filter-status", "active").await;
    c.expect_rows(&names([0, 6, 12, 18, 24].into_iter()), "tag and status filters").await;
    c.fill("#filter-tag", "").await;
    c.choose("#filter-status", "").await;
    c.choose("#filter-format", "qcow2").await;
    c.expect_rows(&names((1..30).step_by(2)), "the disk format filter").await;
    let result = c.text("#result-count").await;
    assert!(result.contains("15 images"), "{result}");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_page_edits_properties_and_tags() {
    let c = Console::start().await;
    let owner = c.server.tenant("editors", Role::Member).await;
    let img = owner
        .client
        .create_image(&json!({"name": "draft", "disk_format": "raw", "container_format": "bare", "visibility": "private", "os_distro": "ubuntu", "stale": "x"}))
        .await
        .unwrap();
    owner.client.upload_bytes(&img.id, pattern(200_000, 3)).await.unwrap();
    c.sign_in(&owner.token, "editors").await;
    c.go("#/images?tab=private").await;
    c.click("#images-table a.image-link").await;
    c.until("document.querySelector('#image-title')?.textContent.includes('draft')", "the image page").await;
    c.screenshot("image-page-desktop").await;

    // Details: name, minimum disk, protection.
    c.fill("#edit-name", "release-1").await;
    c.fill("#edit-min-disk", "20").await;
    c.click("#edit-protected").await;
    c.click("#save-details").await;
    c.until("document.querySelector('#image-title')?.textContent.includes('release-1')", "the renamed image").await;
    assert!(c.js("return document.querySelector('#delete').disabled").await.as_bool().unwrap(), "protected: delete is off");

    // Custom properties: change one, add one, remove one.
    c.fill("#prop-key", "os_distro").await;
    c.fill("#prop-value", "debian").await;
    c.click("#add-property").await;
    c.until("document.querySelector(\"tr[data-property='os_distro'] td\")?.textContent === 'debian'", "the changed property").await;
    c.fill("#prop-key", "hw_firmware_type").await;
    c.fill("#prop-value", "uefi").await;
    c.click("#add-property").await;
    c.wait_for("tr[data-property='hw_firmware_type']").await;
    c.click("button[data-remove-property='stale']").await;
    c.until("!document.querySelector(\"tr[data-property='stale']\") && !!document.querySelector('#properties-table')", "the removed property").await;

    // Tags: add two, remove one.
    c.fill("#new-tag", "golden").await;
    c.click("#add-tag").await;
    c.wait_for("li[data-tag='golden']").await;
    c.fill("#new-tag", "tmp").await;
    c.click("#add-tag").await;
    c.wait_for("li[data-tag='tmp']").await;
    c.click("button[data-remove-tag='tmp']").await;
    c.until("!document.querySelector(\"li[data-tag='tmp']\") && !!document.querySelector(\"li[data-tag='golden']\")", "the removed tag").await;

    // A refused change is explained in plain words (setting a reserved property).
    c.fill("#prop-key", "os_glance_secret").await;
    c.fill("#prop-value", "x").await;
    c.click("#add-property").await;
    let error = c.until("document.querySelector('#image-messages [role=alert]')?.textContent", "the refusal").await;
    assert!(error.as_str().unwrap().starts_with("Could not set os_glance_secret: Not allowed:"), "{error}");

    let got = owner.client.get_image(&img.id).await.unwrap();
    assert_eq!(got.name.as_deref(), Some("release-1"));
    assert_eq!(got.min_disk, 20);
    assert!(got.protected);
    assert_eq!(got.property("os_distro"), Some("debian"));
    assert_eq!(got.property("hw_firmware_type"), Some("uefi"));
    assert_eq!(got.property("stale"), None);
    assert_eq!(got.tags, vec!["golden".to_string()]);
    c.screenshot("image-page-edited-desktop").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_is_accepted_by_the_second_project_in_its_own_session() {
    let c = Console::start().await;
    let owner = c.server.tenant("studio", Role::Member).await;
    let guest = c.server.tenant("guest", Role::Member).await;
    let img = owner.client.create_image(&json!({"name": "base-os", "disk_format": "raw", "container_format": "bare", "visibility": "shared"})).await.unwrap();
    owner.client.upload_bytes(&img.id, pattern(300_000, 9)).await.unwrap();

    // The owner shares it with the guest project, by name.
    c.sign_in(&owner.token, "studio").await;
    c.go(&format!("#/images/{}", img.id)).await;
    c.fill("#member-project", "guest").await;
    c.click("#add-member").await;
    c.until(
        &format!("document.querySelector(\"tr[data-member='{}'] [data-member-status]\")?.dataset.memberStatus === 'pending'", guest.project_id),
        "the pending member",
    )
    .await;
    c.sign_out().await;

    // The guest sees it waiting for an answer, and accepts it.
    c.sign_in(&guest.token, "guest").await;
    c.click("#tab-shared").await;
    c.wait_for(&format!("#pending-shares li[data-image-id='{}']", img.id)).await;
    assert!(c.row_names().await.is_empty(), "not in the list before it is accepted");
    c.screenshot("shared-pending-desktop").await;
    c.click(&format!("button[data-accept='{}']", img.id)).await;
    c.until("document.querySelector('#pending-shares')?.textContent.includes('No shares are waiting')", "no more pending shares").await;
    c.expect_rows(&["base-os".to_string()], "the accepted image in the shared tab").await;
    let m = owner.client.get_member(&img.id, &guest.project_id).await.unwrap();
    assert_eq!(m.status, "accepted");

    // Its page shows the answer and lets the guest change it.
    c.click("#images-table a.image-link").await;
    c.until("document.querySelector('#my-member-status')?.textContent === 'accepted'", "the guest's answer").await;
    c.click("#reject-share").await;
    c.until("document.querySelector('#my-member-status')?.textContent === 'rejected'", "the rejection").await;
    assert_eq!(owner.client.get_member(&img.id, &guest.project_id).await.unwrap().status, "rejected");
    guest.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_deactivates_reactivates_and_deletes_an_image() {
    let c = Console::start().await;
    let owner = c.server.tenant("ops", Role::Member).await;
    let img = owner.client.create_image(&raw_image("old-kernel")).await.unwrap();
    owner.client.upload_bytes(&img.id, pattern(100_000, 5)).await.unwrap();

    // Members have no deactivate button.
    c.sign_in(&owner.token, "ops").await;
    c.go(&format!("#/images/{}", img.id)).await;
    c.wait_for("#delete").await;
    assert!(!c.js("return !!document.querySelector('#deactivate')").await.as_bool().unwrap());
    c.sign_out().await;

    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.go(&format!("#/images/{}", img.id)).await;
    c.click("#deactivate").await;
    c.until("document.querySelector('#image-title [data-status]')?.dataset.status === 'deactivated'", "the deactivated image").await;
    assert_eq!(owner.client.get_image(&img.id).await.unwrap().status, "deactivated");
    c.screenshot("image-deactivated-desktop").await;
    c.click("#reactivate").await;
    c.until("document.querySelector('#image-title [data-status]')?.dataset.status === 'active'", "the reactivated image").await;

    // Delete asks first; cancelling keeps the image.
    c.click("#delete").await;
    c.wait_for("dialog[open]").await;
    c.screenshot("delete-confirm-desktop").await;
    c.click("dialog[open] button[value='no']").await;
    c.until("!document.querySelector('dialog')", "the dialog to close").await;
    assert!(owner.client.get_image(&img.id).await.is_ok());
    c.click("#delete").await;
    c.click("dialog[open] button[value='yes']").await;
    c.until("location.hash.startsWith('#/images') && !location.hash.includes('old-kernel') && !!document.querySelector('#result-count')", "back to the list").await;
    let err = owner.client.get_image(&img.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_projects_users_and_tokens() {
    let c = Console::start().await;
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.click("#nav-admin").await;
    c.fill("#new-project-name", "research").await;
    c.click("#create-project").await;
    c.wait_for("#projects-table tr[data-project='research']").await;

    c.click("#admin-tab-users").await;
    c.wait_for("#new-user-project").await;
    c.fill("#new-user-name", "rita").await;
    let research = c.server.admin.get_project("research").await.unwrap();
    c.choose("#new-user-project", &research.id).await;
    c.click("#create-user").await;
    let token = c.until("document.querySelector('#new-user-token input.secret')?.value", "rita's first token").await;
    let token = token.as_str().unwrap().to_string();
    c.wait_for("#users-table tr[data-user='rita']").await;
    c.screenshot("admin-users-desktop").await;

    c.click("#admin-tab-tokens").await;
    c.wait_for("#token-user").await;
    let rita = c.server.admin.list_users().await.unwrap().into_iter().find(|u| u.name == "rita").unwrap();
    c.choose("#token-user", &rita.id).await;
    c.click("#create-token").await;
    let issued = c.until("document.querySelector('#new-token input.secret')?.value", "the issued token").await;
    let issued = issued.as_str().unwrap().to_string();
    let issued_id = c.text("#issued-token-id").await;
    let as_rita = c.server.admin.with_token(issued.clone());
    assert_eq!(as_rita.whoami().await.unwrap().project.name, "research");
    c.click(&format!("button[data-revoke-token='{issued_id}']")).await;
    c.click("dialog[open] button[value='yes']").await;
    c.until(&format!("document.querySelector(\"button[data-revoke-token='{issued_id}']\")?.textContent === 'Revoked'"), "the revoked token").await;
    assert_eq!(as_rita.whoami().await.unwrap_err().status(), Some(401));
    assert!(c.server.admin.with_token(token).whoami().await.is_ok(), "the first token still works");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone_and_read_in_dark_mode() {
    let c = Console::start().await;
    let owner = c.server.tenant("mobile", Role::Member).await;
    for (i, name) in ["ubuntu-24.04-server-cloudimg-amd64-with-a-very-long-name", "debian-12", "windows-2022-datacenter"].iter().enumerate() {
        let img = owner
            .client
            .create_image(&json!({"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "shared", "os_distro": "linux", "a_long_property_key_that_goes_on_and_on": "x".repeat(120)}))
            .await
            .unwrap();
        owner.client.upload_bytes(&img.id, pattern(50_000 * (i + 1), i as u64)).await.unwrap();
        owner.client.add_tag(&img.id, "a-rather-long-tag-name-for-wrapping").await.unwrap();
        owner.client.add_member(&img.id, "some-other-project-id-that-is-long").await.unwrap();
    }
    let first = owner.client.list_all_images(&ListParams::default()).await.unwrap().remove(0);

    c.screenshot("signin-desktop").await;
    c.sign_in(&owner.token, "mobile").await;
    let pages = [
        ("images", "#/images?tab=private".to_string(), "#images-table"),
        ("image", format!("#/images/{}", first.id), "#members-table"),
        ("create", "#/create".to_string(), "#create-form"),
        ("usage", "#/usage".to_string(), "#usage"),
        ("shared", "#/images?tab=shared".to_string(), "#pending-shares"),
    ];
    for (name, route, ready) in &pages {
        c.go(route).await;
        c.wait_for(ready).await;
        c.screenshot(&format!("{name}-desktop")).await;
        c.assert_no_horizontal_scroll(&format!("{name} at desktop width")).await;
    }
    c.set_viewport(PHONE).await;
    assert_eq!(c.js("return window.innerWidth").await, json!(PHONE.0));
    for (name, route, ready) in &pages {
        c.go(route).await;
        c.wait_for(ready).await;
        c.until("!document.querySelector('main[aria-busy]')", "the page").await;
        c.screenshot(&format!("{name}-phone")).await;
        c.assert_no_horizontal_scroll(&format!("{name} at {}px", PHONE.0)).await;
    }
    c.sign_out().await;
    c.screenshot("signin-phone").await;
    c.assert_no_horizontal_scroll("sign-in at phone width").await;

    // Dark mode: the colours follow prefers-color-scheme.
    c.set_viewport(DESKTOP).await;
    c.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]})).await;
    c.sign_in(&owner.token, "mobile").await;
    c.go(&format!("#/images/{}", first.id)).await;
    c.wait_for("#members-table").await;
    let bg = c.js("return getComputedStyle(document.body).backgroundColor").await;
    assert_eq!(bg, json!("rgb(17, 21, 28)"), "dark background");
    c.screenshot("image-dark-desktop").await;
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table").await;
    c.screenshot("images-dark-desktop").await;
    c.set_viewport(PHONE).await;
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table").await;
    c.screenshot("images-dark-phone").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_reaches_the_main_actions() {
    let c = Console::start().await;
    let img = c.server.admin.create_image(&raw_image("keyboard-image")).await.unwrap();
    c.server.admin.upload_bytes(&img.id, pattern(10_000, 1)).await.unwrap();
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table a.image-link").await;

    // Tab from the top of a freshly loaded page, recording where focus goes and whether it shows.
    let record = "const e = document.activeElement; const s = getComputedStyle(e); \
                  return [e.id || (e.classList.contains('image-link') ? 'image-link' : e.tagName), s.outlineStyle !== 'none' && s.outlineWidth !== '0px']";
    c.driver.refresh().await.unwrap();
    c.wait_for("#images-table a.image-link").await;
    assert_eq!(c.js("return document.activeElement.tagName").await, json!("BODY"), "a page load leaves focus at the top");
    let mut reached = Vec::new();
    for _ in 0..40 {
        c.driver.action_chain().send_keys(Key::Tab).perform().await.unwrap();
        let v = c.js(record).await;
        let id = v[0].as_str().unwrap().to_string();
        assert!(v[1].as_bool().unwrap(), "{id} shows no focus outline");
        if id == "image-link" {
            reached.push(id);
            break;
        }
        reached.push(id);
    }
    for wanted in ["skip-link", "nav-images", "nav-create", "nav-admin", "sign-out", "create-image", "tab-public", "tab-shared", "filter-name", "apply-filters", "image-link"] {
        assert!(reached.iter().any(|r| r == wanted), "Tab never reached {wanted}: {reached:?}");
    }
    let pos = |id: &str| reached.iter().position(|r| r == id).unwrap();
    assert!(pos("nav-images") < pos("create-image") && pos("create-image") < pos("filter-name") && pos("filter-name") < pos("image-link"), "{reached:?}");

    // Enter opens the image; its actions are reachable with Tab too.
    c.driver.action_chain().send_keys(Key::Enter).perform().await.unwrap();
    c.until("document.activeElement?.id === 'image-title'", "focus on the image page's heading").await;
    let mut on_page = Vec::new();
    for _ in 0..6 {
        c.driver.action_chain().send_keys(Key::Tab).perform().await.unwrap();
        on_page.push(c.js(record).await[0].as_str().unwrap().to_string());
    }
    for wanted in ["download", "deactivate", "delete"] {
        assert!(on_page.iter().any(|r| r == wanted), "Tab never reached {wanted} on the image page: {on_page:?}");
    }
    c.screenshot("keyboard-focus-desktop").await;

    // Escape closes the delete dialog and gives focus back.
    c.js("document.querySelector('#delete').focus(); return null").await;
    c.driver.action_chain().send_keys(Key::Enter).perform().await.unwrap();
    c.wait_for("dialog[open]").await;
    c.driver.action_chain().send_keys(Key::Escape).perform().await.unwrap();
    c.until("!document.querySelector('dialog') && document.activeElement?.id === 'delete'", "focus back on Delete").await;
    assert!(c.server.admin.get_image(&img.id).await.is_ok());

    c.quit().await;
}
