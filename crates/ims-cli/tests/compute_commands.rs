//! `ims server create|list|show|delete` and `ims volume create|list|show|attach|detach|delete` against a
//! real server.

mod common;

use common::{disk_bytes, str_of, Server};

#[test]
fn servers_and_volumes_from_the_command_line() {
    let server = Server::start();
    let (_, token) = server.tenant("cli-compute", "alice");
    let ims = |args: &[&str]| server.ims(Some(&token), args);
    let json = |args: &[&str]| server.json(&token, args);

    let file = server.path("disk.raw");
    std::fs::write(&file, disk_bytes(2 << 20, 3)).unwrap();
    let image = json(&["image", "create", "base", "--file", file.to_str().unwrap(), "--min-disk", "2"]);
    let image_id = str_of(&image, "id");

    let created = json(&["server", "create", "web", "--image", &image_id, "--vcpus", "2", "--ram-mb", "2048", "--data-volume", "1"]);
    let server_id = str_of(&created, "id");
    assert_eq!((created["status"].as_str(), created["type"].as_str()), (Some("SHUTOFF"), Some("ecs")));
    let volumes = created["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2);
    assert_eq!((volumes[0]["device_index"].as_u64(), volumes[0]["size"].as_u64()), (Some(0), Some(2)), "min_disk 2 GiB");
    assert_eq!((volumes[1]["device_index"].as_u64(), volumes[1]["size"].as_u64()), (Some(1), Some(1)));
    let listed = json(&["server", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let table = ims(&["server", "show", &server_id]).ok().stdout();
    assert!(table.contains("SHUTOFF") && table.contains(&image_id), "{table}");
    let refused = ims(&["server", "create", "tiny", "--image", &image_id, "--system-volume-size", "1"]).fails();
    assert!(refused.contains("400") && refused.contains("min_disk"), "{refused}");
    assert!(ims(&["server", "create", "x", "--image", &image_id, "--data-volume", "disk=1"]).fails().contains("--data-volume"));

    let volume = json(&["volume", "create", "scratch", "--size", "3"]);
    let volume_id = str_of(&volume, "id");
    assert_eq!((volume["status"].as_str(), volume["size_bytes"].as_u64()), (Some("available"), Some(3 << 30)));
    let attached = json(&["volume", "attach", &volume_id, "--server", &server_id]);
    assert_eq!((attached["status"].as_str(), attached["device_index"].as_u64()), (Some("in-use"), Some(2)));
    assert!(ims(&["volume", "delete", &volume_id]).fails().contains("409"), "attached volumes stay");
    assert_eq!(json(&["volume", "list", "--server", &server_id]).as_array().unwrap().len(), 3);
    ims(&["volume", "detach", &volume_id, "--server", &server_id]).ok();
    ims(&["volume", "delete", &volume_id]).ok();
    assert!(ims(&["volume", "show", &volume_id]).fails().contains("404"));

    ims(&["server", "delete", &server_id, "--keep-volumes"]).ok();
    let left = json(&["volume", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 2, "the server's volumes are kept: {left}");
    assert!(left.as_array().unwrap().iter().all(|v| v["status"] == "available"));
    assert!(ims(&["server", "show", &server_id]).fails().contains("404"));
}

#[test]
fn capsules_deploy_and_uefi_images_need_uefi_from_the_command_line() {
    let server = Server::start();
    let (_, token) = server.tenant("cli-capsule-servers", "alice");
    let ims = |args: &[&str]| server.ims(Some(&token), args);
    let json = |args: &[&str]| server.json(&token, args);

    let file = server.path("base.raw");
    std::fs::write(&file, disk_bytes(1 << 20, 5)).unwrap();
    let base = json(&["image", "create", "uefi-base", "--file", file.to_str().unwrap(), "--property", "hw_firmware_type=uefi"]);
    let base_id = str_of(&base, "id");
    let refused = ims(&["server", "create", "bios", "--image", &base_id, "--firmware", "bios"]).fails();
    assert!(refused.contains("400") && refused.contains("hw_firmware_type=uefi"), "{refused}");

    let app_dir = server.path("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(app_dir.join("run.sh"), "#!/bin/sh\necho up\n").unwrap();
    let user_data = server.path("user-data");
    std::fs::write(&user_data, "#cloud-config\n").unwrap();
    let capsule = json(&[
        "capsule", "create", "web", "--base", &base_id, "--app-dir", app_dir.to_str().unwrap(),
        "--user-data", user_data.to_str().unwrap(),
    ]);
    let capsule_id = str_of(&capsule["image"], "id");

    let created = json(&["server", "create", "web-1", "--capsule", &capsule_id, "--firmware", "uefi"]);
    assert_eq!(created["image_id"].as_str(), Some(capsule_id.as_str()));
    let volumes = created["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 3, "system, application disk, config drive: {created}");
    assert_eq!(volumes[2]["source_image_id"].as_str(), Some(capsule_id.as_str()));
    assert_eq!(created["firmware"].as_str(), Some("uefi"));
    let shown = json(&["server", "show", &str_of(&created, "id")]);
    assert_eq!(shown["firmware"].as_str(), Some("uefi"));
    let refused = ims(&["server", "create", "x", "--capsule", &capsule_id, "--firmware", "bios"]).fails();
    assert!(refused.contains("hw_firmware_type=uefi"), "{refused}");
    // Usage errors (exit 2): an image and a capsule together, or neither.
    for args in [&["server", "create", "x", "--capsule", &capsule_id, "--image", &base_id][..], &["server", "create", "x"]] {
        let run = ims(args);
        assert_eq!(run.code(), Some(2), "{args:?}");
        assert!(run.stderr().contains("--image"), "{}", run.stderr());
    }
    assert_eq!(json(&["server", "list"]).as_array().unwrap().len(), 1);
}
