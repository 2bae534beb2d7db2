//! Servers, volumes and volume export names: round trips, attachments, deletion rules, audit.

use ims_catalog::compute::Attachment;
use ims_catalog::{Server, ServerStatus, ServerType, Volume, VolumeEncryption, VolumeExport};
use uuid::Uuid;

use crate::support::*;
use crate::Backend;

fn server(project: &str, name: &str, secs: i64) -> Server {
    Server {
        id: Uuid::new_v4(),
        project: project.into(),
        name: name.into(),
        server_type: ServerType::Ecs,
        vcpus: 2,
        ram_mb: 4096,
        architecture: "x86_64".into(),
        firmware: "bios".into(),
        status: ServerStatus::Shutoff,
        image_id: Some(Uuid::new_v4()),
        created_at: t(secs),
        updated_at: t(secs),
    }
}

fn volume(project: &str, name: &str, secs: i64, attachment: Option<(Uuid, u32)>) -> Volume {
    Volume {
        id: Uuid::new_v4(),
        project: project.into(),
        name: name.into(),
        size: 4 << 30,
        manifest_id: format!("manifest-{name}"),
        source_image_id: None,
        bootable: false,
        encryption: None,
        attachment: attachment.map(|(server_id, device_index)| Attachment { server_id, device_index }),
        created_at: t(secs),
        updated_at: t(secs),
    }
}

fn compute_event(id: Uuid) -> ims_catalog::AuditEvent {
    event("server.create", &format!("server:{id}"))
}

pub async fn check_compute_servers_and_volumes_round_trip(b: &Backend) {
    let c = &b.catalog.compute;
    let s = server("p1", "web", 1);
    let mut system = volume("p1", "system", 1, Some((s.id, 0)));
    system.bootable = true;
    system.source_image_id = s.image_id;
    system.encryption = Some(VolumeEncryption { key_id: "k1".into(), wrapped_data_key: "wrapped".into() });
    let data = volume("p1", "data", 1, Some((s.id, 1)));
    let before = b.audit.count().await;
    c.create_server(&s, &[system.clone(), data.clone()], &compute_event(s.id)).await.unwrap();
    assert_eq!(b.audit.count().await, before + 1, "one audit row for the server and its volumes");

    assert_eq!(c.get_server(s.id).await.unwrap(), s);
    assert_eq!(c.get_volume(system.id).await.unwrap(), system);
    assert_eq!(c.get_volume(system.id).await.unwrap().status(), "in-use");
    assert_eq!(c.list_volumes(None, Some(s.id)).await.unwrap(), vec![system.clone(), data.clone()]);
    expect_not_found(c.get_server(Uuid::new_v4()).await);
    expect_not_found(c.get_volume(Uuid::new_v4()).await);

    let other = server("p2", "db", 2);
    c.create_server(&other, &[], &compute_event(other.id)).await.unwrap();
    assert_eq!(c.list_servers(Some("p1")).await.unwrap(), vec![s.clone()]);
    assert_eq!(c.list_servers(None).await.unwrap(), vec![s.clone(), other.clone()]);
    expect_conflict(c.create_server(&s, &[], &compute_event(s.id)).await);
    assert!(c.list_volumes(Some("p2"), None).await.unwrap().is_empty());
}

pub async fn check_compute_server_firmware(b: &Backend) {
    let c = &b.catalog.compute;
    let mut uefi = server("p1", "uefi", 1);
    uefi.firmware = "uefi".into();
    c.create_server(&uefi, &[], &compute_event(uefi.id)).await.unwrap();
    assert_eq!(c.get_server(uefi.id).await.unwrap().firmware, "uefi");
    assert_eq!(c.list_servers(Some("p1")).await.unwrap(), vec![uefi]);

    let mut odd = server("p1", "odd", 2);
    odd.firmware = "coreboot".into();
    let before = b.audit.count().await;
    let refused = c.create_server(&odd, &[], &compute_event(odd.id)).await;
    assert!(matches!(refused, Err(ims_catalog::CatalogError::Invalid(_))), "{refused:?}");
    expect_not_found(c.get_server(odd.id).await);
    assert_eq!(b.audit.count().await, before);
}

pub async fn check_compute_create_server_is_atomic(b: &Backend) {
    let c = &b.catalog.compute;
    let s = server("p1", "web", 1);
    let first = volume("p1", "a", 1, Some((s.id, 0)));
    let same_device = volume("p1", "b", 1, Some((s.id, 0)));
    let before = b.audit.count().await;
    expect_conflict(c.create_server(&s, &[first.clone(), same_device], &compute_event(s.id)).await);
    expect_not_found(c.get_server(s.id).await);
    expect_not_found(c.get_volume(first.id).await);
    assert_eq!(b.audit.count().await, before, "a refused write leaves no audit row");
}

pub async fn check_compute_attach_and_detach(b: &Backend) {
    let c = &b.catalog.compute;
    let s = server("p1", "web", 1);
    c.create_server(&s, &[volume("p1", "system", 1, Some((s.id, 0)))], &compute_event(s.id)).await.unwrap();
    let (v1, v2, v3) = (volume("p1", "v1", 2, None), volume("p1", "v2", 3, None), volume("p1", "v3", 4, None));
    for v in [&v1, &v2, &v3] {
        c.create_volume(v, &event("volume.create", "volume")).await.unwrap();
        assert_eq!(c.get_volume(v.id).await.unwrap().status(), "available");
    }
    let attached = c.attach_volume(v1.id, s.id, None, t(10), &event("volume.attach", "volume")).await.unwrap();
    assert_eq!(attached.attachment, Some(Attachment { server_id: s.id, device_index: 1 }), "lowest free data device");
    assert_eq!(attached.updated_at, t(10));
    expect_conflict(c.attach_volume(v1.id, s.id, None, t(11), &event("volume.attach", "volume")).await);
    expect_conflict(c.attach_volume(v2.id, s.id, Some(1), t(11), &event("volume.attach", "volume")).await);
    let v3_attached = c.attach_volume(v3.id, s.id, Some(3), t(11), &event("volume.attach", "volume")).await.unwrap();
    assert_eq!(v3_attached.attachment.unwrap().device_index, 3);
    let v2_attached = c.attach_volume(v2.id, s.id, None, t(12), &event("volume.attach", "volume")).await.unwrap();
    assert_eq!(v2_attached.attachment.unwrap().device_index, 2, "the gap below 3 is filled");

    let foreign = server("p2", "db", 2);
    c.create_server(&foreign, &[], &compute_event(foreign.id)).await.unwrap();
    let loose = volume("p1", "loose", 5, None);
    c.create_volume(&loose, &event("volume.create", "volume")).await.unwrap();
    expect_invalid(c.attach_volume(loose.id, foreign.id, None, t(13), &event("volume.attach", "volume")).await);
    expect_not_found(c.attach_volume(loose.id, Uuid::new_v4(), None, t(13), &event("volume.attach", "volume")).await);
    expect_not_found(c.attach_volume(Uuid::new_v4(), s.id, None, t(13), &event("volume.attach", "volume")).await);

    expect_conflict(c.delete_volume(v1.id, &event("volume.delete", "volume")).await);
    let detached = c.detach_volume(v1.id, t(20), &event("volume.detach", "volume")).await.unwrap();
    assert_eq!((detached.attachment, detached.updated_at), (None, t(20)));
    expect_conflict(c.detach_volume(v1.id, t(21), &event("volume.detach", "volume")).await);
    c.delete_volume(v1.id, &event("volume.delete", "volume")).await.unwrap();
    expect_not_found(c.get_volume(v1.id).await);
    expect_not_found(c.delete_volume(v1.id, &event("volume.delete", "volume")).await);
}

pub async fn check_compute_delete_server(b: &Backend) {
    let c = &b.catalog.compute;
    let s = server("p1", "web", 1);
    let (system, data) = (volume("p1", "system", 1, Some((s.id, 0))), volume("p1", "data", 1, Some((s.id, 1))));
    c.create_server(&s, &[system.clone(), data.clone()], &compute_event(s.id)).await.unwrap();
    let deleted = c.delete_server(s.id, false, t(5), &event("server.delete", "server")).await.unwrap();
    assert_eq!(deleted, vec![system.clone(), data.clone()]);
    expect_not_found(c.get_server(s.id).await);
    expect_not_found(c.get_volume(system.id).await);
    expect_not_found(c.delete_server(s.id, false, t(5), &event("server.delete", "server")).await);

    let kept = server("p1", "kept", 2);
    let kept_volume = volume("p1", "system2", 2, Some((kept.id, 0)));
    c.create_server(&kept, std::slice::from_ref(&kept_volume), &compute_event(kept.id)).await.unwrap();
    assert!(c.delete_server(kept.id, true, t(6), &event("server.delete", "server")).await.unwrap().is_empty());
    let left = c.get_volume(kept_volume.id).await.unwrap();
    assert_eq!((left.attachment, left.updated_at, left.status()), (None, t(6), "available"));
}

pub async fn check_compute_manifests_and_exports(b: &Backend) {
    let c = &b.catalog.compute;
    let v = volume("p1", "disk", 1, None);
    c.create_volume(&v, &event("volume.create", "volume")).await.unwrap();
    assert_eq!(c.live_manifests().await.unwrap(), vec!["manifest-disk".to_string()]);
    let moved = c.set_volume_manifest(v.id, "manifest-after", t(3)).await.unwrap();
    assert_eq!((moved.manifest_id.as_str(), moved.updated_at), ("manifest-after", t(3)));
    assert_eq!(c.live_manifests().await.unwrap(), vec!["manifest-after".to_string()]);
    expect_not_found(c.set_volume_manifest(Uuid::new_v4(), "m", t(3)).await);

    let export = |hash: &str, volume_id: Uuid, expires: i64| VolumeExport {
        name_hash: hash.into(),
        volume_id,
        created_by: "u1".into(),
        created_at: t(1),
        expires_at: t(expires),
    };
    let first = export("cc01", v.id, 100);
    c.create_export(&first).await.unwrap();
    c.create_export(&export("cc02", v.id, 10)).await.unwrap();
    expect_conflict(c.create_export(&export("cc01", v.id, 100)).await);
    expect_not_found(c.create_export(&export("cc03", Uuid::new_v4(), 100)).await);
    assert_eq!(c.find_export("cc01").await.unwrap(), Some(first));
    expect_not_found(c.revoke_export(Uuid::new_v4(), "cc01").await);
    c.revoke_export(v.id, "cc01").await.unwrap();
    assert_eq!(c.find_export("cc01").await.unwrap(), None);
    assert_eq!(c.purge_expired_exports(t(50)).await.unwrap(), 1);
    assert_eq!(c.purge_expired_exports(t(50)).await.unwrap(), 0);

    c.create_export(&export("cc04", v.id, 100)).await.unwrap();
    c.delete_volume(v.id, &event("volume.delete", "volume")).await.unwrap();
    assert_eq!(c.find_export("cc04").await.unwrap(), None, "export names go with their volume");
    assert!(c.live_manifests().await.unwrap().is_empty());
}
