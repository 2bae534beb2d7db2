//! Browser tests of the console's second round: sign-in with an access key pair (requests signed in
//! the browser) and its project switcher, jobs with live progress, export and import through
//! buckets, copy, favourites, and the administration pages (audit trail, store statistics with
//! its chart, master keys).

use std::time::Duration;

use ims_client::Role;
use serde_json::json;

use super::harness::*;

/// The signer's vectors (`crate::signature` tests, computed with the Huawei Cloud SDK's own signer),
/// signed again by `js/signer.js` in the browser.
const SIGNER_VECTORS: &str = r#"return (async () => {
  const s = await import('./js/signer.js');
  const at = new Date('2024-01-02T03:04:05Z');
  const sign = (o) => s.signRequest({access: 'HPUAEXAMPLEAK0000001', secret: 's3cr3tSKexample/with+chars==', date: at, ...o}).then((h) => h.Authorization);
  return [
    await sign({method: 'GET', url: 'http://127.0.0.1:9292/v2/cloudimages?__imagetype=private&limit=10&name=a%20b%2F%C3%BC~%2A&protected=true', headers: {'content-type': 'application/json', 'x-project-id': 'p1'}}),
    await sign({method: 'POST', url: 'http://127.0.0.1:9292/v1/cloudimages/members', body: '{"images": ["x"], "projects": ["p2"]}', headers: {'content-type': 'application/json;charset=UTF-8', 'x-project-id': 'p1', 'user-agent': '  ua/1.0  '}}),
    await sign({method: 'DELETE', url: 'http://127.0.0.1:9292/v2/p1/images/abc/tags/k%20%C3%BC', headers: {'content-type': 'application/json', 'x-project-id': 'p1'}}),
    await sign({method: 'PUT', url: 'http://127.0.0.1:9292/v2/images/abc/file', unsignedPayload: true, size: 8, headers: {'content-type': 'application/octet-stream', 'x-project-id': 'p1'}}),
  ];
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_key_pair_signs_in_signs_every_request_and_switches_projects() {
    let c = Console::start().await;

    // The page signs exactly as the SDK does.
    let signatures = c.js(SIGNER_VECTORS).await;
    let expected = [
        "content-type;host;x-project-id;x-sdk-date, Signature=73e0a2703546016477f1b63326200aa86891a3e29282e4e8c01c2ed28942df6b",
        "content-type;host;user-agent;x-project-id;x-sdk-date, Signature=ceaf7f3a21b74faebf4b6e9a5ac2092336b940e1c9b749a9e780710300c152a4",
        "content-type;host;x-project-id;x-sdk-date, Signature=c6624e60689779509dcf16e7770a7bc800f53102a91549fde8065114a106e8e1",
        "content-type;host;x-project-id;x-sdk-content-sha256;x-sdk-date, Signature=df7d2aecfafbda83aaaa9e4f592a17106bc10f6a23ef02e397c9ff43fa3982a1",
    ];
    for (got, want) in signatures.as_array().unwrap().iter().zip(expected) {
        let got = got.as_str().unwrap();
        assert_eq!(got, format!("SDK-HMAC-SHA256 Access=HPUAEXAMPLEAK0000001, SignedHeaders={want}"));
    }

    // A user with roles in two projects, and a key not bound to either.
    let alpha = c.server.tenant("alpha", Role::Member).await;
    let beta = c.server.admin.create_project("beta").await.unwrap();
    let user = c.server.admin.list_users().await.unwrap().into_iter().find(|u| u.name == "alpha-user").unwrap();
    c.server.assign_role(&user.id, &beta.id, ims_catalog::Role::Member).await;
    let key = c.server.admin.create_access_key(&user.id, None, Some("console")).await.unwrap();
    let secret = key.secret.clone().unwrap();
    let img = alpha.client.create_image(&raw_image("alpha-base")).await.unwrap();
    alpha.client.upload_bytes(&img.id, pattern(64_000, 2)).await.unwrap();

    // A wrong secret is refused in plain words; nothing is kept.
    c.click("#kind-access-key").await;
    c.fill("#access-key", &key.access).await;
    c.fill("#secret-key", "not-the-secret").await;
    c.click("#sign-in").await;
    let error = c.until("document.querySelector('#signin-error [role=alert]')?.textContent", "the refusal").await;
    assert!(error.as_str().unwrap().contains("access key pair was not accepted"), "{error}");
    assert_eq!(c.js("return sessionStorage.length").await, json!(0));

    // The right one: the server asks which project, the console asks the user.
    c.fill("#secret-key", &secret).await;
    c.click("#sign-in").await;
    let error = c.until("document.querySelector('#signin-error [role=alert]')?.textContent", "the project question").await;
    assert!(error.as_str().unwrap().contains("several projects"), "{error}");
    c.until("document.activeElement?.id === 'key-project'", "focus on the project field").await;
    c.fill("#key-project", &alpha.project_id).await;
    c.click("#sign-in").await;
    c.until("document.querySelector('#project-name')?.textContent === 'alpha'", "signed in to alpha").await;
    assert!(c.text("#whoami").await.contains("access key"));
    let url = c.driver.current_url().await.unwrap().to_string();
    assert!(!url.contains(&secret) && !url.contains(&key.access), "no credential in the URL: {url}");
    assert_eq!(c.js("return localStorage.length").await, json!(0));
    let stored = c.js("return sessionStorage.getItem('ims.console.credential')").await;
    assert!(stored.as_str().unwrap().contains(&secret), "the secret stays in this tab's sessionStorage to sign with");

    // Signed GETs with queries (the image list), and a signed streamed upload (UNSIGNED-PAYLOAD).
    c.go("#/images?tab=private&sort=name:asc").await;
    c.expect_rows(&["alpha-base".to_string()], "alpha's images, listed with signed requests").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signed-upload.raw");
    std::fs::write(&path, pattern(300_000, 4)).unwrap();
    c.go("#/create").await;
    c.wait_for("#upload-file").await.send_keys(path.to_str().unwrap()).await.unwrap();
    c.click("#start-upload").await;
    c.until("document.querySelector('#upload-phase')?.textContent.startsWith('Done')", "the signed upload").await;
    let uploaded = alpha.client.list_all_images(&Default::default()).await.unwrap();
    assert!(uploaded.iter().any(|i| i.name.as_deref() == Some("signed-upload") && i.size == Some(300_000)), "{uploaded:?}");

    // The project switcher: to beta by name, then back from the list of projects used.
    c.click("#switch-project").await;
    c.fill("#switch-project-name", "beta").await;
    c.click("#switch-project-go").await;
    c.until("document.querySelector('#project-name')?.textContent === 'beta'", "switched to beta").await;
    c.go("#/images?tab=private").await;
    assert!(c.row_names().await.is_empty(), "beta owns no images");
    c.click("#switch-project").await;
    c.wait_for(&format!("#project-choices button[data-project='{}']", alpha.project_id)).await;
    c.doc_screenshot("access-key-switch-project").await;
    c.click(&format!("#project-choices button[data-project='{}']", alpha.project_id)).await;
    c.until("document.querySelector('#project-name')?.textContent === 'alpha'", "back in alpha").await;

    // A project where the user has no role is refused, and the session stays where it was.
    c.click("#switch-project").await;
    c.fill("#switch-project-name", "admin").await;
    c.click("#switch-project-go").await;
    let error = c.until("document.querySelector('#switch-messages [role=alert]')?.textContent", "the refused switch").await;
    assert!(error.as_str().unwrap().contains("cannot be used in that project"), "{error}");
    assert_eq!(c.text("#project-name").await, "alpha");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_runs_to_100_percent_on_the_jobs_page_and_the_audit_trail_finds_it() {
    let c = Console::start().await;
    let owner = c.server.tenant("media", Role::Member).await;
    owner.client.create_bucket("exports").await.unwrap();
    let img = owner.client.create_image(&raw_image("web-disk")).await.unwrap();
    let size = 3 * 1024 * 1024;
    owner.client.upload_bytes(&img.id, pattern(size, 11)).await.unwrap();
    c.sign_in(&owner.token, "media").await;

    // A bucket that does not exist: refused at once, in plain words.
    c.go(&format!("#/images/{}", img.id)).await;
    c.until("document.querySelector('#export-bucket')?.value === 'exports'", "the bucket offered").await;
    c.fill("#export-bucket", "no-such-bucket").await;
    c.click("#start-export").await;
    let error = c.until("document.querySelector('#export-result [role=alert]')?.textContent", "the refused export").await;
    assert!(error.as_str().unwrap().starts_with("Could not export: "), "{error}");
    assert!(owner.client.list_jobs(None, false, None).await.unwrap().is_empty(), "nothing was started");

    // The export, from the image page.
    c.fill("#export-bucket", "exports").await;
    c.choose("#export-format", "vmdk").await;
    assert_eq!(c.js("return document.querySelector('#export-key').value").await, json!("web-disk.vmdk"));
    c.click("#start-export").await;
    let job_id = c.until("document.querySelector('#export-job-link')?.dataset.jobId", "the export job").await;
    let job_id = job_id.as_str().unwrap().to_string();
    c.doc_screenshot("export-started").await;

    // Its page follows it to the end.
    c.click("#export-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'SUCCESS'", "the export to succeed").await;
    assert_eq!(c.js("return document.querySelector('.job-progress')?.dataset.percent").await, json!("100"));
    assert!(c.text("#job-result").await.contains("exports:web-disk.vmdk"));
    assert!(c.js("return document.querySelector('#cancel-job').hidden").await.as_bool().unwrap(), "no cancel once it ended");

    // The jobs list shows it at 100%, and picks up a new job and its progress without reloading.
    c.click("#nav-jobs").await;
    let row = format!("#jobs-table tr[data-job-id='{job_id}']");
    c.until(&format!("document.querySelector(\"{row} .job-progress\")?.dataset.percent === '100'"), "100% in the list").await;
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} [data-job-status]\").dataset.jobStatus")).await, json!("SUCCESS"));
    c.js("window.__samePage = true; document.querySelector('#jobs-table').dataset.marked = 'yes'; return null").await;
    let second = owner.client.export_image(&img.id, "exports:web-disk.raw", "raw").await.unwrap();
    let row2 = format!("#jobs-table tr[data-job-id='{second}']");
    c.until(&format!("document.querySelector(\"{row2} [data-job-status]\")?.dataset.jobStatus === 'SUCCESS'"), "the second export, live").await;
    assert_eq!(c.js(&format!("return document.querySelector(\"{row2} .job-progress\").dataset.percent")).await, json!("100"));
    assert_eq!(c.js("return [window.__samePage === true, document.querySelector('#jobs-table').dataset.marked, document.querySelector('#jobs-table tbody tr').dataset.jobId]").await, json!([true, "yes", second]), "updated in place, newest first");
    c.doc_screenshot("jobs-export-100-percent").await;

    // The file is in the bucket, and the buckets page lists it.
    let objects = owner.client.list_objects("exports", None).await.unwrap();
    assert!(objects.iter().any(|o| o.key == "web-disk.vmdk" && o.size > 0), "{objects:?}");
    c.click("#nav-buckets").await;
    c.click("#bucket-list li[data-bucket='exports'] a").await;
    c.wait_for("#objects-table tr[data-key='web-disk.vmdk']").await;

    // The audit trail (administrators) finds the export's job by its resource.
    c.sign_out().await;
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.click("#nav-admin").await;
    c.click("#admin-tab-audit").await;
    c.fill("#audit-resource", &format!("job:{job_id}")).await;
    c.click("#audit-search").await;
    let event = format!("#audit-table tr[data-resource='job:{job_id}']");
    let actions = c
        .until(
            &format!("(rows => rows.length > 0 && rows.every(r => r.dataset.resource === 'job:{job_id}') && rows.map(r => r.dataset.action).join(' '))([...document.querySelectorAll('#audit-table tbody tr')])"),
            "the export's audit events",
        )
        .await;
    assert_eq!(actions, json!("job.succeeded job.create"), "newest first");
    assert!(c.js(&format!("return document.querySelector(\"{event}[data-action='job.succeeded']\").textContent")).await.as_str().unwrap().contains("type exportImage"));
    assert!(c.js(&format!("return document.querySelector(\"{event}\").textContent")).await.as_str().unwrap().contains("media"), "the project by name");
    assert!(c.driver.current_url().await.unwrap().to_string().contains("resource=job"), "the search is in the address");
    c.doc_screenshot("audit-export-event").await;

    // Filters combine; paging walks the trail.
    c.fill("#audit-resource", "").await;
    c.fill("#audit-action", "image.*").await;
    c.click("#audit-search").await;
    c.until("[...document.querySelectorAll('#audit-table tbody tr')].length > 0 && [...document.querySelectorAll('#audit-table tbody tr')].every(r => r.dataset.action.startsWith('image.'))", "image events only").await;
    c.fill("#audit-action", "").await;
    c.choose("#audit-limit", "10").await;
    c.click("#audit-search").await;
    c.until("document.querySelectorAll('#audit-table tbody tr').length === 10", "a full first page").await;
    let first_page = c.js("return document.querySelector('#audit-table tbody tr').dataset.position").await;
    c.click("#audit-next").await;
    c.until(&format!("document.querySelector('#audit-table tbody tr')?.dataset.position !== {first_page} && document.querySelector('#audit-count')?.textContent.startsWith('Page 2')"), "the second page").await;
    c.click("#audit-prev").await;
    c.until(&format!("document.querySelector('#audit-table tbody tr')?.dataset.position === {first_page}"), "back to the first page").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_is_cancelled_and_its_error_shown() {
    // No job workers: a job waits in INIT until it is cancelled.
    let c = Console::start_with(|s| s.job_workers = 0).await;
    let owner = c.server.tenant("queue", Role::Member).await;
    owner.client.create_bucket("out").await.unwrap();
    let img = owner.client.create_image(&raw_image("queued-export")).await.unwrap();
    owner.client.upload_bytes(&img.id, pattern(100_000, 5)).await.unwrap();
    let job_id = owner.client.export_image(&img.id, "out:queued.raw", "raw").await.unwrap();
    c.sign_in(&owner.token, "queue").await;

    c.click("#nav-jobs").await;
    let row = format!("#jobs-table tr[data-job-id='{job_id}']");
    c.until(&format!("document.querySelector(\"{row} [data-job-status]\")?.dataset.jobStatus === 'INIT'"), "the waiting job").await;
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} .job-progress\").dataset.percent")).await, json!("0"));
    assert!(c.text("#jobs-count").await.contains("1 unfinished"));
    c.click(&format!("{row} a.job-link")).await;
    c.wait_for("#cancel-job").await;

    // Cancel asks first; "no" keeps it waiting.
    c.click("#cancel-job").await;
    c.click("dialog[open] button[value='no']").await;
    c.until("!document.querySelector('dialog')", "the dialog to close").await;
    assert_eq!(owner.client.get_job(&job_id).await.unwrap().status, "INIT");
    c.click("#cancel-job").await;
    c.click("dialog[open] button[value='yes']").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'FAIL'", "the cancelled job").await;
    assert!(c.js("return document.querySelector('#cancel-job').hidden").await.as_bool().unwrap());
    assert_eq!(c.text("#job-error-code").await, "IMG.0409");
    assert_eq!(c.text("#job-fail-reason").await, "cancelled by queue-user");
    let job = owner.client.get_job(&job_id).await.unwrap();
    assert_eq!((job.status.as_str(), job.error_code.as_deref()), ("FAIL", Some("IMG.0409")));

    // The list shows it failed, with the same words on its page.
    c.click("#nav-jobs").await;
    c.until(&format!("document.querySelector(\"{row} [data-job-status]\")?.dataset.jobStatus === 'FAIL'"), "the failed job in the list").await;
    c.click(&format!("{row} a.job-link")).await;
    let failure = c.until("document.querySelector('#job-failure')?.textContent", "the failure message").await;
    assert_eq!(failure, json!("The job failed: cancelled by queue-user"));
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_upload_to_a_bucket_is_imported_as_an_image() {
    let c = Console::start().await;
    let owner = c.server.tenant("imports", Role::Member).await;
    c.sign_in(&owner.token, "imports").await;
    c.click("#nav-buckets").await;
    c.fill("#new-bucket-name", "sources").await;
    c.click("#create-bucket").await;
    c.wait_for("#objects-empty").await;

    // A file streamed into the bucket from the browser.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appliance.raw");
    let size = 2 * 1024 * 1024;
    std::fs::write(&path, pattern(size, 21)).unwrap();
    c.wait_for("#object-file").await.send_keys(path.to_str().unwrap()).await.unwrap();
    assert_eq!(c.js("return document.querySelector('#object-key').value").await, json!("appliance.raw"));
    c.click("#upload-object").await;
    c.wait_for("#objects-table tr[data-key='appliance.raw']").await;
    assert_eq!(c.js("return document.querySelector(\"tr[data-key='appliance.raw'] .size\").dataset.bytes").await, json!(size.to_string()));
    assert_eq!(owner.client.get_object_bytes("sources", "appliance.raw").await.unwrap().to_vec(), pattern(size, 21));

    // Import it: the create page comes with the object chosen.
    c.click("tr[data-key='appliance.raw'] a[href^='#/create']").await;
    c.until("document.querySelector('#import-object')?.value === 'appliance.raw' && document.querySelector('#import-bucket').value === 'sources'", "the object chosen").await;
    assert_eq!(c.js("return document.querySelector('#import-name').value").await, json!("appliance"));
    c.fill("#import-min-disk", "0").await;
    c.click("#start-import").await;
    let error = c.until("document.querySelector('#import-result [role=alert]')?.textContent", "the size check").await;
    assert!(error.as_str().unwrap().contains("whole number of GB"), "{error}");
    c.fill("#import-min-disk", "10").await;
    c.click("#start-import").await;
    c.click("#import-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'SUCCESS'", "the import to succeed").await;
    c.click("#job-image").await;
    c.until("document.querySelector('#image-title [data-status]')?.dataset.status === 'active'", "the imported image").await;
    let images = owner.client.list_all_images(&Default::default()).await.unwrap();
    let image = images.iter().find(|i| i.name.as_deref() == Some("appliance")).expect("the imported image");
    assert_eq!(image.size, Some(size as u64));
    c.wait_for("#image-jobs li[data-job-id] a[href^='#/jobs/']").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_kept_among_favourites_copied_and_shows_its_key_and_deprecation() {
    let c = Console::start().await;
    let admin = &c.server.admin;
    let key = admin.create_kms_key("images-key", Some("for the console test")).await.unwrap();
    let img = admin
        .create_image(&json!({"name": "sealed", "disk_format": "raw", "container_format": "bare", "__system__cmkid": key.id, "deprecate_at": "2020-01-01T00:00:00Z"}))
        .await
        .unwrap();
    admin.upload_bytes(&img.id, pattern(120_000, 8)).await.unwrap();
    let plain = admin.create_image(&raw_image("plain")).await.unwrap();
    admin.upload_bytes(&plain.id, pattern(50_000, 9)).await.unwrap();
    c.sign_in(ADMIN_TOKEN, "admin").await;

    c.go(&format!("#/images/{}", img.id)).await;
    c.until(&format!("document.querySelector('#image-encryption')?.textContent.includes('images-key (' + {})", js_str(&key.id)), "the key by alias").await;
    assert!(c.text("#image-deprecation").await.starts_with("Deprecated since"));

    // Favourite: the button says what it does; the Favourites tab lists it.
    c.until("document.querySelector('#favourite')?.dataset.favourite === 'false'", "the favourite state").await;
    c.click("#favourite").await;
    c.until("document.querySelector('#favourite')?.getAttribute('aria-pressed') === 'true'", "a favourite").await;
    assert_eq!(admin.favorites().await.unwrap().len(), 1);
    c.go(&format!("#/images/{}", plain.id)).await;
    c.until("document.querySelector('#favourite')?.dataset.favourite === 'false'", "the favourite state").await;
    c.click("#favourite").await;
    c.until("document.querySelector('#favourite')?.getAttribute('aria-pressed') === 'true'", "a second favourite").await;
    c.go("#/images?tab=favourites").await;
    c.expect_rows(&["plain".to_string(), "sealed".to_string()], "the favourites, the most recently added first").await;
    c.choose("#sort", "name:desc").await;
    c.expect_rows(&["sealed".to_string(), "plain".to_string()], "the favourites by name").await;
    c.go(&format!("#/images/{}", plain.id)).await;
    c.until("document.querySelector('#favourite')?.dataset.favourite === 'true'", "the favourite state").await;
    c.click("#favourite").await;
    c.until("document.querySelector('#favourite')?.dataset.favourite === 'false'", "no longer a favourite").await;
    c.go("#/images?tab=favourites").await;
    c.expect_rows(&["sealed".to_string()], "one favourite left").await;

    // Copy in region: a job, then a new image with the same bytes.
    c.go(&format!("#/images/{}", plain.id)).await;
    c.fill("#copy-name", "plain-copy").await;
    c.click("#start-copy").await;
    c.click("#copy-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'SUCCESS'", "the copy to succeed").await;
    let copies = admin.list_all_images(&ims_client::ListParams { name: Some("plain-copy".into()), ..Default::default() }).await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].size, Some(50_000));

    // A copy under a master key: encrypted with it, which its page shows.
    c.go(&format!("#/images/{}", plain.id)).await;
    c.fill("#copy-name", "plain-sealed").await;
    c.fill("#copy-key", &key.id).await;
    c.click("#start-copy").await;
    c.click("#copy-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'SUCCESS'", "the encrypted copy").await;
    c.click("#job-image").await;
    c.until(&format!("document.querySelector('#image-encryption')?.dataset.keyId === {}", js_str(&key.id)), "the copy's key").await;
    assert_eq!(c.text("#image-deprecation").await, "Not deprecated");
    // This region is configured with no other: no card offers to copy elsewhere.
    assert_eq!(c.js("return document.querySelector('#region-copy').hidden").await, json!(true));
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_copied_to_another_region() {
    // Region b: another server, whose admin service user the console's region uses.
    let region_b = TestServer::start().await;
    let service = region_b.tenant("replication", Role::Admin).await;
    let region = ims_server::config::RegionConfig { endpoint: region_b.url.clone(), token: service.token.clone() };
    let c = Console::start_with(move |s| {
        s.regions.insert("region-b".into(), region);
    })
    .await;
    let alice = c.server.tenant("alice", Role::Member).await;
    let alice_in_b = region_b.tenant("alice", Role::Member).await;
    let data = pattern(300_000, 12);
    let image = alice.client.create_image(&raw_image("travelling")).await.unwrap();
    alice.client.upload_bytes(&image.id, data.clone()).await.unwrap();
    let image = alice.client.get_image(&image.id).await.unwrap();
    c.sign_in(&alice.token, "alice").await;

    c.go(&format!("#/images/{}", image.id)).await;
    c.until("document.querySelector('#region-copy')?.hidden === false", "the cross-region copy card").await;
    assert_eq!(c.js("return [...document.querySelectorAll('#region-copy-region option')].map((o) => o.value)").await, json!(["region-b"]));
    c.fill("#region-copy-name", "arrived").await;
    c.fill("#region-copy-description", "from the console").await;
    c.click("#start-region-copy").await;
    c.click("#region-copy-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'SUCCESS'", "the copy to region-b").await;

    // The copy is alice's in region b, with the same bytes; region a has no such image.
    let params = ims_client::ListParams { name: Some("arrived".into()), ..Default::default() };
    let copies = alice_in_b.client.list_images(&params).await.unwrap().images;
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!((copies[0].status.as_str(), copies[0].owner.as_deref()), ("active", Some(alice_in_b.project_id.as_str())));
    assert_eq!(copies[0].checksum, image.checksum);
    let downloaded = alice_in_b.client.download(&copies[0].id, None).await.unwrap().bytes().await.unwrap();
    assert!(downloaded == data, "the copy holds the image's bytes");
    assert!(alice.client.list_images(&params).await.unwrap().images.is_empty());

    // A project that does not exist in region b: the job fails and its page says why.
    c.go(&format!("#/images/{}", image.id)).await;
    c.until("document.querySelector('#region-copy')?.hidden === false", "the cross-region copy card").await;
    c.fill("#region-copy-name", "lost").await;
    c.fill("#region-copy-project", "nowhere").await;
    c.click("#start-region-copy").await;
    c.click("#region-copy-job-link").await;
    c.until("document.querySelector('#job-status [data-job-status]')?.dataset.jobStatus === 'FAIL'", "the copy to fail").await;
    c.until("document.querySelector('#job-failure')?.textContent.includes('nowhere')", "the reason, naming the missing project").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_statistics_draw_a_chart_and_master_keys_are_managed() {
    let c = Console::start().await;
    let first = c.server.tenant("north", Role::Member).await;
    let second = c.server.tenant("south", Role::Member).await;
    // The same bytes in both projects: stored once.
    for (tenant, name) in [(&first, "gold-a"), (&second, "gold-b")] {
        let img = tenant.client.create_image(&raw_image(name)).await.unwrap();
        tenant.client.upload_bytes(&img.id, pattern(4 * 1024 * 1024, 42)).await.unwrap();
    }
    let stats = c.server.admin.store_stats().await.unwrap();
    assert!(stats.dedup_ratio > 1.5, "{stats:?}");

    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.click("#nav-admin").await;
    c.click("#admin-tab-store").await;
    c.wait_for("#store-chart").await;
    let bars = c.js("return [...document.querySelectorAll('#store-chart rect[data-bytes]')].map(r => [r.getAttribute('class'), Number(r.dataset.bytes), Number(r.getAttribute('width'))])").await;
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), 2 * 3, "logical and physical bars for the store and each project with data: {bars:?}");
    let (store_logical, store_physical) = (&bars[0], &bars[1]);
    assert_eq!(store_logical[0], json!("bar-logical"));
    assert_eq!(store_logical[1], json!(stats.logical_bytes));
    assert_eq!(store_physical[1], json!(stats.physical_bytes));
    assert!(store_logical[2].as_f64().unwrap() > 1.5 * store_physical[2].as_f64().unwrap(), "the bars show the saving: {bars:?}");
    assert!(c.text("#stat-ratio").await.contains(": 1"));
    let label = c.js("return document.querySelector('#store-chart').getAttribute('aria-labelledby')").await;
    assert_eq!(label, json!("store-chart-title store-chart-desc"));
    assert!(c.text("#store-table").await.contains("north"), "projects by name");
    c.doc_screenshot("store-statistics").await;

    // Master keys: create, disable (asks first), enable.
    c.click("#admin-tab-keys").await;
    c.fill("#new-key-alias", "archive-key").await;
    c.click("#create-key").await;
    let row = "#keys-table tr[data-alias='archive-key']";
    c.until(&format!("document.querySelector(\"{row}\")?.dataset.state === 'enabled'"), "the new key").await;
    let id = c.js(&format!("return document.querySelector(\"{row}\").dataset.keyId")).await.as_str().unwrap().to_string();
    c.click(&format!("{row} button[data-toggle-key]")).await;
    c.click("dialog[open] button[value='yes']").await;
    c.until(&format!("document.querySelector(\"{row}\")?.dataset.state === 'disabled'"), "the disabled key").await;
    assert_eq!(c.server.admin.get_kms_key(&id).await.unwrap().state, "disabled");
    c.click(&format!("{row} button[data-toggle-key]")).await;
    c.until(&format!("document.querySelector(\"{row}\")?.dataset.state === 'enabled'"), "the enabled key").await;
    assert_eq!(c.server.admin.get_kms_key(&id).await.unwrap().state, "enabled");

    // The new pages fit a phone, in dark mode too.
    c.set_viewport(PHONE).await;
    c.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]})).await;
    for (name, route, ready) in [
        ("store", "#/admin/store", "#store-chart"),
        ("keys", "#/admin/keys", "#keys-table"),
        ("audit", "#/admin/audit", "#audit-count"),
        ("jobs", "#/jobs", "#jobs-count"),
        ("buckets", "#/buckets", "#bucket-form"),
    ] {
        c.go(route).await;
        c.wait_for(ready).await;
        c.until("!document.querySelector('main[aria-busy]')", "the page").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.screenshot(&format!("{name}-dark-phone")).await;
        c.assert_no_horizontal_scroll(&format!("{name} at phone width")).await;
    }
    c.quit().await;
}
