//! `GET /metrics`: who may scrape, and that the series move with real traffic.

use ims_client::Role;
use reqwest::Method;

use crate::common::{pattern, raw_image, TestServer, ADMIN_TOKEN};

const METRICS_TOKEN: &str = "scrape-me";

async fn scrape(s: &TestServer) -> String {
    let r = reqwest::Client::new().get(format!("{}/metrics", s.url)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    r.text().await.unwrap()
}

/// The value of the sample `series` (name with labels, exactly as exposed); none when absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn only_admins_and_the_metrics_token_may_scrape_unless_metrics_are_public() {
    let s = TestServer::start_with(|settings| settings.metrics_token = Some(METRICS_TOKEN.into())).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", s.url);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401, "anonymous");
    assert_eq!(http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401, "an unknown bearer token");
    let member = s.tenant("alpha", Role::Member).await;
    let r = member.client.raw(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 403, "a member of a project");
    assert_eq!(http.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap().status(), 200, "the metrics token");
    assert_eq!(http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap().status(), 200, "an admin's token as bearer");
    assert_eq!(s.raw(Method::GET, "/metrics").send().await.unwrap().status(), 200, "an admin's X-Auth-Token");

    let public = TestServer::start_with(|settings| settings.metrics_public = true).await;
    assert_eq!(http.get(format!("{}/metrics", public.url)).send().await.unwrap().status(), 200);
    let closed = TestServer::start().await;
    let r = http.get(format!("{}/metrics", closed.url)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 401, "no metrics token is configured: a bearer is only an identity token");
}

#[tokio::test]
async fn series_move_with_uploads_downloads_and_garbage_collection() {
    let s = TestServer::start_with(|settings| settings.metrics_token = Some(METRICS_TOKEN.into())).await;
    // No scrape before the traffic: the first one scans the store, and later ones reuse that scan for a while.
    let refused = reqwest::Client::new().get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    let data = pattern(5 << 20, 12);
    let image = s.admin.create_image(&raw_image("measured")).await.unwrap();
    s.admin.upload_bytes(&image.id, data.clone()).await.unwrap();
    let downloaded = s.admin.download(&image.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(downloaded.len(), data.len());
    let r = s.raw(Method::GET, &format!("/v2/images/{}", image.id)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.admin.store_gc(Some(0)).await.unwrap();

    let after = scrape(&s).await;
    assert!(!after.contains(&image.id), "series are labelled by route template, never by raw path");
    let put = "ims_http_requests_total{route=\"/v2/images/{id}/file\",method=\"PUT\",status=\"204\"}";
    assert_eq!(value(&after, put), Some(1.0), "{after}");
    let get = "ims_http_requests_total{route=\"/v2/images/{id}\",method=\"GET\",status=\"200\"}";
    assert_eq!(value(&after, get), Some(1.0));
    let latency = "ims_http_request_duration_seconds_count{route=\"/v2/images/{id}/file\",method=\"PUT\",status=\"204\"}";
    assert_eq!(value(&after, latency), Some(1.0));
    let inf = "ims_http_request_duration_seconds_bucket{route=\"/v2/images/{id}/file\",method=\"PUT\",status=\"204\",le=\"+Inf\"}";
    assert_eq!(value(&after, inf), Some(1.0));
    let size = data.len() as f64;
    assert!(value(&after, "ims_image_upload_bytes_total").unwrap() >= size);
    assert!(value(&after, "ims_image_download_bytes_total").unwrap() >= size);
    let received = "ims_http_request_body_bytes_total{route=\"/v2/images/{id}/file\",method=\"PUT\"}";
    assert!(value(&after, received).unwrap() >= size);
    let refusals = "ims_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"401\"}";
    assert_eq!(value(&after, refusals), Some(1.0), "rejected requests are counted too");
    assert_eq!(value(&after, "ims_job_queue_depth{state=\"INIT\"}"), Some(0.0));

    assert_eq!(value(&after, "ims_gc_runs_total"), Some(1.0));
    assert_eq!(value(&after, "ims_store_images"), Some(1.0));
    assert_eq!(value(&after, "ims_store_logical_bytes"), Some(size));
    assert!(value(&after, "ims_store_dedup_ratio").unwrap() > 0.0);
    for series in ["ims_chunk_cache_hits_total", "ims_chunk_cache_misses_total", "ims_store_chunk_reads_total"] {
        assert!(value(&after, series).is_some(), "{series} is exposed");
    }
    assert!(value(&after, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(after.contains("# TYPE ims_http_request_duration_seconds histogram\n"));
}

#[tokio::test]
async fn unknown_paths_share_one_series() {
    let s = TestServer::start_with(|settings| settings.metrics_token = Some(METRICS_TOKEN.into())).await;
    for path in ["/no/such/thing", "/another/unknown/path"] {
        assert_eq!(s.raw(Method::GET, path).send().await.unwrap().status(), 404);
    }
    let text = scrape(&s).await;
    assert!(!text.contains("/no/such/thing"));
    assert_eq!(value(&text, "ims_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"), Some(2.0));
}

#[tokio::test]
async fn an_import_job_is_timed_by_type_and_its_staged_bytes_counted() {
    let s = TestServer::start_with(|settings| settings.metrics_token = Some(METRICS_TOKEN.into())).await;
    let data = pattern((2 << 20) + 5, 3);
    let image = s.admin.create_image(&raw_image("imported")).await.unwrap();
    s.admin.stage(&image.id, data.clone().into(), Some(data.len() as u64)).await.unwrap();
    let r = s
        .raw(Method::POST, &format!("/v2/images/{}/import", image.id))
        .json(&serde_json::json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The job's end is recorded just after the image turns active: wait for its series.
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&s).await;
        if text.contains("ims_job_duration_seconds_count{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let timed: Vec<&str> = text.lines().filter(|l| l.starts_with("ims_job_duration_seconds_count{")).collect();
    assert_eq!(timed.len(), 1, "{text}");
    assert!(timed[0].contains("status=\"SUCCESS\"") && timed[0].ends_with(" 1"), "{}", timed[0]);
    assert_eq!(s.admin.get_image(&image.id).await.unwrap().status, "active");
    assert!(value(&text, "ims_image_upload_bytes_total").unwrap() >= data.len() as f64, "staged bytes are upload bytes");
    assert_eq!(value(&text, "ims_job_queue_depth{state=\"RUNNING\"}"), Some(0.0));
}
