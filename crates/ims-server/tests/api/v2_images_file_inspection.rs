//! Uploads are inspected before an image becomes active: unsafe or mismatched files are refused.

use std::path::Path;
use std::process::Command;

use ims_client::CreateImage;

use crate::common::{status, TestServer};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().expect("qemu-img is installed");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn image(format: &str, name: &str) -> CreateImage {
    CreateImage {
        name: Some(name.into()),
        disk_format: Some(format.into()),
        container_format: Some("bare".into()),
        ..Default::default()
    }
}

async fn upload(s: &TestServer, format: &str, path: &Path) -> (String, Result<(), ims_client::ClientError>) {
    let img = s.admin.create_image(&image(format, "inspected")).await.unwrap();
    let result = s.admin.upload_file(&img.id, path).await;
    (img.id, result)
}

#[tokio::test]
async fn formats_get_their_virtual_size_from_the_inspector() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (glance, qemu, opts) in [
        ("qcow2", "qcow2", ""),
        ("vmdk", "vmdk", "subformat=streamOptimized"),
        ("vhd", "vpc", ""),
        ("vhdx", "vhdx", ""),
        ("vdi", "vdi", ""),
        ("raw", "raw", ""),
    ] {
        let path = dir.path().join(format!("disk.{qemu}"));
        let p = path.to_str().unwrap();
        let mut args = vec!["create", "-q", "-f", qemu];
        if !opts.is_empty() {
            args.extend(["-o", opts]);
        }
        args.extend([p, "48M"]);
        qemu_img(&args);
        let (id, result) = upload(&s, glance, &path).await;
        result.unwrap_or_else(|e| panic!("{glance}: {e}"));
        let shown = s.admin.get_image(&id).await.unwrap();
        assert_eq!(shown.status, "active", "{glance}");
        assert!(shown.virtual_size.unwrap() >= 48 << 20, "{glance}: {:?}", shown.virtual_size);
        assert_eq!(shown.size, Some(std::fs::metadata(&path).unwrap().len()), "{glance}: the file is stored as given");
    }
}

#[tokio::test]
async fn a_qcow2_with_a_backing_file_is_refused_and_the_image_stays_queued() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    let top = dir.path().join("top.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "16M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base.to_str().unwrap(), top.to_str().unwrap()]);
    let (id, result) = upload(&s, "qcow2", &top).await;
    let err = result.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("backing file"), "{err}");
    let shown = s.admin.get_image(&id).await.unwrap();
    assert_eq!((shown.status.as_str(), shown.size, shown.checksum), ("queued", None, None));
}

#[tokio::test]
async fn content_must_match_the_declared_format() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("disk.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", q.to_str().unwrap(), "16M"]);
    let (id, result) = upload(&s, "raw", &q).await;
    let err = result.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("qcow2"), "{err}");
    assert_eq!(s.admin.get_image(&id).await.unwrap().status, "queued");

    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, vec![7u8; 1 << 20]).unwrap();
    let (_, result) = upload(&s, "qcow2", &raw).await;
    assert_eq!(status(result), 400, "raw bytes are not a qcow2");
}
