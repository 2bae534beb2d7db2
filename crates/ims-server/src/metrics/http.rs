//! Per-route HTTP metrics: requests and their latency by route template, method and status, and body
//! bytes received and sent by route template and method.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::text::{Exposition, Histogram, Kind, REQUEST_SECONDS};
use super::Metrics;

/// The route label of requests no route matched (unknown paths): raw paths would be unbounded.
pub const UNMATCHED: &str = "unmatched";

/// Routes whose request bodies are image data uploaded (`PUT`) and whose response bodies are image data
/// downloaded (`GET`).
const IMAGE_DATA_ROUTES: &[&str] = &["/v2/images/{id}/file", "/v2/images/{id}/stage"];

type SeriesKey = (String, String, u16);
type BodyKey = (String, String);

/// Body bytes of one route and method.
#[derive(Default)]
struct BodyBytes {
    received: AtomicU64,
    sent: AtomicU64,
}

/// Every route's series, created on first use (their number is bounded by routes × methods × statuses).
#[derive(Default)]
pub struct HttpMetrics {
    latency: RwLock<HashMap<SeriesKey, Arc<Histogram>>>,
    bodies: RwLock<HashMap<BodyKey, Arc<BodyBytes>>>,
}

fn get_or_insert<K: std::hash::Hash + Eq + Clone, V>(map: &RwLock<HashMap<K, Arc<V>>>, key: &K, new: impl FnOnce() -> V) -> Arc<V> {
    if let Some(found) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Arc::clone(found);
    }
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(key.clone()).or_insert_with(|| Arc::new(new())))
}

impl HttpMetrics {
    fn body_bytes(&self, route: &str, method: &str) -> Arc<BodyBytes> {
        get_or_insert(&self.bodies, &(route.to_string(), method.to_string()), BodyBytes::default)
    }

    fn latency(&self, route: &str, method: &str, status: u16) -> Arc<Histogram> {
        get_or_insert(&self.latency, &(route.to_string(), method.to_string(), status), || Histogram::new(REQUEST_SECONDS))
    }

    /// Writes the HTTP families to `out`, series in a stable order.
    pub fn render(&self, out: &mut Exposition) {
        let mut latency: Vec<(SeriesKey, Arc<Histogram>)> =
            self.latency.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        latency.sort_by(|a, b| a.0.cmp(&b.0));
        out.family("ims_http_requests_total", Kind::Counter, "HTTP requests answered, by route template, method and status.");
        for ((route, method, status), histogram) in &latency {
            let status = status.to_string();
            let labels = [("route", route.as_str()), ("method", method.as_str()), ("status", status.as_str())];
            out.sample("ims_http_requests_total", &labels, histogram.snapshot().count as f64);
        }
        out.family(
            "ims_http_request_duration_seconds",
            Kind::Histogram,
            "Time from a request's arrival to its response headers, by route template, method and status.",
        );
        for ((route, method, status), histogram) in &latency {
            let status = status.to_string();
            let labels = [("route", route.as_str()), ("method", method.as_str()), ("status", status.as_str())];
            out.histogram("ims_http_request_duration_seconds", &labels, histogram);
        }

        let mut bodies: Vec<(BodyKey, Arc<BodyBytes>)> =
            self.bodies.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        bodies.sort_by(|a, b| a.0.cmp(&b.0));
        let families = [
            ("ims_http_request_body_bytes_total", "Request body bytes received, by route template and method.", true),
            ("ims_http_response_body_bytes_total", "Response body bytes sent, by route template and method.", false),
        ];
        for (name, help, received) in families {
            out.family(name, Kind::Counter, help);
            for ((route, method), bytes) in &bodies {
                let counter = if received { &bytes.received } else { &bytes.sent };
                out.sample(name, &[("route", route.as_str()), ("method", method.as_str())], counter.load(Ordering::Relaxed) as f64);
            }
        }
        let image_data = |method: &str, received: bool| -> u64 {
            bodies
                .iter()
                .filter(|((route, m), _)| m == method && IMAGE_DATA_ROUTES.contains(&route.as_str()))
                .map(|(_, b)| if received { b.received.load(Ordering::Relaxed) } else { b.sent.load(Ordering::Relaxed) })
                .sum()
        };
        out.family("ims_image_upload_bytes_total", Kind::Counter, "Image data bytes received by uploads (Glance file and stage).");
        out.sample("ims_image_upload_bytes_total", &[], image_data("PUT", true) as f64);
        out.family("ims_image_download_bytes_total", Kind::Counter, "Image data bytes sent by downloads (Glance file).");
        out.sample("ims_image_download_bytes_total", &[], image_data("GET", false) as f64);
    }
}

/// Middleware: counts the request under its route template (axum's [`MatchedPath`], never the raw path)
/// and the bytes of both bodies as they stream.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_string();
    let method = request.method().as_str().to_string();
    let bytes = metrics.http.body_bytes(&route, &method);
    let counted = Arc::clone(&bytes);
    let request = request.map(move |body| Body::new(CountedBody { inner: body, bytes: counted, received: true }));
    let response = next.run(request).await;
    metrics.http.latency(&route, &method, response.status().as_u16()).observe(started.elapsed());
    response.map(move |body| Body::new(CountedBody { inner: body, bytes, received: false }))
}

/// A body that adds the length of every data frame passing through to a counter.
struct CountedBody {
    inner: Body,
    bytes: Arc<BodyBytes>,
    /// Whether this is a request body (else a response body).
    received: bool,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let counter = if self.received { &self.bytes.received } else { &self.bytes.sent };
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
