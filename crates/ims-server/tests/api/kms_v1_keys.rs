//! `/kms/v1/keys`: admins create, list, show, disable and enable master keys.

use ims_client::Role;
use reqwest::Method;
use serde_json::Value;

use crate::common::{status, TestServer};

#[tokio::test]
async fn admins_manage_master_keys() {
    let s = TestServer::start().await;
    assert!(s.admin.list_kms_keys().await.unwrap().is_empty());
    let a = s.admin.create_kms_key("alpha", Some("for tests")).await.unwrap();
    assert_eq!((a.alias.as_str(), a.state.as_str()), ("alpha", "enabled"));
    assert_eq!(a.description.as_deref(), Some("for tests"));
    assert_eq!(uuid::Uuid::parse_str(&a.id).unwrap().to_string(), a.id);
    let b = s.admin.create_kms_key("beta", None).await.unwrap();
    assert_eq!(status(s.admin.create_kms_key("alpha", None).await), 409, "aliases are unique");
    let ids: Vec<String> = s.admin.list_kms_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![a.id.clone(), b.id.clone()]);

    let disabled = s.admin.disable_kms_key(&a.id).await.unwrap();
    assert_eq!(disabled.state, "disabled");
    assert_eq!(s.admin.disable_kms_key(&a.id).await.unwrap().state, "disabled", "idempotent");
    assert_eq!(s.admin.get_kms_key(&a.id).await.unwrap().state, "disabled");
    assert_eq!(s.admin.get_kms_key(&b.id).await.unwrap().state, "enabled", "only that key");
    assert_eq!(s.admin.enable_kms_key(&a.id).await.unwrap().state, "enabled");
    assert_eq!(status(s.admin.get_kms_key("no-such-key").await), 404);
    assert_eq!(status(s.admin.disable_kms_key("no-such-key").await), 404);

    // Keys never show their material.
    let r = s.raw(Method::GET, &format!("/kms/v1/keys/{}", a.id)).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    let mut fields: Vec<&str> = body["key"].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["alias", "created_at", "description", "id", "shareable", "state", "updated_at"]);
}

#[tokio::test]
async fn key_management_is_admin_only_and_validated() {
    let s = TestServer::start().await;
    let key = s.admin.create_kms_key("k", None).await.unwrap();
    let t = s.tenant("kms-member", Role::Member).await;
    assert_eq!(status(t.client.create_kms_key("mine", None).await), 403);
    assert_eq!(status(t.client.list_kms_keys().await), 403);
    assert_eq!(status(t.client.get_kms_key(&key.id).await), 403);
    assert_eq!(status(t.client.disable_kms_key(&key.id).await), 403);
    assert_eq!(s.admin.get_kms_key(&key.id).await.unwrap().state, "enabled");

    for body in [r#"{}"#, r#"{"alias": ""}"#, r#"{"alias": 5}"#, r#"{"alias": "x", "description": 3}"#, "[1]"] {
        let r = s.raw(Method::POST, "/kms/v1/keys").header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let long = "a".repeat(256);
    assert_eq!(status(s.admin.create_kms_key(&long, None).await), 400);
    assert_eq!(s.admin.list_kms_keys().await.unwrap().len(), 1, "refused creates created nothing");
}
