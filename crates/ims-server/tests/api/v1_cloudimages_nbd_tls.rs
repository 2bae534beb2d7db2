//! NBD over TLS with pre-shared keys (`nbd_tls_psk_file`): minted URLs say TLS is required, qemu
//! with the key reads the guest disk, qemu without it gets nothing; a listener reachable from other
//! hosts refuses to start without keys.

use std::path::{Path, PathBuf};

use ims_server::{Node, Settings};
use reqwest::Method;
use serde_json::Value;

use crate::common::{pattern, raw_image, TestServer};

const KEY: &str = "5f1e0d7c9b3a2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c3b5a7f9e2d4c6b8a0f1e";

fn write_keys(dir: &Path, name: &str, line: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("keys.psk"), format!("{line}\n")).unwrap();
    path
}

/// Runs a qemu tool; its stdout, or its stderr as the error.
async fn run(program: &str, args: &[String]) -> Result<String, String> {
    let out = tokio::process::Command::new(program).args(args).output().await.expect("qemu tools are installed");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// qemu-img arguments opening `url`'s export over TLS with the keys in `dir` as `identity`.
fn tls_open(url: &str, dir: &Path, identity: &str) -> Vec<String> {
    let (authority, name) = url.trim_start_matches("nbd://").split_once('/').unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap();
    vec![
        "--object".into(),
        format!("tls-creds-psk,id=tls0,endpoint=client,dir={},username={identity}", dir.display()),
        "--image-opts".into(),
        format!("driver=nbd,host={host},port={port},export={name},tls-creds=tls0"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbd_over_tls_serves_only_clients_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let server_keys = write_keys(dir.path(), "server", &format!("qemu:{KEY}"));
    let s = TestServer::start_with(|s| {
        s.nbd_listen = Some("127.0.0.1:0".parse().unwrap());
        s.nbd_tls_psk_file = Some(server_keys.join("keys.psk"));
    })
    .await;
    let disk = pattern(2 << 20, 25);
    let image = s.admin.create_image(&raw_image("tls")).await.unwrap();
    s.admin.upload_bytes(&image.id, disk.clone()).await.unwrap();

    let resp = s.raw(Method::POST, &format!("/v1/cloudimages/{}/nbd", image.id)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tls"], Value::Bool(true), "{body}");
    let url = body["nbd_url"].as_str().unwrap().to_string();

    let client_keys = write_keys(dir.path(), "client", &format!("qemu:{KEY}"));
    let out = dir.path().join("out.raw");
    let mut args = vec!["convert".to_string()];
    args.extend(tls_open(&url, &client_keys, "qemu"));
    args.extend(["-O".into(), "raw".into(), out.to_str().unwrap().into()]);
    run("qemu-img", &args).await.unwrap_or_else(|e| panic!("qemu-img convert over TLS: {e}"));
    assert!(std::fs::read(&out).unwrap() == disk, "the guest disk read over TLS");

    // Without TLS, with a wrong key, or as an unknown identity: refused.
    let plain = ["info".to_string(), "-f".into(), "raw".into(), url.clone()];
    let refused = run("qemu-img", &plain).await.expect_err("plain NBD refused");
    assert!(refused.contains("TLS"), "{refused}");
    let wrong = write_keys(dir.path(), "wrong", &format!("qemu:{}", KEY.replace('5', "6")));
    let stranger = write_keys(dir.path(), "stranger", &format!("mallory:{KEY}"));
    for (keys, identity) in [(&wrong, "qemu"), (&stranger, "mallory")] {
        let mut args = vec!["info".to_string()];
        args.extend(tls_open(&url, keys, identity));
        run("qemu-img", &args).await.expect_err("a client without the key is refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_listener_says_tls_is_not_needed() {
    let s = TestServer::start_with(|s| s.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let image = s.admin.create_image(&raw_image("plain")).await.unwrap();
    s.admin.upload_bytes(&image.id, pattern(1 << 20, 26)).await.unwrap();
    let resp = s.raw(Method::POST, &format!("/v1/cloudimages/{}/nbd", image.id)).send().await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tls"], Value::Bool(false), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_other_hosts_reach_needs_keys_and_bad_key_files_stop_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |psk: Option<PathBuf>| Settings {
        data_dir: dir.path().join("data"),
        nbd_listen: Some("0.0.0.0:0".parse().unwrap()),
        nbd_tls_psk_file: psk,
        ..Settings::default()
    };
    let refused = Node::open(settings(None)).await.err().expect("no keys on 0.0.0.0");
    let message = format!("{refused:#}");
    assert!(message.contains("requires TLS") && message.contains("nbd_tls_psk_file"), "{message}");

    let bad = write_keys(dir.path(), "bad", "qemu:not-hex");
    let refused = Node::open(settings(Some(bad.join("keys.psk")))).await.err().expect("a malformed key file");
    let message = format!("{refused:#}");
    assert!(message.contains("line 1") && !message.contains("not-hex"), "{message}");
    let missing = Node::open(settings(Some(dir.path().join("absent.psk")))).await.err().expect("a missing key file");
    assert!(format!("{missing:#}").contains("absent.psk"), "{missing:#}");

    let good = write_keys(dir.path(), "good", &format!("qemu:{KEY}"));
    let node = Node::open(settings(Some(good.join("keys.psk")))).await.expect("keys make a network listener fine");
    assert!(node.nbd_address().unwrap().ip().is_unspecified());
}
