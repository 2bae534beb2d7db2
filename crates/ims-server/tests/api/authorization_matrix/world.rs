//! The principals, the image variants and the other resources the matrix calls on, set up through the API.
//!
//! Resources are created on first use and kept; a call that succeeds in changing or removing one marks it
//! used up, and the next cell that names it gets a new one (see `World::invalidate`).

use std::collections::{BTreeMap, HashMap};

use ims_client::{Client, CreateCapsule, CreateImage, MemberStatus, NewMarketListing, NewServerRequest, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{raw_image, TestServer};

/// Who calls. The order is the column order of every expectation in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No token at all.
    Anonymous,
    /// The reader role in project A.
    Reader,
    /// The member role in project A (not the user who created the images).
    Member,
    /// The user of project A (member role) who created the images.
    Owner,
    /// The member role in project B, with which the shared images are shared.
    Other,
    /// The bootstrap administrator (admin project, admin role).
    Admin,
}

pub const PRINCIPALS: [Principal; 6] =
    [Principal::Anonymous, Principal::Reader, Principal::Member, Principal::Owner, Principal::Other, Principal::Admin];

/// The image a cell of an image row acts on. The order is the row order of every image rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Private, owned by A.
    Private,
    /// Public, owned by A (published by the admin).
    Public,
    /// Community, owned by A.
    Community,
    /// Shared by A with B, B has not answered.
    SharedPending,
    /// Shared by A with B, B accepted.
    SharedAccepted,
    /// Shared by A with B, B rejected.
    SharedRejected,
    /// Private, owned by A, listed on the marketplace by A; B subscribed.
    Market,
    /// Private, owned by A, deactivated by the admin.
    Deactivated,
    /// Private, owned by A, deleted into the recycle bin.
    Deleted,
}

pub const VARIANTS: [Variant; 9] = [
    Variant::Private,
    Variant::Public,
    Variant::Community,
    Variant::SharedPending,
    Variant::SharedAccepted,
    Variant::SharedRejected,
    Variant::Market,
    Variant::Deactivated,
    Variant::Deleted,
];

/// A response: status and body (JSON when it parses, else `Null`).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub struct World {
    pub server: TestServer,
    http: reqwest::Client,
    tokens: HashMap<Principal, String>,
    owner: Client,
    owner_user_id: String,
    other: Client,
    pub project_a: String,
    pub project_b: String,
    admin_project: String,
    /// Resolved `<slot>` values.
    slots: HashMap<String, String>,
    images: HashMap<Variant, String>,
    serial: u32,
}

impl World {
    pub async fn set_up() -> World {
        let nbd: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = TestServer::start_with(|settings| {
            settings.recycle_bin_retention = 3600;
            settings.nbd_listen = Some(nbd);
            // A region nothing answers at: copies to it are accepted (or refused) before they run.
            let elsewhere = ims_server::config::RegionConfig { endpoint: "http://127.0.0.1:9".into(), token: "unused".into() };
            settings.regions.insert("elsewhere".into(), elsewhere);
        })
        .await;
        let admin = &server.admin;
        let project_a = admin.create_project("authz-a").await.unwrap().id;
        let project_b = admin.create_project("authz-b").await.unwrap().id;
        // Every successful copy, import or creation adds an image: lift the default quota of 50.
        for project in [&project_a, &project_b] {
            admin.set_private_image_quota(project, Some(10_000)).await.unwrap();
        }
        let mut tokens = HashMap::new();
        let user = |token: ims_client::CreatedUser| (token.user.id.clone(), token.token.token.clone().unwrap());
        let (_, reader) = user(admin.create_user("authz-reader", &project_a, Role::Reader).await.unwrap());
        let (_, member) = user(admin.create_user("authz-member", &project_a, Role::Member).await.unwrap());
        let (owner_user_id, owner) = user(admin.create_user("authz-owner", &project_a, Role::Member).await.unwrap());
        let (_, other) = user(admin.create_user("authz-other", &project_b, Role::Member).await.unwrap());
        tokens.insert(Principal::Reader, reader);
        tokens.insert(Principal::Member, member);
        tokens.insert(Principal::Owner, owner.clone());
        tokens.insert(Principal::Other, other.clone());
        tokens.insert(Principal::Admin, crate::common::ADMIN_TOKEN.to_string());
        let owner = admin.with_token(owner);
        let other = admin.with_token(other);
        let admin_project = admin.whoami().await.unwrap().project.id;
        let mut world = World {
            admin_project,
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            tokens,
            owner,
            owner_user_id,
            other,
            project_a,
            project_b,
            slots: HashMap::new(),
            images: HashMap::new(),
            serial: 0,
            server,
        };
        for variant in VARIANTS {
            world.image(variant).await;
        }
        world
    }

    /// Sends `method path` as `principal` with `body` (JSON, or raw octets).
    pub async fn call(&self, principal: Principal, method: Method, path: &str, body: &super::Body, values: &dyn Fn(&str) -> String) -> Answer {
        let mut request = self.http.request(method, format!("{}{}", self.server.url, path));
        if let Some(token) = self.tokens.get(&principal) {
            request = request.header("X-Auth-Token", token);
        }
        request = match body {
            super::Body::Empty => request,
            super::Body::Json(template) => {
                request.header("content-type", "application/json").body(fill(template, values))
            }
            super::Body::JsonPatch(template) => request
                .header("content-type", "application/openstack-images-v2.1-json-patch")
                .body(fill(template, values)),
            super::Body::Octets(bytes) => request.header("content-type", "application/octet-stream").body(bytes.to_vec()),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// `GET path` as the admin: what a failed call must leave unchanged.
    pub async fn snapshot(&self, path: &str) -> (u16, Value) {
        let answer = self.call(Principal::Admin, Method::GET, path, &super::Body::Empty, &|s| s.to_string()).await;
        (answer.status, answer.body)
    }

    /// The project `principal` acts in (A for anonymous calls).
    pub fn project_of(&self, principal: Principal) -> String {
        match principal {
            Principal::Other => self.project_b.clone(),
            Principal::Admin => self.admin_project.clone(),
            _ => self.project_a.clone(),
        }
    }

    /// A name no other cell uses.
    pub fn unique(&mut self) -> String {
        self.next_name("u")
    }

    /// The image of `variant`, made on first use.
    pub async fn image(&mut self, variant: Variant) -> String {
        if let Some(id) = self.images.get(&variant) {
            return id.clone();
        }
        let id = self.make_image(variant).await;
        self.images.insert(variant, id.clone());
        id
    }

    /// Forgets the image of `variant` (a call changed or removed it); the next use makes a new one.
    pub fn invalidate_image(&mut self, variant: Variant) {
        self.images.remove(&variant);
    }

    /// Forgets the slots a successful call used up.
    pub fn invalidate(&mut self, slots: &[String]) {
        for slot in slots {
            if !PERMANENT_SLOTS.contains(&slot.as_str()) {
                self.slots.remove(slot);
            }
        }
    }

    fn next_name(&mut self, prefix: &str) -> String {
        self.serial += 1;
        format!("{prefix}-{}", self.serial)
    }

    async fn active_image(&mut self, client_is_admin: bool, mut request: CreateImage) -> String {
        let name = self.next_name("authz-image");
        request.name = Some(name);
        let client = if client_is_admin { &self.server.admin } else { &self.owner };
        let image = client.create_image(&request).await.unwrap();
        client.upload_bytes(&image.id, b"authorization matrix image".to_vec()).await.unwrap();
        image.id
    }

    async fn make_image(&mut self, variant: Variant) -> String {
        let mut request = raw_image("authz");
        request.properties.insert("__os_type".into(), "Linux".into());
        request.tags = vec!["authz".into()];
        let visibility = match variant {
            Variant::Public => Some("public"),
            Variant::Community => Some("community"),
            Variant::SharedPending | Variant::SharedAccepted | Variant::SharedRejected => Some("shared"),
            _ => Some("private"),
        };
        request.visibility = visibility.map(String::from);
        if variant == Variant::Public {
            request.properties.insert("owner".into(), self.project_a.clone());
        }
        let id = self.active_image(variant == Variant::Public, request).await;
        let admin = self.server.admin.clone();
        let resource_tag = format!("/v2/{}/images/{id}/tags", self.project_a);
        let tagged = self.owner.raw(Method::POST, &resource_tag).json(&json!({"tag": {"key": "authz-resource", "value": "v"}}));
        assert!(tagged.send().await.unwrap().status().is_success(), "tagging {id}");
        match variant {
            Variant::SharedPending | Variant::SharedAccepted | Variant::SharedRejected => {
                self.owner.add_member(&id, &self.project_b).await.unwrap();
                let status = match variant {
                    Variant::SharedAccepted => Some(MemberStatus::Accepted),
                    Variant::SharedRejected => Some(MemberStatus::Rejected),
                    _ => None,
                };
                if let Some(status) = status {
                    self.other.update_member_status(&id, &self.project_b, status).await.unwrap();
                }
            }
            Variant::Market => {
                let code = self.next_name("authz-product");
                let listing = NewMarketListing {
                    image_id: id.clone(),
                    product_code: code,
                    version: "1.0".into(),
                    description: "authorization matrix".into(),
                };
                let listing = self.owner.publish_listing(&listing).await.unwrap();
                self.other.subscribe_listing(&listing.id).await.unwrap();
            }
            Variant::Deactivated => admin.deactivate(&id).await.unwrap(),
            Variant::Deleted => self.owner.delete_image(&id).await.unwrap(),
            _ => {}
        }
        if variant == Variant::Public {
            let image = admin.get_image(&id).await.unwrap();
            assert_eq!(image.owner.as_deref(), Some(self.project_a.as_str()), "the public image belongs to A");
        }
        id
    }

    /// The value of `<slot>`, made on first use.
    pub async fn slot(&mut self, name: &str) -> String {
        if let Some(value) = self.slots.get(name) {
            return value.clone();
        }
        let value = self.make_slot(name).await;
        self.slots.insert(name.to_string(), value.clone());
        value
    }

    async fn make_slot(&mut self, name: &str) -> String {
        let admin = self.server.admin.clone();
        let owner = self.owner.clone();
        match name {
            "project_a" => self.project_a.clone(),
            "project_b" => self.project_b.clone(),
            "owner_user" => self.owner_user_id.clone(),
            "project_c" => admin.create_project("authz-c").await.unwrap().id,
            "own_image" => self.active_image(false, raw_image("authz")).await,
            "data_image" => {
                let mut request = raw_image("authz-data");
                request.properties.insert("virtual_env_type".into(), "DataImage".into());
                self.active_image(false, request).await
            }
            "victim_project" => {
                let name = self.next_name("authz-victim");
                admin.create_project(&name).await.unwrap().id
            }
            "victim_token" => admin.create_token(&self.owner_user_id, &self.project_a).await.unwrap().id,
            "access_key" => admin.create_access_key(&self.owner_user_id, None, None).await.unwrap().access,
            "server" => {
                let image = Box::pin(self.slot("own_image")).await;
                let name = self.next_name("authz-server");
                let request = NewServerRequest {
                    name,
                    server_type: "ecs".into(),
                    vcpus: 1,
                    ram_mb: 512,
                    image_id: image,
                    capsule_id: None,
                    architecture: None,
                    firmware: None,
                    system_volume_size: None,
                    data_volumes: Vec::new(),
                };
                owner.create_server(&request).await.unwrap().id
            }
            "volume" => {
                let name = self.next_name("authz-volume");
                owner.create_volume(&name, Some(1), None).await.unwrap().id
            }
            "attached_volume" => {
                let server = Box::pin(self.slot("server")).await;
                let name = self.next_name("authz-volume");
                let volume = owner.create_volume(&name, Some(1), None).await.unwrap().id;
                owner.attach_volume(&server, &volume, None).await.unwrap();
                volume
            }
            "capsule" => {
                let base = Box::pin(self.slot("own_image")).await;
                let app = Box::pin(self.slot("data_image")).await;
                let name = self.next_name("authz-capsule");
                let capsule = CreateCapsule {
                    name,
                    base_image_id: base,
                    app_image_ids: vec![app],
                    user_data: b"#cloud-config\n".to_vec(),
                    properties: BTreeMap::new(),
                    visibility: Some("private".into()),
                };
                owner.create_capsule(&capsule).await.unwrap().image.id
            }
            "kms_key" => {
                let alias = self.next_name("authz-key");
                admin.create_kms_key(&alias, None).await.unwrap().id
            }
            "bucket" => {
                let bucket = self.next_name("authz-bucket");
                owner.create_bucket(&bucket).await.unwrap();
                owner.put_object_bytes(&bucket, "object", b"bucket object".to_vec()).await.unwrap();
                owner.put_object_bytes(&bucket, "disk.raw", vec![0u8; 4096]).await.unwrap();
                bucket
            }
            "listing" => {
                let image = self.active_image(false, raw_image("authz-listed")).await;
                let code = self.next_name("authz-listing");
                let listing = NewMarketListing {
                    image_id: image,
                    product_code: code,
                    version: "1.0".into(),
                    description: String::new(),
                };
                owner.publish_listing(&listing).await.unwrap().id
            }
            "job" => {
                let image = Box::pin(self.slot("own_image")).await;
                let name = self.next_name("authz-copy");
                owner.copy_image(&image, &name, None).await.unwrap()
            }
            "task" => {
                let image = owner.create_image(&raw_image("authz-staged")).await.unwrap().id;
                owner.stage(&image, reqwest::Body::from(b"staged".to_vec()), Some(6)).await.unwrap();
                owner.import_image(&image, &json!({"method": {"name": "glance-direct"}})).await.unwrap();
                let tasks = owner.image_tasks(&image).await.unwrap();
                tasks["tasks"][0]["id"].as_str().expect("an import task").to_string()
            }
            "auto_accepted" => {
                let project = admin.create_project(&self.next_name("authz-trusted")).await.unwrap().id;
                owner.add_auto_accept_source(&project).await.unwrap();
                project
            }
            "subscribed_listing" => {
                let listing = Box::pin(self.slot("listing")).await;
                self.slots.remove("listing");
                self.other.subscribe_listing(&listing).await.unwrap();
                listing
            }
            "namespace" => {
                let namespace = self.next_name("authz-namespace");
                let create = |path: String, body: Value| {
                    let request = self.server.raw(Method::POST, &path).json(&body);
                    async move {
                        let response = request.send().await.unwrap();
                        assert!(response.status().is_success(), "POST {path}: {}", response.status());
                    }
                };
                let base = format!("/v2/metadefs/namespaces/{namespace}");
                create("/v2/metadefs/namespaces".into(), json!({"namespace": namespace, "visibility": "public"})).await;
                create(format!("{base}/objects"), json!({"name": "object"})).await;
                create(format!("{base}/properties"), json!({"name": "property", "type": "string", "title": "P"})).await;
                create(format!("{base}/tags/tag"), Value::Null).await;
                create(format!("{base}/resource_types"), json!({"name": "OS::Glance::Image"})).await;
                namespace
            }
            "node" => admin.list_nodes().await.unwrap()[0].id.clone(),
            "store" => {
                let stores = admin.info_stores().await.unwrap();
                stores["stores"][0]["id"].as_str().expect("a store").to_string()
            }
            other => panic!("the matrix names an unknown slot <{other}>"),
        }
    }
}

/// Slots no call uses up.
const PERMANENT_SLOTS: &[&str] = &["project_a", "project_b", "owner_user", "project_c", "own_image", "data_image", "node", "store"];

/// Replaces every `<slot>` of `template` by `values(slot)`.
pub fn fill(template: &str, values: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('>').expect("an unclosed <slot>") + start;
        out.push_str(&values(&rest[start + 1..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The `<slot>` names of `template`.
pub fn slot_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed <slot>") + start;
        names.push(rest[start + 1..end].to_string());
        rest = &rest[end + 1..];
    }
    names
}
