//! Object store backends that need more than a path: S3 (`s3://BUCKET?endpoint=...&region=...`), and the
//! upload of large objects in parts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use futures::{StreamExt, TryStreamExt};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use crate::StoreError;

/// Objects at least this large are uploaded in parts; also the size of each part (S3 needs ≥ 5 MiB).
pub(crate) const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one object uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Options for opening a store, beyond what its URL says. Values left `None` fall back to the environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// S3 access key id. Fallback: `IMS_S3_ACCESS_KEY_ID`, then `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key. Fallback: `IMS_S3_SECRET_ACCESS_KEY`, then `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<String>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field("s3_secret_access_key", &self.s3_secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What an `s3://` store URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Location {
    pub bucket: String,
    /// `None`: AWS itself.
    pub endpoint: Option<url::Url>,
    pub region: String,
}

/// Parses `s3://BUCKET[?endpoint=http(s)://HOST:PORT][&region=REGION]`. Credentials never go in the URL
/// (it is logged); unknown or repeated parameters, a path, or a bad bucket name are `Invalid`.
pub(crate) fn parse_s3_url(url: &url::Url) -> Result<S3Location, StoreError> {
    let invalid = |why: String| StoreError::Invalid(format!("store URL {url}: {why}"));
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials do not belong in the URL; use the s3 access key settings".into()));
    }
    if url.port().is_some() {
        return Err(invalid("an s3 URL names a bucket, not a host; give the server as ?endpoint=".into()));
    }
    let bucket = url.host_str().unwrap_or_default().to_string();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if !bucket_ok {
        return Err(invalid(format!(
            "bad bucket name {bucket:?} (3 to 63 lowercase letters, digits, dots and hyphens)"
        )));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(invalid("a path after the bucket is not supported".into()));
    }
    if url.fragment().is_some() {
        return Err(invalid("a fragment is not supported".into()));
    }
    let (mut endpoint, mut region) = (None, None);
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "endpoint" => &mut endpoint,
            "region" => &mut region,
            other => return Err(invalid(format!("unknown parameter {other:?} (known: endpoint, region)"))),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(invalid(format!("parameter {key:?} given twice")));
        }
    }
    let endpoint = match endpoint {
        None => None,
        Some(text) => {
            let parsed = url::Url::parse(&text).map_err(|e| invalid(format!("bad endpoint {text:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(invalid(format!("endpoint {text:?} is not an http:// or https:// URL")));
            }
            if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
                return Err(invalid(format!("endpoint {text:?} must be scheme, host and port only")));
            }
            Some(parsed)
        }
    };
    let region = region.unwrap_or_else(|| "us-east-1".to_string());
    if region.is_empty() {
        return Err(invalid("empty region".into()));
    }
    Ok(S3Location { bucket, endpoint, region })
}

/// Opens an S3 bucket: path-style requests, plain HTTP only when the endpoint says `http://`, retries with
/// exponential backoff on transient failures, and bounded timeouts. Credentials come from `options`, else the
/// environment; none at all is `Invalid` (no silent fallback to instance metadata).
pub(crate) fn open_s3(url: &url::Url, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let location = parse_s3_url(url)?;
    let credentials = s3_credentials(options, |name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
    let retry = RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(10), base: 2.0 },
        max_retries: 8,
        retry_timeout: Duration::from_secs(120),
    };
    let client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60))
        .with_pool_idle_timeout(Duration::from_secs(30));
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&location.region)
        .with_access_key_id(credentials.key_id)
        .with_secret_access_key(credentials.secret)
        .with_virtual_hosted_style_request(false)
        .with_retry(retry)
        .with_client_options(client);
    if let Some(token) = credentials.session_token {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = &location.endpoint {
        builder = builder
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_allow_http(endpoint.scheme() == "http");
    }
    let store = builder.build().map_err(|e| StoreError::Invalid(format!("store URL {url}: {e}")))?;
    Ok(Arc::new(store))
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct S3Credentials {
    pub key_id: String,
    pub secret: String,
    pub session_token: Option<String>,
}

/// Picks the first complete source: `options`, then `IMS_S3_*`, then `AWS_*` (with `AWS_SESSION_TOKEN`).
/// A half-given pair is `Invalid` rather than mixed with another source.
pub(crate) fn s3_credentials(
    options: &StoreOptions,
    env: impl Fn(&str) -> Option<String>,
) -> Result<S3Credentials, StoreError> {
    let sources = [
        ("the store options", options.s3_access_key_id.clone(), options.s3_secret_access_key.clone(), None),
        ("IMS_S3_ACCESS_KEY_ID/IMS_S3_SECRET_ACCESS_KEY", env("IMS_S3_ACCESS_KEY_ID"), env("IMS_S3_SECRET_ACCESS_KEY"), None),
        (
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
            env("AWS_SESSION_TOKEN"),
        ),
    ];
    for (name, key_id, secret, session_token) in sources {
        match (key_id, secret) {
            (Some(key_id), Some(secret)) => return Ok(S3Credentials { key_id, secret, session_token }),
            (None, None) => continue,
            _ => {
                return Err(StoreError::Invalid(format!(
                    "s3 credentials from {name}: both the access key id and the secret access key are needed"
                )))
            }
        }
    }
    Err(StoreError::Invalid(
        "an s3 store needs credentials: set s3_access_key_id and s3_secret_access_key, \
         IMS_S3_ACCESS_KEY_ID and IMS_S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            .into(),
    ))
}

/// Stores `data` at `path`, atomically: the object is either complete or absent (or, if it existed, unchanged).
/// Objects of [`PART_SIZE`] or more go up as a multipart upload with several parts in flight; a failed one
/// is aborted so no parts linger.
pub(crate) async fn put_object(objects: &dyn ObjectStore, path: &Path, data: Bytes) -> Result<(), StoreError> {
    if data.len() < PART_SIZE {
        objects.put(path, PutPayload::from(data)).await?;
        return Ok(());
    }
    let mut upload = objects.put_multipart(path).await?;
    // Part numbers are taken in call order; the requests run when the futures are polled.
    let parts: Vec<_> = (0..data.len())
        .step_by(PART_SIZE)
        .map(|at| upload.put_part(PutPayload::from(data.slice(at..(at + PART_SIZE).min(data.len())))))
        .collect();
    let uploaded = futures::stream::iter(parts)
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_for_each(|()| futures::future::ready(Ok(())))
        .await;
    let completed = match uploaded {
        Ok(()) => upload.complete().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = completed {
        // Best effort: the upload's parts are otherwise kept (and billed) by the backend.
        if let Err(abort) = upload.abort().await {
            tracing::warn!(%path, error = %abort, "could not abort a failed multipart upload");
        }
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<S3Location, StoreError> {
        parse_s3_url(&url::Url::parse(text).unwrap())
    }

    #[test]
    fn s3_urls_parse() {
        let l = parse("s3://ims-images?endpoint=http://127.0.0.1:3900&region=garage").unwrap();
        assert_eq!(l.bucket, "ims-images");
        assert_eq!(l.endpoint.unwrap().as_str(), "http://127.0.0.1:3900/");
        assert_eq!(l.region, "garage");
        let l = parse("s3://my.bucket.1/").unwrap();
        assert_eq!((l.endpoint, l.region.as_str()), (None, "us-east-1"));
    }

    #[test]
    fn bad_s3_urls_are_invalid() {
        for bad in [
            "s3://ab",
            "s3://Upper",
            "s3://-dash",
            "s3://under_score",
            "s3://bucket/prefix",
            "s3://bucket:9000",
            "s3://key:secret@bucket",
            "s3://bucket?endpoint=ftp://h",
            "s3://bucket?endpoint=http://h/path",
            "s3://bucket?endpoint=nope",
            "s3://bucket?region=",
            "s3://bucket?region=a&region=b",
            "s3://bucket?bucket=x",
            "s3://bucket#f",
        ] {
            match parse(bad) {
                Err(StoreError::Invalid(message)) => assert!(message.contains(bad) || message.contains("s3://"), "{message}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn credentials_come_from_the_first_complete_source() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let none = StoreOptions::default();
        let given = StoreOptions { s3_access_key_id: Some("opt".into()), s3_secret_access_key: Some("opt-s".into()) };
        let all: &[(&str, &str)] = &[
            ("IMS_S3_ACCESS_KEY_ID", "ims"),
            ("IMS_S3_SECRET_ACCESS_KEY", "ims-s"),
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "aws-s"),
            ("AWS_SESSION_TOKEN", "tok"),
        ];
        assert_eq!(s3_credentials(&given, env(all)).unwrap().key_id, "opt");
        assert_eq!(s3_credentials(&none, env(all)).unwrap().secret, "ims-s");
        let aws = s3_credentials(&none, env(&all[2..])).unwrap();
        assert_eq!((aws.key_id.as_str(), aws.session_token.as_deref()), ("aws", Some("tok")));
        assert!(matches!(s3_credentials(&none, env(&[])), Err(StoreError::Invalid(_))));
        let half = StoreOptions { s3_access_key_id: Some("opt".into()), s3_secret_access_key: None };
        assert!(matches!(s3_credentials(&half, env(all)), Err(StoreError::Invalid(_))));
        assert!(!format!("{given:?}").contains("opt-s"), "the secret is not printed");
    }
}
