//! Fetching a `web-download` source without becoming a proxy into the service's own network: only http
//! and https, only allowed hosts, never an address in a private, loopback, link-local, unspecified or
//! multicast range unless the operator allows it, redirects only within the same host, and a size cap.
//! The host is resolved here and the connection goes to exactly the addresses that were checked, so a
//! second DNS answer cannot point the download elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::Url;

/// Redirects followed at most (each to the same host).
const MAX_REDIRECTS: usize = 5;

/// What `web-download` may fetch (operator settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDownloadPolicy {
    /// Hosts a URI may name (exact, case-insensitive); empty allows any host.
    pub allowed_hosts: Vec<String>,
    /// Whether addresses in loopback, private, link-local, unspecified and multicast ranges may be fetched.
    pub allow_private_addresses: bool,
    /// Largest file fetched, in bytes.
    pub max_size: u64,
    /// Longest time to wait for the server to start answering.
    pub connect_timeout: Duration,
}

impl Default for WebDownloadPolicy {
    fn default() -> WebDownloadPolicy {
        WebDownloadPolicy {
            allowed_hosts: Vec::new(),
            allow_private_addresses: false,
            max_size: 1 << 40,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a URI is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A checked URI and the addresses its host resolved to, all of them allowed.
#[derive(Debug, Clone)]
pub struct CheckedUri {
    pub url: Url,
    pub addresses: Vec<SocketAddr>,
}

impl WebDownloadPolicy {
    /// Checks what can be checked without the network: scheme, host allowlist, and a literal address.
    pub fn check_syntax(&self, uri: &str) -> Result<Url, Refused> {
        let url = Url::parse(uri).map_err(|e| Refused(format!("URI {uri:?} is not valid: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused(format!("URI scheme {:?} is not allowed: only http and https", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused("URI must not carry credentials".into()));
        }
        let host = match url.host() {
            Some(host) => host.to_string(),
            None => return Err(Refused(format!("URI {uri:?} names no host"))),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !self.allowed_hosts.is_empty() && !self.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(bare)) {
            return Err(Refused(format!("host {bare} is not in the web-download allowlist")));
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_address(ip)?;
        }
        Ok(url)
    }

    /// [`check_syntax`](Self::check_syntax), then resolves the host and checks every address it has.
    pub async fn check(&self, uri: &str) -> Result<CheckedUri, Refused> {
        let url = self.check_syntax(uri)?;
        let addresses = self.resolve(&url).await?;
        Ok(CheckedUri { url, addresses })
    }

    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, Refused> {
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Refused(format!("host {host} cannot be resolved: {e}")))?
            .collect();
        if found.is_empty() {
            return Err(Refused(format!("host {host} has no address")));
        }
        for address in &found {
            self.check_address(address.ip())?;
        }
        Ok(found)
    }

    fn check_address(&self, ip: IpAddr) -> Result<(), Refused> {
        if !self.allow_private_addresses && is_internal(ip) {
            return Err(Refused(format!(
                "address {ip} is in a loopback, private, link-local, unspecified or multicast range"
            )));
        }
        Ok(())
    }

    /// Opens `uri` for reading: the body as a stream of at most `max_size` bytes (a longer body ends
    /// with an error), and its announced length if any. Redirects to another host, non-2xx answers and an
    /// announced length over the cap are refused before any body is read.
    pub async fn open(&self, uri: &str) -> Result<(BoxStream<'static, Result<Bytes, String>>, Option<u64>), Refused> {
        let mut checked = self.check(uri).await?;
        let origin_host = checked.url.host_str().map(str::to_ascii_lowercase);
        for _ in 0..=MAX_REDIRECTS {
            let response = self.client(&checked)?.get(checked.url.clone()).send().await.map_err(|e| {
                Refused(format!("{} cannot be fetched: {e}", checked.url))
            })?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Refused(format!("{} redirects without a location", checked.url)))?;
                let next = checked
                    .url
                    .join(location)
                    .map_err(|e| Refused(format!("redirect to {location:?} is not a valid URI: {e}")))?;
                if next.host_str().map(str::to_ascii_lowercase) != origin_host {
                    return Err(Refused(format!("redirect from {} to another host ({next}) is refused", checked.url)));
                }
                checked = self.check(next.as_str()).await?;
                continue;
            }
            if !status.is_success() {
                return Err(Refused(format!("{} answered {status}", checked.url)));
            }
            let length = response.content_length();
            if let Some(length) = length.filter(|l| *l > self.max_size) {
                return Err(Refused(format!(
                    "{} is {length} bytes; web-download takes at most {} bytes",
                    checked.url, self.max_size
                )));
            }
            return Ok((capped(response, self.max_size), length));
        }
        Err(Refused(format!("{uri} redirects more than {MAX_REDIRECTS} times")))
    }

    /// A client that connects only to the checked addresses and follows no redirect by itself.
    fn client(&self, checked: &CheckedUri) -> Result<reqwest::Client, Refused> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .no_proxy();
        if let Some(domain) = checked.url.domain() {
            builder = builder.resolve_to_addrs(domain, &checked.addresses);
        }
        builder.build().map_err(|e| Refused(format!("HTTP client: {e}")))
    }
}

/// The response body, ending with an error once more than `max` bytes arrived.
fn capped(response: reqwest::Response, max: u64) -> BoxStream<'static, Result<Bytes, String>> {
    let mut seen = 0u64;
    response
        .bytes_stream()
        .map(move |piece| {
            let piece = piece.map_err(|e| format!("download interrupted: {e}"))?;
            seen += piece.len() as u64;
            if seen > max {
                return Err(format!("the file exceeds the web-download limit of {max} bytes"));
            }
            Ok(piece)
        })
        .boxed()
}

/// Whether `ip` is loopback, private, link-local, shared (CGNAT), unspecified, multicast or broadcast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for internal in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
            "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1", "ff02::1",
            "::ffff:127.0.0.1", "::ffff:169.254.169.254"]
        {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "100.128.0.1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn syntax_refusals() {
        let policy = WebDownloadPolicy::default();
        for bad in ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/x", "http://127.0.0.1/x",
            "http://[::1]:8080/x", "http://169.254.169.254/latest/meta-data", "not a uri"]
        {
            assert!(policy.check_syntax(bad).is_err(), "{bad}");
        }
        assert!(policy.check_syntax("https://example.com/disk.qcow2").is_ok());
        let listed = WebDownloadPolicy { allowed_hosts: vec!["images.example.com".into()], ..policy.clone() };
        assert!(listed.check_syntax("https://example.com/disk.qcow2").is_err());
        assert!(listed.check_syntax("https://IMAGES.example.com/disk.qcow2").is_ok());
        let open = WebDownloadPolicy { allow_private_addresses: true, ..policy };
        assert!(open.check_syntax("http://127.0.0.1:8080/x").is_ok());
    }

    #[tokio::test]
    async fn resolved_names_are_checked() {
        let policy = WebDownloadPolicy::default();
        let refused = policy.check("http://localhost:9/x").await.unwrap_err();
        assert!(refused.0.contains("loopback"), "{refused}");
    }
}
