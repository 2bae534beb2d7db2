//! Per-caller rate limits: a token bucket per token, access key or anonymous address; `429` with
//! `Retry-After` in the error form of the surface called.

use std::time::{Duration, Instant};

use ims_client::Role;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{raw_image, TestServer};

const BURST: u32 = 5;

async fn limited_server() -> TestServer {
    TestServer::start_with(|settings| {
        settings.rate_limit_per_second = 1;
        settings.rate_limit_burst = BURST;
    })
    .await
}

/// Sends `request()` until it is refused; returns how many were served first and the refusal.
async fn until_refused(mut request: impl FnMut() -> reqwest::RequestBuilder) -> (u32, reqwest::Response) {
    let started = Instant::now();
    let mut served = 0;
    for _ in 0..50 {
        let r = request().send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            // The bucket holds BURST tokens and gains one a second while the loop runs.
            let allowed = BURST + started.elapsed().as_secs() as u32 + 1;
            assert!((BURST..=allowed).contains(&served), "{served} served before the first refusal");
            return (served, r);
        }
        served += 1;
    }
    panic!("50 requests in a row were served");
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_caller_over_its_rate_gets_429_with_retry_after_and_others_are_not_affected() {
    let s = limited_server().await;
    let a = s.tenant("rate-a", Role::Member).await;
    let b = s.tenant("rate-b", Role::Member).await;

    let (_, refused) = until_refused(|| a.client.raw(Method::GET, "/v2/images")).await;
    assert_eq!(retry_after(&refused), 1);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "429 Too Many Requests", "Glance's error form: {body}");

    // An IMS path answers in the IMS form; the refusal counts against nobody else.
    let r = a.client.raw(Method::GET, "/v2/cloudimages").send().await.unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "APIGW.0308", "the IMS error form: {body}");
    assert_eq!(b.client.raw(Method::GET, "/v2/images").send().await.unwrap().status(), 200, "b has its own bucket");

    // A refused write changes nothing.
    let r = a.client.raw(Method::POST, "/v2/images").json(&raw_image("refused")).send().await.unwrap();
    assert_eq!(r.status(), 429);

    // After Retry-After, the caller is served again; the health check is never limited.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = a.client.raw(Method::GET, "/v2/images?name=refused").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["images"], serde_json::json!([]), "the refused create made nothing");
    for _ in 0..(2 * BURST) {
        assert_eq!(reqwest::get(format!("{}/healthcheck", s.url)).await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn anonymous_callers_are_limited_by_address() {
    let s = limited_server().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v2/images", s.url);
    let (_, refused) = until_refused(|| http.get(&url)).await;
    assert!(retry_after(&refused) >= 1);
    // Credentials from the same address have their own bucket.
    assert_eq!(s.raw(Method::GET, "/v2/images").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn there_is_no_rate_limit_by_default() {
    let s = TestServer::start().await;
    for _ in 0..200 {
        assert_eq!(s.raw(Method::GET, "/v2/images").send().await.unwrap().status(), 200);
    }
}
