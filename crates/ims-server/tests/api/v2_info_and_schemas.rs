use ims_client::Role;

use crate::common::{pattern, raw_image, status, TestServer};

#[tokio::test]
async fn schemas_describe_what_the_api_returns() {
    let s = TestServer::start().await;
    let image = s.admin.schemas("image").await.unwrap();
    assert_eq!(image["name"], "image");
    assert_eq!(image["additionalProperties"]["type"], "string");
    for key in ["id", "name", "status", "visibility", "checksum", "os_hash_value", "size", "virtual_size", "tags"] {
        assert!(image["properties"].get(key).is_some(), "{key}");
    }
    assert!(image["properties"]["disk_format"]["enum"].as_array().unwrap().iter().any(|v| v == "qcow2"));
    let images = s.admin.schemas("images").await.unwrap();
    assert_eq!(images["properties"]["images"]["items"]["name"], "image");
    assert_eq!(s.admin.schemas("member").await.unwrap()["properties"]["status"]["enum"][1], "accepted");
    assert!(s.admin.schemas("members").await.unwrap()["properties"]["members"].is_object());
    assert_eq!(status(s.admin.schemas("nonsense").await), 404);
}

#[tokio::test]
async fn usage_counts_the_projects_images() {
    let s = TestServer::start().await;
    let t = s.tenant("u", Role::Member).await;
    let img = t.client.create_image(&raw_image("a")).await.unwrap();
    t.client.upload_bytes(&img.id, pattern(12345, 1)).await.unwrap();
    t.client.create_image(&raw_image("b")).await.unwrap();
    let usage = t.client.info_usage().await.unwrap();
    assert_eq!(usage["usage"]["image_count_total"]["usage"], 2);
    assert_eq!(usage["usage"]["image_size_total"]["usage"], 12345);
    let stores = t.client.info_stores().await.unwrap();
    assert_eq!(stores["stores"][0]["default"], true);
    let import = t.client.info_import().await.unwrap();
    assert_eq!(import["import-methods"]["type"], "array");
}
