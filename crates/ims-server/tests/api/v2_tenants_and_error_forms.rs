//! What unchanged OpenStack clients rely on beyond the image resources: error bodies in the form
//! they accept, and project lookups on the image endpoint.

use ims_client::Role;
use reqwest::Method;

use crate::common::TestServer;

#[tokio::test]
async fn errors_are_json_html_or_text_as_accept_asks() {
    let s = TestServer::start().await;
    let url = format!("{}/v2/images/00000000-0000-0000-0000-000000000000", s.url);
    let http = reqwest::Client::new();
    let get = |accept: &'static str| http.get(&url).header("x-auth-token", crate::common::ADMIN_TOKEN).header("accept", accept).send();
    let r = get("application/json").await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = get("*/*").await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = r.text().await.unwrap();
    assert!(body.contains("<title>404 Not Found</title>") && body.contains("No image found"), "{body}");
    let r = get("text/plain").await.unwrap();
    assert!(r.text().await.unwrap().starts_with("404 Not Found"));
}

#[tokio::test]
async fn projects_can_be_looked_up_by_id_or_name() {
    let s = TestServer::start().await;
    let t = s.tenant("lookup", Role::Member).await;
    for key in [t.project_id.as_str(), "lookup"] {
        let r = t.client.raw(Method::GET, &format!("/v2/tenants/{key}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["tenant"]["id"], t.project_id);
        assert_eq!(body["tenant"]["name"], "lookup");
    }
    let r = t.client.raw(Method::GET, "/v2/tenants/nobody").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = t.client.raw(Method::GET, "/v2/tenants").send().await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["tenants"][0]["id"], t.project_id);
    let r = reqwest::get(format!("{}/v2/tenants", s.url)).await.unwrap();
    assert_eq!(r.status(), 401);
}
