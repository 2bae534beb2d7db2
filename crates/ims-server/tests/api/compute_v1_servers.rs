//! `/compute/v1/servers` and `/compute/v1/volumes`: servers from images, volumes, attachments, checks,
//! project isolation.

use ims_client::{CreateImage, NewServerDataVolume, NewServerRequest, Role};

use crate::common::{pattern, raw_image, status, TestServer};

const GIB: u64 = 1 << 30;

/// An active RAW image of `len` pattern bytes with `min_disk` GiB and `min_ram` MiB.
async fn raw_image_of(s: &TestServer, name: &str, len: usize, min_disk: u64, min_ram: u64) -> String {
    let create = CreateImage { min_disk: Some(min_disk), min_ram: Some(min_ram), ..raw_image(name) };
    let img = s.admin.create_image(&create).await.unwrap();
    s.admin.upload_bytes(&img.id, pattern(len, 7)).await.unwrap();
    img.id
}

fn server_request(name: &str, image_id: &str) -> NewServerRequest {
    NewServerRequest {
        name: name.into(),
        server_type: "ecs".into(),
        vcpus: 2,
        ram_mb: 2048,
        image_id: image_id.into(),
        capsule_id: None,
        architecture: None,
        firmware: None,
        system_volume_size: None,
        data_volumes: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_an_image_gets_a_system_volume_and_data_volumes() {
    let s = TestServer::start().await;
    let image = raw_image_of(&s, "base", 3 << 20, 2, 512).await;
    let request = NewServerRequest {
        system_volume_size: Some(3),
        data_volumes: vec![NewServerDataVolume { image_id: None, size: Some(1) }],
        ..server_request("web", &image)
    };
    let server = s.admin.create_server(&request).await.unwrap();
    assert_eq!((server.status.as_str(), server.server_type.as_str(), server.architecture.as_str()), ("SHUTOFF", "ecs", "x86_64"));
    let volumes = server.volumes.clone().unwrap();
    assert_eq!(volumes.len(), 2);
    let (system, data) = (&volumes[0], &volumes[1]);
    assert_eq!((system.device_index, system.size_bytes, system.bootable), (Some(0), 3 * GIB, true));
    assert_eq!(system.source_image_id.as_deref(), Some(image.as_str()));
    assert_eq!((data.device_index, data.size_bytes, data.bootable, data.source_image_id.as_deref()), (Some(1), GIB, false, None));
    assert_eq!(system.status, "in-use");

    let shown = s.admin.get_server(&server.id).await.unwrap();
    assert_eq!(shown.volumes.as_ref().map(Vec::len), Some(2));
    assert_eq!(s.admin.list_servers(false).await.unwrap().len(), 1);
    assert_eq!(s.admin.list_volumes(false, Some(&server.id)).await.unwrap().len(), 2);

    // The default system volume is the image's min_disk.
    let small = s.admin.create_server(&server_request("small", &image)).await.unwrap();
    assert_eq!(small.volumes.unwrap()[0].size_bytes, 2 * GIB);

    s.admin.delete_server(&server.id, false).await.unwrap();
    assert_eq!(status(s.admin.get_server(&server.id).await), 404);
    assert_eq!(status(s.admin.get_volume(&system.id).await), 404, "volumes go with their server by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_disk_min_ram_architecture_and_bad_input_are_refused() {
    let s = TestServer::start().await;
    let image = raw_image_of(&s, "needy", 1 << 20, 4, 4096).await;
    let too_little_ram = server_request("a", &image);
    assert_eq!(status(s.admin.create_server(&too_little_ram).await), 400, "min_ram 4096 > 2048");
    let enough_ram = NewServerRequest { ram_mb: 4096, ..server_request("b", &image) };
    let small_disk = NewServerRequest { system_volume_size: Some(3), ..enough_ram.clone() };
    assert_eq!(status(s.admin.create_server(&small_disk).await), 400, "min_disk 4 > 3");
    let arm = NewServerRequest { architecture: Some("sparc".into()), ..enough_ram.clone() };
    assert_eq!(status(s.admin.create_server(&arm).await), 400);
    let bad_type = NewServerRequest { server_type: "vm".into(), ..enough_ram.clone() };
    assert_eq!(status(s.admin.create_server(&bad_type).await), 400);
    let missing = NewServerRequest { image_id: uuid::Uuid::new_v4().to_string(), ..enough_ram.clone() };
    assert_eq!(status(s.admin.create_server(&missing).await), 404);
    assert!(s.admin.list_servers(true).await.unwrap().is_empty(), "a refused server leaves nothing");
    assert!(s.admin.list_volumes(true, None).await.unwrap().is_empty(), "nor any volume");

    // An image built for aarch64 refuses an x86_64 server.
    let arm_image = raw_image_of(&s, "arm", 1 << 20, 1, 0).await;
    let patch = vec![ims_client::PatchOp::add("architecture", "aarch64")];
    s.admin.update_image(&arm_image, &patch).await.unwrap();
    let x86 = NewServerRequest { architecture: Some("x86_64".into()), ..server_request("c", &arm_image) };
    assert_eq!(status(s.admin.create_server(&x86).await), 400);
    let server = s.admin.create_server(&server_request("d", &arm_image)).await.unwrap();
    assert_eq!(server.architecture, "aarch64", "the image's architecture by default");
    assert_eq!(status(s.admin.create_volume("empty", None, None).await), 400, "an empty volume needs a size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_attach_detach_and_refuse_deletion_while_attached() {
    let s = TestServer::start().await;
    let image = raw_image_of(&s, "base", 1 << 20, 1, 0).await;
    let server = s.admin.create_server(&server_request("web", &image)).await.unwrap();
    let system = server.volumes.unwrap()[0].clone();
    let volume = s.admin.create_volume("scratch", Some(2), None).await.unwrap();
    assert_eq!((volume.status.as_str(), volume.size_bytes), ("available", 2 * GIB));
    let from_image = s.admin.create_volume("copy", None, Some(&image)).await.unwrap();
    assert_eq!((from_image.size_bytes, from_image.bootable), (GIB, true));

    let attached = s.admin.attach_volume(&server.id, &volume.id, None).await.unwrap();
    assert_eq!((attached.status.as_str(), attached.device_index), ("in-use", Some(1)));
    assert_eq!(status(s.admin.attach_volume(&server.id, &from_image.id, Some(1)).await), 409, "device 1 is taken");
    assert_eq!(status(s.admin.attach_volume(&server.id, &from_image.id, Some(0)).await), 400);
    assert_eq!(status(s.admin.delete_volume(&volume.id).await), 409);
    assert_eq!(status(s.admin.detach_volume(&server.id, &system.id).await), 409, "the system disk stays");
    s.admin.detach_volume(&server.id, &volume.id).await.unwrap();
    assert_eq!(status(s.admin.detach_volume(&server.id, &volume.id).await), 404);
    s.admin.delete_volume(&volume.id).await.unwrap();
    assert_eq!(status(s.admin.get_volume(&volume.id).await), 404);

    s.admin.delete_server(&server.id, true).await.unwrap();
    let kept = s.admin.get_volume(&system.id).await.unwrap();
    assert_eq!((kept.status.as_str(), kept.server_id), ("available", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_see_only_their_servers_and_volumes() {
    let s = TestServer::start().await;
    let alice = s.tenant("alice", Role::Member).await;
    let bob = s.tenant("bob", Role::Member).await;
    let reader = s.tenant("reader", Role::Reader).await;
    let img = alice.client.create_image(&raw_image("alices")).await.unwrap();
    alice.client.upload_bytes(&img.id, pattern(1 << 20, 3)).await.unwrap();

    let server = alice.client.create_server(&server_request("mine", &img.id)).await.unwrap();
    let volume = server.volumes.clone().unwrap()[0].clone();
    assert_eq!(server.project_id, alice.project_id);
    assert_eq!(status(bob.client.get_server(&server.id).await), 404);
    assert_eq!(status(bob.client.get_volume(&volume.id).await), 404);
    assert_eq!(status(bob.client.delete_server(&server.id, false).await), 404);
    assert!(bob.client.list_servers(true).await.unwrap().is_empty(), "all_projects is for admins only");
    assert_eq!(status(bob.client.create_server(&server_request("theirs", &img.id)).await), 404, "a private image of another project");
    assert_eq!(status(reader.client.create_volume("r", Some(1), None).await), 403);
    assert_eq!(s.admin.list_servers(true).await.unwrap().len(), 1, "admins see every project's");
    assert!(s.admin.list_servers(false).await.unwrap().is_empty(), "but list their own by default");
    s.admin.get_volume(&volume.id).await.unwrap();
}
