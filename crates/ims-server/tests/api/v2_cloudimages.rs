//! The IMS API (`/v2/cloudimages`, `/v1/cloudimages/...`, `/v2/{project_id}/images/...`) with
//! SDK-HMAC-SHA256 signed requests and bearer tokens.

use hmac::{Hmac, Mac};
use ims_client::Role;
use ims_server::signature::{canonical_request, string_to_sign, EMPTY_HASH};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{raw_image, TestServer};

struct Signer {
    url: String,
    ak: String,
    sk: String,
    project: String,
}

impl Signer {
    /// Sends a request signed as the Huawei Cloud SDK signs it, dated `date` (`YYYYMMDDTHHMMSSZ`).
    async fn send_at(&self, method: Method, path_and_query: &str, body: Option<Value>, date: &str) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let host = self.url.trim_start_matches("http://").to_string();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("host", host.parse().unwrap());
        headers.insert("x-project-id", self.project.parse().unwrap());
        headers.insert("x-sdk-date", date.parse().unwrap());
        let signed: Vec<String> = ["content-type", "host", "x-project-id", "x-sdk-date"].map(String::from).to_vec();
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let hash = if body.is_empty() { EMPTY_HASH.to_string() } else { hex::encode(Sha256::digest(&body)) };
        let canonical = canonical_request(method.as_str(), path, query, &headers, &signed, &hash).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(self.sk.as_bytes()).unwrap();
        mac.update(string_to_sign(date, &canonical).as_bytes());
        let auth = format!(
            "SDK-HMAC-SHA256 Access={}, SignedHeaders={}, Signature={}",
            self.ak,
            signed.join(";"),
            hex::encode(mac.finalize().into_bytes())
        );
        headers.insert("authorization", auth.parse().unwrap());
        let r = reqwest::Client::new()
            .request(method, format!("{}{path_and_query}", self.url))
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        self.send_at(method, path, body, &now).await
    }
}

async fn signer(s: &TestServer, name: &str) -> (Signer, crate::common::Tenant) {
    let t = s.tenant(name, Role::Member).await;
    let who = t.client.whoami().await.unwrap();
    let key = s.admin.create_access_key(&who.user.name, Some(&t.project_id), Some("test")).await.unwrap();
    assert_eq!(key.project_id.as_deref(), Some(t.project_id.as_str()));
    let sk = key.secret.clone().expect("the secret is shown on creation");
    let listed = s.admin.list_access_keys(Some(&who.user.name)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secret, None, "secrets are never listed");
    (Signer { url: s.url.clone(), ak: key.access, sk, project: t.project_id.clone() }, t)
}

#[tokio::test]
async fn signed_requests_are_authenticated_and_bad_ones_refused() {
    let s = TestServer::start().await;
    let (a, tenant) = signer(&s, "hw-a").await;
    let img = tenant.client.create_image(&raw_image("signed")).await.unwrap();

    let (status, body) = a.send(Method::GET, "/v2/cloudimages?__imagetype=private&name=signed", None).await;
    assert_eq!(status, 200, "{body}");
    let listed = &body["images"][0];
    assert_eq!(listed["id"], img.id);
    assert_eq!(listed["__imagetype"], "private");
    assert_eq!(listed["__isregistered"], "true");
    assert_eq!(listed["__image_size"], "0");

    // The same caller reaches the Glance API.
    let (status, body) = a.send(Method::GET, &format!("/v2/images/{}", img.id), None).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("signed")));

    let wrong = Signer { url: a.url.clone(), ak: a.ak.clone(), sk: format!("{}x", a.sk), project: a.project.clone() };
    let (status, body) = wrong.send(Method::GET, "/v2/cloudimages", None).await;
    assert_eq!((status, body["error_code"].as_str()), (401, Some("APIGW.0301")), "{body}");
    let (status, _) = a.send_at(Method::GET, "/v2/cloudimages", None, "20200101T000000Z").await;
    assert_eq!(status, 401, "an old X-Sdk-Date");
    let other = s.admin.create_project("elsewhere").await.unwrap();
    let misplaced = Signer { project: other.id, url: a.url.clone(), ak: a.ak.clone(), sk: a.sk.clone() };
    assert_eq!(misplaced.send(Method::GET, "/v2/cloudimages", None).await.0, 401, "the key is bound to its project");

    s.admin.revoke_access_key(&a.ak).await.unwrap();
    assert_eq!(a.send(Method::GET, "/v2/cloudimages", None).await.0, 401, "revoked");
}

#[tokio::test]
async fn quota_update_members_jobs_and_tags() {
    let s = TestServer::start().await;
    let (a, ta) = signer(&s, "hw-a").await;
    let (b, _tb) = signer(&s, "hw-b").await;

    let (status, q) = a.send(Method::GET, "/v1/cloudimages/quota", None).await;
    assert_eq!(status, 200);
    assert_eq!(q["quotas"]["resources"][0]["quota"], 50);
    assert_eq!(q["quotas"]["resources"][0]["used"], 0);
    let img = ta.client.create_image(&raw_image("one")).await.unwrap();
    assert_eq!(a.send(Method::GET, "/v1/cloudimages/quota", None).await.1["quotas"]["resources"][0]["used"], 1);

    let ops = json!([{"op": "replace", "path": "/name", "value": "two"}, {"op": "replace", "path": "/__os_bit", "value": "64"},
                     {"op": "replace", "path": "/min_ram", "value": "512"}]);
    let (status, body) = a.send(Method::PATCH, &format!("/v2/cloudimages/{}", img.id), Some(ops)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["name"].as_str(), body["__os_bit"].as_str(), body["min_ram"].as_i64()), (Some("two"), Some("64"), Some(512)));
    let (status, body) = b.send(Method::PATCH, &format!("/v2/cloudimages/{}", img.id), Some(json!([]))).await;
    assert_eq!((status, body["error_code"].as_str()), (404, Some("IMG.0004")));

    let batch = json!({"images": [img.id], "projects": [b.project]});
    let (status, body) = a.send(Method::POST, "/v1/cloudimages/members", Some(batch)).await;
    assert_eq!(status, 200, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_string();
    let job = loop {
        let (status, job) = a.send(Method::GET, &format!("/v1/{}/jobs/{job_id}", a.project), None).await;
        assert_eq!(status, 200);
        if job["status"] == "SUCCESS" || job["status"] == "FAIL" {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["entities"]["image_id"], img.id);
    assert_eq!(b.send(Method::GET, &format!("/v1/{}/jobs/{job_id}", b.project), None).await.0, 404, "others' jobs");
    let members = ta.client.list_members(&img.id).await.unwrap();
    assert_eq!(members.len(), 1, "the share is seen through Glance");
    let accept = json!({"images": [img.id], "project_id": a.project, "status": "accepted"});
    let (status, body) = b.send(Method::PUT, "/v1/cloudimages/members", Some(accept)).await;
    assert_eq!((status, body["error_code"].as_str()), (403, Some("IMG.0003")), "accepting for another project");

    let (status, _) = a
        .send(Method::POST, &format!("/v2/{}/images/{}/tags", a.project, img.id), Some(json!({"tag": {"key": "k", "value": "v"}})))
        .await;
    assert_eq!(status, 204);
    let (_, tags) = a.send(Method::GET, &format!("/v2/{}/images/{}/tags", a.project, img.id), None).await;
    assert_eq!(tags, json!({"tags": [{"key": "k", "value": "v"}]}));
    let (_, found) = a
        .send(Method::POST, &format!("/v2/{}/images/resource_instances/action", a.project), Some(json!({"action": "count", "tags": [{"key": "k", "values": ["v"]}]})))
        .await;
    assert_eq!(found["total_count"], 1);
    let (status, _) = a.send(Method::GET, &format!("/v2/{}/images/tags", b.project), None).await;
    assert_eq!(status, 403, "another project's path");

    let (status, body) = a.send(Method::POST, "/v2/cloudimages/action", Some(json!({"name": "x", "instance_id": "i"}))).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("IMG.0001")), "a server id is a UUID");
    let unknown = json!({"name": "x", "instance_id": uuid::Uuid::new_v4().to_string()});
    let (status, body) = a.send(Method::POST, "/v2/cloudimages/action", Some(unknown)).await;
    assert_eq!((status, body["error_code"].as_str()), (404, Some("IMG.0004")), "an unknown server");
}
