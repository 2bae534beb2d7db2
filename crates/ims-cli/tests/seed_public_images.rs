//! `ims admin seed-public-images --from DIR` against a real `ims serve`, with images made by qemu-img at
//! test time: registration as public images with OS metadata, idempotent re-runs, per-image failures,
//! and metadata files refused before anything is created.

mod common;

use std::path::Path;
use std::process::Command;

use common::{md5_hex, str_of, Server, ADMIN_TOKEN};
use serde_json::Value;

/// Makes `path` with `qemu-img create -f FMT PATH SIZE`, then writes a pattern into it with qemu-io so
/// that the image has data.
fn qemu_image(path: &Path, format: &str, size: &str, pattern: u8) {
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let p = path.to_str().unwrap();
    run("qemu-img", &["create", "-q", "-f", format, p, size]);
    run("qemu-io", &["-f", format, "-c", &format!("write -P {pattern} 0 64k"), p]);
}

/// The results of a JSON run, by image name: (result, image id).
fn results(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| (str_of(r, "name"), str_of(r, "result"), r["image_id"].as_str().unwrap_or_default().to_string()))
        .collect()
}

const METADATA: &str = r#"
[[images]]
name = "Ubuntu 22.04 server 64bit"
file = "ubuntu.qcow2"
disk_format = "qcow2"
platform = "Ubuntu"
os_version = "Ubuntu 22.04 server 64bit"
os_type = "Linux"
os_bit = 64
firmware = "uefi"
architecture = "x86_64"
min_disk = 1
min_ram = 512
tags = ["lts"]
properties = { hw_disk_bus = "virtio" }

[[images]]
name = "Windows Server 2022 Datacenter 64bit"
file = "sub/windows.vmdk"
disk_format = "vmdk"
platform = "Windows"
os_type = "Windows"
os_bit = 64
min_disk = 2
min_ram = 2048
"#;

#[test]
fn seeds_public_images_once_and_reports_each() {
    let s = Server::start();
    let (_, member) = s.tenant("seed-member", "seed-member-user");
    let dir = s.path("seed");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    qemu_image(&dir.join("ubuntu.qcow2"), "qcow2", "16M", 0x5a);
    qemu_image(&dir.join("sub/windows.vmdk"), "vmdk", "8M", 0x33);
    std::fs::write(dir.join("images.toml"), METADATA).unwrap();
    let from = dir.to_str().unwrap();

    let first = s.json(ADMIN_TOKEN, &["admin", "seed-public-images", "--from", from]);
    let first = results(&first);
    assert_eq!(first.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["created", "created"], "{first:?}");

    // Public images with their metadata and the files' checksums, visible to every project.
    let ubuntu = s.json(&member, &["image", "show", &first[0].2]);
    assert_eq!((ubuntu["visibility"].as_str(), ubuntu["status"].as_str()), (Some("public"), Some("active")));
    let file_md5 = md5_hex(&std::fs::read(dir.join("ubuntu.qcow2")).unwrap());
    assert_eq!(str_of(&ubuntu, "checksum"), file_md5);
    for (key, value) in
        [("__os_bit", "64"), ("__platform", "Ubuntu"), ("hw_firmware_type", "uefi"), ("hw_disk_bus", "virtio")]
    {
        assert_eq!(ubuntu[key].as_str(), Some(value), "{key} in {ubuntu}");
    }
    assert_eq!((ubuntu["min_disk"].as_u64(), ubuntu["min_ram"].as_u64()), (Some(1), Some(512)));
    assert_eq!(ubuntu["tags"], serde_json::json!(["lts"]));
    let windows = s.json(&member, &["image", "show", &first[1].2]);
    assert_eq!((windows["disk_format"].as_str(), windows["__os_type"].as_str()), (Some("vmdk"), Some("Windows")));

    // A re-run skips both; a table run names each image.
    let again = results(&s.json(ADMIN_TOKEN, &["admin", "seed-public-images", "--from", from]));
    assert_eq!(
        again.iter().map(|r| (r.1.as_str(), r.2.as_str())).collect::<Vec<_>>(),
        [("skipped", first[0].2.as_str()), ("skipped", first[1].2.as_str())]
    );
    let table = s.admin(&["admin", "seed-public-images", "--from", from]).ok().stdout();
    assert!(table.contains("Ubuntu 22.04 server 64bit") && table.contains("skipped"), "{table}");
    let public = s.json(&member, &["image", "list", "--visibility", "public"]);
    assert_eq!(public.as_array().unwrap().len(), 2, "nothing registered twice: {public}");

    // An image whose content does not match its disk_format fails alone, leaves nothing behind, and
    // makes the command fail after reporting every image.
    qemu_image(&dir.join("liar.img"), "qcow2", "4M", 0x11);
    let with_bad = format!("{METADATA}\n[[images]]\nname = \"liar\"\nfile = \"liar.img\"\ndisk_format = \"vhd\"\n");
    std::fs::write(dir.join("images.toml"), with_bad).unwrap();
    let run = s.admin(&["admin", "seed-public-images", "--from", from, "--output", "json"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(run.stderr().contains("1 of 3 image(s) failed"), "{}", run.stderr());
    let reported = results(&run.json());
    assert_eq!(reported.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["skipped", "skipped", "failed"]);
    let all = s.json(ADMIN_TOKEN, &["image", "list", "--visibility", "public"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "the failed image was deleted: {all}");
}

#[test]
fn bad_metadata_changes_nothing() {
    let s = Server::start();
    let dir = s.path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    qemu_image(&dir.join("a.qcow2"), "qcow2", "4M", 1);
    let from = dir.to_str().unwrap();
    let err = s.admin(&["admin", "seed-public-images", "--from", from]).fails();
    assert!(err.contains("no images.toml or images.json"), "{err}");

    // The second entry names a missing file: the first is not created either.
    let json = r#"{"images": [
        {"name": "a", "file": "a.qcow2", "disk_format": "qcow2"},
        {"name": "b", "file": "missing.qcow2", "disk_format": "qcow2"}
    ]}"#;
    std::fs::write(dir.join("images.json"), json).unwrap();
    let err = s.admin(&["admin", "seed-public-images", "--from", from]).fails();
    assert!(err.contains("missing.qcow2"), "{err}");
    assert!(s.json(ADMIN_TOKEN, &["image", "list"]).as_array().unwrap().is_empty());

    // Publishing public images is for admins.
    std::fs::write(
        dir.join("images.json"),
        r#"{"images": [{"name": "a", "file": "a.qcow2", "disk_format": "qcow2"}]}"#,
    )
    .unwrap();
    let (_, member) = s.tenant("seed-nobody", "seed-nobody-user");
    let run = s.ims(Some(&member), &["admin", "seed-public-images", "--from", from]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stdout().contains("failed"), "{}", run.stdout());
    assert!(s.json(ADMIN_TOKEN, &["image", "list"]).as_array().unwrap().is_empty());
}
