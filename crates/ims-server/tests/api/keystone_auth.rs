//! `auth = "keystone"`: tokens validated by a real Keystone (`scripts/keystone`), mapped onto projects and
//! roles, cached for at most the configured TTL, and refused with 503 when Keystone cannot be asked.

use std::time::Duration;

use ims_client::{Client, ListParams};
use ims_server::config::{AuthMode, KeystoneConfig};
use ims_testkit::keystone::Keystone;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{raw_image, status, TestServer};

/// What a token is scoped to.
enum Scope<'a> {
    Project(&'a str),
    System,
}

/// Keystone's admin API, as the bootstrap administrator (with a new token whenever the last one expired).
struct KeystoneAdmin {
    http: reqwest::Client,
    url: String,
    credentials: (String, String, String),
    token: std::sync::Mutex<String>,
}

/// Issues a token for `user` by password (users here live in the `Default` domain).
async fn issue_token(http: &reqwest::Client, url: &str, user: &str, password: &str, scope: Scope<'_>) -> String {
    let scope = match scope {
        Scope::Project(project) => json!({"project": {"name": project, "domain": {"name": "Default"}}}),
        Scope::System => json!({"system": {"all": true}}),
    };
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": scope,
    }});
    let response = http.post(format!("{url}/auth/tokens")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "token for {user}: {}", response.text().await.unwrap());
    response.headers()["x-subject-token"].to_str().unwrap().to_string()
}

impl KeystoneAdmin {
    async fn connect(keystone: &Keystone) -> KeystoneAdmin {
        let admin = KeystoneAdmin {
            http: reqwest::Client::new(),
            url: keystone.url.clone(),
            credentials: (keystone.admin_user.clone(), keystone.admin_password.clone(), keystone.admin_project.clone()),
            token: std::sync::Mutex::new(String::new()),
        };
        admin.renew().await;
        admin
    }

    async fn renew(&self) {
        let (user, password, project) = &self.credentials;
        let token = issue_token(&self.http, &self.url, user, password, Scope::Project(project)).await;
        *self.token.lock().unwrap() = token;
    }

    fn token(&self) -> String {
        self.token.lock().unwrap().clone()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        for attempt in 0..2 {
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.url)).header("x-auth-token", self.token());
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.renew().await;
                continue;
            }
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{path}: {status} {text}");
            return if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        }
        unreachable!()
    }

    async fn create_project(&self, name: &str) -> String {
        let created = self.call(Method::POST, "/projects", Some(json!({"project": {"name": name, "domain_id": "default"}}))).await;
        created["project"]["id"].as_str().unwrap().to_string()
    }

    async fn create_user(&self, name: &str, password: &str) -> String {
        let body = json!({"user": {"name": name, "password": password, "domain_id": "default"}});
        self.call(Method::POST, "/users", Some(body)).await["user"]["id"].as_str().unwrap().to_string()
    }

    async fn role_id(&self, name: &str) -> String {
        let roles = self.call(Method::GET, &format!("/roles?name={name}"), None).await;
        roles["roles"][0]["id"].as_str().unwrap_or_else(|| panic!("Keystone has no role {name}")).to_string()
    }

    /// Creates user `name` with `role` in `project` (an id).
    async fn user_with_role(&self, name: &str, password: &str, project: &str, role: &str) -> String {
        let user = self.create_user(name, password).await;
        let role = self.role_id(role).await;
        self.call(Method::PUT, &format!("/projects/{project}/users/{user}/roles/{role}"), None).await;
        user
    }

    async fn revoke(&self, token: &str) {
        let response = self
            .http
            .delete(format!("{}/auth/tokens", self.url))
            .header("x-auth-token", self.token())
            .header("x-subject-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}

/// Projects and users made for one test (names unique on a shared Keystone).
struct Cloud {
    admin: KeystoneAdmin,
    prefix: String,
    password: String,
    /// IMS's service user and project (it holds the `service` role there).
    service: (String, String),
    service_user_id: String,
}

impl Cloud {
    async fn new(keystone: &Keystone) -> Cloud {
        let admin = KeystoneAdmin::connect(keystone).await;
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let password = uuid::Uuid::new_v4().simple().to_string();
        let service_project = format!("{prefix}-service");
        let project = admin.create_project(&service_project).await;
        let service_user = format!("{prefix}-ims");
        let service_user_id = admin.user_with_role(&service_user, &password, &project, "service").await;
        Cloud { admin, prefix, password, service: (service_user, service_project), service_user_id }
    }

    /// Settings of an IMS node that trusts this Keystone, caching tokens for at most `cache_ttl` seconds.
    fn keystone_config(&self, cache_ttl: u64) -> KeystoneConfig {
        KeystoneConfig {
            url: self.admin.url.clone(),
            username: self.service.0.clone(),
            password: self.password.clone(),
            project: self.service.1.clone(),
            cache_ttl,
            ..KeystoneConfig::default()
        }
    }

    async fn start_ims(&self, cache_ttl: u64) -> TestServer {
        let config = self.keystone_config(cache_ttl);
        TestServer::start_with(|settings| {
            settings.auth = AuthMode::Keystone;
            settings.keystone = config;
        })
        .await
    }

    /// A new project (its id) named `<prefix>-<name>`.
    async fn project(&self, name: &str) -> (String, String) {
        let name = format!("{}-{name}", self.prefix);
        (self.admin.create_project(&name).await, name)
    }

    /// A new user with `role` in `project` (id, name) and a token of theirs scoped to it.
    async fn user_token(&self, name: &str, project: &(String, String), role: &str) -> String {
        let user = format!("{}-{name}", self.prefix);
        self.admin.user_with_role(&user, &self.password, &project.0, role).await;
        issue_token(&self.admin.http, &self.admin.url, &user, &self.password, Scope::Project(&project.1)).await
    }
}

async fn image_ids(client: &Client) -> Vec<String> {
    client.list_all_images(&ListParams::default()).await.unwrap().into_iter().map(|i| i.id.to_string()).collect()
}

#[tokio::test]
async fn tokens_act_in_their_project_with_their_role() {
    let keystone = Keystone::shared_or_start().unwrap();
    let cloud = Cloud::new(&keystone).await;
    let server = cloud.start_ims(60).await;
    let (a, b) = (cloud.project("a").await, cloud.project("b").await);
    let member_a = Client::new(&server.url, cloud.user_token("alice", &a, "member").await).unwrap();
    let reader_a = Client::new(&server.url, cloud.user_token("rita", &a, "reader").await).unwrap();
    let member_b = Client::new(&server.url, cloud.user_token("bob", &b, "member").await).unwrap();
    let admin_b = Client::new(&server.url, cloud.user_token("ada", &b, "admin").await).unwrap();

    // A member creates images in its own project and sees them.
    let image = member_a.create_image(&raw_image("alpha")).await.unwrap();
    assert_eq!(image.owner.as_deref(), Some(a.0.as_str()), "owned by the token's project");
    assert_eq!(image_ids(&member_a).await, vec![image.id.clone()]);
    // A reader of the same project sees it but cannot write.
    assert_eq!(image_ids(&reader_a).await, vec![image.id.clone()]);
    assert_eq!(status(reader_a.create_image(&raw_image("nope")).await), 403);
    assert_eq!(status(reader_a.delete_image(&image.id).await), 403);
    // Another project sees nothing of it.
    assert!(image_ids(&member_b).await.is_empty());
    assert_eq!(status(member_b.get_image(&image.id).await), 404);
    assert_eq!(status(member_b.delete_image(&image.id).await), 404);
    // An admin of any project sees and changes every project's images.
    assert_eq!(admin_b.get_image(&image.id).await.unwrap().id, image.id);
    admin_b.add_tag(&image.id, "reviewed").await.unwrap();
    assert_eq!(member_a.get_image(&image.id).await.unwrap().tags, vec!["reviewed".to_string()]);
    assert_eq!(status(member_b.add_tag(&image.id, "mine").await), 404);

    // A system-scoped admin token is an admin of no project.
    let system_admin = issue_token(&cloud.admin.http, &keystone.url, &keystone.admin_user, &keystone.admin_password, Scope::System).await;
    let system_admin = Client::new(&server.url, system_admin).unwrap();
    assert!(image_ids(&system_admin).await.contains(&image.id));
    system_admin.delete_image(&image.id).await.unwrap();
    assert!(image_ids(&member_a).await.is_empty());
}

#[tokio::test]
async fn missing_invalid_and_revoked_tokens_get_401_with_keystones_address() {
    let keystone = Keystone::shared_or_start().unwrap();
    let cloud = Cloud::new(&keystone).await;
    let server = cloud.start_ims(2).await;
    let a = cloud.project("a").await;
    let token = cloud.user_token("alice", &a, "member").await;
    let challenge = format!("Keystone uri=\"{}\"", keystone.url);
    let http = reqwest::Client::new();
    let images = format!("{}/v2/images", server.url);

    for request in [
        http.get(&images),
        http.get(&images).header("x-auth-token", "not-a-keystone-token"),
        http.get(&images).header("x-auth-token", format!("{token}x")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], challenge.as_str());
    }
    // Access keys belong to the built-in identity: refused here.
    let signed = http
        .get(&images)
        .header("authorization", "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=00")
        .header("x-sdk-date", chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::UNAUTHORIZED);

    let get = || http.get(&images).header("x-auth-token", &token).send();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    cloud.admin.revoke(&token).await;
    // Within the cache TTL (2 s here) the revocation may not be seen yet; after it, it must be.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let response = get().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], challenge.as_str());

    // Disabling IMS's service user revokes its token; once enabled again IMS takes a new one by itself.
    let user = format!("/users/{}", cloud.service_user_id);
    cloud.admin.call(Method::PATCH, &user, Some(json!({"user": {"enabled": false}}))).await;
    let fresh = cloud.user_token("alina", &a, "member").await;
    let refused = http.get(&images).header("x-auth-token", &fresh).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "IMS cannot validate while its user is disabled");
    // Keystone's revocations have one-second granularity: a token issued in the same second would be revoked too.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    cloud.admin.call(Method::PATCH, &user, Some(json!({"user": {"enabled": true}}))).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let accepted = http.get(&images).header("x-auth-token", &fresh).send().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_from_another_project_or_without_an_image_role_are_refused() {
    let keystone = Keystone::shared_or_start().unwrap();
    let cloud = Cloud::new(&keystone).await;
    let server = cloud.start_ims(60).await;
    let (a, b) = (cloud.project("a").await, cloud.project("b").await);
    let member_a = Client::new(&server.url, cloud.user_token("alice", &a, "member").await).unwrap();
    let image = member_a.create_image(&raw_image("alpha")).await.unwrap();
    // A token of the same user's other project acts there, not in the first one.
    let alice = format!("{}-alice", cloud.prefix);
    let alice_id = cloud.admin.call(Method::GET, &format!("/users?name={alice}"), None).await["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let member = cloud.admin.role_id("member").await;
    cloud.admin.call(Method::PUT, &format!("/projects/{}/users/{alice_id}/roles/{member}", b.0), None).await;
    let alice_in_b = issue_token(&cloud.admin.http, &keystone.url, &alice, &cloud.password, Scope::Project(&b.1)).await;
    let alice_in_b = Client::new(&server.url, alice_in_b).unwrap();
    assert_eq!(status(alice_in_b.get_image(&image.id).await), 404);
    assert!(image_ids(&alice_in_b).await.is_empty());
    // A role IMS does not know (and that implies none it knows) gives no access.
    let auditor = format!("{}-auditor", cloud.prefix);
    cloud.admin.call(Method::POST, "/roles", Some(json!({"role": {"name": auditor}}))).await;
    let other = cloud.user_token("olga", &b, &auditor).await;
    let response = reqwest::Client::new()
        .get(format!("{}/v2/images", server.url))
        .header("x-auth-token", other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn expired_tokens_are_refused_and_an_unreachable_keystone_gives_503() {
    // A Keystone of its own: tokens live 30 s, and it is stopped halfway.
    let mut keystone = Keystone::start_private(30).unwrap();
    let cloud = Cloud::new(&keystone).await;
    let server = cloud.start_ims(60).await;
    let a = cloud.project("a").await;
    let http = reqwest::Client::new();
    let images = format!("{}/v2/images", server.url);
    let get = |token: &str| http.get(&images).header("x-auth-token", token).send();

    let first = cloud.user_token("alice", &a, "member").await;
    assert_eq!(get(&first).await.unwrap().status(), StatusCode::OK);
    // Cached for 60 s, but only until the token expires.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(get(&first).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // IMS's own service token expired too: it takes a new one for the next validation.
    let second = issue_token(&http, &keystone.url, &format!("{}-alice", cloud.prefix), &cloud.password, Scope::Project(&a.1)).await;
    let unused = issue_token(&http, &keystone.url, &format!("{}-alice", cloud.prefix), &cloud.password, Scope::Project(&a.1)).await;
    assert_eq!(get(&second).await.unwrap().status(), StatusCode::OK);

    keystone.stop().unwrap();
    for token in [unused.as_str(), "not-a-keystone-token"] {
        let response = get(token).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "never a 200 for a token Keystone has not seen");
        assert!(response.headers().contains_key("retry-after"));
    }
}
