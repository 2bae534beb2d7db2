//! Lazy loading: the guest disk of an image being quick-imported (`__lazyloading=true`) is readable over
//! NBD before its import ends (from the bucket object), and after it (from the chunk store). The import is
//! held mid-flight with `hold_imports_of`, so the reads before activation are deterministic.

use std::sync::Arc;

use ims_client::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

/// A 12 MiB guest disk with data, a 3 MiB zero hole and more data.
fn disk() -> Vec<u8> {
    let mut d = pattern(12 << 20, 77);
    d[4 << 20..7 << 20].fill(0);
    d
}

/// The guest disk behind an NBD URL, read by qemu-img.
async fn read_nbd(url: &str, dir: &std::path::Path, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    let result = tokio::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw", url, out.to_str().unwrap()])
        .output()
        .await
        .expect("qemu-img is installed");
    assert!(result.status.success(), "qemu-img convert {url}: {}", String::from_utf8_lossy(&result.stderr));
    std::fs::read(&out).unwrap()
}

async fn mint(t: &Tenant, id: &str) -> (u16, Value) {
    ims(t, Method::POST, &format!("/v1/cloudimages/{id}/nbd"), None).await
}

async fn job(t: &Tenant, job_id: &str) -> Value {
    let (status, job) = ims(t, Method::GET, &format!("/v1/{}/jobs/{job_id}", t.project_id), None).await;
    assert_eq!(status, 200, "{job}");
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_import_is_readable_over_nbd_before_and_after_activation() {
    let s = TestServer::start_with(|c| c.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let t = s.tenant("lazy", Role::Member).await;
    t.client.create_bucket("disks").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = disk();
    let raw = dir.path().join("guest.raw");
    std::fs::write(&raw, &data).unwrap();
    let zvhd2 = dir.path().join("guest.zvhd2");
    {
        let file = Arc::new(std::fs::File::open(&raw).unwrap());
        let source = ims_formats::open(file, ims_formats::Format::Raw, &Default::default()).unwrap();
        let opts = ims_formats::WriteOptions::default();
        ims_formats::convert::convert_to_file(&*source, ims_formats::Format::Zvhd2, &zvhd2, &opts, &|_| {}).unwrap();
    }
    t.client.put_object_file("disks", "guest.raw", &raw).await.unwrap();
    t.client.put_object_file("disks", "guest.zvhd2", &zvhd2).await.unwrap();

    for key in ["guest.raw", "guest.zvhd2"] {
        let image_url = format!("disks:{key}");
        let hold = ims_core::pipelines::hold_imports_of(&image_url);
        let body = json!({"name": format!("lazy-{key}"), "image_url": image_url, "min_disk": 1, "type": "ECS"});
        let (status, answer) = ims(&t, Method::POST, "/v2/cloudimages/quickimport/action", Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        let job_id = answer["job_id"].as_str().unwrap().to_string();
        let id = job(&t, &job_id).await["entities"]["image_id"].as_str().unwrap().to_string();
        let image = t.client.get_image(&id).await.unwrap();
        assert_eq!((image.status.as_str(), image.property("__lazyloading")), ("importing", Some("true")));

        // Mid-flight: the export reads the bucket object through the format's reader.
        let (status, minted) = mint(&t, &id).await;
        assert_eq!(status, 201, "{key}: {minted}");
        let early_url = minted["nbd_url"].as_str().unwrap().to_string();
        let early = read_nbd(&early_url, dir.path(), &format!("{key}.early")).await;
        assert!(early == data, "{key}: the guest disk read while importing");
        let running = job(&t, &job_id).await;
        assert!(matches!(running["status"].as_str(), Some("INIT" | "RUNNING")), "{key}: still held: {running}");
        assert_eq!(t.client.get_image(&id).await.unwrap().status, "importing");

        // Released: the import ends and the same name, and a new one, read the chunk store.
        drop(hold);
        let done = wait_job(&t, &job_id).await;
        assert_eq!(done["status"], "SUCCESS", "{key}: {done}");
        assert_eq!(t.client.get_image(&id).await.unwrap().status, "active");
        let (status, minted) = mint(&t, &id).await;
        assert_eq!(status, 201, "{minted}");
        let late = read_nbd(minted["nbd_url"].as_str().unwrap(), dir.path(), &format!("{key}.late")).await;
        assert!(late == data, "{key}: the guest disk read once active");
        let again = read_nbd(&early_url, dir.path(), &format!("{key}.again")).await;
        assert!(again == data, "{key}: the name minted while importing still opens the image");
    }

    // An image being imported without lazy loading (a standard import) cannot be exported yet.
    t.client.put_object_file("disks", "plain.raw", &raw).await.unwrap();
    let hold = ims_core::pipelines::hold_imports_of("disks:plain.raw");
    let body = json!({"name": "standard", "image_url": "disks:plain.raw", "min_disk": 1});
    let (status, answer) = ims(&t, Method::POST, "/v2/cloudimages/action", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let job_id = answer["job_id"].as_str().unwrap().to_string();
    let id = job(&t, &job_id).await["entities"]["image_id"].as_str().unwrap().to_string();
    let (status, refused) = mint(&t, &id).await;
    assert_eq!(status, 409, "{refused}");
    drop(hold);
    assert_eq!(wait_job(&t, &job_id).await["status"], "SUCCESS");
}
