//! HTTPS: `tls_cert`/`tls_key` make the node speak TLS only, with HSTS on every response; bad settings
//! stop it at start.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::common::{pattern, ADMIN_TOKEN};

/// A certificate authority and a server certificate for `localhost`/`127.0.0.1` it signed, as PEM files.
struct TestPki {
    ca_pem: Vec<u8>,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn certificate(common_name: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", common_name).unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    builder.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_pubkey(key).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
    match issuer {
        None => {
            builder.set_issuer_name(&name).unwrap();
            builder.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
            builder.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
            builder.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            builder.set_issuer_name(ca.subject_name()).unwrap();
            builder.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
            builder.append_extension(KeyUsage::new().critical().digital_signature().build().unwrap()).unwrap();
            builder.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap()).unwrap();
            let san = SubjectAlternativeName::new().dns("localhost").ip("127.0.0.1").build(&builder.x509v3_context(Some(ca), None)).unwrap();
            builder.append_extension(san).unwrap();
            builder.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    builder.build()
}

fn pki(dir: &Path) -> TestPki {
    let ca_key = key();
    let ca = certificate("IMS test CA", &ca_key, None);
    let server_key = key();
    let server = certificate("localhost", &server_key, Some((&ca, &ca_key)));
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, server.to_pem().unwrap()).unwrap();
    std::fs::write(&key, server_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    TestPki { ca_pem: ca.to_pem().unwrap(), cert, key }
}

struct HttpsServer {
    address: std::net::SocketAddr,
    /// Trusts the test CA only.
    client: reqwest::Client,
    _dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

impl HttpsServer {
    async fn start() -> HttpsServer {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let settings = ims_server::Settings {
            data_dir: dir.path().join("data"),
            admin_token: Some(ADMIN_TOKEN.into()),
            tls_cert: Some(pki.cert.clone()),
            tls_key: Some(pki.key.clone()),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let node = ims_server::Node::open(settings).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move { node.serve(listener, async { let _ = rx.await; }).await.unwrap() });
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pki.ca_pem).unwrap())
            .build()
            .unwrap();
        HttpsServer { address, client, _dir: dir, _shutdown: tx }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.address.port())
    }
}

#[tokio::test]
async fn images_upload_and_download_over_https_with_hsts_on_every_response() {
    let s = HttpsServer::start().await;
    let r = s.client.get(s.url("/healthcheck")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");

    let created: serde_json::Value = s
        .client
        .post(s.url("/v2/images"))
        .header("x-auth-token", ADMIN_TOKEN)
        .json(&json!({"name": "over-tls", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let data = pattern(3 << 20, 39);
    let r = s
        .client
        .put(s.url(&format!("/v2/images/{id}/file")))
        .header("x-auth-token", ADMIN_TOKEN)
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let r = s.client.get(s.url(&format!("/v2/images/{id}/file"))).header("x-auth-token", ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    // Errors carry HSTS too, and links the server builds say https.
    let r = s.client.get(s.url("/v2/images")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("strict-transport-security"));
    let versions: serde_json::Value = s.client.get(s.url("/versions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(versions["versions"][0]["links"][0]["href"], s.url("/v2/"));
}

#[tokio::test]
async fn plain_http_and_untrusted_clients_are_refused() {
    let s = HttpsServer::start().await;
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthcheck", s.address.port())).send().await;
    assert!(plain.is_err(), "plain HTTP must not be answered: {plain:?}");
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().unwrap();
    let r = untrusting.get(s.url("/healthcheck")).send().await;
    assert!(r.is_err(), "a client that does not trust the certificate must fail the handshake");
    // The node still serves after both.
    assert_eq!(s.client.get(s.url("/healthcheck")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_other_clients() {
    let s = HttpsServer::start().await;
    // Connects and never says anything: its handshake waits in a task of its own.
    let _silent = tokio::net::TcpStream::connect(s.address).await.unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.client.get(s.url("/healthcheck")).send()).await;
    assert_eq!(r.expect("answered while another handshake is pending").unwrap().status(), 200);
}

#[tokio::test]
async fn half_or_broken_tls_settings_stop_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let open = |cert: Option<&Path>, key: Option<&Path>| {
        let settings = ims_server::Settings {
            data_dir: dir.path().join("data"),
            admin_token: Some(ADMIN_TOKEN.into()),
            tls_cert: cert.map(Path::to_path_buf),
            tls_key: key.map(Path::to_path_buf),
            ..Default::default()
        };
        async move { ims_server::Node::open(settings).await.err().map(|e| format!("{e:#}")) }
    };
    let only_cert = open(Some(&pki.cert), None).await.expect("a certificate without a key is refused");
    assert!(only_cert.contains("tls_key"), "{only_cert}");
    let only_key = open(None, Some(&pki.key)).await.expect("a key without a certificate is refused");
    assert!(only_key.contains("tls_cert"), "{only_key}");
    let missing = open(Some(&dir.path().join("absent.crt")), Some(&pki.key)).await.expect("a missing file is refused");
    assert!(missing.contains("absent.crt"), "{missing}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let bad_cert = open(Some(&garbage), Some(&pki.key)).await.expect("a file without a certificate is refused");
    assert!(bad_cert.contains("garbage.pem"), "{bad_cert}");
    let bad_key = open(Some(&pki.cert), Some(&garbage)).await.expect("a file without a key is refused");
    assert!(bad_key.contains("garbage.pem"), "{bad_key}");
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, key().private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mismatch = open(Some(&pki.cert), Some(&other_key)).await.expect("a key of another certificate is refused");
    assert!(mismatch.contains("does not go with"), "{mismatch}");
    assert!(open(Some(&pki.cert), Some(&pki.key)).await.is_none(), "the right pair opens");
}
