//! `/audit/v1/...`: every change and every failed mutating request is an event with its caller, project,
//! source address and outcome; admins see all projects' events, others their own; pages, filters and the
//! JSON-lines export agree; the hash chain verifies, and a row modified in the database is found.

use ims_client::{AuditEventInfo, AuditFilter, Client, MemberStatus, PatchOp, Role};
use serde_json::json;

use crate::common::{raw_image, status, TestServer};

/// Every event of the trail the client may see, oldest first, paging by the `next` link's marker.
async fn all_events(client: &Client, filter: &AuditFilter) -> Vec<AuditEventInfo> {
    let mut events = Vec::new();
    let mut filter = AuditFilter { limit: Some(3), ..filter.clone() };
    loop {
        let page = client.audit_events(&filter).await.unwrap();
        let full = page.events.len() == 3;
        assert_eq!(page.next.is_some(), full, "a full page links to the next one");
        events.extend(page.events);
        if !full {
            return events;
        }
        filter.marker = events.last().map(|e| e.position);
    }
}

#[tokio::test]
async fn owner_member_and_admin_see_what_they_may_and_failures_are_recorded() {
    let s = TestServer::start().await;
    let owner = s.tenant("audit-owner", Role::Member).await;
    let member = s.tenant("audit-member", Role::Member).await;
    let created = s.admin.create_user("audit-owner-reader", &owner.project_id, Role::Reader).await.unwrap();
    let reader = s.admin.with_token(created.token.token.clone().unwrap());

    // Changes by the owner, a share accepted by the member project.
    let image = owner.client.create_image(&raw_image("audited")).await.unwrap();
    owner.client.upload_bytes(&image.id, b"audited bytes".to_vec()).await.unwrap();
    owner.client.update_image(&image.id, &[PatchOp::replace("visibility", json!("shared"))]).await.unwrap();
    owner.client.add_member(&image.id, &member.project_id).await.unwrap();
    member.client.update_member_status(&image.id, &member.project_id, MemberStatus::Accepted).await.unwrap();
    // Refused: the member project may not delete it, the reader may not change it.
    assert_eq!(status(member.client.delete_image(&image.id).await), 403);
    assert_eq!(status(reader.update_image(&image.id, &[PatchOp::replace("name", json!("x"))]).await), 403);
    // The IMS API: the owner renames it; the member project may not (an IMS-form error).
    let ims_patch = json!([{"op": "replace", "path": "/name", "value": "renamed-over-ims"}]);
    let path = format!("/v2/cloudimages/{}", image.id);
    let r = owner.client.raw(reqwest::Method::PATCH, &path).json(&ims_patch).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = member.client.raw(reqwest::Method::PATCH, &path).json(&ims_patch).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let ims_message = r.json::<serde_json::Value>().await.unwrap()["error_msg"].as_str().unwrap().to_string();
    // Refused before authentication: no caller is known.
    let anonymous = Client::new(&s.url, "not-a-token").unwrap();
    assert_eq!(status(anonymous.create_image(&raw_image("nobody")).await), 401);

    let resource = format!("image:{}", image.id);
    let owner_events = all_events(&owner.client, &AuditFilter::default()).await;
    assert!(owner_events.iter().all(|e| e.project_id.as_deref() == Some(owner.project_id.as_str())));
    let actions: Vec<&str> =
        owner_events.iter().filter(|e| e.resource.starts_with(&resource)).map(|e| e.action.as_str()).collect();
    for expected in ["image.create", "image.upload", "image.update", "member.create", "http.patch"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let renames = owner_events.iter().filter(|e| e.action == "image.update" && e.resource == resource).count();
    assert_eq!(renames, 2, "the Glance and the IMS change");
    let create = owner_events.iter().find(|e| e.action == "image.create").unwrap();
    assert_eq!(create.result, "success");
    assert!(create.source_address.as_deref().is_some_and(|a| a.starts_with("127.0.0.1:")), "{create:?}");
    assert!(create.request_id.starts_with("req-"));
    let refused = owner_events.iter().find(|e| e.action == "http.patch").unwrap();
    assert_eq!(refused.result, "failure");
    assert_eq!(refused.user_id.as_deref(), Some(created.user.id.as_str()), "the reader's refusal names the reader");
    assert!(refused.error.as_deref().is_some_and(|e| e.starts_with("403 ")), "{refused:?}");
    assert_eq!(refused.detail.as_deref(), Some("PATCH /v2/images/{id}"));

    // The member project sees its own events: its acceptance and its refused delete, nothing of the owner's.
    let member_events = all_events(&member.client, &AuditFilter::default()).await;
    assert!(member_events.iter().all(|e| e.project_id.as_deref() == Some(member.project_id.as_str())));
    let refused_delete = member_events.iter().find(|e| e.action == "http.delete").expect("the refused delete");
    assert_eq!((refused_delete.resource.as_str(), refused_delete.result.as_str()), (resource.as_str(), "failure"));
    assert!(member_events.iter().any(|e| e.action == "member.update" && e.result == "success"));
    let ims_refusal = member_events.iter().find(|e| e.action == "http.patch").expect("the refused IMS rename");
    assert_eq!(ims_refusal.detail.as_deref(), Some("PATCH /v2/cloudimages/{image_id}"));
    assert_eq!(ims_refusal.error.as_deref(), Some(format!("403 {ims_message}").as_str()));
    assert_eq!(ims_refusal.resource, resource);
    let other = AuditFilter { project_id: Some(owner.project_id.clone()), ..AuditFilter::default() };
    assert_eq!(status(member.client.audit_events(&other).await), 403, "another project's events are the admin's");

    // The admin sees every project, and the unauthenticated attempt.
    let everything = all_events(&s.admin, &AuditFilter::default()).await;
    assert_eq!(everything.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=everything.len() as u64).collect::<Vec<_>>());
    assert!(everything.iter().any(|e| e.project_id.as_deref() == Some(member.project_id.as_str())));
    let unauthenticated = everything.iter().find(|e| e.error.as_deref().is_some_and(|m| m.starts_with("401 "))).unwrap();
    assert_eq!((unauthenticated.user_id.as_deref(), unauthenticated.action.as_str()), (None, "http.post"));
    assert_eq!(all_events(&s.admin, &other).await, owner_events, "an admin filters by project");

    // Filters: by resource, action prefix, result, user and time.
    let on_image = all_events(&s.admin, &AuditFilter { resource: Some(resource.clone()), ..Default::default() }).await;
    assert!(on_image.iter().all(|e| e.resource == resource) && on_image.len() >= 5, "{on_image:?}");
    let failures = all_events(&s.admin, &AuditFilter { result: Some("failure".into()), ..Default::default() }).await;
    assert_eq!(failures.len(), 4, "{failures:?}");
    let members = all_events(&s.admin, &AuditFilter { action: Some("member.*".into()), ..Default::default() }).await;
    assert_eq!(members.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["member.create", "member.update"]);
    let future = AuditFilter { since: Some("2999-01-01T00:00:00Z".into()), ..Default::default() };
    assert!(s.admin.audit_events(&future).await.unwrap().events.is_empty());
    let newest = s.admin.audit_events(&AuditFilter { limit: Some(1), newest_first: true, ..Default::default() }).await;
    assert_eq!(newest.unwrap().events[0].position, everything.len() as u64);

    // The export is the same events as JSON lines.
    let body = s.admin.export_audit_events(&other).await.unwrap().text().await.unwrap();
    let exported: Vec<AuditEventInfo> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported, owner_events);
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let s = TestServer::start().await;
    for query in ["bogus=1", "since=yesterday", "limit=0", "limit=5000", "result=maybe", "sort=up", "marker=x", "limit=1&limit=2"] {
        let r = s.raw(reqwest::Method::GET, &format!("/audit/v1/events?{query}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
    }
    let r = s.raw(reqwest::Method::GET, "/audit/v1/events/export?limit=5").send().await.unwrap();
    assert_eq!(r.status(), 400, "the export does not page");
    let r = reqwest::get(format!("{}/audit/v1/events", s.url)).await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn verification_is_for_admins_and_finds_a_modified_row() {
    let s = TestServer::start().await;
    let owner = s.tenant("audit-verify", Role::Member).await;
    for i in 0..3 {
        owner.client.create_image(&raw_image(&format!("img-{i}"))).await.unwrap();
    }
    assert_eq!(status(owner.client.verify_audit_trail().await), 403);
    let v = s.admin.verify_audit_trail().await.unwrap();
    assert!(v.intact && v.broken.is_none(), "{v:?}");
    let events = all_events(&s.admin, &AuditFilter::default()).await;
    assert_eq!(v.events, events.len() as u64);
    assert_eq!(v.head_hash, events.last().unwrap().hash);

    // Someone with access to the database rewrites who created an image.
    let target = events.iter().find(|e| e.action == "image.create").unwrap();
    tamper(&s, target.position).await;
    let v = s.admin.verify_audit_trail().await.unwrap();
    assert!(!v.intact);
    assert_eq!(v.broken.unwrap().position, target.position);
    assert_eq!(v.events, target.position - 1);
}

/// Changes the user of the event at `position` directly in the server's SQLite database.
async fn tamper(s: &TestServer, position: u64) {
    let url = format!("sqlite://{}", s.data_dir.join("ims.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let changed = sqlx::query("UPDATE audit_events SET user_id = 'someone-else' WHERE chain_position = ?")
        .bind(position as i64)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
}
