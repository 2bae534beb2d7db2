//! Per-caller request rate limits: a token bucket per caller, refilled at `rate_limit_per_second` tokens a
//! second up to `rate_limit_burst`; a request takes one token, and a request that finds none is answered
//! `429 Too Many Requests` with `Retry-After` (whole seconds until a token is back) in the error form of
//! the surface called. Off when `rate_limit_per_second` is 0 (the default).
//!
//! The caller is told by what it presents, before authentication (so a refused request costs no catalog
//! look-up): its `X-Auth-Token`, else the access key of an `SDK-HMAC-SHA256` signature, else its IP
//! address. Credentials are kept only as keyed hashes. Memory is bounded: at most [`MAX_BUCKETS`]
//! buckets are tracked; when that many are, the idle ones (full again, so forgetting them changes
//! nothing) are dropped, and if every bucket is busy the least recently used half goes.
//!
//! `/healthcheck` and the peer-to-peer replication paths (`/internal/...`) are not limited.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::limits::surface_error;
use crate::signature::{Authorization, ALGORITHM};
use crate::config::Settings;

/// Most callers tracked at once.
pub const MAX_BUCKETS: usize = 100_000;

/// Who a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CallerKey {
    /// A keyed hash of `X-Auth-Token`.
    Token(u64),
    /// A keyed hash of the access key of a signed request.
    AccessKey(u64),
    /// An anonymous caller, by address.
    Address(IpAddr),
    /// An anonymous caller whose address is unknown (the application served without connection info).
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// The token buckets of one node's callers.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    hasher: RandomState,
    buckets: Mutex<HashMap<CallerKey, Bucket>>,
    max_buckets: usize,
}

impl RateLimiter {
    /// A limiter granting `per_second` requests a second with bursts of `burst`; `None` when `per_second`
    /// is 0 (no limit). A `burst` of 0 counts as 1.
    pub fn new(per_second: u32, burst: u32) -> Option<RateLimiter> {
        Self::with_capacity(per_second, burst, MAX_BUCKETS)
    }

    fn with_capacity(per_second: u32, burst: u32, max_buckets: usize) -> Option<RateLimiter> {
        (per_second > 0).then(|| RateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            hasher: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
            max_buckets: max_buckets.max(2),
        })
    }

    /// Takes a token from `key`'s bucket at `now`: `Ok` if there was one, else `Err` with the time until
    /// there will be.
    fn take(&self, key: CallerKey, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_buckets {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, refilled_at: now });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }

    /// Drops the buckets that have refilled completely; if that frees nothing, the least recently used half.
    fn evict(&self, buckets: &mut HashMap<CallerKey, Bucket>, now: Instant) {
        let full_after = Duration::from_secs_f64(self.burst / self.per_second);
        buckets.retain(|_, b| now.saturating_duration_since(b.refilled_at) < full_after);
        if buckets.len() >= self.max_buckets {
            let mut seen: Vec<Instant> = buckets.values().map(|b| b.refilled_at).collect();
            seen.sort_unstable();
            let cutoff = seen[seen.len() / 2];
            buckets.retain(|_, b| b.refilled_at > cutoff);
        }
    }

    /// How many callers are tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }

    fn key(&self, headers: &HeaderMap, address: Option<IpAddr>) -> CallerKey {
        if let Some(token) = headers.get("x-auth-token").filter(|v| !v.is_empty()) {
            return CallerKey::Token(self.hasher.hash_one(token.as_bytes()));
        }
        let access = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.trim_start().starts_with(ALGORITHM))
            .and_then(Authorization::parse);
        if let Some(auth) = access {
            return CallerKey::AccessKey(self.hasher.hash_one(auth.access.as_bytes()));
        }
        address.map_or(CallerKey::Unknown, CallerKey::Address)
    }
}

/// The limiter `settings` ask for (`None`: requests are not limited), for [`enforce`].
pub fn from_settings(settings: &Settings) -> Option<Arc<RateLimiter>> {
    RateLimiter::new(settings.rate_limit_per_second, settings.rate_limit_burst).map(Arc::new)
}

/// Middleware: takes a token for the caller, or answers 429.
pub async fn enforce(State(limiter): State<Option<Arc<RateLimiter>>>, request: Request, next: Next) -> Response {
    let Some(limiter) = limiter.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/healthcheck" || path.starts_with("/internal/") {
        return next.run(request).await;
    }
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let key = limiter.key(request.headers(), address);
    match limiter.take(key, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests: this caller may make {} a second; retry in {seconds} s", limiter.per_second),
            )
            .with_header("retry-after", &seconds.max(1).to_string());
            surface_error(path, request.headers().get(header::ACCEPT), error).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3).unwrap();
        let key = CallerKey::Unknown;
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take(key, t0).unwrap();
        }
        let wait = limiter.take(key, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "one token comes back every half second");
        assert!(limiter.take(key, t0 + Duration::from_millis(499)).is_err());
        limiter.take(key, t0 + Duration::from_millis(750)).expect("refused takes use nothing up");
        assert!(limiter.take(key, t0 + Duration::from_millis(750)).is_err());
        limiter.take(CallerKey::Token(7), t0).expect("another caller has its own bucket");
    }

    #[test]
    fn no_limiter_when_the_rate_is_zero() {
        assert!(RateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn the_number_of_tracked_callers_stays_bounded() {
        let limiter = RateLimiter::with_capacity(1, 5, 100).unwrap();
        let t0 = Instant::now();
        for i in 0..1000u64 {
            limiter.take(CallerKey::Token(i), t0 + Duration::from_millis(i)).unwrap();
            assert!(limiter.tracked() <= 100);
        }
        let later = t0 + Duration::from_secs(60);
        for i in 0..100u64 {
            limiter.take(CallerKey::Token(10_000 + i), later).unwrap();
            assert!(limiter.tracked() <= 100);
        }
        // A busy caller keeps its (empty) bucket through evictions of idle ones.
        let busy = CallerKey::Token(99_999);
        let limiter = RateLimiter::with_capacity(1, 1, 10).unwrap();
        limiter.take(busy, later).unwrap();
        for i in 0..9u64 {
            limiter.take(CallerKey::Token(i), t0).unwrap();
        }
        assert_eq!(limiter.tracked(), 10);
        limiter.take(CallerKey::Token(100), later).unwrap();
        assert_eq!(limiter.tracked(), 2, "the idle callers went, the busy one stayed");
        assert!(limiter.take(busy, later).is_err(), "the busy caller's empty bucket was kept");
    }

    #[test]
    fn callers_are_told_by_token_then_access_key_then_address() {
        let limiter = RateLimiter::new(1, 1).unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(limiter.key(&headers, Some(ip)), CallerKey::Address(ip));
        assert_eq!(limiter.key(&headers, None), CallerKey::Unknown);
        headers.insert(header::AUTHORIZATION, "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=00".parse().unwrap());
        let signed = limiter.key(&headers, Some(ip));
        assert!(matches!(signed, CallerKey::AccessKey(_)));
        headers.insert("x-auth-token", "t1".parse().unwrap());
        let by_token = limiter.key(&headers, Some(ip));
        assert!(matches!(by_token, CallerKey::Token(_)));
        headers.insert("x-auth-token", "t2".parse().unwrap());
        assert_ne!(limiter.key(&headers, Some(ip)), by_token, "each token has its own bucket");
    }
}
