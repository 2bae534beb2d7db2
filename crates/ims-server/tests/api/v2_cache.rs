//! The image cache API (`/v2/cache`, admins): images prefetched into the node's chunk cache, listed
//! while the cache holds them whole; the prefetch queue; clearing either.

use std::time::Duration;

use ims_client::{Client, Role};
use reqwest::Method;
use serde_json::Value;

use crate::common::{pattern, raw_image, TestServer};

async fn call(client: &Client, method: Method, path: &str) -> (u16, Value) {
    let r = client.raw(method, path).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn cache(client: &Client) -> Value {
    let (code, body) = call(client, Method::GET, "/v2/cache").await;
    assert_eq!(code, 200, "{body}");
    body
}

fn cached_ids(state: &Value) -> Vec<String> {
    state["cached_images"].as_array().unwrap().iter().map(|c| c["image_id"].as_str().unwrap().to_string()).collect()
}

/// Waits until the node lists image `id` as cached; returns the listing.
async fn wait_cached(client: &Client, id: &str) -> Value {
    for _ in 0..300 {
        let state = cache(client).await;
        if cached_ids(&state).iter().any(|c| c == id) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("image {id} was never cached");
}

async fn active_image(client: &Client, name: &str, data: Vec<u8>) -> String {
    let id = client.create_image(&raw_image(name)).await.unwrap().id;
    client.upload_bytes(&id, data).await.unwrap();
    id
}

#[tokio::test]
async fn the_caching_cycle() {
    let s = TestServer::start().await;
    let member = s.tenant("cache-member", Role::Member).await;
    assert_eq!(call(&member.client, Method::GET, "/v2/cache").await.0, 403);
    let empty = cache(&s.admin).await;
    assert_eq!((empty["cached_images"].as_array().unwrap().len(), empty["queued_images"].as_array().unwrap().len()), (0, 0));

    assert_eq!(call(&s.admin, Method::PUT, "/v2/cache/non-existing-image-id").await.0, 404);
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{}", uuid::Uuid::new_v4())).await.0, 404);
    let queued = s.admin.create_image(&raw_image("queued")).await.unwrap().id;
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{queued}")).await.0, 400, "only active images");

    let data = pattern(3 << 20, 11);
    let id = active_image(&member.client, "first", data.clone()).await;
    assert_eq!(call(&member.client, Method::PUT, &format!("/v2/cache/{id}")).await.0, 403);
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{id}")).await.0, 202);
    let state = wait_cached(&s.admin, &id).await;
    let entry = &state["cached_images"][0];
    assert_eq!(entry["size"], data.len() as u64);
    // The upload's own inspection read some chunks through the cache already.
    let hits_before = entry["hits"].as_u64().unwrap();
    assert!(entry["last_modified"].as_f64().unwrap() > 1.6e9, "{entry}");
    assert!(state["queued_images"].as_array().unwrap().is_empty());

    // A small ranged download is served from the cache: the image's hits count it.
    let part = member.client.download_with_range(&id, Some("bytes=0-4095")).await.unwrap().bytes().await.unwrap();
    assert!(part[..] == data[..4096]);
    let state = cache(&s.admin).await;
    assert!(state["cached_images"][0]["hits"].as_u64().unwrap() > hits_before, "{state}");

    // Queueing a cached image again leaves it as it is.
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{id}")).await.0, 202);
    assert_eq!(cached_ids(&cache(&s.admin).await), vec![id.clone()]);

    assert_eq!(call(&member.client, Method::DELETE, &format!("/v2/cache/{id}")).await.0, 403);
    assert_eq!(call(&s.admin, Method::DELETE, &format!("/v2/cache/{id}")).await.0, 204);
    assert!(cached_ids(&cache(&s.admin).await).is_empty());
    assert_eq!(call(&s.admin, Method::DELETE, &format!("/v2/cache/{id}")).await.0, 204, "an image not cached");
    assert_eq!(call(&s.admin, Method::DELETE, &format!("/v2/cache/{}", uuid::Uuid::new_v4())).await.0, 404);

    // Clearing: a bad target is refused; the queue alone leaves cached images; the cache clears them.
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{id}")).await.0, 202);
    wait_cached(&s.admin, &id).await;
    let clear = |target: Option<&'static str>| {
        let mut request = s.admin.raw(Method::DELETE, "/v2/cache");
        if let Some(target) = target {
            request = request.header("x-image-cache-clear-target", target);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(clear(Some("invalid")).await, 400);
    assert_eq!(clear(Some("queue")).await, 204);
    assert_eq!(cached_ids(&cache(&s.admin).await), vec![id.clone()]);
    assert_eq!(clear(Some("cache")).await, 204);
    assert!(cached_ids(&cache(&s.admin).await).is_empty());
    assert_eq!(call(&member.client, Method::DELETE, "/v2/cache").await.0, 403);
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{id}")).await.0, 202);
    wait_cached(&s.admin, &id).await;
    assert_eq!(clear(None).await, 204);
    let state = cache(&s.admin).await;
    assert!(cached_ids(&state).is_empty() && state["queued_images"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_image_evicted_from_the_chunk_cache_is_no_longer_cached() {
    let s = TestServer::start_with(|c| c.chunk_cache_bytes = 5 << 20).await;
    let first = active_image(&s.admin, "first", pattern(3 << 20, 1)).await;
    let second = active_image(&s.admin, "second", pattern(3 << 20, 2)).await;
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{first}")).await.0, 202);
    wait_cached(&s.admin, &first).await;
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{second}")).await.0, 202);
    let state = wait_cached(&s.admin, &second).await;
    assert_eq!(cached_ids(&state), vec![second.clone()], "both do not fit: the first was evicted");

    // An image whose chunks cannot all fit is refused.
    let large = active_image(&s.admin, "large", pattern(7 << 20, 3)).await;
    let (code, body) = call(&s.admin, Method::PUT, &format!("/v2/cache/{large}")).await;
    assert_eq!(code, 400, "{body}");
    assert!(cache(&s.admin).await["queued_images"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_node_without_a_chunk_cache_has_no_cache_api() {
    let s = TestServer::start_with(|c| c.chunk_cache_bytes = 0).await;
    let member = s.tenant("no-cache", Role::Member).await;
    assert_eq!(call(&member.client, Method::GET, "/v2/cache").await.0, 403);
    assert_eq!(call(&s.admin, Method::GET, "/v2/cache").await.0, 404);
    let id = active_image(&s.admin, "img", pattern(1000, 4)).await;
    assert_eq!(call(&s.admin, Method::PUT, &format!("/v2/cache/{id}")).await.0, 404);
    assert_eq!(call(&s.admin, Method::DELETE, "/v2/cache").await.0, 404);
}
