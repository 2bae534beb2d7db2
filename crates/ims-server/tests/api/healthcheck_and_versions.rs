use reqwest::Method;

use crate::common::TestServer;

#[tokio::test]
async fn healthcheck_answers_ok_without_a_token() {
    let s = TestServer::start().await;
    let r = reqwest::get(format!("{}/healthcheck", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn root_lists_versions_with_300_and_versions_with_200() {
    let s = TestServer::start().await;
    let r = reqwest::get(format!("{}/", s.url)).await.unwrap();
    assert_eq!(r.status(), 300);
    assert!(r.headers().get("x-openstack-request-id").unwrap().to_str().unwrap().starts_with("req-"));
    let doc: serde_json::Value = r.json().await.unwrap();
    let versions = doc["versions"].as_array().unwrap();
    assert_eq!(versions[0]["status"], "CURRENT");
    assert!(versions.iter().any(|v| v["id"] == "v2.0"));
    assert_eq!(versions[0]["links"][0]["href"], format!("{}/v2/", s.url));

    let r = reqwest::get(format!("{}/versions", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(format!("{}/v1/images", s.url)).await.unwrap();
    assert_eq!(r.status(), 300, "unknown version prefixes get the versions document");
    assert_eq!(s.admin.versions().await.unwrap()["versions"], doc["versions"]);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_are_glance_shaped() {
    let s = TestServer::start().await;
    let r = s.raw(Method::GET, "/v2/images/00000000-0000-0000-0000-000000000000").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-openstack-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "404 Not Found");
    assert_eq!(body["title"], "Not Found");
    assert!(body["message"].as_str().unwrap().contains("00000000-0000-0000-0000-000000000000"));
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let s = TestServer::start().await;
    let r = reqwest::get(format!("{}/v2/images", s.url)).await.unwrap();
    assert_eq!(r.status(), 401);
    let bad = s.admin.with_token("not-a-token");
    assert_eq!(crate::common::status(bad.list_images(&Default::default()).await), 401);
}

#[tokio::test]
async fn a_catalog_failing_while_a_token_is_checked_gives_503_never_401() {
    let s = TestServer::start().await;
    let params = Default::default();
    let list = || s.admin.list_images(&params);
    list().await.unwrap();

    // The token and its role are still found; the token's project can no longer be read.
    let url = format!("sqlite://{}", s.data_dir.join("ims.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE projects RENAME TO projects_hidden").execute(&db).await.unwrap();
    assert_eq!(crate::common::status(list().await), 503, "a failing catalog is not a bad token");

    sqlx::query("ALTER TABLE projects_hidden RENAME TO projects").execute(&db).await.unwrap();
    list().await.unwrap();
}

#[tokio::test]
async fn wrong_method_on_a_known_path_is_405() {
    let s = TestServer::start().await;
    let r = s.raw(Method::DELETE, "/v2/images").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
}
