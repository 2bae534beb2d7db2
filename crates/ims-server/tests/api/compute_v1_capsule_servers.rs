//! Servers from capsules (`POST /compute/v1/servers` with `capsule_id`) and the firmware rule: a
//! capsule deploys as its base image, its application disks in order and a `cidata` config drive read
//! back over NBD with the real `qemu-img` and our ISO reader; a member of a shared capsule deploys it;
//! a capsule with a deleted part is refused and leaves nothing behind; a UEFI image needs a UEFI server.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use ims_client::{Client, CreateCapsule, NewServerRequest, Role, ServerInfo};
use ims_formats::iso::IsoFilesystem;

use crate::common::{pattern, raw_image, status, TestServer};

const USER_DATA: &[u8] = b"#cloud-config\nruncmd: [[sh, -c, 'echo deployed > /tmp/ok']]\n\x00\xff\r\n";

async fn must(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program).args(args).output().await.expect("qemu tools are installed");
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn start() -> TestServer {
    TestServer::start_with(|s| s.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await
}

/// An active raw image holding `data`, with `properties`.
async fn image_with(client: &Client, name: &str, data: Vec<u8>, properties: &[(&str, &str)], public: bool) -> String {
    let mut request = raw_image(name);
    for (key, value) in properties {
        request.properties.insert((*key).into(), (*value).into());
    }
    if public {
        request.visibility = Some("public".into());
    }
    let image = client.create_image(&request).await.unwrap();
    client.upload_bytes(&image.id, data).await.unwrap();
    image.id
}

fn capsule(name: &str, base: &str, apps: &[&str]) -> CreateCapsule {
    CreateCapsule {
        name: name.into(),
        base_image_id: base.into(),
        app_image_ids: apps.iter().map(|s| s.to_string()).collect(),
        user_data: USER_DATA.to_vec(),
        properties: BTreeMap::new(),
        visibility: None,
    }
}

fn from_capsule(name: &str, capsule_id: &str) -> NewServerRequest {
    NewServerRequest {
        name: name.into(),
        server_type: "ecs".into(),
        vcpus: 1,
        ram_mb: 1024,
        image_id: String::new(),
        capsule_id: Some(capsule_id.into()),
        architecture: None,
        firmware: None,
        system_volume_size: None,
        data_volumes: Vec::new(),
    }
}

fn from_image(name: &str, image_id: &str) -> NewServerRequest {
    NewServerRequest { image_id: image_id.into(), capsule_id: None, ..from_capsule(name, "") }
}

/// Copies volume `id`'s disk, read over NBD, to `out`.
async fn read_volume(client: &Client, id: &str, out: &Path) {
    let export = client.export_volume_nbd(id, None).await.unwrap();
    must("qemu-img", &["convert", "-f", "raw", "-O", "raw", &export.nbd_url, out.to_str().unwrap()]).await;
}

/// Checks the volumes of `server` deployed from capsule `capsule_id` (base, apps in order, config
/// drive) and that each app volume holds exactly the app image (zeros after it).
async fn check_deployment(client: &Client, server: &ServerInfo, capsule_id: &str, base: &str, apps: &[(&str, &[u8])]) {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(server.image_id.as_deref(), Some(capsule_id), "the server records its capsule");
    let volumes = server.volumes.clone().unwrap();
    assert_eq!(volumes.len(), 1 + apps.len() + 1);
    for (device, volume) in volumes.iter().enumerate() {
        assert_eq!(volume.device_index, Some(device as u32));
        assert_eq!(volume.server_id.as_deref(), Some(server.id.as_str()));
    }
    assert_eq!((volumes[0].source_image_id.as_deref(), volumes[0].bootable), (Some(base), true));
    for (volume, (app, bytes)) in volumes[1..=apps.len()].iter().zip(apps) {
        assert_eq!((volume.source_image_id.as_deref(), volume.bootable), (Some(*app), false));
        let expected = dir.path().join("app.raw");
        std::fs::write(&expected, bytes).unwrap();
        let export = client.export_volume_nbd(&volume.id, None).await.unwrap();
        // Non-strict compare: the volume's tail past the image must read as zeros.
        must("qemu-img", &["compare", "-f", "raw", "-F", "raw", expected.to_str().unwrap(), &export.nbd_url]).await;
    }

    let drive = volumes.last().unwrap();
    assert_eq!((drive.source_image_id.as_deref(), drive.bootable), (Some(capsule_id), false));
    assert_eq!(drive.size_bytes % 2048, 0);
    let iso_path = dir.path().join("config.iso");
    read_volume(client, &drive.id, &iso_path).await;
    let iso = std::fs::read(&iso_path).unwrap();
    assert_eq!(iso.len() as u64, drive.size_bytes);
    let fs = IsoFilesystem::open(Arc::new(iso)).unwrap();
    assert_eq!(fs.volume_id(), "cidata");
    let read = |path: &str| {
        let mut bytes = Vec::new();
        fs.open_file(&fs.find(path).unwrap()).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    };
    assert_eq!(read("user-data"), USER_DATA, "user data byte-identical");
    let meta = String::from_utf8(read("meta-data")).unwrap();
    assert_eq!(meta, format!("instance-id: {}\nlocal-hostname: \"{}\"\n", server.id, server.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capsule_deploys_with_its_disks_and_a_config_drive_also_for_a_member() {
    let s = start().await;
    let owner = s.tenant("deploy-owner", Role::Member).await;
    let member = s.tenant("deploy-member", Role::Member).await;
    let base = image_with(&s.admin, "base", pattern(3 << 20, 1), &[], true).await;
    let data_disk = [("virtual_env_type", "DataImage")];
    let (bytes1, bytes2) = (pattern((2 << 20) + 4096, 2), pattern(512 * 1024, 3));
    let app1 = image_with(&owner.client, "app1", bytes1.clone(), &data_disk, false).await;
    let app2 = image_with(&owner.client, "app2", bytes2.clone(), &data_disk, false).await;
    let capsule_id = owner.client.create_capsule(&capsule("web", &base, &[&app1, &app2])).await.unwrap().image.id;
    let apps: [(&str, &[u8]); 2] = [(&app1, &bytes1), (&app2, &bytes2)];

    let server = owner.client.create_server(&from_capsule("web-1", &capsule_id)).await.unwrap();
    check_deployment(&owner.client, &server, &capsule_id, &base, &apps).await;
    let shown = owner.client.get_server(&server.id).await.unwrap();
    assert_eq!(shown.volumes.unwrap().len(), 4);

    // A member project of the shared capsule deploys it, though it cannot see the app images.
    assert_eq!(status(member.client.create_server(&from_capsule("m", &capsule_id)).await), 404);
    owner.client.add_member(&capsule_id, &member.project_id).await.unwrap();
    assert_eq!(status(member.client.get_image(&app1).await), 404);
    let deployed = member.client.create_server(&from_capsule("member-web", &capsule_id)).await.unwrap();
    assert_eq!(deployed.project_id, member.project_id);
    check_deployment(&member.client, &deployed, &capsule_id, &base, &apps).await;

    // Bad requests are refused with 400 (or 404 for what is no capsule) and create nothing.
    let both = NewServerRequest { image_id: base.clone(), ..from_capsule("x", &capsule_id) };
    assert_eq!(status(owner.client.create_server(&both).await), 400);
    assert_eq!(status(owner.client.create_server(&from_capsule("x", "not-an-id")).await), 400);
    assert_eq!(status(owner.client.create_server(&from_capsule("x", &app1)).await), 404);
    assert_eq!(owner.client.list_servers(false).await.unwrap().len(), 1);
    assert_eq!(owner.client.list_volumes(false, None).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capsule_with_a_deleted_part_is_refused_and_nothing_is_created() {
    let s = start().await;
    let owner = s.tenant("broken-owner", Role::Member).await;
    let base = image_with(&owner.client, "base", pattern(1 << 20, 4), &[], false).await;
    let app = image_with(&owner.client, "app", pattern(1 << 20, 5), &[("virtual_env_type", "DataImage")], false).await;
    let capsule_id = owner.client.create_capsule(&capsule("web", &base, &[&app])).await.unwrap().image.id;
    owner.client.delete_image(&app).await.unwrap();

    let refused = owner.client.create_server(&from_capsule("web-1", &capsule_id)).await.unwrap_err();
    assert_eq!(refused.status(), Some(409));
    assert!(refused.to_string().contains(&app), "{refused}");
    assert!(owner.client.list_servers(false).await.unwrap().is_empty());
    assert!(owner.client.list_volumes(false, None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uefi_image_needs_a_uefi_server() {
    let s = TestServer::start().await;
    let uefi = image_with(&s.admin, "uefi", pattern(1 << 20, 6), &[("hw_firmware_type", "uefi")], false).await;
    let plain = image_with(&s.admin, "plain", pattern(1 << 20, 7), &[], false).await;

    let bios = NewServerRequest { firmware: Some("bios".into()), ..from_image("a", &uefi) };
    let refused = s.admin.create_server(&bios).await.unwrap_err();
    assert_eq!(refused.status(), Some(400));
    assert!(refused.to_string().contains("hw_firmware_type=uefi"), "{refused}");
    let unknown = NewServerRequest { firmware: Some("coreboot".into()), ..from_image("a", &plain) };
    assert_eq!(status(s.admin.create_server(&unknown).await), 400);
    assert!(s.admin.list_servers(false).await.unwrap().is_empty());

    let ok = NewServerRequest { firmware: Some("UEFI".into()), ..from_image("b", &uefi) };
    let created = s.admin.create_server(&ok).await.unwrap();
    assert_eq!(created.volumes.unwrap().len(), 1);
    assert_eq!(created.firmware, "uefi", "recorded in its canonical spelling");
    // Without a firmware asked for, the image's is taken, recorded and shown.
    let defaulted = s.admin.create_server(&from_image("e", &uefi)).await.unwrap();
    assert_eq!(defaulted.firmware, "uefi");
    assert_eq!(s.admin.get_server(&defaulted.id).await.unwrap().firmware, "uefi");
    // An image that names no firmware boots either way, with bios unless asked.
    let plain_default = s.admin.create_server(&from_image("c", &plain)).await.unwrap();
    assert_eq!(plain_default.firmware, "bios");
    let ok = NewServerRequest { firmware: Some("uefi".into()), ..from_image("d", &plain) };
    let plain_uefi = s.admin.create_server(&ok).await.unwrap();
    assert_eq!(plain_uefi.firmware, "uefi");
    let mut listed: Vec<(String, String)> =
        s.admin.list_servers(false).await.unwrap().into_iter().map(|s| (s.name, s.firmware)).collect();
    listed.sort();
    let expected = [("b", "uefi"), ("c", "bios"), ("d", "uefi"), ("e", "uefi")];
    assert_eq!(listed, expected.map(|(n, f)| (n.to_string(), f.to_string())));
}
