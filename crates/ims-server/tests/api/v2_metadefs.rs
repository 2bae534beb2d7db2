//! `/v2/metadefs/...` and `/v2/schemas/metadefs/...`: the metadata definitions catalog, its policy
//! (reads for everyone who can see the namespace, writes for admins), duplicates and protection.

use ims_client::{Client, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestServer;

/// Sends `body` (if any) and returns the status and the JSON body (null when empty).
async fn call(client: &Client, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = client.raw(method, path);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let response = rb.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn cpu_namespace(name: &str) -> Value {
    json!({
        "namespace": name,
        "display_name": "CPU Pinning",
        "description": "CPU pinning policies.",
        "visibility": "public",
        "protected": true,
        "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "hw_"},
            {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"}
        ],
        "properties": {
            "cpu_policy": {"title": "CPU Pinning policy", "type": "string", "enum": ["shared", "dedicated"]}
        },
        "objects": [{
            "name": "Pinning",
            "description": "Both policies.",
            "required": ["cpu_thread_policy"],
            "properties": {"cpu_thread_policy": {"title": "Thread policy", "type": "string", "enum": ["isolate", "prefer"]}}
        }],
        "tags": [{"name": "fast"}, {"name": "numa"}]
    })
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|v| v[if key == "namespaces" { "namespace" } else { "name" }].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_namespace_is_created_with_its_contents_shown_renamed_and_deleted() {
    let s = TestServer::start().await;
    let (status, created) = call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(cpu_namespace("OS::Compute::CPUPinning"))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["self"], "/v2/metadefs/namespaces/OS::Compute::CPUPinning");
    assert_eq!(created["schema"], "/v2/schemas/metadefs/namespace");
    assert_eq!(created["protected"], true);
    assert!(created["owner"].is_string() && created["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, again) = call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(cpu_namespace("OS::Compute::CPUPinning"))).await;
    assert_eq!(status, 409, "{again}");

    let (status, shown) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces/OS::Compute::CPUPinning", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["properties"]["cpu_policy"]["enum"], json!(["shared", "dedicated"]));
    assert_eq!(shown["objects"][0]["name"], "Pinning");
    assert_eq!(shown["objects"][0]["self"], "/v2/metadefs/namespaces/OS::Compute::CPUPinning/objects/Pinning");
    assert_eq!(shown["tags"], json!([{"name": "fast"}, {"name": "numa"}]));
    assert_eq!(shown["resource_type_associations"][0]["name"], "OS::Cinder::Volume");
    assert_eq!(shown["resource_type_associations"][0]["properties_target"], "image");

    // With a resource type, property names carry its prefix (inside objects too).
    let (_, prefixed) =
        call(&s.admin, Method::GET, "/v2/metadefs/namespaces/OS::Compute::CPUPinning?resource_type=OS::Glance::Image", None).await;
    assert!(prefixed["properties"]["hw_cpu_policy"].is_object(), "{prefixed}");
    assert_eq!(prefixed["objects"][0]["required"], json!(["hw_cpu_thread_policy"]));
    assert!(prefixed["objects"][0]["properties"]["hw_cpu_thread_policy"].is_object());

    // Protected: no deletion of the namespace or of its contents.
    for path in ["", "/objects", "/properties", "/tags"] {
        let (status, body) = call(&s.admin, Method::DELETE, &format!("/v2/metadefs/namespaces/OS::Compute::CPUPinning{path}"), None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }

    // A replacement renames it (contents follow) and resets what it leaves out.
    let (status, updated) = call(
        &s.admin,
        Method::PUT,
        "/v2/metadefs/namespaces/OS::Compute::CPUPinning",
        Some(json!({"namespace": "OS::Compute::Pinning", "visibility": "public"})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["protected"].clone(), updated["display_name"].clone()), (json!(false), Value::Null));
    let (status, _) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces/OS::Compute::CPUPinning", None).await;
    assert_eq!(status, 404);
    let (_, renamed) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces/OS::Compute::Pinning", None).await;
    assert_eq!(renamed["tags"].as_array().unwrap().len(), 2);

    for path in ["/objects", "/properties", "/tags"] {
        let (status, _) = call(&s.admin, Method::DELETE, &format!("/v2/metadefs/namespaces/OS::Compute::Pinning{path}"), None).await;
        assert_eq!(status, 204, "{path}");
    }
    let (_, emptied) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces/OS::Compute::Pinning", None).await;
    assert!(emptied.get("objects").is_none() && emptied.get("properties").is_none() && emptied.get("tags").is_none());
    assert!(emptied["resource_type_associations"].is_array(), "associations stay");
    let (status, _) = call(&s.admin, Method::DELETE, "/v2/metadefs/namespaces/OS::Compute::Pinning", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces/OS::Compute::Pinning", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&s.admin, Method::DELETE, "/v2/metadefs/namespaces/OS::Compute::Pinning", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_bodies_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    for (body, expected) in [
        (json!({"display_name": "no namespace"}), 400),
        (json!({"namespace": "X", "visibility": "shared"}), 400),
        (json!({"namespace": "X", "extra": 1}), 400),
        (json!({"namespace": "X", "properties": {"p": {"type": "string"}}}), 400),
        (json!({"namespace": "X", "self": "/v2/metadefs/namespaces/X"}), 403),
        (json!({"namespace": "X", "tags": [{"name": "t"}, {"name": "t"}]}), 409),
        (json!({"namespace": "X", "objects": [{"description": "no name"}]}), 400),
    ] {
        let (status, answer) = call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["message"].is_string());
    }
    let (_, list) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces", None).await;
    assert_eq!(list["namespaces"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn reads_follow_visibility_and_writes_are_for_admins() {
    let s = TestServer::start().await;
    let member = s.tenant("p1", Role::Member).await;
    let other = s.tenant("p2", Role::Reader).await;
    let public = json!({"namespace": "Pub", "visibility": "public"});
    let private_p1 = json!({"namespace": "Priv::P1", "visibility": "private", "owner": member.project_id});
    let private_admin = json!({"namespace": "Priv::Admin"});
    for body in [public, private_p1, private_admin] {
        assert_eq!(call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(body)).await.0, 201);
    }

    let (_, seen) = call(&member.client, Method::GET, "/v2/metadefs/namespaces?sort_key=namespace&sort_dir=asc", None).await;
    assert_eq!(names(&seen, "namespaces"), ["Priv::P1", "Pub"], "public and own");
    let (_, seen) = call(&other.client, Method::GET, "/v2/metadefs/namespaces", None).await;
    assert_eq!(names(&seen, "namespaces"), ["Pub"]);
    let (_, seen) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces", None).await;
    assert_eq!(seen["namespaces"].as_array().unwrap().len(), 3, "admins see all");
    assert_eq!(call(&other.client, Method::GET, "/v2/metadefs/namespaces/Priv::P1", None).await.0, 404);
    assert_eq!(call(&other.client, Method::GET, "/v2/metadefs/namespaces/Priv::P1/objects", None).await.0, 404);
    assert_eq!(call(&member.client, Method::GET, "/v2/metadefs/namespaces/Priv::P1", None).await.0, 200);

    // Writes: admins only, even on the member's own namespace; invisible namespaces stay not found.
    let writes = [
        (Method::POST, "/v2/metadefs/namespaces", Some(json!({"namespace": "Mine"}))),
        (Method::PUT, "/v2/metadefs/namespaces/Priv::P1", Some(json!({"namespace": "Priv::P1"}))),
        (Method::DELETE, "/v2/metadefs/namespaces/Priv::P1", None),
        (Method::POST, "/v2/metadefs/namespaces/Pub/objects", Some(json!({"name": "o"}))),
        (Method::POST, "/v2/metadefs/namespaces/Pub/properties", Some(json!({"name": "p", "title": "P", "type": "string"}))),
        (Method::POST, "/v2/metadefs/namespaces/Pub/tags/t", None),
        (Method::POST, "/v2/metadefs/namespaces/Pub/resource_types", Some(json!({"name": "OS::Glance::Image"}))),
    ];
    for (method, path, body) in writes {
        let (status, answer) = call(&member.client, method.clone(), path, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    assert_eq!(call(&other.client, Method::DELETE, "/v2/metadefs/namespaces/Priv::P1", None).await.0, 404);
    let anonymous = s.admin.with_token("");
    assert_eq!(call(&anonymous, Method::GET, "/v2/metadefs/namespaces", None).await.0, 401);
    assert_eq!(call(&anonymous, Method::GET, "/v2/metadefs/resource_types", None).await.0, 401);
}

#[tokio::test]
async fn namespaces_are_paged_sorted_and_filtered() {
    let s = TestServer::start().await;
    for (name, visibility, rt) in [("A", "public", "OS::Glance::Image"), ("B", "private", "OS::Nova::Flavor"), ("C", "public", "OS::Nova::Flavor")] {
        let body = json!({"namespace": name, "visibility": visibility, "resource_type_associations": [{"name": rt}]});
        assert_eq!(call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(body)).await.0, 201);
    }
    let (_, page) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces?limit=2&sort_key=namespace&sort_dir=asc", None).await;
    assert_eq!(names(&page, "namespaces"), ["A", "B"]);
    assert_eq!(page["first"], "/v2/metadefs/namespaces?limit=2&sort_key=namespace&sort_dir=asc");
    assert_eq!(page["schema"], "/v2/schemas/metadefs/namespaces");
    assert_eq!(page["namespaces"][0]["resource_type_associations"][0]["name"], "OS::Glance::Image");
    let next = page["next"].as_str().unwrap().to_string();
    let (_, rest) = call(&s.admin, Method::GET, &next, None).await;
    assert_eq!(names(&rest, "namespaces"), ["C"]);
    assert!(rest.get("next").is_none());
    let (_, desc) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces?sort_key=namespace", None).await;
    assert_eq!(names(&desc, "namespaces"), ["C", "B", "A"], "descending by default");
    let (_, public) = call(&s.admin, Method::GET, "/v2/metadefs/namespaces?visibility=public&sort_key=namespace&sort_dir=asc", None).await;
    assert_eq!(names(&public, "namespaces"), ["A", "C"]);
    let (_, flavors) =
        call(&s.admin, Method::GET, "/v2/metadefs/namespaces?resource_types=OS::Nova::Flavor&sort_key=namespace&sort_dir=asc", None).await;
    assert_eq!(names(&flavors, "namespaces"), ["B", "C"]);
    for bad in ["sort_dir=up", "sort_key=color", "limit=-1", "limit=x", "visibility=shared"] {
        assert_eq!(call(&s.admin, Method::GET, &format!("/v2/metadefs/namespaces?{bad}"), None).await.0, 400, "{bad}");
    }
    assert_eq!(call(&s.admin, Method::GET, "/v2/metadefs/namespaces?marker=Nope", None).await.0, 404);
}

#[tokio::test]
async fn objects_and_properties_are_created_listed_renamed_and_deleted() {
    let s = TestServer::start().await;
    let ns = json!({"namespace": "NS", "visibility": "public", "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "img_"}]});
    assert_eq!(call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(ns)).await.0, 201);
    let base = "/v2/metadefs/namespaces/NS";

    let object = json!({"name": "Watchdog", "description": "d", "required": ["action"],
        "properties": {"action": {"title": "Action", "type": "string", "enum": ["reset", "poweroff"]}}});
    let (status, created) = call(&s.admin, Method::POST, &format!("{base}/objects"), Some(object.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["self"].as_str(), created["schema"].as_str()), (Some("/v2/metadefs/namespaces/NS/objects/Watchdog"), Some("/v2/schemas/metadefs/object")));
    assert_eq!(call(&s.admin, Method::POST, &format!("{base}/objects"), Some(object)).await.0, 409);
    let (_, list) = call(&s.admin, Method::GET, &format!("{base}/objects"), None).await;
    assert_eq!(names(&list, "objects"), ["Watchdog"]);
    let (status, renamed) = call(&s.admin, Method::PUT, &format!("{base}/objects/Watchdog"), Some(json!({"name": "Dog", "description": "e"}))).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["created_at"], created["created_at"]);
    assert!(renamed.get("required").is_none(), "a replacement drops what it leaves out");
    assert_eq!(call(&s.admin, Method::GET, &format!("{base}/objects/Watchdog"), None).await.0, 404);
    assert_eq!(call(&s.admin, Method::GET, &format!("{base}/objects/Dog"), None).await.1["description"], "e");
    assert_eq!(call(&s.admin, Method::DELETE, &format!("{base}/objects/Dog"), None).await.0, 204);
    assert_eq!(call(&s.admin, Method::DELETE, &format!("{base}/objects/Dog"), None).await.0, 404);
    assert_eq!(call(&s.admin, Method::GET, "/v2/metadefs/namespaces/Nope/objects", None).await.0, 404);

    let property = json!({"name": "boot_menu", "title": "Boot menu", "type": "boolean", "default": false});
    let (status, created) = call(&s.admin, Method::POST, &format!("{base}/properties"), Some(property.clone())).await;
    assert_eq!((status, created.clone()), (201, property.clone()));
    assert_eq!(call(&s.admin, Method::POST, &format!("{base}/properties"), Some(property)).await.0, 409);
    let (status, _) = call(&s.admin, Method::POST, &format!("{base}/properties"), Some(json!({"name": "x", "type": "string"}))).await;
    assert_eq!(status, 400, "a title is required");
    let (_, list) = call(&s.admin, Method::GET, &format!("{base}/properties"), None).await;
    assert_eq!(list["properties"], json!({"boot_menu": {"title": "Boot menu", "type": "boolean", "default": false}}));
    let (status, prefixed) = call(&s.admin, Method::GET, &format!("{base}/properties/img_boot_menu?resource_type=OS::Glance::Image"), None).await;
    assert_eq!((status, prefixed["name"].as_str()), (200, Some("img_boot_menu")));
    assert_eq!(call(&s.admin, Method::GET, &format!("{base}/properties/boot_menu?resource_type=OS::Glance::Image"), None).await.0, 404);
    assert_eq!(call(&s.admin, Method::GET, &format!("{base}/properties/img_boot_menu?resource_type=OS::Nova::Flavor"), None).await.0, 404);
    let (status, updated) = call(&s.admin, Method::PUT, &format!("{base}/properties/boot_menu"),
        Some(json!({"name": "boot_menu", "title": "Menu", "type": "string", "enum": ["on", "off"]}))).await;
    assert_eq!((status, updated["enum"].clone()), (200, json!(["on", "off"])));
    assert_eq!(call(&s.admin, Method::DELETE, &format!("{base}/properties"), None).await.0, 204);
    assert_eq!(call(&s.admin, Method::GET, &format!("{base}/properties"), None).await.1["properties"], json!({}));
}

#[tokio::test]
async fn tags_are_replaced_appended_renamed_and_deleted() {
    let s = TestServer::start().await;
    assert_eq!(call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(json!({"namespace": "T"}))).await.0, 201);
    let tags = "/v2/metadefs/namespaces/T/tags";
    let (status, created) = call(&s.admin, Method::POST, tags, Some(json!({"tags": [{"name": "a"}, {"name": "b"}]}))).await;
    assert_eq!((status, created), (201, json!({"tags": [{"name": "a"}, {"name": "b"}]})));
    let response = s.admin.raw(Method::POST, tags).header("X-Openstack-Append", "True").json(&json!({"tags": [{"name": "c"}]})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(names(&call(&s.admin, Method::GET, tags, None).await.1, "tags"), ["a", "b", "c"]);
    let (status, _) = call(&s.admin, Method::POST, tags, Some(json!({"tags": [{"name": "x"}, {"name": "x"}]}))).await;
    assert_eq!(status, 409);
    assert_eq!(names(&call(&s.admin, Method::GET, tags, None).await.1, "tags"), ["a", "b", "c"], "a failed replacement changes nothing");
    call(&s.admin, Method::POST, tags, Some(json!({"tags": [{"name": "d"}]}))).await;
    assert_eq!(names(&call(&s.admin, Method::GET, tags, None).await.1, "tags"), ["d"], "without the header tags are replaced");

    let (status, one) = call(&s.admin, Method::POST, &format!("{tags}/e"), None).await;
    assert_eq!((status, one["name"].as_str()), (201, Some("e")));
    assert_eq!(call(&s.admin, Method::POST, &format!("{tags}/e"), None).await.0, 409);
    let (status, renamed) = call(&s.admin, Method::PUT, &format!("{tags}/e"), Some(json!({"name": "f"}))).await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("f")));
    assert_eq!(call(&s.admin, Method::PUT, &format!("{tags}/f"), Some(json!({"name": "d"}))).await.0, 409);
    assert_eq!(call(&s.admin, Method::GET, &format!("{tags}/f"), None).await.0, 200);
    assert_eq!(call(&s.admin, Method::DELETE, &format!("{tags}/f"), None).await.0, 204);
    assert_eq!(call(&s.admin, Method::GET, &format!("{tags}/f"), None).await.0, 404);
    assert_eq!(call(&s.admin, Method::DELETE, tags, None).await.0, 204);
    assert_eq!(call(&s.admin, Method::GET, tags, None).await.1, json!({"tags": []}));
}

#[tokio::test]
async fn resource_types_and_associations() {
    let s = TestServer::start().await;
    assert_eq!(call(&s.admin, Method::POST, "/v2/metadefs/namespaces", Some(json!({"namespace": "R", "visibility": "public"}))).await.0, 201);
    let path = "/v2/metadefs/namespaces/R/resource_types";
    let association = json!({"name": "OS::Nova::Aggregate", "prefix": "aggr_", "properties_target": "metadata"});
    let (status, created) = call(&s.admin, Method::POST, path, Some(association.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["prefix"], "aggr_");
    assert_eq!(call(&s.admin, Method::POST, path, Some(association)).await.0, 409);
    assert_eq!(call(&s.admin, Method::POST, path, Some(json!({"prefix": "x"}))).await.0, 400);
    let (_, list) = call(&s.admin, Method::GET, path, None).await;
    assert_eq!(names(&list, "resource_type_associations"), ["OS::Nova::Aggregate"]);
    let reader = s.tenant("p", Role::Reader).await;
    let (status, types) = call(&reader.client, Method::GET, "/v2/metadefs/resource_types", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        names(&types, "resource_types"),
        ["OS::Cinder::Volume", "OS::Glance::Image", "OS::Nova::Aggregate", "OS::Nova::Flavor", "OS::Nova::Server"],
        "the standard resource types exist from the start"
    );
    let (status, _) = call(&s.admin, Method::POST, path, Some(json!({"name": "OS::Test::Widget"}))).await;
    assert_eq!(status, 201, "an unknown resource type is created");
    let (_, types) = call(&reader.client, Method::GET, "/v2/metadefs/resource_types", None).await;
    assert!(names(&types, "resource_types").contains(&"OS::Test::Widget".to_string()));
    assert_eq!(call(&reader.client, Method::DELETE, &format!("{path}/OS::Nova::Aggregate"), None).await.0, 403);
    assert_eq!(call(&s.admin, Method::DELETE, &format!("{path}/OS::Nova::Aggregate"), None).await.0, 204);
    assert_eq!(call(&s.admin, Method::DELETE, &format!("{path}/OS::Nova::Aggregate"), None).await.0, 404);
    let (_, left) = call(&s.admin, Method::GET, path, None).await;
    assert_eq!(names(&left, "resource_type_associations"), ["OS::Test::Widget"]);
    let (_, types) = call(&s.admin, Method::GET, "/v2/metadefs/resource_types", None).await;
    assert_eq!(types["resource_types"].as_array().unwrap().len(), 6, "resource types stay");
}

#[tokio::test]
async fn the_metadef_schemas_are_served() {
    let s = TestServer::start().await;
    for (name, title) in [
        ("namespace", "namespace"), ("namespaces", "namespaces"), ("object", "object"), ("objects", "objects"),
        ("property", "property"), ("properties", "properties"), ("tag", "tag"), ("tags", "tags"),
        ("resource_type", "resource_type_association"), ("resource_types", "resource_type_associations"),
    ] {
        let (status, schema) = call(&s.admin, Method::GET, &format!("/v2/schemas/metadefs/{name}"), None).await;
        assert_eq!((status, schema["name"].as_str()), (200, Some(title)), "{name}");
    }
    assert_eq!(call(&s.admin, Method::GET, "/v2/schemas/metadefs/image", None).await.0, 404);
}
