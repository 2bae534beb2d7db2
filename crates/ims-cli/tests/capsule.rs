//! `ims capsule ...` round trip against a real server: a capsule made from a generated directory is
//! exported to a bucket, its application disk imported back as a data disk image, downloaded, and
//! its files read with our own ISO 9660 reader (no mounting): byte-identical. Sharing the capsule
//! lets another project resolve it.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use common::{disk_bytes, str_of, Server};
use ims_formats::iso::IsoFilesystem;

/// Files of the application directory: nested directories, long and case-differing names, an
/// empty file, a file over 4 MiB, binary data.
fn app_files() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("bin/server".to_string(), disk_bytes((4 << 20) + 4321, 7)),
        ("etc/app/config.yaml".to_string(), b"listen: 0.0.0.0:8080\nworkers: 4\n".to_vec()),
        ("etc/app/Config.YAML".to_string(), b"upper case twin".to_vec()),
        (format!("share/{}", "a-rather-long-file-name-".repeat(4)), (0..=255u8).collect()),
        ("share/empty".to_string(), Vec::new()),
        ("share/d\u{e9}j\u{e0} vu.txt".to_string(), "d\u{e9}j\u{e0} vu\n".as_bytes().to_vec()),
        ("README".to_string(), b"the application\n".to_vec()),
    ])
}

fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, data) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, data).unwrap();
    }
}

/// Every file of the ISO image in `path`, read with our reader.
fn iso_files(path: &Path) -> (String, BTreeMap<String, Vec<u8>>) {
    let file = std::fs::File::open(path).unwrap();
    let fs = IsoFilesystem::open(Arc::new(file)).expect("an ISO 9660 file system");
    let mut out = BTreeMap::new();
    for entry in fs.walk().unwrap().into_iter().filter(|e| !e.is_dir) {
        let mut data = Vec::new();
        fs.open_file(&entry).unwrap().read_to_end(&mut data).unwrap();
        out.insert(entry.path, data);
    }
    (fs.volume_id().to_string(), out)
}

#[test]
fn a_capsule_round_trips_through_a_bucket_byte_identical() {
    let server = Server::start();
    let (_, token) = server.tenant("caps", "alice");
    let (member_project, member_token) = server.tenant("caps-member", "bob");
    let ims = |args: &[&str]| server.ims(Some(&token), args);
    let json = |args: &[&str]| server.json(&token, args);

    let base_file = server.path("base.raw");
    std::fs::write(&base_file, disk_bytes(1 << 20, 1)).unwrap();
    let base = json(&["image", "create", "ubuntu", "--file", base_file.to_str().unwrap(), "--property", "__os_type=Linux"]);
    let base_id = str_of(&base, "id");
    let app_dir = server.path("app");
    let files = app_files();
    write_tree(&app_dir, &files);
    let user_data = server.path("user-data");
    std::fs::write(&user_data, "#cloud-config\nruncmd:\n  - [/mnt/app/bin/server]\n").unwrap();

    let created = json(&[
        "capsule", "create", "web", "--base", &base_id, "--app-dir", app_dir.to_str().unwrap(),
        "--user-data", user_data.to_str().unwrap(), "--property", "app_version=2.0",
    ]);
    let capsule_id = str_of(&created["image"], "id");
    assert_eq!(created["image"]["__image_kind"], "capsule");
    assert_eq!(created["image"]["app_version"], "2.0");
    assert_eq!(created["base_image"]["id"], base_id.as_str());
    let app = &created["app_images"][0];
    let app_id = str_of(app, "id");
    assert_eq!((app["name"].as_str(), app["virtual_env_type"].as_str()), (Some("web-app"), Some("DataImage")));
    assert_eq!(app["disk_format"], "iso");
    let sent = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&user_data).unwrap());
    assert_eq!(created["user_data"], sent.as_str());

    let listed = json(&["capsule", "list"]);
    let listed: Vec<String> = listed.as_array().unwrap().iter().map(|c| str_of(c, "id")).collect();
    assert_eq!(listed, vec![capsule_id.clone()]);
    let table = ims(&["capsule", "show", &capsule_id]).ok().stdout();
    assert!(table.contains(&app_id) && table.contains("app_version"), "{table}");

    // The application disk as uploaded is our ISO, byte-identical files under their own names.
    let uploaded = server.path("uploaded.iso");
    ims(&["image", "download", &app_id, "-o", uploaded.to_str().unwrap()]).ok();
    let (label, read) = iso_files(&uploaded);
    assert_eq!(label, "capsule-app");
    assert_eq!(read, files);

    // Export to a bucket, import the disk back as a data disk image, read it again.
    let exported = json(&["capsule", "export", &capsule_id, "files:capsules/web", "--wait"]);
    assert_eq!(exported["app_images"][0]["file"], "capsules/web/app-1.raw");
    let back = server.path("user-data.back");
    ims(&["bucket", "get", "files:capsules/web/user-data", back.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&user_data).unwrap());
    let description = server.path("capsule.json");
    ims(&["bucket", "get", "files:capsules/web/capsule.json", description.to_str().unwrap()]).ok();
    let description: serde_json::Value = serde_json::from_slice(&std::fs::read(&description).unwrap()).unwrap();
    assert_eq!(description["base_image_id"], base_id.as_str());

    let job = json(&["image", "import", "files:capsules/web/app-1.raw", "--data", "--name", "reimported", "--wait"]);
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let reimported = str_of(&job["result"], "image_id");
    let downloaded = server.path("reimported.iso");
    ims(&["image", "download", &reimported, "-o", downloaded.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&downloaded).unwrap(), std::fs::read(&uploaded).unwrap());
    let (_, read) = iso_files(&downloaded);
    assert_eq!(read, files, "files survive export and re-import byte-identical");

    // Shared with another project, the capsule resolves there (parts included), though that
    // project cannot see the application image by itself.
    let bob = |args: &[&str]| server.ims(Some(&member_token), args);
    assert!(bob(&["capsule", "show", &capsule_id]).fails().contains("404"));
    ims(&["image", "member", "add", &capsule_id, &member_project]).ok();
    let seen = server.json(&member_token, &["capsule", "show", &capsule_id]);
    assert_eq!(seen["app_images"][0]["id"], app_id.as_str());
    assert_eq!(seen["user_data"], sent.as_str());
    assert!(bob(&["image", "show", &app_id]).fails().contains("404"));

    // A bad base leaves nothing behind: not the capsule, not its application disk.
    let err = ims(&["capsule", "create", "bad", "--base", &app_id, "--app-dir", app_dir.to_str().unwrap()]).fails();
    assert!(err.contains("400") && err.contains("not a system disk image"), "{err}");
    let names: Vec<String> =
        json(&["image", "list"]).as_array().unwrap().iter().map(|i| str_of(i, "name")).collect();
    assert!(!names.iter().any(|n| n.starts_with("bad")), "{names:?}");

    // Deleting with --with-app-images removes the capsule and its application disk.
    ims(&["capsule", "delete", &capsule_id, "--with-app-images"]).ok();
    assert!(ims(&["capsule", "show", &capsule_id]).fails().contains("404"));
    assert!(ims(&["image", "show", &app_id]).fails().contains("404"));
    assert!(json(&["capsule", "list"]).as_array().unwrap().is_empty());
}
